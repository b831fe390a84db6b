/// The ACPI tables that describe hv's platform to a guest: RSDP → XSDT → FADT (→ DSDT), MADT and, with PCI, MCFG.
///
/// The platform is "hardware-reduced" ACPI (FADT flag HW_REDUCED_ACPI): no SCI, PM timer,
/// legacy PIC or PIT, which hv does not have. Linux then skips its legacy timer and PIC setup
/// and powers off through the FADT's sleep control register, which hv serves at
/// `PlatformIO.acpiSleepControl`. The DSDT names COM1 (so the 8250 driver gets IRQ 4 from
/// ACPI) and the \_S5 sleep type used for power-off.
public struct ACPITables: Sendable {
    public static let oemID = Array("HVSWFT".utf8)
    public static let oemTableID = Array("HVPLATFM".utf8)
    /// SLP_TYP written with SLP_EN to the sleep control register to enter S5 (soft off).
    public static let s5SleepType: UInt8 = 5

    public let platform: PlatformDescription
    /// Guest-physical address the tables are built for (the RSDP is first).
    public let base: UInt64

    public init(platform: PlatformDescription, base: UInt64) {
        self.platform = platform
        self.base = base
    }

    /// The whole blob to copy to `base`; the RSDP is at its start.
    public var bytes: [UInt8] {
        var blob: [UInt8] = []
        func place(_ table: [UInt8]) -> UInt64 {
            while blob.count % 16 != 0 { blob.append(0) }
            let address = base + UInt64(blob.count)
            blob += table
            return address
        }
        // The RSDP must come first (a fixed 36 bytes); its XSDT pointer is patched in below.
        _ = place([UInt8](repeating: 0, count: 36))
        let dsdt = place(dsdtTable)
        let fadt = place(fadtTable(dsdt: dsdt))
        let madt = place(madtTable)
        var pointers = littleEndianBytes(fadt) + littleEndianBytes(madt)
        if let mcfg = mcfgTable { pointers += littleEndianBytes(place(mcfg)) }
        let xsdt = place(ACPITables.table("XSDT", revision: 1, body: pointers))
        blob.replaceSubrange(0..<36, with: ACPITables.rsdp(xsdt: xsdt))
        return blob
    }

    static func rsdp(xsdt: UInt64) -> [UInt8] {
        var rsdp = Array("RSD PTR ".utf8) + [0] + oemID + [2] + littleEndianBytes(UInt32(0)) + littleEndianBytes(UInt32(36)) + littleEndianBytes(xsdt) + [0, 0, 0, 0]
        rsdp[8] = checksum(rsdp[0..<20])
        rsdp[32] = checksum(rsdp[0..<36])
        return rsdp
    }

    /// A table with the standard 36-byte header and a checksum that makes its bytes sum to 0.
    static func table(_ signature: String, revision: UInt8, body: [UInt8]) -> [UInt8] {
        var table = Array(signature.utf8) + littleEndianBytes(UInt32(36 + body.count)) + [revision, 0] + oemID + oemTableID
            + littleEndianBytes(UInt32(1)) + Array("HVSW".utf8) + littleEndianBytes(UInt32(1)) + body
        table[9] = checksum(table[...])
        return table
    }

    static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt8 {
        0 &- bytes.reduce(0, &+)
    }

    /// A Generic Address Structure for one byte in I/O space.
    static func ioRegister(_ port: UInt16) -> [UInt8] {
        [1, 8, 0, 1] + littleEndianBytes(UInt64(port))
    }

    func fadtTable(dsdt: UInt64) -> [UInt8] {
        var body = [UInt8](repeating: 0, count: 276 - 36)
        func put(_ bytes: [UInt8], at offset: Int) { body.replaceSubrange(offset - 36..<offset - 36 + bytes.count, with: bytes) }
        put(littleEndianBytes(UInt32(truncatingIfNeeded: dsdt)), at: 40)                // DSDT
        put([0x32], at: 108)                                             // CENTURY: CMOS register 0x32
        // IAPC_BOOT_ARCH: no VGA (bit 2), ASPM off (bit 4). The 8042 bit stays clear: hv's i8042
        // has no keyboard behind it (it is there for the reset line), and Linux would spend a
        // second probing it.
        put(littleEndianBytes(UInt16(0b10100)), at: 109)
        // Flags: WBINVD (0), PROC_C1 (2), SLP_BUTTON (5: no sleep button), HW_REDUCED_ACPI (20).
        put(littleEndianBytes(UInt32(1 << 0 | 1 << 2 | 1 << 5 | 1 << 20)), at: 112)
        put([5], at: 131)                                                // FADT minor version: ACPI 6.5
        put(littleEndianBytes(dsdt), at: 140)                                           // X_DSDT
        put(ACPITables.ioRegister(PlatformIO.acpiSleepControl), at: 244) // SLEEP_CONTROL_REG
        put(ACPITables.ioRegister(PlatformIO.acpiSleepControl), at: 256) // SLEEP_STATUS_REG
        put(Array("HVSWIFT\0".utf8), at: 268)                            // hypervisor vendor identity
        return ACPITables.table("FACP", revision: 6, body: body)
    }

