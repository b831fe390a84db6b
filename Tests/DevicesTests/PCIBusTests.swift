import Testing
@testable import Devices
@testable import Partition

/// A function with one memory BAR and one I/O BAR that remembers the accesses that reach it.
final class ProbeDevice: PCIDevice {
    let config: PCIConfigSpace
    init(pin: UInt8 = 1) {
        config = PCIConfigSpace(identity: PCIIdentity(vendorID: 0x1234, deviceID: 0x5678, revision: 1, classCode: 0xFF_00_00),
                                bars: [.memory32(size: 0x1000), .io(size: 0x20)], interruptPin: pin)
    }
    func barRead(_ bar: Int, offset: UInt64, size: Int) -> UInt64 { UInt64(bar) << 32 | offset }
    func barWrite(_ bar: Int, offset: UInt64, size: Int, value: UInt64) {}
}

@Suite struct PCIBusTests {
    let recorder = InterruptRecorder()

    func makeBus() -> PCIBus {
        let recorder = self.recorder
        return PCIBus { gsi, asserted in recorder.record(gsi, asserted) }
    }

    /// CONFIG_ADDRESS for bus 0.
    func address(device: Int, function: Int = 0, register: Int) -> UInt32 {
        0x8000_0000 | UInt32(device) << 11 | UInt32(function) << 8 | UInt32(register & 0xFC)
    }

    @Test func mechanism1FindsTheHostBridge() {
        let bus = makeBus()
        // Linux's pci_check_type1: a byte write to 0xCFB must not disturb CONFIG_ADDRESS, which reads back.
        bus.portWrite(0xCFB, size: 1, value: 0x01)
        bus.portWrite(0xCF8, size: 4, value: 0x8000_0000)
        #expect(bus.portRead(0xCF8, size: 4) == 0x8000_0000)
        bus.portWrite(0xCFB, size: 1, value: 0x01)
        #expect(bus.portRead(0xCF8, size: 4) == 0x8000_0000)
        #expect(bus.portRead(0xCFC, size: 4) == 0x1237_8086)
        #expect(bus.portRead(0xCFE, size: 2) == 0x1237)
        #expect(bus.portRead(0xCFD, size: 1) == 0x80)
        bus.portWrite(0xCF8, size: 4, value: address(device: 0, register: 0x08))
        #expect(bus.portRead(0xCFE, size: 2) == 0x0600)                       // class: host bridge
        #expect(bus.portRead(0xCFC, size: 1) == 0x02)                         // revision
        #expect(bus.portRead(0xCF8, size: 2) == 0xFFFF)                       // CONFIG_ADDRESS is dword-only
        // Absent devices and functions, other buses, and a clear enable bit read all ones.
        bus.portWrite(0xCF8, size: 4, value: address(device: 7, register: 0))
        #expect(bus.portRead(0xCFC, size: 4) == 0xFFFF_FFFF)
        bus.portWrite(0xCF8, size: 4, value: address(device: 0, function: 1, register: 0))
        #expect(bus.portRead(0xCFC, size: 2) == 0xFFFF)
        bus.portWrite(0xCF8, size: 4, value: address(device: 0, register: 0) | 1 << 16)
        #expect(bus.portRead(0xCFC, size: 4) == 0xFFFF_FFFF)
        bus.portWrite(0xCF8, size: 4, value: 0x0000_0000)
        #expect(bus.portRead(0xCFC, size: 4) == 0xFFFF_FFFF)
    }

