// VMBus channel-management messages (vmbus-protocol.md §3; include/linux/hyperv.h). Each is the payload of one
// SynIC message of type 1, at most 240 bytes, starting with `msgtype u32, padding u32`. Offsets in the comments
// are from the start of that payload. Decoding reads only what the length check before it guarantees is there.

/// A VMBus protocol version: major << 16 | minor.
public struct VMBusVersion: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32

    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public init(major: UInt16, minor: UInt16) { rawValue = UInt32(major) << 16 | UInt32(minor) }

    public var major: UInt16 { UInt16(truncatingIfNeeded: rawValue >> 16) }
    public var minor: UInt16 { UInt16(truncatingIfNeeded: rawValue) }

    public static let ws2008 = VMBusVersion(major: 0, minor: 13)
    public static let win7 = VMBusVersion(major: 1, minor: 1)
    /// Sub-channels; events found through the SIEF page (bit = relid); OPENCHANNEL.target_vp honoured.
    public static let win8 = VMBusVersion(major: 2, minor: 4)
    public static let win8_1 = VMBusVersion(major: 3, minor: 0)
    public static let win10 = VMBusVersion(major: 4, minor: 0)
    /// MODIFYCHANNEL.
    public static let win10V4_1 = VMBusVersion(major: 4, minor: 1)
    /// INITIATE_CONTACT on connection 4 with msg_sint; VERSION_RESPONSE carries the message connection id.
    public static let win10V5 = VMBusVersion(major: 5, minor: 0)
    public static let win10V5_1 = VMBusVersion(major: 5, minor: 1)
    public static let win10V5_2 = VMBusVersion(major: 5, minor: 2)
    /// MODIFYCHANNEL_RESPONSE. The newest version Linux 6.1 asks for.
    public static let win10V5_3 = VMBusVersion(major: 5, minor: 3)

    /// The versions Linux 6.1 requests in INITIATE_CONTACT, newest first (drivers/hv/connection.c
    /// vmbus_versions[]; WIN7 and WS2008 were dropped before 6.1, 6.0 "Copper" came later).
    public static let linux61Requests: [VMBusVersion] = [
        .win10V5_3, .win10V5_2, .win10V5_1, .win10V5, .win10V4_1, .win10, .win8_1, .win8,
    ]

    /// From 5.0 on the guest sends INITIATE_CONTACT to connection 4 and names its message SINT in it.
    public var contactsOnConnection4: Bool { self >= .win10V5 }

    public static func < (lhs: VMBusVersion, rhs: VMBusVersion) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String { "\(major).\(minor)" }
}

/// Fixed numbers of the VMBus transport that Linux uses.
public enum VMBusConstants {
    /// The largest channel message: a SynIC message payload.
    public static let maxMessageSize = 240
    /// The SINT Linux programs for VMBus messages and channel events (VMBUS_MESSAGE_SINT).
    public static let messageSINT: UInt8 = 2
    /// Where the guest posts messages below 5.0, and the id hv hands back in VERSION_RESPONSE from 5.0 on.
    public static let messageConnectionID: UInt32 = 1
    /// Where the guest posts INITIATE_CONTACT from 5.0 on (VMBUS_MESSAGE_CONNECTION_ID_4).
    public static let contactConnectionIDv5: UInt32 = 4
}

/// Channel message type numbers (enum vmbus_channel_message_type). 18–20 (reserved channels for the kernel
/// debugger) and Copper's 25+ are not modelled: Linux 6.1 neither sends nor expects them.
public enum ChannelMessageType: UInt32, Sendable, CaseIterable {
    case offerChannel = 1
    case rescindChannelOffer = 2
    case requestOffers = 3
    case allOffersDelivered = 4
    case openChannel = 5
    case openChannelResult = 6
    case closeChannel = 7
    case gpadlHeader = 8
    case gpadlBody = 9
    case gpadlCreated = 10
    case gpadlTeardown = 11
    case gpadlTorndown = 12
    case relIDReleased = 13
    case initiateContact = 14
    case versionResponse = 15
    case unload = 16
    case unloadResponse = 17
    case tlConnectRequest = 21
    case modifyChannel = 22
    case tlConnectResult = 23
    case modifyChannelResponse = 24

