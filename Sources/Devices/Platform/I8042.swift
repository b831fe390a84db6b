import Partition
import Synchronization

/// The i8042 keyboard controller, as far as a guest without a keyboard needs it: status and
/// command byte, the self tests, and the reset line. Pulsing reset (command 0xFE, or clearing
/// bit 0 of the output port) is how PCs reboot; hv treats it as a reboot request.
public final class I8042: PortDevice {
    public static let dataPort: UInt16 = 0x60
    public static let commandPort: UInt16 = 0x64

    static let statusOutputFull: UInt8 = 0x01
    static let statusSystemFlag: UInt8 = 0x04
    static let statusLastWasCommand: UInt8 = 0x08
    static let statusUnlocked: UInt8 = 0x10

    struct State {
        var commandByte: UInt8 = 0x61 // keyboard interrupt on, translation on
        var output: [UInt8] = []
        /// A command that takes a data byte on port 0x60 next (0x60 write command byte, 0xD1 write output port).
        var pendingCommand: UInt8?
        var lastWasCommand = false
    }

    let state = Mutex(State())
    let control: PartitionControl

    public init(control: PartitionControl) { self.control = control }

    public func portRead(_ port: UInt16, size: Int) -> UInt32 {
        state.withLock { state in
            if port == I8042.commandPort {
                var status = I8042.statusSystemFlag | I8042.statusUnlocked
                if !state.output.isEmpty { status |= I8042.statusOutputFull }
                if state.lastWasCommand { status |= I8042.statusLastWasCommand }
                return UInt32(status)
            }
            return state.output.isEmpty ? 0 : UInt32(state.output.removeFirst())
        }
    }

    public func portWrite(_ port: UInt16, size: Int, value: UInt32) {
        let byte = UInt8(truncatingIfNeeded: value)
        let reset = state.withLock { state -> Bool in
            if port == I8042.commandPort {
                state.lastWasCommand = true
                return I8042.command(byte, &state)
            }
            state.lastWasCommand = false
            switch state.pendingCommand.take() {
            case 0x60: state.commandByte = byte
            case 0xD1: return byte & 0x01 == 0 // output port bit 0 low holds the CPU in reset
            default: break // keyboard commands: no keyboard answers
            }
            return false
        }
        if reset { control.requestStop(.reboot) }
    }

    /// Returns true for the reset pulse.
    static func command(_ command: UInt8, _ state: inout State) -> Bool {
        switch command {
        case 0x20: state.output.append(state.commandByte)
        case 0x60, 0xD1: state.pendingCommand = command
        case 0xAA: state.output.append(0x55)            // controller self test passed
        case 0xAB, 0xA9: state.output.append(0x00)      // interface tests passed
        case 0xFE: return true                          // pulse the reset line
        default: break                                  // enable/disable port and the like
        }
        return false
    }
}