    @Test func mechanism1AndECAMReachTheSameRegisters() throws {
        let bus = makeBus()
        let slot = try bus.plug(ProbeDevice())
        #expect(slot == 1)
        let ecamBase = UInt64(slot) << 15
        #expect(bus.ecamRead(offset: ecamBase, size: 4) == 0x5678_1234)
        #expect(bus.ecamRead(offset: ecamBase + 2, size: 2) == 0x5678)
        #expect(bus.ecamRead(offset: ecamBase + 0x0B, size: 1) == 0xFF)
        // Interrupt line: written through ECAM (byte), read through mechanism #1 (byte, word, dword).
        bus.ecamWrite(offset: ecamBase + 0x3C, size: 1, value: 0x2A)
        bus.portWrite(0xCF8, size: 4, value: address(device: slot, register: 0x3C))
        #expect(bus.portRead(0xCFC, size: 1) == 0x2A)
        #expect(bus.portRead(0xCFD, size: 1) == 0x01)                          // interrupt pin A, read only
        #expect(bus.portRead(0xCFC, size: 4) & 0xFFFF == 0x012A)
        bus.portWrite(0xCFD, size: 1, value: 0x04)
        #expect(bus.ecamRead(offset: ecamBase + 0x3D, size: 1) == 0x01)
        // Read-only identity.
        bus.ecamWrite(offset: ecamBase, size: 4, value: 0xDEAD_BEEF)
        #expect(bus.ecamRead(offset: ecamBase, size: 4) == 0x5678_1234)
        // Extended space of a present function reads 0; absent functions read all ones; misaligned accesses too.
        #expect(bus.ecamRead(offset: ecamBase + 0x100, size: 4) == 0)
        #expect(bus.ecamRead(offset: UInt64(9) << 15, size: 4) == 0xFFFF_FFFF)
        #expect(bus.ecamRead(offset: ecamBase + 1, size: 4) == 0xFFFF_FFFF)
        #expect(bus.ecamRead(offset: ecamBase | 1 << 12, size: 2) == 0xFFFF)
        #expect(bus.ecamRead(offset: bus.ecamSize, size: 4) == 0xFFFF_FFFF)
    }

    @Test func barsAreAssignedSizedAndMoved() throws {
        let bus = makeBus()
        let slot = try bus.plug(ProbeDevice())
        let memoryBAR = bus.configRead(device: slot, offset: 0x10, size: 4)
        let ioBAR = bus.configRead(device: slot, offset: 0x14, size: 4)
        #expect(PlatformPCI.mmioWindow.contains(UInt64(memoryBAR)) && memoryBAR & 0xFFF == 0)
        #expect(ioBAR & 1 == 1 && PlatformPCI.ioWindow.contains(UInt16(ioBAR & ~3)))
        #expect(bus.configRead(device: slot, offset: 0x04, size: 2) & 0x3 == 0x3)        // decoding on, as firmware leaves it
        // Sizing: all ones reads back the size mask with the type bits.
        bus.configWrite(device: slot, offset: 0x10, size: 4, value: 0xFFFF_FFFF)
        #expect(bus.configRead(device: slot, offset: 0x10, size: 4) == 0xFFFF_F000)
        bus.configWrite(device: slot, offset: 0x14, size: 4, value: 0xFFFF_FFFF)
        #expect(bus.configRead(device: slot, offset: 0x14, size: 4) == 0xFFFF_FFE1)
        #expect(bus.configRead(device: slot, offset: 0x18, size: 4) == 0)                 // no BAR 2
        bus.configWrite(device: slot, offset: 0x18, size: 4, value: 0xFFFF_FFFF)
        #expect(bus.configRead(device: slot, offset: 0x18, size: 4) == 0)
        bus.configWrite(device: slot, offset: 0x30, size: 4, value: 0xFFFF_F800)
        #expect(bus.configRead(device: slot, offset: 0x30, size: 4) == 0)                 // no expansion ROM
        // Moving: the guest puts the BARs elsewhere and the windows follow.
        bus.configWrite(device: slot, offset: 0x10, size: 4, value: 0xD000_0000)
        bus.configWrite(device: slot, offset: 0x14, size: 4, value: 0xC800)
        #expect(bus.mmioRead(address: 0xD000_0010, size: 4) == 0x10)
        #expect(bus.mmioRead(address: 0xD000_0FFC, size: 4) == 0xFFC)
        #expect(bus.mmioRead(address: UInt64(memoryBAR), size: 4) == 0xFFFF_FFFF)
        #expect(bus.portRead(0xC804, size: 4) == 4)
        #expect(bus.portRead(UInt16(ioBAR & ~3), size: 4) == 0xFFFF_FFFF)
        // An access running past the end of a BAR is not the BAR's.
        #expect(bus.mmioRead(address: 0xD000_0FFE, size: 4) == 0xFFFF_FFFF)
        #expect(bus.unclaimedAccesses >= 3)
    }