    /// The size of the fixed part: a shorter message of this type is malformed.
    public var fixedSize: Int {
        switch self {
        case .requestOffers, .allOffersDelivered, .unload, .unloadResponse: ChannelMessageHeader.size
        case .offerChannel: OfferChannel.size
        case .rescindChannelOffer: RescindChannelOffer.size
        case .openChannel: OpenChannel.size
        case .openChannelResult: OpenChannelResult.size
        case .closeChannel: CloseChannel.size
        case .gpadlHeader: GPADLHeader.size
        case .gpadlBody: GPADLBody.size
        case .gpadlCreated: GPADLCreated.size
        case .gpadlTeardown: GPADLTeardown.size
        case .gpadlTorndown: GPADLTorndown.size
        case .relIDReleased: RelIDReleased.size
        case .initiateContact: InitiateContact.size
        case .versionResponse: VersionResponse.size
        case .tlConnectRequest: TLConnectRequest.size
        case .modifyChannel: ModifyChannel.size
        case .tlConnectResult: TLConnectResult.size
        case .modifyChannelResponse: ModifyChannelResponse.size
        }
    }
}

/// `msgtype u32 @0, padding u32 @4`: the start of every channel message.
public enum ChannelMessageHeader {
    public static let size = 8
}

/// Offer flags (chn_flags, VMBUS_CHANNEL_* in hyperv.h).
public struct ChannelOfferFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let enumerateDeviceInterface = ChannelOfferFlags(rawValue: 0x0001)
    public static let serverSupportsTransferPages = ChannelOfferFlags(rawValue: 0x0002)
    public static let serverSupportsGPADLs = ChannelOfferFlags(rawValue: 0x0004)
    public static let namedPipeMode = ChannelOfferFlags(rawValue: 0x0010)
    public static let loopbackOffer = ChannelOfferFlags(rawValue: 0x0100)
    public static let parentOffer = ChannelOfferFlags(rawValue: 0x0200)
    public static let requestMonitoredNotification = ChannelOfferFlags(rawValue: 0x0400)
    /// hv_sock.
    public static let tlnpiProviderOffer = ChannelOfferFlags(rawValue: 0x2000)
}

/// OFFERCHANNEL (1), host → guest: one device. 196 bytes.
public struct OfferChannel: Equatable, Sendable {
    public static let size = 196
    public static let userDefinedSize = 120

    /// Device class; Linux binds its driver by this.
    public var interfaceType: GUID
    /// Unique per device (sub-channels repeat their primary's).
    public var interfaceInstance: GUID
    public var flags: ChannelOfferFlags
    public var mmioMegabytes: UInt16
    /// Device-specific bytes (pipe mode: pipe_mode u32 first). Always exactly 120: shorter input is zero-padded,
    /// longer is cut.
    public var userDefined: [UInt8] {
        didSet { userDefined = fixedWidth(userDefined, Self.userDefinedSize) }
    }
    /// 0 for a primary channel.
    public var subChannelIndex: UInt16
    public var mmioMegabytesOptional: UInt16
    /// The channel id, 1…2047 in practice; also the channel's event flag bit.
    public var childRelID: UInt32
    /// 0xFF when there is none.
    public var monitorID: UInt8
    /// Keep false: with it set Linux signals through the monitor page instead of a hypercall.
    public var monitorAllocated: Bool
    /// True in hv's offers (as OpenVMM's): Linux then skips the legacy interrupt page.
    public var isDedicatedInterrupt: Bool
    /// What the guest passes to HvSignalEvent to signal this channel.
    public var connectionID: UInt32

    public init(
        interfaceType: GUID, interfaceInstance: GUID, flags: ChannelOfferFlags = [], mmioMegabytes: UInt16 = 0,
        userDefined: [UInt8] = [], subChannelIndex: UInt16 = 0, mmioMegabytesOptional: UInt16 = 0,
        childRelID: UInt32, monitorID: UInt8 = 0xFF, monitorAllocated: Bool = false,
        isDedicatedInterrupt: Bool = true, connectionID: UInt32
    ) {
        self.interfaceType = interfaceType
        self.interfaceInstance = interfaceInstance
        self.flags = flags
        self.mmioMegabytes = mmioMegabytes
        self.userDefined = fixedWidth(userDefined, Self.userDefinedSize)
        self.subChannelIndex = subChannelIndex
        self.mmioMegabytesOptional = mmioMegabytesOptional
        self.childRelID = childRelID
        self.monitorID = monitorID
        self.monitorAllocated = monitorAllocated
        self.isDedicatedInterrupt = isDedicatedInterrupt
        self.connectionID = connectionID
    }

