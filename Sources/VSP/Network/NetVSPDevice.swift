// The synthetic NIC as a VMBus device: the NetVSP state machine behind a lock, wired to a channel and a network back
// end. Guest packets arrive on the channel's thread, frames from the host network on the back end's thread; both
// take the lock, let the state machine work, and flush what it queued for the guest. The back end's receive starts
// once the guest has initialized RNDIS and set a packet filter, and stops when the channel closes.
//
// Back-pressure: when the guest's inbound ring is full, queued packets wait in the state machine. A guest packet is
// then refused (`receive` returns false, so the channel stops reading until the guest makes room and offers it
// again); a frame from the host waits in its receive section until the queue is too long or no section is free, and
// then the back end is told the guest has no room.

import Logging
import NetworkBackends
import Partition
import Synchronization
import VMBus

public final class NetVSPDevice: VMBusDevice {
    public let offer: ChannelOfferSpec
    public let name: String
    public let configuration: NetVSPConfiguration
    public let backend: any NetworkBackend
    /// A GPA-direct packet with the largest page-buffer list hv accepts is about 1.6 KiB.
    public var maxPacketSize: Int { 16 << 10 }
    /// Keep polling a little after the ring empties: a busy guest then sends without signalling.
    public var pollInterval: Double { 50e-6 }
    /// Packets still queued behind a full ring go out by this tick at the latest (the guest does not always send
    /// something that would flush them).
    public var timerInterval: Double? { 0.01 }

    let logger: Logger
    let state: Mutex<Shell>
    let problems = Atomic<UInt64>(0)

    struct Shell {
        var machine: NetVSP
        var channel: VMBusChannel?
        /// The back end's receive thread is running (or being started).
        var receiving = false
        /// Starting it failed; not tried again until the next open.
        var backendFailed = false
        var announcedUp = false
    }

    /// A NIC with `mac` (6 bytes, unicast: the caller checks) and the defaults of NetVSPConfiguration, on `backend`.
    public convenience init(mac: [UInt8], backend: any NetworkBackend, logger: Logger) {
        self.init(configuration: NetVSPConfiguration(mac: mac), backend: backend, logger: logger)
    }

