import VMBus

/// A benchmark device (`hv bench vmbus`): every inband packet the guest sends comes back on its inbound ring
/// with the same payload and transaction id. While the inbound ring is full it stops reading, so the guest
/// sees back-pressure instead of loss.
public final class EchoDevice: VMBusDevice {
    /// hv's own class: no guest OS has a driver for it.
    public static let classID = GUID("3f1bd8a4-9b6a-4b44-8c8b-68766563686f")!
    public let offer = ChannelOfferSpec(interfaceType: EchoDevice.classID,
                                        interfaceInstance: GUID("3f1bd8a4-9b6a-4b44-8c8b-000000000001")!)
    public let name = "echo"
    public var maxPacketSize: Int { 128 << 10 }
    /// A benchmark device: keep polling 50 µs after the ring empties, as a busy NIC queue would.
    public var pollInterval: Double { 50e-6 }

    public init() {}

    public func open(_ channel: VMBusChannel) throws(VMBusDeviceError) {}

    public func receive(_ packet: VMBusPacket, on channel: VMBusChannel) -> Bool {
        guard packet.descriptor.type == .dataInband else { return true }
        // Straight from the guest's outbound ring into its inbound ring: one copy.
        guard channel.send(transactionID: packet.descriptor.transactionID, header: UnsafeRawBufferPointer(start: nil, count: 0),
                           payload: packet.payload) else { return false }
        return true
    }

    public func close(_ channel: VMBusChannel) {}
}