    init(_ wire: WireReader) {
        interfaceType = wire.guid(8)
        interfaceInstance = wire.guid(24)
        // 40..55: two reserved u64s.
        flags = ChannelOfferFlags(rawValue: wire.u16(56))
        mmioMegabytes = wire.u16(58)
        userDefined = wire.slice(60, Self.userDefinedSize)
        subChannelIndex = wire.u16(180)
        mmioMegabytesOptional = wire.u16(182)
        childRelID = wire.u32(184)
        monitorID = wire.u8(188)
        monitorAllocated = wire.u8(189) & 1 != 0
        isDedicatedInterrupt = wire.u16(190) & 1 != 0
        connectionID = wire.u32(192)
    }

    func encode(into wire: inout WireWriter) {
        wire.guid(interfaceType)
        wire.guid(interfaceInstance)
        wire.u64(0)
        wire.u64(0)
        wire.u16(flags.rawValue)
        wire.u16(mmioMegabytes)
        wire.fixed(userDefined, width: Self.userDefinedSize)
        wire.u16(subChannelIndex)
        wire.u16(mmioMegabytesOptional)
        wire.u32(childRelID)
        wire.u8(monitorID)
        wire.u8(monitorAllocated ? 1 : 0)
        wire.u16(isDedicatedInterrupt ? 1 : 0)
        wire.u32(connectionID)
    }
}

/// `bytes` cut or zero-padded to `width`: the fixed-width byte fields of offers and opens.
private func fixedWidth(_ bytes: [UInt8], _ width: Int) -> [UInt8] {
    bytes.count == width ? bytes : Array(bytes.prefix(width)) + repeatElement(0, count: max(0, width - bytes.count))
}

/// RESCIND_CHANNELOFFER (2), host → guest: the device is going away. 12 bytes.
public struct RescindChannelOffer: Equatable, Sendable {
    public static let size = 12
    public var childRelID: UInt32
    public init(childRelID: UInt32) { self.childRelID = childRelID }
}

/// OPENCHANNEL (5), guest → host. 148 bytes (Copper's 156-byte form adds fields Linux 6.1 never sends).
public struct OpenChannel: Equatable, Sendable {
    public static let size = 148
    public static let userDataSize = 120

    public var childRelID: UInt32
    /// Linux sets it to the relid; echoed in OPENCHANNEL_RESULT.
    public var openID: UInt32
    /// The GPADL holding both rings: guest → host ring from page 0, host → guest ring from the downstream offset.
    public var ringBufferGPADL: UInt32
    /// VP index that receives this channel's host → guest events.
    public var targetVP: UInt32
    /// Page offset inside the ring GPADL where the host → guest ring starts.
    public var downstreamRingBufferPageOffset: UInt32
    /// Device-specific bytes. Always exactly 120: shorter input is zero-padded, longer is cut.
    public var userData: [UInt8] {
        didSet { userData = fixedWidth(userData, Self.userDataSize) }
    }

    public init(
        childRelID: UInt32, openID: UInt32, ringBufferGPADL: UInt32, targetVP: UInt32,
        downstreamRingBufferPageOffset: UInt32, userData: [UInt8] = []
    ) {
        self.childRelID = childRelID
        self.openID = openID
        self.ringBufferGPADL = ringBufferGPADL
        self.targetVP = targetVP
        self.downstreamRingBufferPageOffset = downstreamRingBufferPageOffset
        self.userData = fixedWidth(userData, Self.userDataSize)
    }

    init(_ wire: WireReader) {
        childRelID = wire.u32(8)
        openID = wire.u32(12)
        ringBufferGPADL = wire.u32(16)
        targetVP = wire.u32(20)
        downstreamRingBufferPageOffset = wire.u32(24)
        userData = wire.slice(28, Self.userDataSize)
    }

    func encode(into wire: inout WireWriter) {
        wire.u32(childRelID)
        wire.u32(openID)
        wire.u32(ringBufferGPADL)
        wire.u32(targetVP)
        wire.u32(downstreamRingBufferPageOffset)
        wire.fixed(userData, width: Self.userDataSize)
    }
}

