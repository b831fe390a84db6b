import Partition

/// hv's PC platform: every emulated device at its PC address, wired to the partition's
/// IOAPIC and stop control. The firmware tables (ACPITables, MPTable) describe this set.
public struct PCPlatform {
    /// COM1, for the console to feed.
    public let uart: Serial16550

    /// Creates the devices and attaches them to `partition`'s buses.
    public static func attach(to partition: Partition, serialOutput: any SerialOutput) -> PCPlatform {
        let control = partition.control
        let ioapic = partition.ioapic
        let uart = Serial16550(output: serialOutput) { level in ioapic.setLevel(pin: PlatformIO.com1IRQ, asserted: level) }
        partition.attach(ports: PlatformIO.com1...(PlatformIO.com1 + 7), uart)
        partition.attach(ports: ExitPort.port...ExitPort.port, ExitPort(control: control))
        let keyboardController = I8042(control: control)
        partition.attach(ports: I8042.dataPort...I8042.dataPort, keyboardController)
        partition.attach(ports: I8042.commandPort...I8042.commandPort, keyboardController)
        partition.attach(ports: CMOSClock.indexPort...CMOSClock.dataPort, CMOSClock())
        partition.attach(ports: PlatformIO.acpiSleepControl...PlatformIO.acpiSleepControl, ACPISleepControl(control: control))
        let legacy = LegacyPorts(control: control)
        for range in LegacyPorts.ranges { partition.attach(ports: range, legacy) }
        return PCPlatform(uart: uart)
    }
}
