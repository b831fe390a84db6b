import KVM
import Logging
import Synchronization
import Testing
@testable import Partition

final class RecordingSink: MSISink {
    let delivered = Mutex<[(address: UInt64, data: UInt32)]>([])
    let routeUpdates = Mutex<[[VirtualMachine.MSIRoute]]>([])
    func deliver(address: UInt64, data: UInt32) { delivered.withLock { $0.append((address, data)) } }
    func routesChanged(_ routes: [VirtualMachine.MSIRoute]) { routeUpdates.withLock { $0.append(routes) } }
    var count: Int { delivered.withLock { $0.count } }
    var last: (address: UInt64, data: UInt32)? { delivered.withLock { $0.last } }
}

@Suite struct IOAPICTests {
    let sink = RecordingSink()
    var ioapic: IOAPIC { IOAPIC(sink: sink) }

    func program(_ ioapic: IOAPIC, pin: Int, _ entry: UInt64) {
        ioapic.mmioWrite(offset: 0x00, size: 4, value: UInt64(0x10 + 2 * pin))
        ioapic.mmioWrite(offset: 0x10, size: 4, value: entry & 0xFFFF_FFFF)
        ioapic.mmioWrite(offset: 0x00, size: 4, value: UInt64(0x11 + 2 * pin))
        ioapic.mmioWrite(offset: 0x10, size: 4, value: entry >> 32)
    }

    func read(_ ioapic: IOAPIC, register: UInt64) -> UInt64 {
        ioapic.mmioWrite(offset: 0x00, size: 4, value: register)
        return ioapic.mmioRead(offset: 0x10, size: 4)
    }

