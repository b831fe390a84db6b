// What the heartbeat and shutdown ICs share: the packets they hand to the channel, the events they report, and
// the version negotiation the host starts as soon as the guest opens the channel (ICMessage.swift describes
// what the guest does with each message). Pure state: the caller owns the ring, the clock and the threads.

/// A request for the channel shell to send: one VM_PKT_DATA_INBAND packet with
/// VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED, `payload` as its data and `transactionID` as its trans_id.
/// The guest answers with an inband packet (flags 0) carrying the same trans_id; pass that packet's data and
/// trans_id to the IC's `received`.
public struct ICOutgoing: Equatable, Sendable {
    public var payload: [UInt8]
    public var transactionID: UInt64

    public init(payload: [UInt8], transactionID: UInt64) {
        self.payload = payload
        self.transactionID = transactionID
    }
}

/// What one reply from the guest meant.
public enum ICEvent: Equatable, Sendable {
    /// The guest chose these versions from the ones offered; the IC is ready.
    case negotiated(framework: ICVersion, message: ICVersion)
    /// The guest shares no framework or no message version with hv (Linux answers with both counts 0 and the
    /// status it was sent, HV_S_OK; a non-zero status is reported as it came). The IC stays unusable until the
    /// channel is opened again.
    case negotiationFailed(status: UInt32)
    /// A heartbeat came back with the sequence number hv sent plus one; carries the number the guest wrote.
    case heartbeat(seq: UInt64)
    case shutdownAccepted
    case shutdownRefused(status: UInt32)
    /// Malformed or unexpected input; nothing changed but the IC's rejection count.
    case rejected(ICRejection)
}

/// Where an IC channel is.
public enum ICState: Equatable, Sendable {
    case closed
    /// The negotiate request is out; nothing else is sent until it comes back.
    case negotiating
    case ready(framework: ICVersion, message: ICVersion)
    /// The guest turned every offered version down.
    case failed
}

/// VMBus transaction ids for one channel's requests: 1, 2, 3, ... (0 is never used, so a zeroed packet never
/// matches).
public struct ICTransactionIDs: Sendable {
    private var last: UInt64 = 0

    public init() {}

    public mutating func next() -> UInt64 {
        last &+= 1
        if last == 0 { last = 1 }
        return last
    }
}

/// The negotiation and reply checks of one IC channel, used by HeartbeatIC and ShutdownIC.
struct ICChannel: Sendable {
    let frameworkVersions: [ICVersion]
    let messageVersions: [ICVersion]
    private(set) var state: ICState = .closed
    private var ids = ICTransactionIDs()
    private var negotiateID: UInt64?

    init(frameworkVersions: [ICVersion], messageVersions: [ICVersion]) {
        self.frameworkVersions = frameworkVersions
        self.messageVersions = messageVersions
    }

    /// The guest opened the channel: start over and offer the versions. The negotiate request carries version
    /// 0.0 in icverframe and icvermsg (nothing is agreed yet; Linux does not read them).
    mutating func open() -> ICOutgoing {
        let id = ids.next()
        negotiateID = id
        state = .negotiating
        let body = ICNegotiate(frameworkVersions: frameworkVersions, messageVersions: messageVersions).bytes
        let message = ICMessage.request(type: ICMsgType.negotiate, framework: ICVersion(0, 0),
                                        message: ICVersion(0, 0), body: body)
        return ICOutgoing(payload: message.bytes, transactionID: id)
    }

    mutating func close() {
        state = .closed
        negotiateID = nil
    }

    var isNegotiating: Bool { negotiateID != nil }

    /// A request of the negotiated versions; nil unless the channel is ready.
    mutating func request(type: UInt16, body: [UInt8]) -> ICOutgoing? {
        guard case .ready(let framework, let message) = state else { return nil }
        let request = ICMessage.request(type: type, framework: framework, message: message, body: body)
        return ICOutgoing(payload: request.bytes, transactionID: ids.next())
    }

    /// Decodes a reply to one of our requests and checks what every reply must satisfy: the type asked for,
    /// ICMSGHDRFLAG_RESPONSE, and ictransaction_id echoed (hv always sends 0).
    static func decodeReply(_ payload: [UInt8], type: UInt16) throws(ICRejection) -> ICMessage {
        let message = try ICMessage(decoding: payload)
        guard message.header.icmsgtype == type else {
            throw .wrongMessageType(expected: type, got: message.header.icmsgtype)
        }
        guard message.header.isResponse else { throw .notAResponse(icflags: message.header.icflags) }
        guard message.header.ictransactionID == 0 else {
            throw .wrongICTransactionID(expected: 0, got: message.header.ictransactionID)
        }
        return message
    }

    /// The negotiate reply, while negotiating. Counts 1/1 with versions that were offered: ready. Counts 0/0
    /// (or a failure status): failed. Anything else is rejected and the negotiation stays outstanding.
    mutating func receiveNegotiation(_ payload: [UInt8], transactionID: UInt64) -> ICEvent {
        guard transactionID == negotiateID else { return .rejected(.unexpectedTransaction(transactionID)) }
        let message: ICMessage
        let negotiate: ICNegotiate
        do {
            message = try Self.decodeReply(payload, type: ICMsgType.negotiate)
            negotiate = try ICNegotiate(decoding: message.body)
        } catch {
            return .rejected(error)
        }
        switch (negotiate.frameworkVersions.count, negotiate.messageVersions.count) {
        case (0, 0):
            negotiateID = nil
            state = .failed
            return .negotiationFailed(status: message.header.status)
        case (1, 1):
            if message.header.status != ICStatus.hvSOK {
                negotiateID = nil
                state = .failed
                return .negotiationFailed(status: message.header.status)
            }
            let framework = negotiate.frameworkVersions[0]
            let chosen = negotiate.messageVersions[0]
            guard frameworkVersions.contains(framework), messageVersions.contains(chosen) else {
                return .rejected(.versionNotOffered(framework: framework, message: chosen))
            }
            negotiateID = nil
            state = .ready(framework: framework, message: chosen)
            return .negotiated(framework: framework, message: chosen)
        case (let frameworkCount, let messageCount):
            return .rejected(.badNegotiateCounts(framework: frameworkCount, message: messageCount))
        }
    }
}
