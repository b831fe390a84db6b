// The root partition's side of VMBus for one child partition: the thin shell around the pure ChannelServer.
// Posted messages arrive on a vCPU thread through the Hyper-V interface; the server's answers go out through
// the SynIC; opening a channel maps its rings and starts its thread (design.md §1, §5).

import Glibc
import Logging
import Partition
import Synchronization

public final class VMBusHost: HyperVMessageHandler {
    public let hyperv: HyperVInterface
    public let devices: [any VMBusDevice]
    let partition: Partition
    let logger: Logger
    let server: Mutex<ChannelServer>
    /// A copy of the server after each message, for channel threads' GPADL lookups: they must never wait for
    /// `server`, whose holder may be joining their thread.
    let published: Mutex<ChannelServer>
    let channels = Mutex<[UInt32: VMBusChannel]>([:])
    public let counters = Counters()

    public final class Counters: Sendable {
        /// Channel messages the guest posted.
        public let messagesReceived = Atomic<UInt64>(0)
        /// Channel messages hv sent.
        public let messagesSent = Atomic<UInt64>(0)
        /// Messages and signals refused as malformed, out of state or unknown.
        public let rejected = Atomic<UInt64>(0)
    }

    /// Offers `devices` (in this order: child_relid 1, 2, ...) once the guest connects.
    public init(partition: Partition, hyperv: HyperVInterface, devices: [any VMBusDevice]) {
        self.partition = partition
        self.hyperv = hyperv
        self.devices = devices
        logger = partition.logger
        let memory = partition.memory
        let initial = ChannelServer(offers: devices.map(\.offer), isGuestPage: { memory.isRAM(page: $0) })
        server = Mutex(initial)
        published = Mutex(initial)
        hyperv.setHandler(self)
    }

    /// The open channel of `device`, if the guest has opened it.
    public func channel(of device: any VMBusDevice) -> VMBusChannel? {
        channels.withLock { $0.values.first { $0.device === device } }
    }

    /// Closes every channel (hv is stopping): no device thread runs after this returns.
    public func stop() {
        let open = channels.withLock { channels in
            defer { channels.removeAll() }
            return Array(channels.values)
        }
        for channel in open { channel.stop() }
    }

    // MARK: HyperVMessageHandler

    public func postMessage(connectionID: UInt32, messageType: UInt32, payload: [UInt8], vp: Int) -> HVStatus {
        server.withLock { server in
            guard server.accepts(connectionID: connectionID) else {
                reject("HvPostMessage to unknown connection id \(connectionID) from VP \(vp)")
                return .invalidConnectionID
            }
            // Answers go to one VP's SINT; when its queue is nearly full the guest must retry (it does, with
            // backoff), which bounds what a flood of requests can make hv hold.
            if hyperv.queuedMessages(vp: Int(server.messageTargetVP), sint: server.messageSINT) >= SynIC.queueLimit / 2 {
                return .insufficientBuffers
            }
            counters.messagesReceived.add(1, ordering: .relaxed)
            perform(server.receive(payload, connectionID: connectionID), &server)
            let snapshot = server
            published.withLock { $0 = snapshot }
            return .success
        }
    }

    public func signalEvent(connectionID: UInt32, flag: UInt16, vp: Int) -> HVStatus {
        // Open channels' ids are caught by their ioeventfds; the slow form of the call lands here too.
        if let channel = channels.withLock({ $0.values.first { $0.connectionID == connectionID } }) {
            channel.thread.kick()
            return .success
        }
        reject("HvSignalEvent to connection id \(connectionID) (no open channel) from VP \(vp)")
        return .invalidConnectionID
    }

    // MARK: actions

    /// Carries out the server's decisions in order. Runs with the server locked, so messages and channel state
    /// change together; channel threads never take this lock.
    func perform(_ actions: [ChannelServerAction], _ server: inout ChannelServer) {
        for action in actions {
            switch action {
            case .send(let message):
                let bytes = message.bytes
                if hyperv.postMessage(vp: Int(server.messageTargetVP), sint: server.messageSINT, payload: bytes) {
                    counters.messagesSent.add(1, ordering: .relaxed)
                } else {
                    logger.warning("vmbus: \(message.type) to VP \(server.messageTargetVP) dropped: its SynIC queue is full or disabled")
                }
            case .open(let request):
                let status = open(request, sint: server.messageSINT)
                perform(server.openCompleted(childRelID: request.childRelID, status: status), &server)
            case .close(let relID):
                if let channel = channels.withLock({ $0.removeValue(forKey: relID) }) {
                    channel.stop()
                    logger.info("vmbus: channel \(relID) (\(channel.device.name)) closed")
                }
            case .retarget(let relID, let vp):
                if vp < partition.vcpus.count {
                    channels.withLock { $0[relID] }?.retarget(vp: Int(vp))
                } else {
                    reject("MODIFYCHANNEL of channel \(relID) to VP \(vp), which does not exist")
                }
            case .disconnected:
                logger.info("vmbus: guest unloaded VMBus")
            case .rejected(let reason):
                reject(reason)
            }
        }
    }

    /// Maps the rings and starts the channel; the status goes back to the guest in OPENCHANNEL_RESULT.
    func open(_ request: ChannelOpenRequest, sint: UInt8) -> UInt32 {
        let index = Int(request.childRelID) - 1
        guard index >= 0, index < devices.count else {
            reject("open of child_relid \(request.childRelID): no such device")
            return ChannelServer.statusUnsuccessful
        }
        let device = devices[index]
        do {
            guard request.targetVP < partition.vcpus.count else {
                throw VMBusDeviceError("target VP \(request.targetVP) does not exist (\(partition.vcpus.count) VPs)")
            }
            let relID = request.childRelID
            let channel = try VMBusChannel(request: request, device: device, sint: sint, hyperv: hyperv, partition: partition) {
                [weak self] handle in self?.published.withLock { $0.gpadl(handle, ofChannel: relID) }
            }
            try device.open(channel)
            channels.withLock { $0[request.childRelID] = channel }
            do { try channel.start() } catch {
                device.close(channel)
                throw error
            }
            logger.info("vmbus: channel \(request.childRelID) (\(device.name)) open, connection id \(request.connectionID), VP \(request.targetVP)")
            return 0
        } catch {
            channels.withLock { _ = $0.removeValue(forKey: request.childRelID) }
            reject("open of channel \(request.childRelID) (\(device.name)) failed: \(error)")
            return ChannelServer.statusUnsuccessful
        }
    }

    func reject(_ what: String) {
        let count = counters.rejected.add(1, ordering: .relaxed).newValue
        if RateLimit.shouldLog(count) { logger.warning("vmbus: \(what) (\(count) refused so far)") }
    }
}
