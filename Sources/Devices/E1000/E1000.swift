import Dispatch
import Logging
import NetworkBackends
import Partition
import Synchronization

/// What the e1000 dropped or refused because of what the guest (or the host side) did. Each counter only grows.
public struct E1000Counters: Sendable, Equatable {
    /// Frames handed to the back end.
    public var framesTransmitted: UInt64 = 0
    /// Frames written into the RX ring.
    public var framesReceived: UInt64 = 0
    /// Rising edges of the INTx line (interrupts the guest was sent).
    public var interrupts: UInt64 = 0

    /// TX kicks ignored because TDLEN is 0 or TDH/TDT lie beyond the ring.
    public var transmitRingErrors: UInt64 = 0
    /// TX kicks ignored because the command register's bus-master bit was off.
    public var transmitBlocked: UInt64 = 0
    /// TX descriptors that could not be fetched or written back (ring outside guest RAM): the walk stops there.
    public var transmitDescriptorErrors: UInt64 = 0
    /// TX packets dropped because a buffer lay outside guest RAM (their descriptors still complete).
    public var transmitDMAErrors: UInt64 = 0
    /// TX packets dropped as unusable: empty or shorter than an Ethernet header, larger than the device
    /// assembles, or TSO with a context that cannot describe them.
    public var transmitMalformed: UInt64 = 0

    /// Frames dropped because receive was off (RCTL.EN clear) or the link was down.
    public var receiveDisabled: UInt64 = 0
    /// Frames dropped because the command register's bus-master bit was off.
    public var receiveBlocked: UInt64 = 0
    /// Frames dropped because too few descriptors lay between RDH and RDT (RDH == RDT: none).
    public var receiveNoBuffers: UInt64 = 0
    /// Frames dropped because RDLEN is 0, RDH/RDT lie beyond the ring, or a descriptor is outside guest RAM.
    public var receiveRingErrors: UInt64 = 0
    /// Buffers outside guest RAM: the frame's descriptors complete with the RX error bit and no data.
    public var receiveDMAErrors: UInt64 = 0
    /// Frames the address filters rejected (not an error: not for this NIC).
    public var receiveFiltered: UInt64 = 0
    /// Frames dropped as runts (shorter than an Ethernet header) or oversized for RCTL.LPE.
    public var receiveMalformed: UInt64 = 0

    public init() {}
}

/// An Intel 82540EM (PCI 8086:100E) as Linux's e1000 driver and the guest stub drive it, on hv's PCI bus.
///
/// BAR 0 holds the 128 KiB register file; BAR 1 is the I/O window (IOADDR at +0, IODATA at +4) that reaches
/// the same registers. Every register access traps to hv: the EEPROM (EERD or bit-banged EECD), the PHY (MDIC),
/// interrupt causes (ICR/ICS/IMS/IMC with ITR throttling), RX address filters, statistics. A TDT (or TCTL)
/// write walks the TX ring on the writing vCPU and hands finished frames to the back end; frames from the back
/// end's thread go into the RX ring. Guest memory is reached only through GuestMemory's checked accessors and
/// only while bus mastering is on; every bad ring, descriptor or buffer is dropped and counted (`counters`).
public final class E1000: PCIDevice {
    public static let identity = PCIIdentity(vendorID: 0x8086, deviceID: 0x100E, revision: 0x03, classCode: 0x02_00_00,
                                             subsystemVendorID: 0x8086, subsystemID: 0x001E)
    public static let registerBAR = 0
    public static let ioBAR = 1
    public static let registerSpaceSize: UInt32 = 0x2_0000
    public static let ioSpaceSize: UInt32 = 0x40
    /// The largest packet assembled from TX descriptors (bigger ones are dropped): 64 KiB without TSO,
    /// 128 KiB with it (Linux sends at most 64 KiB plus headers).
    static let maximumPacket = 0x1_0000
    static let maximumTSOPacket = 0x2_0000
    /// RX frames never exceed 16 KiB (the largest jumbo frame with LPE or SBP).
    static let maximumReceiveFrame = 16384