/// OPENCHANNEL_RESULT (6), host → guest. 20 bytes. Linux treats any nonzero status as failure.
public struct OpenChannelResult: Equatable, Sendable {
    public static let size = 20
    public var childRelID: UInt32
    public var openID: UInt32
    public var status: UInt32
    public init(childRelID: UInt32, openID: UInt32, status: UInt32) {
        self.childRelID = childRelID
        self.openID = openID
        self.status = status
    }
}

/// CLOSECHANNEL (7), guest → host. 12 bytes. There is no answer.
public struct CloseChannel: Equatable, Sendable {
    public static let size = 12
    public var childRelID: UInt32
    public init(childRelID: UInt32) { self.childRelID = childRelID }
}

/// GPADL_HEADER (8), guest → host: starts a GPADL. 20 bytes, then the first part of the gpa_range array
/// (`byte_count u32, byte_offset u32, pfn u64[]` per range) as u64 words; GPADL_BODY messages carry the rest
/// until `rangeBufferLength` bytes have arrived.
public struct GPADLHeader: Equatable, Sendable {
    public static let size = 20
    /// Range words that fit after the fixed part: (240 − 20) / 8 = 27, one range header and 26 PFNs, as Linux fills it.
    public static let maxRangeWords = (VMBusConstants.maxMessageSize - size) / 8
    /// The most pages a GPADL can describe: range_buflen is a u16, so at most 8191 words, one of them a range header.
    public static let maxPages = Int(UInt16.max) / 8 - 1

    public var childRelID: UInt32
    /// Guest-chosen handle (Linux counts up from 0xE1E10, shared across channels).
    public var gpadl: UInt32
    /// Bytes of all gpa_range records together, header and bodies.
    public var rangeBufferLength: UInt16
    /// Linux always sends 1.
    public var rangeCount: UInt16
    /// The words of the gpa_range array that this message carries.
    public var rangeWords: [UInt64]

    public init(childRelID: UInt32, gpadl: UInt32, rangeBufferLength: UInt16, rangeCount: UInt16, rangeWords: [UInt64]) {
        self.childRelID = childRelID
        self.gpadl = gpadl
        self.rangeBufferLength = rangeBufferLength
        self.rangeCount = rangeCount
        self.rangeWords = rangeWords
    }

    /// The words the whole GPADL will have, from range_buflen.
    public var announcedWords: Int { Int(rangeBufferLength) / 8 }

    /// Whether this message carries the whole gpa_range array, so that no GPADL_BODY follows.
    public var isComplete: Bool { rangeWords.count == announcedWords }

    /// The ranges, when the header carries them all (`isComplete`); a partial header is an error here.
    public func ranges(maxPages: Int = GPADLHeader.maxPages) throws(VMBusError) -> [GPARange] {
        try GPARange.parse(words: rangeWords, rangeCount: Int(rangeCount), maxPages: maxPages)
    }

    /// Splits a GPADL into the messages a guest sends, the way Linux does: as many words as fit in the header,
    /// then up to 28 per body (numbered from 1; hosts do not check the number).
    public static func messages(
        childRelID: UInt32, gpadl: UInt32, ranges: [GPARange]
    ) throws(VMBusError) -> (header: GPADLHeader, bodies: [GPADLBody]) {
        let words = ranges.flatMap(\.words)
        let pages = ranges.reduce(0) { $0 + $1.pageNumbers.count }
        guard words.count * 8 <= Int(UInt16.max), ranges.count <= Int(UInt16.max) else {
            throw .gpaTooManyPages(count: UInt64(pages), limit: maxPages)
        }
        let header = GPADLHeader(
            childRelID: childRelID, gpadl: gpadl, rangeBufferLength: UInt16(words.count * 8),
            rangeCount: UInt16(ranges.count), rangeWords: Array(words.prefix(maxRangeWords)))
        var bodies: [GPADLBody] = []
        var position = header.rangeWords.count
        while position < words.count {
            let end = min(position + GPADLBody.maxRangeWords, words.count)
            bodies.append(GPADLBody(messageNumber: UInt32(bodies.count + 1), gpadl: gpadl,
                                    rangeWords: Array(words[position..<end])))
            position = end
        }
        return (header, bodies)
    }

