import Glibc
import Testing
@testable import Devices
@testable import Partition

@Suite struct PlatformDeviceTests {
    @Test func exitPortStopsWithTheGuestStatus() throws {
        let control = try PartitionControl()
        ExitPort(control: control).portWrite(0x501, size: 1, value: 0x12A)
        #expect(control.stopReason == .guestExit(0x2A))
    }

    @Test func i8042SelfTestAndResetPulse() throws {
        let control = try PartitionControl()
        let controller = I8042(control: control)
        controller.portWrite(0x64, size: 1, value: 0xAA)
        #expect(controller.portRead(0x64, size: 1) & 0x01 == 0x01)
        #expect(controller.portRead(0x60, size: 1) == 0x55)
        controller.portWrite(0x64, size: 1, value: 0x20)
        #expect(controller.portRead(0x60, size: 1) == 0x61)
        #expect(control.stopReason == nil)
        controller.portWrite(0x64, size: 1, value: 0xFE)
        #expect(control.stopReason == .reboot)
    }

    @Test func i8042OutputPortResetBit() throws {
        let control = try PartitionControl()
        let controller = I8042(control: control)
        controller.portWrite(0x64, size: 1, value: 0xD1)
        controller.portWrite(0x60, size: 1, value: 0x03)
        #expect(control.stopReason == nil)
        controller.portWrite(0x64, size: 1, value: 0xD1)
        controller.portWrite(0x60, size: 1, value: 0x02)
        #expect(control.stopReason == .reboot)
    }

    /// 2026-11-23 15:04:05 UTC, a Monday.
    static let fixedTime: time_t = 1_795_446_245

    func cmos(_ clock: CMOSClock, _ index: UInt8) -> UInt32 {
        clock.portWrite(0x70, size: 1, value: UInt32(index))
        return clock.portRead(0x71, size: 1)
    }

    @Test func rtcReportsHostTimeInBCD() {
        let clock = CMOSClock { Self.fixedTime }
        #expect(cmos(clock, 0x00) == 0x05)
        #expect(cmos(clock, 0x02) == 0x04)
        #expect(cmos(clock, 0x04) == 0x15)
        #expect(cmos(clock, 0x07) == 0x23)
        #expect(cmos(clock, 0x08) == 0x11)
        #expect(cmos(clock, 0x09) == 0x26)
        #expect(cmos(clock, 0x32) == 0x20)
        #expect(cmos(clock, 0x06) == 0x02)
        #expect(cmos(clock, 0x0D) == 0x80)
        #expect(cmos(clock, 0x0A) & 0x80 == 0) // never "update in progress"
    }

    @Test func rtcBinaryAnd12HourModes() {
        let clock = CMOSClock { Self.fixedTime }
        clock.portWrite(0x70, size: 1, value: 0x0B)
        clock.portWrite(0x71, size: 1, value: 0x06) // binary, 24-hour
        #expect(cmos(clock, 0x04) == 15)
        #expect(cmos(clock, 0x09) == 26)
        clock.portWrite(0x70, size: 1, value: 0x0B)
        clock.portWrite(0x71, size: 1, value: 0x00) // BCD, 12-hour
        #expect(cmos(clock, 0x04) == 0x83)        // 3 PM
        clock.portWrite(0x70, size: 1, value: 0x40)
        clock.portWrite(0x71, size: 1, value: 0x77)
        #expect(cmos(clock, 0x40) == 0x77)        // CMOS RAM keeps what is written
    }

    @Test func legacyPortsLatchAndReset() throws {
        let control = try PartitionControl()
        let ports = LegacyPorts(control: control)
        ports.portWrite(0x21, size: 1, value: 0xFB)
        #expect(ports.portRead(0x21, size: 1) == 0xFB)
        let first = ports.portRead(0x61, size: 1) & 0x10
        #expect(ports.portRead(0x61, size: 1) & 0x10 != first)
        ports.portWrite(0x92, size: 1, value: 0x02)
        #expect(control.stopReason == nil)
        ports.portWrite(0x92, size: 1, value: 0x01)
        #expect(control.stopReason == .reboot)
    }
}
