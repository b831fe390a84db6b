import Logging
import Synchronization
import VMBus

/// The heartbeat integration component as a VMBus device: hv sends a heartbeat request every `interval`
/// seconds once the guest has negotiated, and counts the answers. A guest that stops answering shows as a
/// count that stops growing.
public final class HeartbeatDevice: VMBusDevice {
    public let offer = ChannelOfferSpec(interfaceType: .heartbeat,
                                        interfaceInstance: GUID("1c8f1b2e-5d3a-4f6b-9e0d-686268656172")!)
    public let name = "heartbeat"
    public let timerInterval: Double?
    public var maxPacketSize: Int { ICLayout.maxPacketSize }
    let logger: Logger
    let state = Mutex(HeartbeatIC())
    /// Heartbeats the guest answered correctly.
    public let heartbeats = Atomic<Int>(0)

    public init(interval: Double = 1, logger: Logger) {
        timerInterval = interval
        self.logger = logger
    }

    public func open(_ channel: VMBusChannel) throws(VMBusDeviceError) {
        send(state.withLock { $0.opened() }, on: channel)
    }

    public func receive(_ packet: VMBusPacket, on channel: VMBusChannel) -> Bool {
        let event = state.withLock { $0.received(Array(packet.payload), transactionID: packet.descriptor.transactionID, at: .now) }
        switch event {
        case .negotiated(let framework, let message):
            logger.info("vmbus: heartbeat negotiated framework \(framework), message \(message)")
            // The first heartbeat goes out at once; the timer sends the rest.
            timerFired(on: channel)
        case .heartbeat(let seq):
            let count = heartbeats.add(1, ordering: .relaxed).newValue
            logger.info("vmbus: heartbeat \(count) from guest (seq \(seq))")
        case .negotiationFailed(let status):
            logger.warning("vmbus: heartbeat: the guest refused every version offered (status 0x\(String(status, radix: 16)))")
        case .rejected(let why):
            logger.notice("vmbus: heartbeat: reply refused: \(why)")
        case .shutdownAccepted, .shutdownRefused:
            break
        }
        return true
    }

    public func timerFired(on channel: VMBusChannel) {
        if let request = state.withLock({ $0.tick() }) { send(request, on: channel) }
    }

    public func close(_ channel: VMBusChannel) {
        state.withLock { $0.closed() }
    }

    func send(_ request: ICOutgoing, on channel: VMBusChannel) {
        channel.send(flags: PacketDescriptor.completionRequested, transactionID: request.transactionID, payload: request.payload)
    }
}