    @Test func versionAndResetState() {
        let ioapic = self.ioapic
        #expect(read(ioapic, register: 0x01) == 0x0017_0020) // 24 pins, version 0x20
        for pin in 0..<24 { #expect(ioapic.redirectionEntry(pin: pin) & (1 << 16) != 0) } // masked
    }

    @Test func redirectionEntriesReadBackAndPublishRoutes() {
        let ioapic = self.ioapic
        program(ioapic, pin: 4, 0x0300_0000_0000_0031) // vector 0x31 to APIC 3, edge, unmasked
        #expect(read(ioapic, register: 0x18) == 0x31)
        #expect(read(ioapic, register: 0x19) == 0x0300_0000)
        let routes = sink.routeUpdates.withLock { $0.last! }
        #expect(routes.count == 24)
        #expect(routes[4] == VirtualMachine.MSIRoute(gsi: 4, address: 0xFEE0_3000, data: 0x4031))
    }

    @Test func edgePinDeliversOnRisingEdgeOnly() {
        let ioapic = self.ioapic
        program(ioapic, pin: 4, 0x0000_0000_0000_0041)
        ioapic.setLevel(pin: 4, asserted: true)
        ioapic.setLevel(pin: 4, asserted: true)
        #expect(sink.count == 1)
        #expect(sink.last!.address == 0xFEE0_0000 && sink.last!.data == 0x4041)
        ioapic.setLevel(pin: 4, asserted: false)
        ioapic.pulse(pin: 4)
        #expect(sink.count == 2)
    }

    @Test func maskedPinDoesNotDeliver() {
        let ioapic = self.ioapic
        program(ioapic, pin: 3, 0x0000_0000_0001_0041)
        ioapic.pulse(pin: 3)
        #expect(sink.count == 0)
    }

    @Test func levelPinWaitsForEOIAndRedeliversWhileAsserted() {
        let ioapic = self.ioapic
        program(ioapic, pin: 10, 0x0100_0000_0000_8051) // level, vector 0x51, APIC 1
        ioapic.setLevel(pin: 10, asserted: true)
        #expect(sink.count == 1)
        #expect(sink.last!.data == 0xC051) // level + assert + vector
        #expect(ioapic.redirectionEntry(pin: 10) & (1 << 14) != 0) // Remote IRR
        ioapic.setLevel(pin: 10, asserted: true)
        #expect(sink.count == 1)
        ioapic.endOfInterrupt(vector: 0x51)            // still asserted: fires again
        #expect(sink.count == 2)
        ioapic.setLevel(pin: 10, asserted: false)
        ioapic.endOfInterrupt(vector: 0x51)
        #expect(sink.count == 2)
        #expect(ioapic.redirectionEntry(pin: 10) & (1 << 14) == 0)
        ioapic.mmioWrite(offset: 0x40, size: 4, value: 0x51) // EOI register is harmless now
        #expect(sink.count == 2)
    }

    @Test func guestCannotWriteRemoteIRR() {
        let ioapic = self.ioapic
        program(ioapic, pin: 5, 0x0000_0000_0000_C061) // tries to set Remote IRR
        #expect(ioapic.redirectionEntry(pin: 5) & (1 << 14) == 0)
    }

    @Test func logicalDestinationMessage() {
        let message = IOAPIC.message(for: 0x0F00_0000_0000_0930) // logical, lowest priority, vector 0x30
        #expect(message.address == 0xFEE0_F004)
        #expect(message.data == 0x4130)
    }
}

final class RecordingPorts: PortDevice {
    let writes = Mutex<[(UInt16, UInt32)]>([])
    func portRead(_ port: UInt16, size: Int) -> UInt32 { UInt32(port) }
    func portWrite(_ port: UInt16, size: Int, value: UInt32) { writes.withLock { $0.append((port, value)) } }
}

@Suite struct IOBusTests {
    @Test func dispatchUnclaimedAndStringIO() {
        let device = RecordingPorts()
        var ports = AddressRangeMap<UInt16, any PortDevice>()
        ports.insert(0x3F8...0x3FF, device)
        let bus = IOBus(ports: ports, mmio: AddressRangeMap(), logger: Logger(label: "test"))
        var buffer = [UInt8](repeating: 0, count: 8)
        buffer.withUnsafeMutableBytes { bus.handlePortIO(direction: .input, port: 0x3FD, size: 2, data: $0) }
        #expect(buffer == [0xFD, 0x03, 0xFD, 0x03, 0xFD, 0x03, 0xFD, 0x03])
        buffer = [1, 2, 3, 4, 0, 0, 0, 0]
        buffer.withUnsafeMutableBytes { bus.handlePortIO(direction: .output, port: 0x3F8, size: 1, data: UnsafeMutableRawBufferPointer(rebasing: $0[0..<3])) }
        #expect(device.writes.withLock { $0.map(\.1) } == [1, 2, 3])
        buffer.withUnsafeMutableBytes { bus.handlePortIO(direction: .input, port: 0x60, size: 4, data: UnsafeMutableRawBufferPointer(rebasing: $0[0..<4])) }
        #expect(Array(buffer[0..<4]) == [0xFF, 0xFF, 0xFF, 0xFF])
        buffer.withUnsafeMutableBytes { bus.handleMMIO(address: 0xD000_0000, isWrite: false, data: $0) }
        #expect(buffer == [UInt8](repeating: 0xFF, count: 8))
        #expect(bus.unclaimedAccesses == 2)
    }
}

@Suite struct CPUIDPolicyTests {
    @Test func apicIDTopologyAndHypervisorBit() {
        let supported = CPUIDTable(entries: [
            .init(function: 0, eax: 0x10, ebx: 0, ecx: 0, edx: 0),
            .init(function: 1, eax: 0x800F12, ebx: 0x0002_0800, ecx: 0, edx: 0),
            .init(function: 0x8000_0008, eax: 0x3030, ebx: 0, ecx: 0x0000_F001, edx: 0),
        ])
        let table = CPUIDPolicy.table(supported: supported, apicID: 5, count: 6)
        let leaf1 = table.entry(function: 1)!
        #expect(leaf1.ebx >> 24 == 5)
        #expect((leaf1.ebx >> 16) & 0xFF == 6)
        #expect(leaf1.ecx & (1 << 31) != 0)
        #expect(leaf1.edx & (1 << 28) != 0)
        let core = table.entry(function: 0xB, index: 1)!
        #expect(core.ebx == 6 && core.eax == 3 && core.edx == 5)
        #expect(table.entry(function: 0xB, index: 0)!.ebx == 1)
        #expect(table.entry(function: 0x8000_0008)!.ecx & 0xFF == 5)
        let single = CPUIDPolicy.table(supported: supported, apicID: 0, count: 1)
        #expect(single.entry(function: 1)!.edx & (1 << 28) == 0)
        #expect(single.entry(function: 0xB, index: 1)!.ebx == 1)
    }
}
