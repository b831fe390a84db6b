import Glibc
import Testing
import TestSupport
@testable import Partition

@Suite struct FirmwareTablesTests {
    let tables = ACPITables(platform: .init(cpuCount: 4, ioapicID: 4, vmbus: true), base: MemoryMap.acpiTables)

    /// Splits the blob into its tables by following RSDP → XSDT → FADT → DSDT.
    func parse() -> [String: [UInt8]] {
        let blob = tables.bytes
        func at(_ address: UInt64) -> Int { Int(address - tables.base) }
        func table(_ address: UInt64) -> [UInt8] {
            let length = Int(blob.word(UInt32.self, at: at(address) + 4))
            return Array(blob[at(address)..<at(address) + length])
        }
        var found: [String: [UInt8]] = ["RSDP": Array(blob[0..<36])]
        let xsdt = table(blob.word(UInt64.self, at: 24))
        found["XSDT"] = xsdt
        for i in 0..<(xsdt.count - 36) / 8 {
            let entry = table(xsdt.word(UInt64.self, at: 36 + 8 * i))
            found[String(decoding: entry[0..<4], as: UTF8.self)] = entry
        }
        found["DSDT"] = table(found["FACP"]!.word(UInt64.self, at: 140))
        return found
    }

    @Test func everyTableIsPresentAndChecksummed() {
        let found = parse()
        #expect(Set(found.keys) == ["RSDP", "XSDT", "FACP", "APIC", "DSDT"])
        let rsdp = found["RSDP"]!
        #expect(Array(rsdp[0..<8]) == Array("RSD PTR ".utf8))
        #expect(rsdp[0..<20].reduce(0, &+) == 0)
        #expect(rsdp.reduce(0, &+) == 0)
        for (name, table) in found where name != "RSDP" {
            #expect(table.reduce(0, &+) == 0, "\(name) checksum")
        }
        #expect(found["FACP"]!.count == 276)
    }

    @Test func fadtIsHardwareReducedWithSleepRegisters() {
        let fadt = parse()["FACP"]!
        #expect(fadt.word(UInt32.self, at: 112) & (1 << 20) != 0)
        #expect(Array(fadt[244..<248]) == [1, 8, 0, 1])                   // I/O, 8 bits, byte access
        #expect(fadt.word(UInt64.self, at: 248) == UInt64(PlatformIO.acpiSleepControl))
        #expect(fadt.word(UInt64.self, at: 260) == UInt64(PlatformIO.acpiSleepControl))
    }

