import Glibc
import Partition
import Synchronization

/// The MC146818 CMOS real-time clock at ports 0x70 (index) and 0x71 (data): the host's
/// current UTC time in BCD or binary as register B asks, plus 128 bytes of CMOS RAM.
public final class CMOSClock: PortDevice {
    public static let indexPort: UInt16 = PlatformIO.cmos
    public static let dataPort: UInt16 = PlatformIO.cmos + 1

    static let registerB24Hour: UInt8 = 0x02
    static let registerBBinary: UInt8 = 0x04

    struct State {
        var index: UInt8 = 0
        var ram = [UInt8](repeating: 0, count: 128)
    }

    let state: Mutex<State>
    /// Seconds since the epoch; replaceable for tests.
    let now: @Sendable () -> time_t

    public init(now: @escaping @Sendable () -> time_t = { time(nil) }) {
        var initial = State()
        initial.ram[0x0A] = 0x26                        // 32.768 kHz base, 1024 Hz rate
        initial.ram[0x0B] = CMOSClock.registerB24Hour   // 24-hour, BCD
        initial.ram[0x0D] = 0x80                        // valid RAM and time
        state = Mutex(initial)
        self.now = now
    }

    public func portRead(_ port: UInt16, size: Int) -> UInt32 {
        let seconds = now()
        return state.withLock { state in
            guard port == CMOSClock.dataPort else { return UInt32(state.index) }
            let index = Int(state.index & 0x7F)
            return UInt32(CMOSClock.timeRegister(index, seconds: seconds, registerB: state.ram[0x0B]) ?? state.ram[index])
        }
    }

    public func portWrite(_ port: UInt16, size: Int, value: UInt32) {
        let byte = UInt8(truncatingIfNeeded: value)
        state.withLock { state in
            if port == CMOSClock.indexPort {
                state.index = byte // bit 7 masks NMI on a PC; nothing to mask here
                return
            }
            let index = Int(state.index & 0x7F)
            switch index {
            case 0x0A: state.ram[index] = byte & 0x7F   // UIP is read-only
            case 0x0C, 0x0D: break                      // read-only flags
            default: state.ram[index] = byte            // time writes do not move the host clock
            }
        }
    }

    /// The clock registers computed from host time; nil for plain CMOS RAM.
    static func timeRegister(_ index: Int, seconds: time_t, registerB: UInt8) -> UInt8? {
        var clock = seconds
        var parts = tm()
        gmtime_r(&clock, &parts)
        let value: Int32
        switch index {
        case 0x00: value = parts.tm_sec
        case 0x02: value = parts.tm_min
        case 0x04:
            if registerB & registerB24Hour == 0 {
                // 12-hour mode: 1-12 with bit 7 for PM.
                let hour12 = parts.tm_hour % 12 == 0 ? 12 : parts.tm_hour % 12
                let encoded = encode(Int32(hour12), registerB)
                return parts.tm_hour >= 12 ? encoded | 0x80 : encoded
            }
            value = parts.tm_hour
        case 0x06: value = parts.tm_wday + 1
        case 0x07: value = parts.tm_mday
        case 0x08: value = parts.tm_mon + 1
        case 0x09: value = parts.tm_year % 100
        case 0x32: value = (parts.tm_year + 1900) / 100
        default: return nil
        }
        return encode(value, registerB)
    }

    static func encode(_ value: Int32, _ registerB: UInt8) -> UInt8 {
        if registerB & registerBBinary != 0 { return UInt8(value) }
        return UInt8((value / 10) << 4 | (value % 10))
    }
}
