// One open channel: the guest's two rings (outbound: the guest writes, hv reads; inbound: hv writes, the guest
// reads) in GPADL pages, the eventfd that KVM signals when the guest calls HvSignalEvent with this channel's
// connection id, and a thread that drains the outbound ring into the device in batches (design.md §5).

import KVM
import Logging
import Partition
import Synchronization

public final class VMBusChannel: Sendable {
    public let childRelID: UInt32
    public let connectionID: UInt32
    public let device: any VMBusDevice
    /// The partition's RAM, for devices that map guest buffers (GuestPageMapping) named by a GPADL.
    public let memory: GuestMemory
    /// The GPADLs the guest created for this channel, by handle: looked up without the server's lock.
    let gpadlLookup: @Sendable (UInt32) -> [GPARange]?
    /// The VP whose SINT the channel's events go to (OPENCHANNEL's target_vp, MODIFYCHANNEL later).
    let targetVP: Atomic<Int>
    let sint: UInt8
    let hyperv: HyperVInterface
    let vm: VirtualMachine
    let logger: Logger
    let writer: Mutex<InboundRing?>
    let reader: Mutex<RingBufferReader<GPADLRingMemory>>
    /// The channel's thread; its kick eventfd is the ioeventfd KVM writes on the guest's HvSignalEvent.
    let thread: WakeableThread
    /// The thread's own state between wake-ups.
    let loop = Mutex(LoopState())
    /// Seconds the channel thread keeps polling an empty ring before it sleeps (the device's choice).
    let pollSeconds: Double
    /// Packets per batch before replies are published and the guest's ring space is given back.
    static let batchLimit = 64
    /// A batch also ends once it has consumed this share of the outbound ring's bytes, so that with large packets
    /// the guest gets space back (and sees replies) while hv works on the rest of the ring: the two sides overlap
    /// instead of taking turns at a full ring.
    static let batchRingShare = 16
    public let counters = Counters()

    public final class Counters: Sendable {
        /// Packets read from the guest.
        public let received = Atomic<UInt64>(0)
        /// Packets written for the guest.
        public let sent = Atomic<UInt64>(0)
        /// Guest signals (HvSignalEvent) the thread woke for.
        public let guestSignals = Atomic<UInt64>(0)
        /// Events hv raised for the guest.
        public let hostSignals = Atomic<UInt64>(0)
        /// Ring errors (a misbehaving guest): the channel stops reading.
        public let ringErrors = Atomic<UInt64>(0)
    }

    /// Maps the rings: pages [0, downstreamOffset) are the outbound ring, the rest the inbound ring; each starts
    /// with its control page. Fails with a message for the log if a ring is malformed.
    init(request: ChannelOpenRequest, device: any VMBusDevice, sint: UInt8, hyperv: HyperVInterface,
         partition: Partition, gpadlLookup: @escaping @Sendable (UInt32) -> [GPARange]?) throws(VMBusDeviceError) {
        let split = Int(request.downstreamPageOffset)
        guard split >= 2, request.ringPages.count - split >= 2 else {
            throw VMBusDeviceError("ring GPADL of \(request.ringPages.count) pages split at \(split): each ring needs a control page and data")
        }
        let outbound: RingBufferReader<GPADLRingMemory>
        let inbound: RingBufferWriter<GPADLRingMemory>
        do {
            outbound = try RingBufferReader(memory: try GPADLRingMemory(memory: partition.memory, pageNumbers: request.ringPages[..<split]))
            inbound = try RingBufferWriter(memory: try GPADLRingMemory(memory: partition.memory, pageNumbers: request.ringPages[split...]))
        } catch let error as GuestMemoryError {
            throw VMBusDeviceError("ring page: \(error)")
        } catch let error as VMBusError {
            throw VMBusDeviceError("ring: \(error)")
        } catch {
            throw VMBusDeviceError("ring: \(error)")
        }
        do { thread = try WakeableThread() } catch { throw VMBusDeviceError("\(error)") }
        childRelID = request.childRelID
        connectionID = request.connectionID
        self.device = device
        memory = partition.memory
        self.gpadlLookup = gpadlLookup
        targetVP = Atomic(Int(request.targetVP))
        pollSeconds = device.pollInterval
        self.sint = sint
        self.hyperv = hyperv
        vm = partition.vm
        logger = partition.logger
        reader = Mutex(outbound)
        writer = Mutex(InboundRing(writer: inbound))
    }

    // MARK: sending

