/// What the firmware tables describe: the vCPUs and the IOAPIC's ID.
public struct PlatformDescription: Sendable {
    public var cpuCount: Int
    public var ioapicID: UInt8
    public init(cpuCount: Int, ioapicID: UInt8) {
        self.cpuCount = cpuCount
        self.ioapicID = ioapicID
    }
}

/// I/O ports of hv's platform that firmware tables and devices must agree on.
public enum PlatformIO {
    public static let com1: UInt16 = 0x3F8
    public static let com1IRQ = 4
    /// The CMOS RTC's index and data ports and its ISA IRQ (described so rtc_cmos can bind).
    public static let cmos: UInt16 = 0x70
    public static let cmosIRQ = 8
    /// The ACPI sleep control and status register (hardware-reduced ACPI).
    public static let acpiSleepControl: UInt16 = 0x600
}