    init(_ wire: WireReader) throws(VMBusError) {
        childRelID = wire.u32(8)
        gpadl = wire.u32(12)
        rangeBufferLength = wire.u16(16)
        rangeCount = wire.u16(18)
        // One range needs its header word and at least one PFN; range_buflen counts whole words.
        guard rangeBufferLength % 8 == 0, rangeBufferLength >= 16 else {
            throw .gpadlRangeBufferLength(rangeBufferLength)
        }
        guard rangeCount >= 1, Int(rangeCount) * 16 <= Int(rangeBufferLength) else {
            throw .gpadlRangeCount(count: rangeCount, rangeBufferLength: rangeBufferLength)
        }
        rangeWords = try readWords(wire, from: Self.size, type: .gpadlHeader)
        guard rangeWords.count <= Int(rangeBufferLength) / 8 else {
            throw .gpadlMoreDataThanAnnounced(carried: rangeWords.count, announced: Int(rangeBufferLength) / 8)
        }
        // A GPADL that fits in one message is checked now: its ranges must account for every word.
        if isComplete { _ = try ranges() }
    }

    func encode(into wire: inout WireWriter) {
        wire.u32(childRelID)
        wire.u32(gpadl)
        wire.u16(rangeBufferLength)
        wire.u16(rangeCount)
        for word in rangeWords { wire.u64(word) }
    }
}

/// GPADL_BODY (9), guest → host: more of a GPADL's gpa_range array. 16 bytes, then up to 28 u64 words.
public struct GPADLBody: Equatable, Sendable {
    public static let size = 16
    /// (240 − 16) / 8.
    public static let maxRangeWords = (VMBusConstants.maxMessageSize - size) / 8

    /// A sequence number hosts do not check.
    public var messageNumber: UInt32
    public var gpadl: UInt32
    /// The continuation of the gpa_range array: PFNs (and, with several ranges, their headers).
    public var rangeWords: [UInt64]

    public init(messageNumber: UInt32, gpadl: UInt32, rangeWords: [UInt64]) {
        self.messageNumber = messageNumber
        self.gpadl = gpadl
        self.rangeWords = rangeWords
    }

    init(_ wire: WireReader) throws(VMBusError) {
        messageNumber = wire.u32(8)
        gpadl = wire.u32(12)
        rangeWords = try readWords(wire, from: Self.size, type: .gpadlBody)
    }

    func encode(into wire: inout WireWriter) {
        wire.u32(messageNumber)
        wire.u32(gpadl)
        for word in rangeWords { wire.u64(word) }
    }
}

/// The u64 words after a GPADL message's fixed part; the byte count must be a whole number of words.
private func readWords(_ wire: WireReader, from offset: Int, type: ChannelMessageType) throws(VMBusError) -> [UInt64] {
    let bytes = wire.count - offset
    guard bytes % 8 == 0 else { throw .messageMisaligned(type: type.rawValue, length: wire.count) }
    return (0..<bytes / 8).map { wire.u64(offset + 8 * $0) }
}

/// GPADL_CREATED (10), host → guest. 20 bytes; status 0 = success.
public struct GPADLCreated: Equatable, Sendable {
    public static let size = 20
    public var childRelID: UInt32
    public var gpadl: UInt32
    public var status: UInt32
    public init(childRelID: UInt32, gpadl: UInt32, status: UInt32) {
        self.childRelID = childRelID
        self.gpadl = gpadl
        self.status = status
    }
}

/// GPADL_TEARDOWN (11), guest → host. 16 bytes.
public struct GPADLTeardown: Equatable, Sendable {
    public static let size = 16
    public var childRelID: UInt32
    public var gpadl: UInt32
    public init(childRelID: UInt32, gpadl: UInt32) {
        self.childRelID = childRelID
        self.gpadl = gpadl
    }
}

/// GPADL_TORNDOWN (12), host → guest, once hv no longer touches the memory. 12 bytes.
public struct GPADLTorndown: Equatable, Sendable {
    public static let size = 12
    public var gpadl: UInt32
    public init(gpadl: UInt32) { self.gpadl = gpadl }
}

/// RELID_RELEASED (13), guest → host, after a rescind: the relid may be reused. 12 bytes.
public struct RelIDReleased: Equatable, Sendable {
    public static let size = 12
    public var childRelID: UInt32
    public init(childRelID: UInt32) { self.childRelID = childRelID }
}