    /// Writes one packet to the guest's inbound ring and signals the guest if the ring rules say so. Returns
    /// false when the ring is full (hv has asked the guest to signal when there is room) or the channel is closed.
    @discardableResult
    public func send(type: PacketType = .dataInband, flags: UInt16 = 0, transactionID: UInt64,
                     header: [UInt8] = [], payload: [UInt8]) -> Bool {
        header.withUnsafeBytes { header in
            payload.withUnsafeBytes { payload in
                send(type: type, flags: flags, transactionID: transactionID, header: header, payload: payload)
            }
        }
    }

    /// As above, from bytes anywhere (a packet still on the guest's outbound ring: one copy, ring to ring).
    @discardableResult
    public func send(type: PacketType = .dataInband, flags: UInt16 = 0, transactionID: UInt64,
                     header: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer) -> Bool {
        let bytes = BorrowedBytes(header: header, payload: payload)
        let (written, signal) = writer.withLock { ring -> (Bool, Bool) in
            let (header, payload) = (bytes.header, bytes.payload)
            guard ring != nil else { return (false, false) }
            do {
                return try ring!.send(type: type, flags: flags, transactionID: transactionID, header: header, payload: payload)
            } catch {
                noteRingError("inbound ring: \(error)")
                ring = nil
                return (false, false)
            }
        }
        if written { counters.sent.add(1, ordering: .relaxed) }
        if signal { signalGuest() }
        return written
    }

    /// The guest's inbound ring and what hv has staged in it. While the channel thread drains a batch, packets are
    /// staged and published once at the end (one barrier and one signalling decision per batch); outside a batch,
    /// each send publishes at once.
    struct InboundRing {
        var writer: RingBufferWriter<GPADLRingMemory>
        var spaceRequested = false
        var batching = false
        var staged = false

        /// (written, signal the guest)
        mutating func send(type: PacketType, flags: UInt16, transactionID: UInt64, header: UnsafeRawBufferPointer,
                           payload: UnsafeRawBufferPointer) throws(VMBusError) -> (Bool, Bool) {
            var signal = false
            while true {
                switch try writer.write(type: type, flags: flags, transactionID: transactionID, header: header, payload: payload) {
                case .written:
                    if spaceRequested {
                        try writer.clearSpaceRequest()
                        spaceRequested = false
                    }
                    if batching {
                        staged = true
                        return (true, signal)
                    }
                    return (true, try writer.commit() || signal)
                case .full(let required, _):
                    // The guest can only make room once it sees what is staged.
                    signal = try flush() || signal
                    // Room may have appeared between the write and the request: then try again at once.
                    spaceRequested = true
                    if try !writer.requestSpace(bytes: required) { return (false, signal) }
                }
            }
        }

        /// Publishes staged packets; true when the guest must be signalled.
        mutating func flush() throws(VMBusError) -> Bool {
            guard staged else { return false }
            staged = false
            return try writer.commit()
        }
    }

    /// Stages this thread's sends until `endBatch`.
    func beginBatch() { writer.withLock { $0?.batching = true } }

    /// Publishes what was staged and signals the guest if the ring rules say so.
    func endBatch() {
        let signal = writer.withLock { ring -> Bool in
            guard ring != nil else { return false }
            ring!.batching = false
            do { return try ring!.flush() } catch {
                noteRingError("inbound ring: \(error)")
                ring = nil
                return false
            }
        }
        if signal { signalGuest() }
    }

    /// The caller's bytes, carried into the writer's lock. @unchecked Sendable: they are only read, inside the lock,
    /// while the caller waits for `send` to return, so they outlive every use.
    struct BorrowedBytes: @unchecked Sendable {
        let header: UnsafeRawBufferPointer
        let payload: UnsafeRawBufferPointer
    }

    /// The guest pages of GPADL `handle` that the guest created for this channel (a NIC's receive and send
    /// buffers), in order, or nil when there is none. Every page was checked to be RAM.
    public func gpadlPages(_ handle: UInt32) -> [UInt64]? {
        gpadlLookup(handle).map { $0.flatMap(\.pageNumbers) }
    }

    /// A completion packet for `transactionID` (the guest asked for one with the completion-requested flag).
    @discardableResult
    public func sendCompletion(transactionID: UInt64, payload: [UInt8]) -> Bool {
        send(type: .completion, transactionID: transactionID, payload: payload)
    }

    func signalGuest() {
        counters.hostSignals.add(1, ordering: .relaxed)
        hyperv.signalEvent(vp: targetVP.load(ordering: .relaxed), sint: sint, flag: Int(childRelID))
    }

    func retarget(vp: Int) { targetVP.store(vp, ordering: .relaxed) }

    func noteRingError(_ what: String) {
        let count = counters.ringErrors.add(1, ordering: .relaxed).newValue
        if RateLimit.shouldLog(count) {
            logger.warning("vmbus: channel \(childRelID) (\(device.name)): \(what); the channel stops (\(count) ring errors)")
        }
    }

    // MARK: the channel thread

