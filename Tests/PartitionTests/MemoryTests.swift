import Testing
import TestSupport
@testable import Partition

@Suite struct MemoryMapTests {
    @Test func smallGuestIsAllBelowTheHole() throws {
        let map = try MemoryMap(ramSize: 16 << 20)
        #expect(map.lowRAMEnd == 16 << 20)
        #expect(map.highRAMSize == 0)
        #expect(map.ramRegions.count == 1)
    }

    @Test(arguments: [UInt64(3) << 30, 4 << 30, 64 << 30])
    func largeGuestContinuesAboveFourGiB(size: UInt64) throws {
        let map = try MemoryMap(ramSize: size)
        #expect(map.lowRAMEnd == min(size, MemoryMap.mmioHoleStart))
        #expect(map.lowRAMEnd + map.highRAMSize == size)
        if size > MemoryMap.mmioHoleStart {
            #expect(map.ramRegions[1].guestAddress == 1 << 32)
            #expect(map.highRAMEnd == (1 << 32) + size - MemoryMap.mmioHoleStart)
        }
        // Nothing is RAM inside the hole, where the IOAPIC and LAPIC live.
        #expect(!map.containsRAM(MemoryMap.ioapicBase, length: 4))
        #expect(!map.containsRAM(MemoryMap.localAPICBase, length: 4))
    }

    @Test func e820IsSortedDisjointAndAccountsForAllRAM() throws {
        for size in [UInt64(16) << 20, 256 << 20, 6 << 30] {
            let entries = try MemoryMap(ramSize: size).e820
            for (a, b) in zip(entries, entries.dropFirst()) { #expect(a.address + a.size <= b.address) }
            let ram = entries.filter { $0.type == .ram }.reduce(0) { $0 + $1.size }
            // RAM the guest is told about: all of it but the EBDA and the 0xA0000-0xFFFFF legacy area.
            #expect(ram == size - (MemoryMap.highMemoryStart - MemoryMap.ebdaStart))
            #expect(entries.contains { $0.type == .reserved && $0.address <= MemoryMap.firmwareBase && $0.address + $0.size >= MemoryMap.highMemoryStart })
        }
    }

    @Test func invalidSizesAreRejected() {
        #expect(throws: PartitionError.self) { try MemoryMap(ramSize: 8 << 20) }
        #expect(throws: PartitionError.self) { try MemoryMap(ramSize: (16 << 20) + 1) }
        #expect(throws: PartitionError.self) { try MemoryMap(ramSize: 4 << 40) }
    }
}

@Suite struct GuestMemoryTests {
    @Test func readWriteAndLittleEndian() throws {
        let memory = try GuestMemory(map: MemoryMap(ramSize: 16 << 20))
        try memory.write([1, 2, 3, 4], at: 0x1000)
        #expect(try memory.read(at: 0x1000, count: 4) == [1, 2, 3, 4])
        #expect(try memory.load(UInt32.self, at: 0x1000) == 0x0403_0201)
        try memory.store(UInt64(0x1122_3344_5566_7788), at: 0x2001)
        #expect(try memory.read(at: 0x2001, count: 2) == [0x88, 0x77])
    }

    @Test func accessesOutsideRAMAreRefused() throws {
        let size: UInt64 = 16 << 20
        let memory = try GuestMemory(map: MemoryMap(ramSize: size))
        #expect(throws: GuestMemoryError.self) { try memory.load(UInt32.self, at: size - 2) }
        #expect(throws: GuestMemoryError.self) { try memory.write([0], at: size) }
        #expect(throws: GuestMemoryError.self) { try memory.read(at: UInt64.max - 1, count: 4) }
        #expect(throws: GuestMemoryError.self) { try memory.read(at: 0, count: -1) }
        #expect(try memory.load(UInt32.self, at: size - 4) == 0)
    }

    @Test func rangesMayNotCrossTheHole() throws {
        // 5 GiB of RAM is reserved, not touched: only the pages written here get backed.
        let memory = try GuestMemory(map: MemoryMap(ramSize: 5 << 30))
        #expect(throws: GuestMemoryError.self) { try memory.read(at: MemoryMap.mmioHoleStart - 2, count: 4) }
        try memory.store(UInt32(0xCAFE_F00D), at: 1 << 32)
        #expect(try memory.load(UInt32.self, at: 1 << 32) == 0xCAFE_F00D)
        // The high region is backed by the memfd right after the low one.
        #expect(try memory.load(UInt32.self, at: (1 << 32) + (2 << 30) - 4) == 0)
        #expect(throws: GuestMemoryError.self) { try memory.load(UInt32.self, at: (1 << 32) + (2 << 30) - 2) }
    }
}