/// INITIATE_CONTACT (14), guest → host: asks for one protocol version. 40 bytes.
public struct InitiateContact: Equatable, Sendable {
    public static let size = 40

    public var versionRequested: VMBusVersion
    /// VP index that should receive hv's messages.
    public var targetVP: UInt32
    /// Bytes 16–23. Below 5.0: the interrupt page GPA. From 5.0: byte 16 = message SINT, byte 17 = VTL
    /// (newer kernels), bytes 20–23 = feature flags (6.0 only); see the computed properties.
    public var interruptPageOrMessageSINT: UInt64
    /// Parent → child monitor page GPA.
    public var monitorPage1: UInt64
    /// Child → parent monitor page GPA.
    public var monitorPage2: UInt64

    public init(
        versionRequested: VMBusVersion, targetVP: UInt32, interruptPageOrMessageSINT: UInt64,
        monitorPage1: UInt64, monitorPage2: UInt64
    ) {
        self.versionRequested = versionRequested
        self.targetVP = targetVP
        self.interruptPageOrMessageSINT = interruptPageOrMessageSINT
        self.monitorPage1 = monitorPage1
        self.monitorPage2 = monitorPage2
    }

    /// The SINT hv must deliver messages on (meaningful from 5.0; Linux sends 2).
    public var messageSINT: UInt8 { UInt8(truncatingIfNeeded: interruptPageOrMessageSINT) }
    /// The target VTL (from 5.0; 0 for an ordinary guest).
    public var messageVTL: UInt8 { UInt8(truncatingIfNeeded: interruptPageOrMessageSINT >> 8) }
    /// The legacy interrupt page (below 5.0).
    public var interruptPage: UInt64 { interruptPageOrMessageSINT }

    init(_ wire: WireReader) {
        versionRequested = VMBusVersion(rawValue: wire.u32(8))
        targetVP = wire.u32(12)
        interruptPageOrMessageSINT = wire.u64(16)
        monitorPage1 = wire.u64(24)
        monitorPage2 = wire.u64(32)
    }

    func encode(into wire: inout WireWriter) {
        wire.u32(versionRequested.rawValue)
        wire.u32(targetVP)
        wire.u64(interruptPageOrMessageSINT)
        wire.u64(monitorPage1)
        wire.u64(monitorPage2)
    }
}

/// VERSION_RESPONSE (15), host → guest. 16 bytes (the form Linux 6.1 reads).
public struct VersionResponse: Equatable, Sendable {
    public static let size = 16

    public var versionSupported: Bool
    /// 0 success, 1 low resources, 2 unknown failure.
    public var connectionState: UInt8
    /// From 5.0 on: the connection id the guest posts every later message to.
    public var messageConnectionID: UInt32

    public init(versionSupported: Bool, connectionState: UInt8 = 0, messageConnectionID: UInt32) {
        self.versionSupported = versionSupported
        self.connectionState = connectionState
        self.messageConnectionID = messageConnectionID
    }

    init(_ wire: WireReader) {
        versionSupported = wire.u8(8) != 0
        connectionState = wire.u8(9)
        messageConnectionID = wire.u32(12)
    }

    func encode(into wire: inout WireWriter) {
        wire.u8(versionSupported ? 1 : 0)
        wire.u8(connectionState)
        wire.u16(0)
        wire.u32(messageConnectionID)
    }
}

/// TL_CONNECT_REQUEST (21), guest → host: an hv_sock connect. 40 bytes; 56 with a silo id (5.2+, OpenVMM).
public struct TLConnectRequest: Equatable, Sendable {
    public static let size = 40
    public static let sizeWithSilo = 56

    public var guestEndpointID: GUID
    public var hostServiceID: GUID
    public var siloID: GUID?

    public init(guestEndpointID: GUID, hostServiceID: GUID, siloID: GUID? = nil) {
        self.guestEndpointID = guestEndpointID
        self.hostServiceID = hostServiceID
        self.siloID = siloID
    }

    init(_ wire: WireReader) {
        guestEndpointID = wire.guid(8)
        hostServiceID = wire.guid(24)
        siloID = wire.count >= Self.sizeWithSilo ? wire.guid(40) : nil
    }