    public let config: PCIConfigSpace
    public let mac: [UInt8]
    let backend: any NetworkBackend
    let memory: GuestMemory
    let logger: Logger
    let state: Mutex<E1000State>
    /// Serializes TX ring walks with their hand-off to the back end, so frames leave in ring order.
    let transmitLock = Mutex(())
    let timerQueue = DispatchQueue(label: "hv.e1000.interrupt-throttle")
    /// With `transmitInBackground`, the NIC's DMA engine: a TDT write (which traps, as every register access does)
    /// wakes it, and the vCPU goes back to the guest while it walks the ring, as a real NIC transmits beside the
    /// CPU. nil: the vCPU walks the ring itself.
    let transmitWorker = Mutex<WakeableThread?>(nil)

    /// A NIC with address `mac` (6 bytes, unicast, not zero: Linux rejects others) that sends to and receives
    /// from `backend` and reaches guest RAM through `memory`. Plug it into a `PCIBus`, then `start` it.
    /// With `transmitInBackground`, TX kicks are handled on a thread of the NIC's own (`start` starts it); without,
    /// on the vCPU that wrote TDT, before it returns to the guest (simpler to test).
    public init(mac: [UInt8], backend: any NetworkBackend, memory: GuestMemory, logger: Logger = Logger(label: "hv.e1000"),
                transmitInBackground: Bool = false) throws(PartitionError) {
        guard mac.count == 6, mac[0] & 1 == 0, mac.contains(where: { $0 != 0 }) else {
            throw .configuration("e1000 MAC address \(mac.map { String($0, radix: 16) }.joined(separator: ":")) is not a unicast address of 6 bytes")
        }
        self.mac = mac
        self.backend = backend
        self.memory = memory
        self.logger = logger
        config = PCIConfigSpace(identity: E1000.identity,
                                bars: [.memory32(size: E1000.registerSpaceSize), .io(size: E1000.ioSpaceSize)],
                                interruptPin: 1)
        let eeprom = E1000EEPROM(mac: mac, deviceID: E1000.identity.deviceID, vendorID: E1000.identity.vendorID,
                                 subsystemID: E1000.identity.subsystemID, subsystemVendorID: E1000.identity.subsystemVendorID)
        state = Mutex(E1000State(mac: mac, eeprom: eeprom))
        state.withLock { resetRegisters(&$0) }
        if transmitInBackground {
            let worker = try WakeableThread()
            try worker.start { [weak self] kicked in
                if kicked { self?.transmit() }
                return nil
            }
            transmitWorker.withLock { $0 = worker }
        }
    }