    var madtTable: [UInt8] {
        var body = littleEndianBytes(UInt32(truncatingIfNeeded: MemoryMap.localAPICBase)) + littleEndianBytes(UInt32(0)) // no 8259s (PCAT_COMPAT clear)
        for cpu in 0..<platform.cpuCount {
            body += [0, 8, UInt8(cpu), UInt8(cpu)] + littleEndianBytes(UInt32(1))          // processor local APIC, enabled
        }
        body += [1, 12, platform.ioapicID, 0] + littleEndianBytes(UInt32(truncatingIfNeeded: MemoryMap.ioapicBase)) + littleEndianBytes(UInt32(0)) // IOAPIC, GSI base 0
        body += [4, 6, 0xFF] + littleEndianBytes(UInt16(0)) + [1]                          // NMI on LINT1 of every CPU
        return ACPITables.table("APIC", revision: 5, body: body)
    }

    var dsdtTable: [UInt8] {
        let com1 = AML.device("COM1", [
            .name("_HID", .eisaID("PNP0501")),
            .name("_UID", .integer(0)),
            .name("_CRS", .buffer(AML.ioResource(base: PlatformIO.com1, length: 8) + AML.irqResource(PlatformIO.com1IRQ) + AML.endTag)),
        ])
        let rtc = AML.device("RTC_", [
            .name("_HID", .eisaID("PNP0B00")),
            .name("_CRS", .buffer(AML.ioResource(base: PlatformIO.cmos, length: 2) + AML.irqResource(PlatformIO.cmosIRQ) + AML.endTag)),
        ])
        // VMBus is not an ACPI device with resources on x86 (its interrupt is a SINT vector), but Linux's hv_vmbus
        // binds to this node and walks its _CRS, which must exist; an empty one is enough.
        let vmbus = AML.device("VMBS", [
            .name("_HID", .string("VMBus")),
            .name("_UID", .integer(0)),
            .name("_CRS", .buffer(AML.endTag)),
        ])
        let aml = AML.scope("\\_SB_", [com1, rtc] + (platform.vmbus ? [vmbus] : []) + pciDevices).bytes
            + AML.name("_S5_", .package([.integer(UInt64(ACPITables.s5SleepType)), .integer(0), .integer(0), .integer(0)])).bytes
        return ACPITables.table("DSDT", revision: 2, body: aml)
    }

    /// The PCI Express memory-mapped configuration table: one allocation for segment 0, buses 0...lastBus.
    var mcfgTable: [UInt8]? {
        guard let pci = platform.pci else { return nil }
        let allocation = littleEndianBytes(pci.ecamBase) + littleEndianBytes(UInt16(0)) + [0, pci.lastBus] + [0, 0, 0, 0]
        return ACPITables.table("MCFG", revision: 1, body: [UInt8](repeating: 0, count: 8) + allocation)
    }

    /// With PCI: the host bridge PCI0 (PCI Express root PNP0A08, compatible with PCI PNP0A03) with its windows in
    /// _CRS and each device's INTx → GSI in _PRT, and a motherboard-resources device (PNP0C02) that reserves the
    /// ECAM window, which Linux wants to see before it trusts MCFG.
    var pciDevices: [AML] {
        guard let pci = platform.pci else { return [] }
        let routes = pci.routes.map { route in
            AML.package([.integer(UInt64(route.slot) << 16 | 0xFFFF), .integer(UInt64(max(route.pin, 1) - 1)),
                         .integer(0), .integer(UInt64(route.gsi))])
        }
        let windows = AML.wordBusNumber(0...UInt16(pci.lastBus))
            + AML.ioResource(base: PlatformPCI.configPorts.lowerBound, length: UInt8(PlatformPCI.configPorts.count))
            + AML.wordIO(pci.ioWindow)
            + AML.dwordMemory(UInt32(truncatingIfNeeded: pci.mmioWindow.lowerBound)...UInt32(truncatingIfNeeded: pci.mmioWindow.upperBound))
            + AML.endTag
        let bridge = AML.device("PCI0", [
            .name("_HID", .eisaID("PNP0A08")),
            .name("_CID", .eisaID("PNP0A03")),
            .name("_SEG", .integer(0)),
            .name("_BBN", .integer(0)),
            .name("_UID", .integer(0)),
            .name("_CRS", .buffer(windows)),
            .name("_PRT", .package(routes)),
        ])
        let reserved = AML.device("PRES", [
            .name("_HID", .eisaID("PNP0C02")),
            .name("_UID", .integer(1)),
            .name("_CRS", .buffer(AML.memory32Fixed(base: UInt32(truncatingIfNeeded: pci.ecamBase),
                                                    length: UInt32(truncatingIfNeeded: pci.ecamSize)) + AML.endTag)),
        ])
        return [bridge, reserved]
    }
}