    @Test func commandRegisterGatesDecoding() throws {
        let bus = makeBus()
        let device = ProbeDevice()
        let slot = try bus.plug(device)
        let memory = UInt64(bus.configRead(device: slot, offset: 0x10, size: 4))
        let io = UInt16(bus.configRead(device: slot, offset: 0x14, size: 4) & ~3)
        #expect(bus.mmioRead(address: memory + 8, size: 4) == 8)
        #expect(bus.portRead(io + 4, size: 2) == 4)
        bus.configWrite(device: slot, offset: 0x04, size: 2, value: 0x0001)               // I/O only
        #expect(bus.mmioRead(address: memory + 8, size: 4) == 0xFFFF_FFFF)
        #expect(bus.portRead(io + 4, size: 2) == 4)
        bus.configWrite(device: slot, offset: 0x04, size: 2, value: 0x0002)               // memory only
        #expect(bus.mmioRead(address: memory + 8, size: 4) == 8)
        #expect(bus.portRead(io + 4, size: 2) == 0xFFFF)
        #expect(!device.config.busMasterEnabled)
        bus.configWrite(device: slot, offset: 0x04, size: 2, value: 0x0006)
        #expect(device.config.busMasterEnabled)
        // Only the defined command bits stick.
        bus.configWrite(device: slot, offset: 0x04, size: 2, value: 0xFFFF)
        #expect(bus.configRead(device: slot, offset: 0x04, size: 2) == 0x0547)
    }

    @Test func intxIsRoutedWiredOrAndMaskable() throws {
        let bus = makeBus()
        var devices: [ProbeDevice] = []
        for _ in 0..<9 { let device = ProbeDevice(); try bus.plug(device); devices.append(device) }
        // Slot n's INTA drives GSI 16 + (n - 1) mod 8: slots 1 and 9 share GSI 16.
        #expect(bus.configRead(device: 1, offset: 0x3C, size: 1) == 16)
        #expect(bus.configRead(device: 8, offset: 0x3C, size: 1) == 23)
        #expect(bus.configRead(device: 9, offset: 0x3C, size: 1) == 16)
        let routes = bus.firmwareDescription.routes
        #expect(routes.count == 9)
        #expect(routes.first == .init(slot: 1, pin: 1, gsi: 16))
        #expect(routes.last == .init(slot: 9, pin: 1, gsi: 16))

        devices[0].config.setInterrupt(asserted: true)
        #expect(recorder.level(16))
        #expect(bus.configRead(device: 1, offset: 0x06, size: 2) & 0x8 != 0)           // status: interrupt
        devices[8].config.setInterrupt(asserted: true)
        devices[0].config.setInterrupt(asserted: false)
        #expect(recorder.level(16))                                                    // slot 9 still holds it
        devices[8].config.setInterrupt(asserted: false)
        #expect(!recorder.level(16))
        // INTx disable keeps the line low; the status bit still shows the request.
        bus.configWrite(device: 2, offset: 0x04, size: 2, value: 0x0403)
        devices[1].config.setInterrupt(asserted: true)
        #expect(!recorder.level(17))
        #expect(bus.configRead(device: 2, offset: 0x06, size: 2) & 0x8 != 0)
        bus.configWrite(device: 2, offset: 0x04, size: 2, value: 0x0003)
        #expect(recorder.level(17))
    }

    @Test func slotsAndWindowsAreChecked() throws {
        let bus = makeBus()
        #expect(throws: PartitionError.self) { try bus.plug(ProbeDevice(), slot: 0) }
        try bus.plug(ProbeDevice(), slot: 5)
        #expect(throws: PartitionError.self) { try bus.plug(ProbeDevice(), slot: 5) }
        #expect(throws: PartitionError.self) { try bus.plug(ProbeDevice(), slot: 32) }
        // A window too small for the next BAR.
        let small = PCIBus(ioWindow: 0xC000...0xC03F, interrupts: { _, _ in })
        try small.plug(ProbeDevice())
        try small.plug(ProbeDevice())
        #expect(throws: PartitionError.self) { try small.plug(ProbeDevice()) }
    }
}