    /// Registers the ioeventfd for this channel's connection id and starts the thread.
    func start() throws(VMBusDeviceError) {
        do {
            try vm.addIOEventFD(port: HypercallPage.signalPort, length: 4, value: UInt64(connectionID), eventFD: thread.kickFD)
        } catch { throw VMBusDeviceError("ioeventfd for connection \(connectionID): \(error)") }
        do {
            try thread.start { [self] kicked in wake(kicked: kicked) }
        } catch {
            try? vm.removeIOEventFD(port: HypercallPage.signalPort, length: 4, value: UInt64(connectionID), eventFD: thread.kickFD)
            throw VMBusDeviceError("channel thread: \(error)")
        }
    }

    /// Stops the thread, reads what the guest wrote before it closed the channel (its signal may not have been
    /// served yet: an answer sent just before CLOSECHANNEL still counts), removes the ioeventfd and tells the
    /// device; no packet moves after this returns. The ring pages stay the guest's GPADL until it tears it down.
    func stop() {
        thread.stop()
        loop.withLock { state in drain(&state.held, &state.broken, final: true) }
        try? vm.removeIOEventFD(port: HypercallPage.signalPort, length: 4, value: UInt64(connectionID), eventFD: thread.kickFD)
        writer.withLock { $0 = nil }
        device.close(self)
    }

    struct LoopState {
        /// A packet the device refused (the inbound ring was full) waits on the ring.
        var held = false
        /// The guest broke its outbound ring: the channel reads no more.
        var broken = false
        var nextTimer: Double?
    }

    /// One run of the channel thread: at start (the guest may have written before it first signalled), on the
    /// guest's HvSignalEvent, and when the device's timer is due. Returns the seconds to the next timer.
    func wake(kicked: Bool) -> Double? {
        if kicked { counters.guestSignals.add(1, ordering: .relaxed) }
        let interval = device.timerInterval
        let now = monotonicSeconds()
        let timerDue = loop.withLock { state -> Bool in
            guard let interval else { return false }
            guard let due = state.nextTimer else {
                state.nextTimer = now + interval
                return false
            }
            guard now >= due else { return false }
            state.nextTimer = max(due + interval, now)
            return true
        }
        if timerDue { device.timerFired(on: self) }
        loop.withLock { state in drain(&state.held, &state.broken) }
        return loop.withLock { $0.nextTimer }.map { max(0, $0 - monotonicSeconds()) }
    }

    /// Reads packets until the ring is empty or the device is blocked on a full inbound ring. The ring stays
    /// masked while hv reads (no signals needed), and is unmasked and checked once more before sleeping, so a
    /// packet written in between is not missed (Linux's hv_end_read). `final`: one pass, no polling (the
    /// channel is closing).
    func drain(_ held: inout Bool, _ broken: inout Bool, final: Bool = false) {
        guard !broken else { return }
        let limit = device.maxPacketSize
        do {
            try reader.withLock { (reader) throws(VMBusError) in
                while true {
                    try reader.setInterruptMask(true)
                    held = false
                    // In place: the device reads each packet where the guest wrote it; only a packet the device
                    // took is consumed, so one it refused (inbound ring full) is offered again later. Replies
                    // are published, and the guest's ring space given back, once per batch.
                    var batch = 0
                    let batchBytes = max(reader.dataSize / VMBusChannel.batchRingShare, 1)
                    beginBatch()
                    while let view = try reader.peekView(maxPacketSize: limit) {
                        let taken = view.withBytes { device.receive(VMBusPacket(descriptor: view.descriptor, bytes: $0), on: self) }
                        guard taken else { held = true; break }
                        reader.consume(view)
                        counters.received.add(1, ordering: .relaxed)
                        batch += 1
                        if batch == VMBusChannel.batchLimit || reader.uncommittedBytes >= batchBytes {
                            batch = 0
                            endBatch()
                            if try reader.commit() { signalGuest() }
                            beginBatch()
                        }
                    }
                    endBatch()
                    if try reader.commit() { signalGuest() }
                    // Blocked on the inbound ring: stay masked; the guest signals when it has made room.
                    if held || final { return }
                    // Busy-poll a little before sleeping: a guest that keeps sending never has to signal.
                    if pollSeconds > 0 {
                        let deadline = monotonicSeconds() + pollSeconds
                        var waiting = try reader.bytesToRead() == 0
                        while waiting && monotonicSeconds() < deadline { waiting = try reader.bytesToRead() == 0 }
                        if !waiting { continue }
                    }
                    try reader.setInterruptMask(false)
                    if try reader.bytesToRead() == 0 { return }
                }
            }
        } catch {
            broken = true
            noteRingError("outbound ring: \(error)")
        }
    }
}
