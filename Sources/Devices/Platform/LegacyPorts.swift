import Partition
import Synchronization

/// Quiet, PC-like answers on the legacy ports a kernel touches at boot that hv does not
/// otherwise model: the 8259 PIC mask registers (latched; no interrupts come from them, the
/// IOAPIC is the interrupt controller), system control port B (0x61), the POST and delay
/// ports (0x80, 0xED), and the fast A20 / reset port (0x92). Claimed here so they neither
/// clutter the unclaimed-access log nor read as all ones.
public final class LegacyPorts: PortDevice {
    /// The port ranges to attach this device at.
    public static let ranges: [ClosedRange<UInt16>] = [0x20...0x21, 0x61...0x61, 0x80...0x80, 0x92...0x92, 0xA0...0xA1, 0xED...0xED]

    struct State {
        var picMask: [UInt8] = [0xFF, 0xFF]
        var portB: UInt8 = 0
        var refreshToggle = false
        var port92: UInt8 = 0x02 // A20 enabled
    }

    let state = Mutex(State())
    let control: PartitionControl

    public init(control: PartitionControl) { self.control = control }

    public func portRead(_ port: UInt16, size: Int) -> UInt32 {
        state.withLock { state in
            switch port {
            case 0x21: return UInt32(state.picMask[0])
            case 0xA1: return UInt32(state.picMask[1])
            case 0x61:
                // Bit 4 toggles with DRAM refresh; delay loops that poll it must see it move.
                state.refreshToggle.toggle()
                return UInt32(state.portB & 0x0F | (state.refreshToggle ? 0x10 : 0))
            case 0x92: return UInt32(state.port92)
            default: return 0
            }
        }
    }

    public func portWrite(_ port: UInt16, size: Int, value: UInt32) {
        let byte = UInt8(truncatingIfNeeded: value)
        let reset = state.withLock { state -> Bool in
            switch port {
            case 0x21: state.picMask[0] = byte
            case 0xA1: state.picMask[1] = byte
            case 0x61: state.portB = byte & 0x0F
            case 0x92:
                state.port92 = byte & 0x02
                return byte & 0x01 != 0 // fast reset
            default: break // ICW writes, POST codes, I/O delays
            }
            return false
        }
        if reset { control.requestStop(.reboot) }
    }
}