    func encode(into wire: inout WireWriter) {
        wire.guid(guestEndpointID)
        wire.guid(hostServiceID)
        if let siloID { wire.guid(siloID) }
    }
}

/// MODIFYCHANNEL (22), guest → host (4.1+): move the channel's events to another VP. 16 bytes.
public struct ModifyChannel: Equatable, Sendable {
    public static let size = 16
    public var childRelID: UInt32
    public var targetVP: UInt32
    public init(childRelID: UInt32, targetVP: UInt32) {
        self.childRelID = childRelID
        self.targetVP = targetVP
    }
}

/// TL_CONNECT_RESULT (23), host → guest: hv_sock connect outcome (Linux ignores it). 44 bytes, layout from OpenVMM.
public struct TLConnectResult: Equatable, Sendable {
    public static let size = 44
    public var endpointID: GUID
    public var serviceID: GUID
    public var status: Int32
    public init(endpointID: GUID, serviceID: GUID, status: Int32) {
        self.endpointID = endpointID
        self.serviceID = serviceID
        self.status = status
    }
}

/// MODIFYCHANNEL_RESPONSE (24), host → guest (5.3+ only). 16 bytes.
public struct ModifyChannelResponse: Equatable, Sendable {
    public static let size = 16
    public var childRelID: UInt32
    public var status: Int32
    public init(childRelID: UInt32, status: Int32) {
        self.childRelID = childRelID
        self.status = status
    }
}

/// One channel-management message, decoded from or encoded to a SynIC message payload.
public enum ChannelMessage: Equatable, Sendable {
    case offerChannel(OfferChannel)
    case rescindChannelOffer(RescindChannelOffer)
    case requestOffers
    case allOffersDelivered
    case openChannel(OpenChannel)
    case openChannelResult(OpenChannelResult)
    case closeChannel(CloseChannel)
    case gpadlHeader(GPADLHeader)
    case gpadlBody(GPADLBody)
    case gpadlCreated(GPADLCreated)
    case gpadlTeardown(GPADLTeardown)
    case gpadlTorndown(GPADLTorndown)
    case relIDReleased(RelIDReleased)
    case initiateContact(InitiateContact)
    case versionResponse(VersionResponse)
    case unload
    case unloadResponse
    case tlConnectRequest(TLConnectRequest)
    case modifyChannel(ModifyChannel)
    case tlConnectResult(TLConnectResult)
    case modifyChannelResponse(ModifyChannelResponse)

    public var type: ChannelMessageType {
        switch self {
        case .offerChannel: .offerChannel
        case .rescindChannelOffer: .rescindChannelOffer
        case .requestOffers: .requestOffers
        case .allOffersDelivered: .allOffersDelivered
        case .openChannel: .openChannel
        case .openChannelResult: .openChannelResult
        case .closeChannel: .closeChannel
        case .gpadlHeader: .gpadlHeader
        case .gpadlBody: .gpadlBody
        case .gpadlCreated: .gpadlCreated
        case .gpadlTeardown: .gpadlTeardown
        case .gpadlTorndown: .gpadlTorndown
        case .relIDReleased: .relIDReleased
        case .initiateContact: .initiateContact
        case .versionResponse: .versionResponse
        case .unload: .unload
        case .unloadResponse: .unloadResponse
        case .tlConnectRequest: .tlConnectRequest
        case .modifyChannel: .modifyChannel
        case .tlConnectResult: .tlConnectResult
        case .modifyChannelResponse: .modifyChannelResponse
        }
    }