    /// A random locally administered unicast address (x2:xx:xx:xx:xx:xx).
    public static func randomMAC() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        var mac = (0..<6).map { _ in UInt8.random(in: 0...255, using: &generator) }
        mac[0] = (mac[0] & 0xFC) | 0x02
        return mac
    }

    /// Starts receiving from the back end (on its thread).
    public func start() throws(NetworkBackendError) {
        try backend.start { [weak self] frame in self?.receive(frame) ?? false }
    }

    /// Stops receiving and the transmit thread; no frame moves after this returns.
    public func stop() {
        backend.stop()
        transmitWorker.withLock { $0 }?.stop()
    }

    public var counters: E1000Counters { state.withLock { $0.counters } }

    /// The host side's link: down clears STATUS.LU and the PHY's link bits; either change raises LSC.
    public func setLink(up: Bool) {
        state.withLock { state in
            guard state.linkUp != up else { return }
            state.linkUp = up
            state.phy.setLink(up: up)
            raise(E1000Bits.lsc, &state)
        }
    }

    // MARK: PCIDevice

    public func barRead(_ bar: Int, offset: UInt64, size: Int) -> UInt64 {
        switch bar {
        case E1000.registerBAR: registerRead(offset: offset, size: size)
        case E1000.ioBAR: ioRead(offset: offset, size: size)
        default: 0
        }
    }

    public func barWrite(_ bar: Int, offset: UInt64, size: Int, value: UInt64) {
        switch bar {
        case E1000.registerBAR: registerWrite(offset: offset, size: size, value: value)
        case E1000.ioBAR: ioWrite(offset: offset, size: size, value: value)
        default: break
        }
    }

    // MARK: register access

    /// A read in the register space: 32-bit registers; narrower reads take their bytes of the register,
    /// 64-bit reads two registers.
    func registerRead(offset: UInt64, size: Int) -> UInt64 {
        if size == 8 { return registerRead(offset: offset, size: 4) | registerRead(offset: offset + 4, size: 4) << 32 }
        let register = Int(offset & UInt64(E1000.registerSpaceSize - 4))
        let shift = UInt64(offset & 3) * 8
        let value = state.withLock { readRegister(register, &$0) }
        return (UInt64(value) >> shift) & E1000.mask(size)
    }

    func registerWrite(offset: UInt64, size: Int, value: UInt64) {
        if size == 8 {
            registerWrite(offset: offset, size: 4, value: value & 0xFFFF_FFFF)
            registerWrite(offset: offset + 4, size: 4, value: value >> 32)
            return
        }
        let register = Int(offset & UInt64(E1000.registerSpaceSize - 4))
        let shift = UInt64(offset & 3) * 8
        let bits = UInt32(truncatingIfNeeded: (value & E1000.mask(size)) << shift)
        let kick = state.withLock { state -> Bool in
            var full = bits
            if size < 4 && !E1000.actionRegisters.contains(register) {
                // A narrow write changes its bytes only.
                let keep = ~UInt32(truncatingIfNeeded: E1000.mask(size) << shift)
                full = state.regs[register >> 2] & keep | bits
            }
            return writeRegister(register, full, &state)
        }
        if kick {
            if let worker = transmitWorker.withLock({ $0 }) { kickTransmit(worker) } else { transmit() }
        }
    }

    /// Registers whose writes act rather than store: a narrow write must not replay the other bytes.
    static let actionRegisters: Set<Int> = [E1000Register.icr, E1000Register.ics, E1000Register.ims, E1000Register.imc,
                                            E1000Register.mdic, E1000Register.eerd]

    func ioRead(offset: UInt64, size: Int) -> UInt64 {
        let shift = UInt64(offset & 3) * 8
        switch offset & ~3 {
        case 0: return (UInt64(state.withLock { $0.ioAddress }) >> shift) & E1000.mask(size)
        case 4:
            let target = state.withLock { $0.ioAddress }
            return registerRead(offset: UInt64(target) + (offset & 3), size: min(size, 4))
        default: return 0
        }
    }

    func ioWrite(offset: UInt64, size: Int, value: UInt64) {
        switch offset & ~3 {
        case 0:
            state.withLock { $0.ioAddress = UInt32(truncatingIfNeeded: value) & (E1000.registerSpaceSize - 4) }
        case 4:
            let target = state.withLock { $0.ioAddress }
            registerWrite(offset: UInt64(target) + (offset & 3), size: min(size, 4), value: value)
        default: break
        }
    }

    func readRegister(_ register: Int, _ state: inout E1000State) -> UInt32 {
        switch register {
        case E1000Register.status:
            return E1000Bits.statusDefault & (state.linkUp ? ~0 : ~E1000Bits.statusLinkUp)
        case E1000Register.eecd:
            return state.eeprom.eecd
        case E1000Register.icr:
            // Read to clear: the line drops with it.
            let causes = state.regs[E1000Register.icr >> 2]
            state.regs[E1000Register.icr >> 2] = 0
            updateInterrupt(&state)
            return causes
        case E1000Register.ics:
            return state.regs[E1000Register.icr >> 2]
        case E1000Register.imc:
            return 0
        case E1000Register.statistics:
            return readStatistic(register, &state)
        default:
            return state.regs[register >> 2]
        }
    }

    /// Applies a guest write; returns whether the TX ring must be walked.
    func writeRegister(_ register: Int, _ value: UInt32, _ state: inout E1000State) -> Bool {
        let index = register >> 2
        switch register {
        case E1000Register.ctrl:
            if value & E1000Bits.ctrlReset != 0 {
                resetRegisters(&state)
                return false
            }
            if value & E1000Bits.ctrlPHYReset != 0 && state.regs[index] & E1000Bits.ctrlPHYReset == 0 { state.phy.reset() }
            state.regs[index] = value
        case E1000Register.status:
            break
        case E1000Register.eecd:
            state.eeprom.writeEECD(value)
        case E1000Register.eerd:
            state.regs[index] = state.eeprom.eerd(value)
        case E1000Register.mdic:
            accessPHY(value, &state)
        case E1000Register.icr:
            state.regs[index] &= ~value
            updateInterrupt(&state)
        case E1000Register.ics:
            raise(value, &state)
        case E1000Register.ims:
            state.regs[index] |= value
            updateInterrupt(&state)
        case E1000Register.imc:
            state.regs[E1000Register.ims >> 2] &= ~value
            updateInterrupt(&state)
        case E1000Register.itr, E1000Register.rdtr, E1000Register.radv, E1000Register.tidv, E1000Register.tadv:
            state.regs[index] = value & 0xFFFF
        case E1000Register.rdlen, E1000Register.tdlen:
            // Whole multiples of 128 bytes (8 descriptors); other lengths lose their low bits.
            state.regs[index] = value & 0xF_FF80
        case E1000Register.rdh, E1000Register.rdt, E1000Register.tdh:
            state.regs[index] = value & 0xFFFF
        case E1000Register.tdt:
            state.regs[index] = value & 0xFFFF
            return true
        case E1000Register.tctl:
            state.regs[index] = value
            return true
        case E1000Register.statistics:
            break
        default:
            state.regs[index] = value
        }
        return false
    }

    /// MDIC: one PHY read or write, completed at once. PHY address 1 only; others answer ERROR.
    func accessPHY(_ value: UInt32, _ state: inout E1000State) {
        let register = Int((value >> 16) & 0x1F)
        let phyAddress = (value >> 21) & 0x1F
        var result = value & ~(E1000Bits.mdicReady | E1000Bits.mdicError)
        if phyAddress != E1000PHY.address {
            result |= E1000Bits.mdicError
        } else if value & 0x0C00_0000 == E1000Bits.mdicOpRead {
            result = result & ~0xFFFF | UInt32(state.phy.read(register))
        } else if value & 0x0C00_0000 == E1000Bits.mdicOpWrite {
            state.phy.write(register, UInt16(truncatingIfNeeded: value))
        } else {
            result |= E1000Bits.mdicError
        }
        state.regs[E1000Register.mdic >> 2] = result | E1000Bits.mdicReady
        if value & E1000Bits.mdicInterruptEnable != 0 { raise(E1000Bits.mdac, &state) }
    }

    /// The register file after power-on or CTRL.RST; the EEPROM's MAC auto-loads into RA[0].
    func resetRegisters(_ state: inout E1000State) {
        state.regs = [UInt32](repeating: 0, count: Int(E1000.registerSpaceSize) / 4)
        state.octets = [0, 0, 0, 0]
        state.regs[E1000Register.ctrl >> 2] = E1000Bits.ctrlDefault
        state.regs[E1000Register.vet >> 2] = 0x8100
        state.regs[E1000Register.ledctl >> 2] = 0x0602
        state.regs[E1000Register.pba >> 2] = 0x0010_0030
        state.regs[E1000Register.ra >> 2] = UInt32(state.mac[0]) | UInt32(state.mac[1]) << 8 | UInt32(state.mac[2]) << 16 | UInt32(state.mac[3]) << 24
        state.regs[(E1000Register.ra + 4) >> 2] = UInt32(state.mac[4]) | UInt32(state.mac[5]) << 8 | E1000Bits.rahAddressValid
        state.transmit = E1000TransmitState()
        state.eeprom.resetInterface()
        state.ioAddress = 0
        updateInterrupt(&state)
    }

    // MARK: statistics

    func readStatistic(_ register: Int, _ state: inout E1000State) -> UInt32 {
        if let pair = E1000Register.octetCounters.firstIndex(where: { $0.low == register }) {
            return UInt32(truncatingIfNeeded: state.octets[pair])
        }
        if let pair = E1000Register.octetCounters.firstIndex(where: { $0.high == register }) {
            // The high half clears both.
            let value = UInt32(truncatingIfNeeded: state.octets[pair] >> 32)
            state.octets[pair] = 0
            return value
        }
        let value = state.regs[register >> 2]
        state.regs[register >> 2] = 0
        return value
    }

    static func count(_ register: Int, _ state: inout E1000State, by amount: UInt32 = 1) {
        let (sum, overflow) = state.regs[register >> 2].addingReportingOverflow(amount)
        state.regs[register >> 2] = overflow ? .max : sum
    }

    /// Size-bucket counters (PRC64... or PTC64...): 64, 65-127, 128-255, 256-511, 512-1023, 1024-1522 bytes with FCS.
    static func countSize(_ length: Int, first register: Int, _ state: inout E1000State) {
        let bucket: Int
        switch length {
        case ...64: bucket = 0
        case 65...127: bucket = 1
        case 128...255: bucket = 2
        case 256...511: bucket = 3
        case 512...1023: bucket = 4
        case 1024...1522: bucket = 5
        default: return
        }
        count(register + 4 * bucket, &state)
    }

    static func addOctets(_ pair: Int, _ amount: Int, _ state: inout E1000State) {
        let (sum, overflow) = state.octets[pair].addingReportingOverflow(UInt64(amount))
        state.octets[pair] = overflow ? .max : sum
    }

    // MARK: interrupts

    /// Sets cause bits (ICS semantics) and re-evaluates the line.
    func raise(_ causes: UInt32, _ state: inout E1000State) {
        state.regs[E1000Register.icr >> 2] |= causes
        updateInterrupt(&state)
    }

    /// The INTx level is (ICR & IMS) != 0, with rising edges no closer together than ITR × 256 ns: an edge
    /// that comes too soon waits for a timer, which re-evaluates then.
    func updateInterrupt(_ state: inout E1000State) {
        let pending = state.regs[E1000Register.icr >> 2] & state.regs[E1000Register.ims >> 2] != 0
        guard pending else {
            if state.interrupt.asserted {
                state.interrupt.asserted = false
                config.setInterrupt(asserted: false)
            }
            return
        }
        guard !state.interrupt.asserted else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        let interval = UInt64(state.regs[E1000Register.itr >> 2] & 0xFFFF) * 256
        if interval == 0 || state.interrupt.lastAssertion.map({ now >= $0 + interval }) ?? true {
            state.interrupt.asserted = true
            state.interrupt.lastAssertion = now
            state.counters.interrupts += 1
            config.setInterrupt(asserted: true)
        } else if !state.interrupt.timerArmed, let last = state.interrupt.lastAssertion {
            state.interrupt.timerArmed = true
            timerQueue.asyncAfter(deadline: DispatchTime(uptimeNanoseconds: last + interval)) { [weak self] in
                self?.throttleTimerFired()
            }
        }
    }

    func throttleTimerFired() {
        state.withLock { state in
            state.interrupt.timerArmed = false
            updateInterrupt(&state)
        }
    }

    // MARK: guest-triggered errors

    /// Counts a guest (or host) caused drop and logs it at a bounded rate.
    func note(_ counter: WritableKeyPath<E1000Counters, UInt64>, _ state: inout E1000State, _ message: @autoclosure () -> String) {
        state.counters[keyPath: counter] += 1
        state.problems += 1
        if RateLimit.shouldLog(state.problems) {
            logger.debug("e1000 \(mac.map { String($0, radix: 16) }.joined(separator: ":")): \(message()) (\(state.problems) problems so far)")
        }
    }

    static func mask(_ size: Int) -> UInt64 {
        size >= 8 ? UInt64.max : (1 << (8 * UInt64(max(size, 0)))) - 1
    }
}

