import KVM
import Synchronization

/// Where the IOAPIC's interrupts go: KVM in a running partition, a recorder in tests.
public protocol MSISink: AnyObject, Sendable {
    /// Delivers one message-signalled interrupt to the local APICs.
    func deliver(address: UInt64, data: UInt32)
    /// The IOAPIC pins as MSI routes. KVM derives from these which vectors are level
    /// triggered, and so which EOIs it must report back (KVM_EXIT_IOAPIC_EOI).
    func routesChanged(_ routes: [VirtualMachine.MSIRoute])
}

/// An 82093AA-style IOAPIC (version 0x20, 24 pins) emulated in hv: the guest programs the
/// redirection table through IOREGSEL/IOWIN, devices raise pins, and each delivery becomes
/// an MSI to the in-kernel local APICs. Level-triggered pins keep Remote IRR set until the
/// guest's EOI, which KVM reports as an exit under split irqchip.
public final class IOAPIC: MMIODevice {
    public static let pinCount = 24
    public static let version: UInt32 = 0x20
    public static let mmioSize: UInt64 = 0x1000

    // Register offsets in the MMIO window.
    static let registerSelect: UInt64 = 0x00
    static let registerWindow: UInt64 = 0x10
    static let eoiRegister: UInt64 = 0x40

    // Redirection entry bits.
    static let deliveryStatusBit: UInt64 = 1 << 12
    static let remoteIRRBit: UInt64 = 1 << 14
    static let levelTriggerBit: UInt64 = 1 << 15
    static let maskBit: UInt64 = 1 << 16
    /// Bits the guest may not write: delivery status and Remote IRR.
    static let readOnlyBits: UInt64 = deliveryStatusBit | remoteIRRBit

    struct State {
        var select: UInt32 = 0
        var id: UInt32 = 0
        /// Every pin starts masked, as after reset.
        var redirection = [UInt64](repeating: IOAPIC.maskBit, count: IOAPIC.pinCount)
        /// Whether the device on each pin asserts it now.
        var asserted = [Bool](repeating: false, count: IOAPIC.pinCount)
    }

    let state = Mutex(State())
    let sink: MSISink

    /// `id` is the IOAPIC ID the firmware tables announce.
    public init(sink: MSISink, id: UInt8 = 0) {
        self.sink = sink
        state.withLock { $0.id = UInt32(id) }
    }

    // MARK: device side

    /// Sets a pin's input level. Edge pins deliver on a rising edge; level pins deliver
    /// while asserted, once per EOI.
    public func setLevel(pin: Int, asserted: Bool) {
        guard (0..<IOAPIC.pinCount).contains(pin) else { return }
        state.withLock { state in
            let wasAsserted = state.asserted[pin]
            state.asserted[pin] = asserted
            let entry = state.redirection[pin]
            if entry & IOAPIC.levelTriggerBit != 0 {
                if asserted { deliverIfReady(pin, &state) }
            } else if asserted && !wasAsserted && entry & IOAPIC.maskBit == 0 {
                deliver(entry)
            }
        }
    }

    /// A pulse on an edge-triggered pin (devices whose interrupt is an event, not a level).
    public func pulse(pin: Int) {
        setLevel(pin: pin, asserted: true)
        setLevel(pin: pin, asserted: false)
    }

    /// The guest's EOI for `vector`, from KVM_EXIT_IOAPIC_EOI or the EOI register.
    public func endOfInterrupt(vector: UInt8) {
        state.withLock { state in
            for pin in 0..<IOAPIC.pinCount {
                let entry = state.redirection[pin]
                guard UInt8(truncatingIfNeeded: entry) == vector, entry & IOAPIC.remoteIRRBit != 0 else { continue }
                state.redirection[pin] &= ~IOAPIC.remoteIRRBit
                deliverIfReady(pin, &state)
            }
        }
    }

    /// The redirection entry of a pin (for tests and diagnostics).
    public func redirectionEntry(pin: Int) -> UInt64 {
        state.withLock { $0.redirection[pin] }
    }

    // MARK: guest side

    public func mmioRead(offset: UInt64, size: Int) -> UInt64 {
        state.withLock { state in
            switch offset {
            case IOAPIC.registerSelect: UInt64(state.select)
            case IOAPIC.registerWindow: UInt64(readRegister(state))
            default: 0
            }
        }
    }

