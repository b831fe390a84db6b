import Partition

/// The hardware-reduced ACPI sleep control and status register (one byte, see ACPITables).
/// Writing SLP_EN (bit 5) with SLP_TYP (bits 2-4) = S5 is the guest's power-off.
public final class ACPISleepControl: PortDevice {
    static let sleepEnable: UInt32 = 1 << 5

    let control: PartitionControl

    public init(control: PartitionControl) { self.control = control }

    /// Status: WAK_STS (bit 7) clear, nothing to report.
    public func portRead(_ port: UInt16, size: Int) -> UInt32 { 0 }

    public func portWrite(_ port: UInt16, size: Int, value: UInt32) {
        let sleepType = (value >> 2) & 0x7
        if value & ACPISleepControl.sleepEnable != 0 && sleepType == UInt32(ACPITables.s5SleepType) {
            control.requestStop(.powerOff)
        }
    }
}
