// The device API: a VSP is a small type that describes its offer and handles packets; VMBusHost does the
// protocol, the GPADLs, the rings and the threads.

/// A device served to the guest on one VMBus channel.
public protocol VMBusDevice: AnyObject, Sendable {
    /// The class and instance GUIDs the guest sees in the offer.
    var offer: ChannelOfferSpec { get }
    /// A short name for log lines ("heartbeat", "echo").
    var name: String { get }
    /// The largest packet (descriptor included) the device accepts from the guest; longer ones are refused.
    var maxPacketSize: Int { get }
    /// Seconds between `timerFired` calls while the channel is open, or nil for none.
    var timerInterval: Double? { get }
    /// Seconds the channel thread keeps polling the guest's empty ring before it sleeps: a guest that keeps
    /// sending then never needs to signal. 0 (the default) sleeps at once; a busy device trades CPU for fewer wakes.
    var pollInterval: Double { get }

    /// The guest opened the channel; sending may start now. Throwing refuses the open: the guest's OPENCHANNEL
    /// fails with an error status.
    func open(_ channel: VMBusChannel) throws(VMBusDeviceError)
    /// One packet from the guest, on the channel's thread, in ring order. Return false when it cannot be handled
    /// yet because the guest's inbound ring is full (`send` said so): the channel stops reading the guest's ring
    /// and offers the same packet again once the guest has made room.
    func receive(_ packet: VMBusPacket, on channel: VMBusChannel) -> Bool
    /// Every `timerInterval` seconds, on the channel's thread.
    func timerFired(on channel: VMBusChannel)
    /// The channel closed (guest close or unload, rescind, or hv stopping); sends fail from now on.
    func close(_ channel: VMBusChannel)
}

extension VMBusDevice {
    public var maxPacketSize: Int { 16 << 10 }
    public var timerInterval: Double? { nil }
    public var pollInterval: Double { 0 }
    public func timerFired(on channel: VMBusChannel) {}
}

/// A packet the guest wrote, seen in place on its ring for the length of one `receive` call. The bytes are
/// shared with the guest, which may change them at any time: copy what you check before acting on it.
public struct VMBusPacket {
    public let descriptor: PacketDescriptor
    /// The whole packet from the descriptor on (length8 × 8 bytes).
    public let bytes: UnsafeRawBufferPointer

    public init(descriptor: PacketDescriptor, bytes: UnsafeRawBufferPointer) {
        self.descriptor = descriptor
        self.bytes = bytes
    }

    /// Between the descriptor and the payload: GPA ranges, transfer-page ranges.
    public var typeSpecificHeader: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[PacketDescriptor.size..<Int(descriptor.dataOffset8) * 8])
    }
    /// From dataOffset8 × 8 to the end, padding included (inner protocols carry their own lengths).
    public var payload: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[(Int(descriptor.dataOffset8) * 8)...]) }
}

public struct VMBusDeviceError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
