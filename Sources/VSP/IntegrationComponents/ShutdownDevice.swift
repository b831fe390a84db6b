import Logging
import Synchronization
import VMBus

/// The shutdown integration component as a VMBus device: `requestShutdown` asks the guest to power off (or
/// reboot) the way Hyper-V's "Shut down" does; `hv stop` and SIGTERM use it.
public final class ShutdownDevice: VMBusDevice {
    public let offer = ChannelOfferSpec(interfaceType: .shutdown,
                                        interfaceInstance: GUID("b2d8e7a1-4c63-4e0f-8a5b-736875746477")!)
    public let name = "shutdown"
    public var maxPacketSize: Int { ICLayout.maxPacketSize }
    let logger: Logger
    let state = Mutex<(ic: ShutdownIC, channel: VMBusChannel?)>((ShutdownIC(), nil))

    public init(logger: Logger) { self.logger = logger }

    /// Sends the request if the guest has the channel open and negotiated; false when it cannot be asked.
    public func requestShutdown(kind: ShutdownKind = .powerOff) -> Bool {
        let (request, channel) = state.withLock { state in (state.ic.requestShutdown(kind: kind), state.channel) }
        guard let request, let channel else { return false }
        return channel.send(flags: PacketDescriptor.completionRequested, transactionID: request.transactionID,
                            payload: request.payload)
    }

    public func open(_ channel: VMBusChannel) throws(VMBusDeviceError) {
        let request = state.withLock { state in
            state.channel = channel
            return state.ic.opened()
        }
        channel.send(flags: PacketDescriptor.completionRequested, transactionID: request.transactionID, payload: request.payload)
    }

    public func receive(_ packet: VMBusPacket, on channel: VMBusChannel) -> Bool {
        switch state.withLock({ $0.ic.received(Array(packet.payload), transactionID: packet.descriptor.transactionID) }) {
        case .negotiated(let framework, let message):
            logger.info("vmbus: shutdown negotiated framework \(framework), message \(message)")
        case .shutdownAccepted:
            logger.info("vmbus: the guest accepted the shutdown request")
        case .shutdownRefused(let status):
            logger.warning("vmbus: the guest refused the shutdown request (status 0x\(String(status, radix: 16)))")
        case .negotiationFailed(let status):
            logger.warning("vmbus: shutdown: the guest refused every version offered (status 0x\(String(status, radix: 16)))")
        case .rejected(let why):
            logger.notice("vmbus: shutdown: reply refused: \(why)")
        case .heartbeat:
            break
        }
        return true
    }

    public func close(_ channel: VMBusChannel) {
        state.withLock { state in
            state.ic.closed()
            state.channel = nil
        }
    }
}
