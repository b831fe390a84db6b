/// What the firmware tables describe: the vCPUs, the IOAPIC's ID and, when there is one, the PCI host bridge.
public struct PlatformDescription: Sendable {
    public var cpuCount: Int
    public var ioapicID: UInt8
    /// The DSDT has the ACPI device (_HID "VMBus") that Linux's hv_vmbus waits for.
    public var vmbus: Bool
    /// The PCI bus 0 with its windows and interrupt routes (ACPI MCFG + DSDT PCI0 device, MP table PCI bus), or
    /// nil for a platform without PCI, whose tables stay as they were.
    public var pci: PCIPlatformDescription?
    public init(cpuCount: Int, ioapicID: UInt8, vmbus: Bool = false, pci: PCIPlatformDescription? = nil) {
        self.cpuCount = cpuCount
        self.ioapicID = ioapicID
        self.vmbus = vmbus
        self.pci = pci
    }
}

/// PCI bus 0 behind hv's host bridge as the firmware tables tell it: the configuration windows (mechanism #1 at
/// ports 0xCF8-0xCFF and the ECAM window of the MCFG table), the windows BARs live in, and which IOAPIC input
/// (GSI, level-triggered, active low) each device's INTx pin drives. `PCIBus.firmwareDescription` builds it
/// from what is plugged in.
public struct PCIPlatformDescription: Sendable, Equatable {
    /// One device's interrupt pin wired to a GSI: `pin` 1 = INTA# ... 4 = INTD#.
    public struct InterruptRoute: Sendable, Equatable {
        public var slot: UInt8
        public var pin: UInt8
        public var gsi: UInt32
        public init(slot: UInt8, pin: UInt8, gsi: UInt32) {
            self.slot = slot; self.pin = pin; self.gsi = gsi
        }
    }

    /// Guest-physical base of the ECAM window: 1 MiB per bus, from bus 0.
    public var ecamBase: UInt64
    /// The last bus number the ECAM window and the host bridge decode (0: one bus).
    public var lastBus: UInt8
    /// I/O ports the bridge forwards to BARs (the configuration ports come on top).
    public var ioWindow: ClosedRange<UInt16>
    /// 32-bit memory the bridge forwards to BARs.
    public var mmioWindow: ClosedRange<UInt64>
    public var routes: [InterruptRoute]

    public init(ecamBase: UInt64 = PlatformPCI.ecamBase, lastBus: UInt8 = 0, ioWindow: ClosedRange<UInt16> = PlatformPCI.ioWindow,
                mmioWindow: ClosedRange<UInt64> = PlatformPCI.mmioWindow, routes: [InterruptRoute] = []) {
        self.ecamBase = ecamBase
        self.lastBus = lastBus
        self.ioWindow = ioWindow
        self.mmioWindow = mmioWindow
        self.routes = routes
    }

    /// Bytes of ECAM space: 32 devices × 8 functions × 4 KiB per bus.
    public var ecamSize: UInt64 { (UInt64(lastBus) + 1) << 20 }
}

/// Where hv's PCI host bridge sits, inside the 32-bit MMIO hole [3 GiB, 4 GiB) and clear of the IOAPIC
/// (0xFEC00000), the local APICs (0xFEE00000) and KVM's TSS pages (0xFFFBC000).
public enum PlatformPCI {
    /// Configuration mechanism #1: CONFIG_ADDRESS at 0xCF8, CONFIG_DATA at 0xCFC-0xCFF.
    public static let configPorts: ClosedRange<UInt16> = 0xCF8...0xCFF
    /// BAR space: the first half of the hole.
    public static let mmioWindow: ClosedRange<UInt64> = 0xC000_0000...0xDFFF_FFFF
    /// ECAM for bus 0 (1 MiB), right after the BAR window.
    public static let ecamBase: UInt64 = 0xE000_0000
    /// I/O BAR space.
    public static let ioWindow: ClosedRange<UInt16> = 0xC000...0xCFFF
    /// The IOAPIC inputs PCI INTx lines use: above the 16 ISA IRQs, as on a PC; level-triggered, active low.
    public static let interruptGSIs: ClosedRange<UInt32> = 16...23
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
