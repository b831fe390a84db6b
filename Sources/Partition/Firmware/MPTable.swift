/// The Intel MultiProcessor Specification 1.4 tables, for kernels that boot without ACPI
/// (`acpi=off`): a floating pointer "_MP_" and a "PCMP" configuration table listing every
/// vCPU, the ISA bus, the IOAPIC, ISA IRQs 0-15 on IOAPIC pins 0-15, and LINT0/LINT1; with PCI,
/// also PCI bus 0 and one interrupt entry per device's INTx pin.
public struct MPTable: Sendable {
    public let platform: PlatformDescription
    /// Guest-physical address of the floating pointer; the configuration table follows it.
    public let base: UInt64

    public init(platform: PlatformDescription, base: UInt64) {
        self.platform = platform
        self.base = base
    }

    public var bytes: [UInt8] {
        let configAddress = base + 16
        var entries: [UInt8] = []
        for cpu in 0..<platform.cpuCount {
            // Processor: APIC ID, APIC version 0x14, enabled (+ BSP), signature, features FPU|APIC.
            entries += [0, UInt8(cpu), 0x14, cpu == 0 ? 0x03 : 0x01] + littleEndianBytes(UInt32(0x600)) + littleEndianBytes(UInt32(0x201)) + [UInt8](repeating: 0, count: 8)
        }
        // Linux matches a PCI device's bus number against the MP bus ID, so with PCI the PCI bus is bus 0 and ISA
        // moves to bus 1 (as PC firmware lays it out); without PCI, ISA stays bus 0.
        let isaBus: UInt8 = platform.pci == nil ? 0 : 1
        if platform.pci != nil { entries += [1, 0] + Array("PCI   ".utf8) }             // bus 0: PCI
        entries += [1, isaBus] + Array("ISA   ".utf8)
        entries += [2, platform.ioapicID, 0x14, 0x01] + littleEndianBytes(UInt32(truncatingIfNeeded: MemoryMap.ioapicBase))
        for irq in 0..<16 {
            entries += [3, 0, 0, 0, isaBus, UInt8(irq), platform.ioapicID, UInt8(irq)]             // INT, conforming, ISA IRQ → pin
        }
        let routes = platform.pci?.routes ?? []
        for route in routes {
            // INT, active low (polarity 11) and level-triggered (trigger 11); the source IRQ is device << 2 | INTx.
            entries += [3, 0, 0x0F, 0, 0, route.slot << 2 | (max(route.pin, 1) - 1) & 3, platform.ioapicID, UInt8(truncatingIfNeeded: route.gsi)]
        }
        entries += [4, 3, 0, 0, isaBus, 0, 0xFF, 0]                                     // ExtINT → LINT0 of all
        entries += [4, 1, 0, 0, isaBus, 0, 0xFF, 1]                                     // NMI → LINT1 of all
        let entryCount = platform.cpuCount + (platform.pci == nil ? 1 : 2) + 1 + 16 + routes.count + 2
        var config = Array("PCMP".utf8) + littleEndianBytes(UInt16(44 + entries.count)) + [4, 0] + Array("HVSWIFT ".utf8)
            + Array("HV PLATFORM ".utf8) + littleEndianBytes(UInt32(0)) + littleEndianBytes(UInt16(0)) + littleEndianBytes(UInt16(entryCount))
            + littleEndianBytes(UInt32(truncatingIfNeeded: MemoryMap.localAPICBase)) + littleEndianBytes(UInt16(0)) + [0, 0] + entries
        config[7] = ACPITables.checksum(config[...])
        var pointer = Array("_MP_".utf8) + littleEndianBytes(UInt32(truncatingIfNeeded: configAddress)) + [1, 4, 0, 0, 0, 0, 0, 0]
        pointer[10] = ACPITables.checksum(pointer[...])
        return pointer + config
    }
}