    /// `instance` defaults to one derived from the MAC address, so the same NIC keeps its identity across runs.
    public init(configuration: NetVSPConfiguration, backend: any NetworkBackend, logger: Logger, instance: GUID? = nil) {
        self.configuration = configuration
        self.backend = backend
        self.logger = logger
        offer = ChannelOfferSpec(interfaceType: .network, interfaceInstance: instance ?? Self.instanceID(mac: configuration.mac))
        name = "netvsp " + configuration.mac.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":")
        state = Mutex(Shell(machine: NetVSP(configuration: configuration)))
    }

    /// {68766e74-7673-4070-8000-MMMMMMMMMMMM}: a version-4-shaped GUID ending in the MAC address.
    public static func instanceID(mac: [UInt8]) -> GUID {
        GUID(0x6876_6E74, 0x7673, 0x4070, [0x80, 0x00] + mac.prefix(6))
    }

    /// What the NIC moved and dropped, cumulative over channel sessions.
    public var counters: NetVSPCounters { state.withLock { $0.machine.counters } }

    /// The negotiated NVSP version, RNDIS state and packet filter, for status output and tests.
    public var status: (version: NVSPVersion?, rndis: RNDISState, packetFilter: UInt32) {
        state.withLock { ($0.machine.version, $0.machine.rndisState, $0.machine.packetFilter) }
    }

    /// Tells the guest the link went up or down.
    public func setLink(up: Bool) {
        let notes = state.withLock { shell -> [String] in
            shell.machine.setLink(up: up)
            if let channel = shell.channel { _ = shell.machine.flush { Self.send($0, on: channel) } }
            return shell.machine.takeNotes()
        }
        log(notes)
    }

    // MARK: VMBusDevice

    public func open(_ channel: VMBusChannel) throws(VMBusDeviceError) {
        let memory = GuestNetVSPMemory(memory: channel.memory, gpadlPages: { [weak channel] in channel?.gpadlPages($0) })
        state.withLock { shell in
            shell.machine.open(memory: memory)
            shell.channel = channel
            shell.backendFailed = false
            shell.announcedUp = false
        }
    }

    public func receive(_ packet: VMBusPacket, on channel: VMBusChannel) -> Bool {
        // The channel is the caller and the back end belongs to this device, so both outlive the call; both may have
        // weak references (a side table), which makes every retain slow: the data path borrows them instead.
        let borrowed = Unmanaged.passUnretained(channel)
        unowned(unsafe) let backend = backend
        let (taken, start, up, notes) = state.withLock { shell -> (Bool, Bool, Bool, [String]) in
            // What an earlier packet queued goes first; if the ring is still full, wait for the guest.
            guard shell.machine.flush({ Self.send($0, on: borrowed) }) else { return (false, false, false, []) }
            shell.machine.receive(packet, transmit: { frames in backend.transmit(frames) }, sendCompletion: { id, payload in
                borrowed._withUnsafeGuaranteedRef { $0.send(type: .completion, transactionID: id, payload: payload) }
            })
            _ = shell.machine.flush { Self.send($0, on: borrowed) }
            // Once the back end receives and the guest was announced, neither needs the state machine's view.
            if shell.receiving || shell.backendFailed, shell.announcedUp, !shell.machine.hasNotes {
                return (true, false, false, [])
            }
            let start = !shell.receiving && !shell.backendFailed && shell.machine.receiveEnabled
            if start { shell.receiving = true }
            let up = !shell.announcedUp && shell.machine.receiveEnabled
            if up { shell.announcedUp = true }
            return (true, start, up, shell.machine.takeNotes())
        }
        log(notes)
        if up {
            let version = status.version.map(\.description) ?? "?"
            logger.info("vmbus: \(name): guest is up (NVSP \(version), packet filter 0x\(String(status.packetFilter, radix: 16)))")
        }
        if start { startReceiving() }
        return taken
    }

    public func timerFired(on channel: VMBusChannel) {
        state.withLock { shell in
            if shell.machine.hasPendingOutput { _ = shell.machine.flush { Self.send($0, on: channel) } }
        }
    }

    public func close(_ channel: VMBusChannel) {
        let running = state.withLock { shell -> Bool in
            shell.machine.close()
            shell.channel = nil
            defer { shell.receiving = false }
            return shell.receiving
        }
        // Outside the lock: stop joins the receive thread, which may be waiting for the lock in `deliver`.
        if running { backend.stop() }
    }

    // MARK: the host network

    func startReceiving() {
        do {
            try backend.start { [weak self] frame in self?.deliver(frame) ?? false }
            logger.info("vmbus: \(name): receiving from \(backend.name)")
        } catch {
            logger.error("vmbus: \(name): \(error)")
            state.withLock { shell in
                shell.receiving = false
                shell.backendFailed = true
            }
        }
    }

    /// A frame from the back end's thread. False tells the back end the guest has no room for it.
    func deliver(_ frame: UnsafeRawBufferPointer) -> Bool {
        state.withLock { shell in
            guard let channel = shell.channel else { return false }
            switch shell.machine.receiveFrame(frame) {
            case .accepted:
                _ = shell.machine.flush { Self.send($0, on: channel) }
                return true
            case .dropped(.noSection), .dropped(.ringFull):
                return false
            case .dropped:
                // Filtered, oversized, or the guest is not up: dropped here and counted, nothing to retry.
                return true
            }
        }
    }

    static func send(_ packet: NetVSPPacket, on channel: Unmanaged<VMBusChannel>) -> Bool {
        channel._withUnsafeGuaranteedRef { send(packet, on: $0) }
    }

    static func send(_ packet: NetVSPPacket, on channel: VMBusChannel) -> Bool {
        channel.send(type: packet.type, flags: packet.flags, transactionID: packet.transactionID, header: packet.header,
                     payload: packet.payload)
    }

    func log(_ notes: [String]) {
        guard !notes.isEmpty else { return }
        let total = problems.add(UInt64(notes.count), ordering: .relaxed).newValue
        for (index, note) in notes.enumerated() where RateLimit.shouldLog(total - UInt64(notes.count - 1 - index)) {
            logger.notice("vmbus: \(name): \(note)")
        }
    }
}