/// Everything behind the device lock.
struct E1000State {
    var regs: [UInt32] = []
    /// GORC, GOTC, TOR, TOT: 64-bit counters read as two registers.
    var octets: [UInt64] = [0, 0, 0, 0]
    let mac: [UInt8]
    var eeprom: E1000EEPROM
    var phy = E1000PHY()
    var linkUp = true
    /// IOADDR of the I/O window.
    var ioAddress: UInt32 = 0
    var transmit = E1000TransmitState()
    var interrupt = InterruptState()
    var counters = E1000Counters()
    var problems: UInt64 = 0

    init(mac: [UInt8], eeprom: E1000EEPROM) {
        self.mac = mac
        self.eeprom = eeprom
    }

    struct InterruptState {
        var asserted = false
        var lastAssertion: UInt64?
        var timerArmed = false
    }
}

/// A TX packet being assembled from descriptors, and the saved offload contexts.
struct E1000TransmitState {
    var packet: [UInt8] = []
    var started = false
    var dropping = false
    var tcpSegmentation = false
    var options: UInt8 = 0
    var vlanTag: UInt16?
    /// Legacy checksum insertion (CMD.IC): offset and start from the EOP descriptor.
    var legacyChecksum: (offset: Int, start: Int)?
    var checksumContext: E1000TransmitContext?
    var segmentationContext: E1000TransmitContext?

    /// Ready for the next packet; contexts stay.
    mutating func endPacket() {
        packet = []
        started = false
        dropping = false
        tcpSegmentation = false
        options = 0
        vlanTag = nil
        legacyChecksum = nil
    }
}