    public func mmioWrite(offset: UInt64, size: Int, value: UInt64) {
        let value32 = UInt32(truncatingIfNeeded: value)
        var routes: [VirtualMachine.MSIRoute]?
        state.withLock { state in
            switch offset {
            case IOAPIC.registerSelect:
                state.select = value32 & 0xFF
            case IOAPIC.registerWindow:
                routes = writeRegister(value32, &state)
            case IOAPIC.eoiRegister:
                // Handled outside the lock below.
                break
            default:
                break
            }
        }
        if offset == IOAPIC.eoiRegister { endOfInterrupt(vector: UInt8(truncatingIfNeeded: value32)) }
        if let routes { sink.routesChanged(routes) }
    }

    func readRegister(_ state: State) -> UInt32 {
        switch state.select {
        case 0x00: return state.id << 24
        case 0x01: return UInt32(IOAPIC.pinCount - 1) << 16 | IOAPIC.version
        case 0x02: return state.id << 24 // arbitration ID
        case 0x10..<0x10 + UInt32(2 * IOAPIC.pinCount):
            let pin = Int(state.select - 0x10) / 2
            let entry = state.redirection[pin]
            return state.select & 1 == 0 ? UInt32(truncatingIfNeeded: entry) : UInt32(truncatingIfNeeded: entry >> 32)
        default: return 0
        }
    }

    /// Returns the new MSI routes when the redirection table changed.
    func writeRegister(_ value: UInt32, _ state: inout State) -> [VirtualMachine.MSIRoute]? {
        switch state.select {
        case 0x00:
            state.id = (value >> 24) & 0xFF
            return nil
        case 0x10..<0x10 + UInt32(2 * IOAPIC.pinCount):
            let pin = Int(state.select - 0x10) / 2
            let old = state.redirection[pin]
            var entry = old
            if state.select & 1 == 0 {
                entry = (entry & 0xFFFF_FFFF_0000_0000) | UInt64(value)
            } else {
                entry = (entry & 0x0000_0000_FFFF_FFFF) | (UInt64(value) << 32)
            }
            entry = (entry & ~IOAPIC.readOnlyBits) | (old & IOAPIC.readOnlyBits)
            // Switching a pin to edge drops a pending Remote IRR.
            if entry & IOAPIC.levelTriggerBit == 0 { entry &= ~IOAPIC.remoteIRRBit }
            state.redirection[pin] = entry
            // An unmasked level pin that is still asserted fires now.
            if entry & IOAPIC.levelTriggerBit != 0 && state.asserted[pin] { deliverIfReady(pin, &state) }
            return entry & ~IOAPIC.readOnlyBits == old & ~IOAPIC.readOnlyBits ? nil : IOAPIC.routes(state.redirection)
        default:
            return nil
        }
    }

    func deliverIfReady(_ pin: Int, _ state: inout State) {
        let entry = state.redirection[pin]
        guard state.asserted[pin], entry & IOAPIC.maskBit == 0, entry & IOAPIC.remoteIRRBit == 0 else { return }
        state.redirection[pin] |= IOAPIC.remoteIRRBit
        deliver(entry)
    }

    func deliver(_ entry: UInt64) {
        let message = IOAPIC.message(for: entry)
        sink.deliver(address: message.address, data: message.data)
    }

    /// Translates a redirection entry to the MSI that the local APICs accept: destination
    /// and destination mode in the address, vector, delivery mode and trigger in the data.
    public static func message(for entry: UInt64) -> (address: UInt64, data: UInt32) {
        let destination = (entry >> 56) & 0xFF
        let logical = (entry >> 11) & 1
        let address = 0xFEE0_0000 | (destination << 12) | (logical << 2)
        let vector = UInt32(entry & 0xFF)
        let deliveryMode = UInt32((entry >> 8) & 0x7)
        let level = UInt32((entry >> 15) & 1)
        // Bit 14 (level assert) is set for every message the IOAPIC sends.
        let data = vector | (deliveryMode << 8) | (1 << 14) | (level << 15)
        return (address, data)
    }

    static func routes(_ table: [UInt64]) -> [VirtualMachine.MSIRoute] {
        table.enumerated().map { pin, entry in
            let message = message(for: entry)
            return VirtualMachine.MSIRoute(gsi: UInt32(pin), address: message.address, data: message.data)
        }
    }
}
