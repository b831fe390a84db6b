import Partition
import Synchronization

/// Where a UART's transmitted bytes go (the console, a file, a test buffer).
public protocol SerialOutput: Sendable {
    func transmit(_ byte: UInt8)
}

/// A 16550A UART: the register model Linux's 8250 driver and the guest stub program, a
/// receive FIFO fed by the host console, and an interrupt line (IRQ 4 for COM1) raised while
/// an enabled condition is pending and OUT2 is set, as on a PC.
public final class Serial16550: PortDevice {
    /// How much host input waits for the guest; beyond it bytes are dropped and counted as overruns.
    public static let receiveCapacity = 4096

    // IER bits
    static let ierReceivedData: UInt8 = 0x01
    static let ierTransmitterEmpty: UInt8 = 0x02
    static let ierLineStatus: UInt8 = 0x04
    // LSR bits
    static let lsrDataReady: UInt8 = 0x01
    static let lsrOverrun: UInt8 = 0x02
    static let lsrTHREmpty: UInt8 = 0x20
    static let lsrTransmitterEmpty: UInt8 = 0x40
    // MCR bits
    static let mcrOut2: UInt8 = 0x08
    static let mcrLoopback: UInt8 = 0x10
    // LCR
    static let lcrDivisorLatch: UInt8 = 0x80
    // IIR values
    static let iirNone: UInt8 = 0x01
    static let iirLineStatus: UInt8 = 0x06
    static let iirReceivedData: UInt8 = 0x04
    static let iirTHREmpty: UInt8 = 0x02
    static let iirFIFOEnabled: UInt8 = 0xC0

    struct State {
        var ier: UInt8 = 0
        var lcr: UInt8 = 0
        var mcr: UInt8 = 0
        var lsrErrors: UInt8 = 0
        var scratch: UInt8 = 0
        var divisorLow: UInt8 = 0x0C // 9600 baud
        var divisorHigh: UInt8 = 0
        var fifoEnabled = false
        /// A THR-empty interrupt is pending until IIR is read with it showing, or THR is written.
        var thrEmptyPending = false
        var receive: [UInt8] = []
        var receiveHead = 0
        var overruns: UInt64 = 0
        var interruptLine = false

        var receiveCount: Int { receive.count - receiveHead }
    }

    let state = Mutex(State())
    let output: any SerialOutput
    /// Called with the new level of the interrupt line whenever it changes.
    let setIRQ: @Sendable (Bool) -> Void

    public init(output: any SerialOutput, setIRQ: @escaping @Sendable (Bool) -> Void) {
        self.output = output
        self.setIRQ = setIRQ
    }

    /// Bytes from the host for the guest to read.
    public func receive(_ bytes: some Sequence<UInt8>) {
        update { state in
            for byte in bytes { Self.push(byte, &state) }
        }
    }

    public var overrunCount: UInt64 { state.withLock { $0.overruns } }

    public func portRead(_ port: UInt16, size: Int) -> UInt32 {
        var value: UInt8 = 0
        update { state in value = Self.read(register: Int(port & 7), &state) }
        return UInt32(value)
    }

    public func portWrite(_ port: UInt16, size: Int, value: UInt32) {
        let byte = UInt8(truncatingIfNeeded: value)
        var transmit: UInt8?
        update { state in transmit = Self.write(register: Int(port & 7), byte, &state) }
        if let transmit { output.transmit(transmit) }
    }

    /// Applies a change, then moves the interrupt line if the change moved it.
    func update(_ change: (inout State) -> Void) {
        var level: Bool?
        state.withLock { state in
            change(&state)
            let now = Self.interruptIdentification(state) != Self.iirNone && state.mcr & Self.mcrOut2 != 0
            if now != state.interruptLine {
                state.interruptLine = now
                level = now
            }
        }
        if let level { setIRQ(level) }
    }

    static func push(_ byte: UInt8, _ state: inout State) {
        if state.receiveCount >= receiveCapacity {
            state.overruns += 1
            state.lsrErrors |= lsrOverrun
            return
        }
        state.receive.append(byte)
    }

    static func read(register: Int, _ state: inout State) -> UInt8 {
        let dlab = state.lcr & lcrDivisorLatch != 0
        switch register {
        case 0:
            if dlab { return state.divisorLow }
            guard state.receiveCount > 0 else { return 0 }
            let byte = state.receive[state.receiveHead]
            state.receiveHead += 1
            if state.receiveHead == state.receive.count || state.receiveHead > 1024 {
                state.receive.removeFirst(state.receiveHead)
                state.receiveHead = 0
            }
            return byte
        case 1:
            return dlab ? state.divisorHigh : state.ier
        case 2:
            let iir = interruptIdentification(state)
            if iir == iirTHREmpty { state.thrEmptyPending = false }
            return iir | (state.fifoEnabled ? iirFIFOEnabled : 0)
        case 3:
            return state.lcr
        case 4:
            return state.mcr
        case 5:
            let lsr = lsrTHREmpty | lsrTransmitterEmpty | (state.receiveCount > 0 ? lsrDataReady : 0) | state.lsrErrors
            state.lsrErrors = 0
            return lsr
        case 6:
            if state.mcr & mcrLoopback != 0 {
                // Loopback: DTR→DSR, RTS→CTS, OUT1→RI, OUT2→DCD.
                let m = state.mcr
                return ((m & 0x01) << 5) | ((m & 0x02) << 3) | ((m & 0x04) << 4) | ((m & 0x08) << 4)
            }
            return 0xB0 // DCD, DSR, CTS: a cable with a terminal on it
        default:
            return state.scratch
        }
    }

    /// Returns the byte to transmit, if the write sent one.
    static func write(register: Int, _ value: UInt8, _ state: inout State) -> UInt8? {
        let dlab = state.lcr & lcrDivisorLatch != 0
        switch register {
        case 0:
            if dlab { state.divisorLow = value; return nil }
            // The line is infinitely fast: THR is empty again at once.
            state.thrEmptyPending = true
            if state.mcr & mcrLoopback != 0 {
                push(value, &state)
                return nil
            }
            return value
        case 1:
            if dlab { state.divisorHigh = value; return nil }
            let enablingTHRE = value & ierTransmitterEmpty != 0 && state.ier & ierTransmitterEmpty == 0
            state.ier = value & 0x0F
            // Enabling the THR-empty interrupt while THR is empty raises it (drivers rely on this).
            if enablingTHRE { state.thrEmptyPending = true }
        case 2:
            state.fifoEnabled = value & 0x01 != 0
            if value & 0x02 != 0 { state.receive.removeAll(); state.receiveHead = 0 }
        case 3:
            state.lcr = value
        case 4:
            state.mcr = value & 0x1F
        case 7:
            state.scratch = value
        default:
            break // LSR and MSR are read-only
        }
        return nil
    }

    /// The highest-priority pending, enabled interrupt, as IIR bits 0-3.
    static func interruptIdentification(_ state: State) -> UInt8 {
        if state.ier & ierLineStatus != 0 && state.lsrErrors != 0 { return iirLineStatus }
        if state.ier & ierReceivedData != 0 && state.receiveCount > 0 { return iirReceivedData }
        if state.ier & ierTransmitterEmpty != 0 && state.thrEmptyPending { return iirTHREmpty }
        return iirNone
    }
}