    @Test func madtListsEveryCPUAndTheIOAPIC() {
        let madt = parse()["APIC"]!
        var offset = 44
        var apicIDs: [UInt8] = [], ioapics: [(UInt8, UInt32)] = []
        while offset < madt.count {
            let type = madt[offset], length = Int(madt[offset + 1])
            if type == 0 { apicIDs.append(madt[offset + 3]); #expect(madt.word(UInt32.self, at: offset + 4) == 1) }
            if type == 1 { ioapics.append((madt[offset + 2], madt.word(UInt32.self, at: offset + 4))) }
            offset += length
        }
        #expect(offset == madt.count)
        #expect(apicIDs == [0, 1, 2, 3])
        #expect(ioapics.count == 1 && ioapics[0].0 == 4 && ioapics[0].1 == 0xFEC0_0000)
    }

    @Test func amlEncodings() {
        #expect(AML.compressedEISAID("PNP0501") == 0x0105_D041)
        #expect(AML.integer(0).bytes == [0x00])
        #expect(AML.integer(5).bytes == [0x0A, 5])
        #expect(AML.integer(0x3F8).bytes == [0x0B, 0xF8, 0x03])
        #expect(AML.string("VMBus").bytes == [0x0D, 0x56, 0x4D, 0x42, 0x75, 0x73, 0x00])
        #expect(AML.name("_S5_", .package([.integer(5), .integer(0)])).bytes == [0x08, 0x5F, 0x53, 0x35, 0x5F, 0x12, 0x05, 0x02, 0x0A, 0x05, 0x00])
        // PkgLength of 64 or more bytes takes two bytes, and counts itself.
        let long = AML.withPackageLength([UInt8](repeating: 0, count: 100))
        let lead: UInt8 = 0x40 | 0x06, next: UInt8 = 0x06 // 102 = 0x66
        #expect(long[0] == lead)
        #expect(long[1] == next)
        #expect(long.count == 102)
    }

    /// ACPICA's disassembler must read every table without an error.
    @Test(.enabled(if: fileExists("/usr/bin/iasl"), "needs iasl (Debian package acpica-tools)"))
    func acpicaDisassemblesTheTables() throws {
        for (name, table) in parse() where name != "RSDP" && name != "XSDT" {
            let path = temporaryFile(named: "\(name.lowercased()).dat", contents: table)
            let result = runProcess(["/usr/bin/iasl", "-d", path])
            #expect(result.status == 0, "\(name): \(result)")
            let listing = runProcess(["/bin/cat", String(path.dropLast(4)) + ".dsl"]).stdout
            #expect(!listing.isEmpty)
            if name == "DSDT" {
                #expect(listing.contains("Device (COM1)"), "\(listing)")
                #expect(listing.contains("PNP0501"), "\(listing)")
                #expect(listing.contains("IRQNoFlags ()") && listing.contains("{4}"), "\(listing)")
                #expect(listing.contains("Name (_S5, Package"), "\(listing)")
                #expect(listing.contains("Device (RTC)") && listing.contains("PNP0B00") && listing.contains("{8}"), "\(listing)")
                #expect(listing.contains("Device (VMBS)") && listing.contains("Name (_HID, \"VMBus\")"), "\(listing)")
            }
            if name == "FACP" { #expect(listing.contains("Hardware Reduced (V5) : 1"), "\(listing)") }
            if name == "APIC" {
                let enabled = listing.split(separator: "\n").filter { $0.contains("Processor Enabled : 1") }.count
                #expect(enabled == 4, "\(listing)")
            }
        }
    }

    @Test func mpTableChecksumsAndEntries() {
        let mp = MPTable(platform: .init(cpuCount: 2, ioapicID: 2), base: MemoryMap.ebdaStart).bytes
        #expect(Array(mp[0..<4]) == Array("_MP_".utf8))
        #expect(mp[0..<16].reduce(0, &+) == 0)
        #expect(mp.word(UInt32.self, at: 4) == UInt32(MemoryMap.ebdaStart + 16))
        let config = Array(mp[16...])
        #expect(Array(config[0..<4]) == Array("PCMP".utf8))
        #expect(Int(config.word(UInt16.self, at: 4)) == config.count)
        #expect(config.reduce(0, &+) == 0)
        #expect(config.word(UInt16.self, at: 34) == 2 + 1 + 1 + 16 + 2)
        #expect(config[44] == 0 && config[44 + 3] == 0x03)                    // BSP entry
        #expect(mp.count <= Int(MemoryMap.legacyHoleStart - MemoryMap.ebdaStart))
    }

    @Test func loaderPointsTheKernelAtTheRSDP() throws {
        let memory = try GuestMemory(map: MemoryMap(ramSize: 64 << 20))
        let boot = try KernelLoader.load(BootRequest(imageName: "bz", image: SyntheticBzImage.make()), into: memory,
                                         platform: .init(cpuCount: 2, ioapicID: 2))
        #expect(try memory.load(UInt64.self, at: boot.bootInfo + 0x070) == MemoryMap.acpiTables)
        #expect(try memory.read(at: MemoryMap.acpiTables, count: 8) == Array("RSD PTR ".utf8))
        #expect(try memory.read(at: MemoryMap.ebdaStart, count: 4) == Array("_MP_".utf8))
    }

    /// With a PCI bus, the ECAM window is reserved in e820 (Linux trusts MCFG only then), in address order.
    @Test func ecamIsReservedInTheMemoryMap() throws {
        let memory = try GuestMemory(map: MemoryMap(ramSize: 64 << 20))
        let pci = PCIPlatformDescription()
        let boot = try KernelLoader.load(BootRequest(imageName: "bz", image: SyntheticBzImage.make()), into: memory,
                                         platform: .init(cpuCount: 1, ioapicID: 1, pci: pci))
        let count = Int(try memory.load(UInt8.self, at: boot.bootInfo + 0x1E8))
        var entries: [(UInt64, UInt64, UInt32)] = []
        for index in 0..<count {
            let at = boot.bootInfo + 0x2D0 + UInt64(index * 20)
            entries.append((try memory.load(UInt64.self, at: at), try memory.load(UInt64.self, at: at + 8),
                            try memory.load(UInt32.self, at: at + 16)))
        }
        #expect(entries.contains { $0.0 == pci.ecamBase && $0.1 == pci.ecamSize && $0.2 == 2 }, "\(entries)")
        #expect(entries.map(\.0) == entries.map(\.0).sorted())
        let plain = try KernelLoader.load(BootRequest(imageName: "bz", image: SyntheticBzImage.make()), into: memory,
                                          platform: .init(cpuCount: 1, ioapicID: 1))
        #expect(try memory.load(UInt8.self, at: plain.bootInfo + 0x1E8) == UInt8(count - 1))
    }
}

extension Array where Element == UInt8 {
    func word<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
        withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
    }
}
