import Partition

/// I/O port 0x501: the guest writes one byte N and hv exits with status N. Guests under
/// QEMU use isa-debug-exit at the same port, so one image runs under both.
public final class ExitPort: PortDevice {
    public static let port: UInt16 = 0x501
    let control: PartitionControl

    public init(control: PartitionControl) { self.control = control }

    public func portRead(_ port: UInt16, size: Int) -> UInt32 { 0 }

    public func portWrite(_ port: UInt16, size: Int, value: UInt32) {
        control.requestStop(.guestExit(UInt8(truncatingIfNeeded: value)))
    }
}