    /// Decodes a message payload as the guest posted it. Bytes past a fixed-size type's end are ignored (as
    /// Linux ignores them in what it receives); everything else that does not fit the type is an error.
    public static func decode(_ bytes: some Collection<UInt8>) throws(VMBusError) -> ChannelMessage {
        let wire = WireReader(Array(bytes))
        guard wire.count <= VMBusConstants.maxMessageSize else {
            throw .messageTooLong(length: wire.count, limit: VMBusConstants.maxMessageSize)
        }
        guard wire.count >= ChannelMessageHeader.size else {
            throw .messageTruncated(type: wire.count >= 4 ? wire.u32(0) : 0, length: wire.count,
                                    required: ChannelMessageHeader.size)
        }
        let rawType = wire.u32(0)
        guard let type = ChannelMessageType(rawValue: rawType) else { throw .unknownMessageType(rawType) }
        guard wire.count >= type.fixedSize else {
            throw .messageTruncated(type: rawType, length: wire.count, required: type.fixedSize)
        }
        switch type {
        case .offerChannel: return .offerChannel(OfferChannel(wire))
        case .rescindChannelOffer: return .rescindChannelOffer(RescindChannelOffer(childRelID: wire.u32(8)))
        case .requestOffers: return .requestOffers
        case .allOffersDelivered: return .allOffersDelivered
        case .openChannel: return .openChannel(OpenChannel(wire))
        case .openChannelResult:
            return .openChannelResult(OpenChannelResult(childRelID: wire.u32(8), openID: wire.u32(12), status: wire.u32(16)))
        case .closeChannel: return .closeChannel(CloseChannel(childRelID: wire.u32(8)))
        case .gpadlHeader: return .gpadlHeader(try GPADLHeader(wire))
        case .gpadlBody: return .gpadlBody(try GPADLBody(wire))
        case .gpadlCreated:
            return .gpadlCreated(GPADLCreated(childRelID: wire.u32(8), gpadl: wire.u32(12), status: wire.u32(16)))
        case .gpadlTeardown: return .gpadlTeardown(GPADLTeardown(childRelID: wire.u32(8), gpadl: wire.u32(12)))
        case .gpadlTorndown: return .gpadlTorndown(GPADLTorndown(gpadl: wire.u32(8)))
        case .relIDReleased: return .relIDReleased(RelIDReleased(childRelID: wire.u32(8)))
        case .initiateContact: return .initiateContact(InitiateContact(wire))
        case .versionResponse: return .versionResponse(VersionResponse(wire))
        case .unload: return .unload
        case .unloadResponse: return .unloadResponse
        case .tlConnectRequest: return .tlConnectRequest(TLConnectRequest(wire))
        case .modifyChannel: return .modifyChannel(ModifyChannel(childRelID: wire.u32(8), targetVP: wire.u32(12)))
        case .tlConnectResult:
            return .tlConnectResult(TLConnectResult(endpointID: wire.guid(8), serviceID: wire.guid(24),
                                                    status: Int32(bitPattern: wire.u32(40))))
        case .modifyChannelResponse:
            return .modifyChannelResponse(ModifyChannelResponse(childRelID: wire.u32(8),
                                                                status: Int32(bitPattern: wire.u32(12))))
        }
    }

    /// The payload to post: header, then the type's fields, little-endian.
    public var bytes: [UInt8] {
        var wire = WireWriter(capacity: VMBusConstants.maxMessageSize)
        wire.u32(type.rawValue)
        wire.u32(0)
        switch self {
        case .requestOffers, .allOffersDelivered, .unload, .unloadResponse: break
        case .offerChannel(let message): message.encode(into: &wire)
        case .rescindChannelOffer(let message): wire.u32(message.childRelID)
        case .openChannel(let message): message.encode(into: &wire)
        case .openChannelResult(let message):
            wire.u32(message.childRelID)
            wire.u32(message.openID)
            wire.u32(message.status)
        case .closeChannel(let message): wire.u32(message.childRelID)
        case .gpadlHeader(let message): message.encode(into: &wire)
        case .gpadlBody(let message): message.encode(into: &wire)
        case .gpadlCreated(let message):
            wire.u32(message.childRelID)
            wire.u32(message.gpadl)
            wire.u32(message.status)
        case .gpadlTeardown(let message):
            wire.u32(message.childRelID)
            wire.u32(message.gpadl)
        case .gpadlTorndown(let message): wire.u32(message.gpadl)
        case .relIDReleased(let message): wire.u32(message.childRelID)
        case .initiateContact(let message): message.encode(into: &wire)
        case .versionResponse(let message): message.encode(into: &wire)
        case .tlConnectRequest(let message): message.encode(into: &wire)
        case .modifyChannel(let message):
            wire.u32(message.childRelID)
            wire.u32(message.targetVP)
        case .tlConnectResult(let message):
            wire.guid(message.endpointID)
            wire.guid(message.serviceID)
            wire.u32(UInt32(bitPattern: message.status))
        case .modifyChannelResponse(let message):
            wire.u32(message.childRelID)
            wire.u32(UInt32(bitPattern: message.status))
        }
        return wire.bytes
    }
}
