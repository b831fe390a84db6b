// The host side of the heartbeat IC (interface {57164f39-9115-4e78-ab55-382f3bd5422d}, GUID.heartbeat). After
// the negotiation, each `tick()` (the shell calls it on a timer; Hyper-V uses about two seconds) sends an
// ICMSGTYPE_HEARTBEAT request with the next seq_num; a live guest answers with seq_num + 1
// (heartbeat_onchannelcallback). One request is outstanding at a time: a tick before the answer counts the
// unanswered one as missed, and its late answer is then rejected.

/// The heartbeat IC's state machine.
public struct HeartbeatIC: Sendable {
    /// Framework versions offered: those Linux 6.1 accepts (hv_util.c fw_versions[]: UTIL_FW_VERSION,
    /// UTIL_WS2K8_FW_VERSION). Linux picks the first of its own list that the host offers, so 3.0.
    public static let frameworkVersions: [ICVersion] = [.utilFramework, .utilWS2K8Framework]
    /// Heartbeat message versions offered: those Linux 6.1 accepts (hv_util.c hb_versions[]: HB_VERSION 3.0,
    /// HB_VERSION_1 1.0). heartbeat_msg_data is the same in both.
    public static let messageVersions: [ICVersion] = [ICVersion(3, 0), ICVersion(1, 0)]

    private var channel = ICChannel(frameworkVersions: HeartbeatIC.frameworkVersions,
                                    messageVersions: HeartbeatIC.messageVersions)
    private var nextSeq: UInt64
    private var outstanding: (transactionID: UInt64, seq: UInt64)?

    /// Replies with the right sequence number.
    public private(set) var acceptedHeartbeats = 0
    /// Requests that were still unanswered when the next tick (or a close) came.
    public private(set) var missedHeartbeats = 0
    /// Replies turned away (malformed, unexpected, wrong sequence).
    public private(set) var rejectedReplies = 0
    /// The seq_num of the last accepted reply (the guest's, i.e. the request's plus one).
    public private(set) var lastSeq: UInt64?
    /// When the last accepted reply arrived, by the caller's clock.
    public private(set) var lastHeartbeatAt: ContinuousClock.Instant?

    /// `firstSeq` is the seq_num of the first heartbeat request; each later request uses the next number.
    public init(firstSeq: UInt64 = 0) { nextSeq = firstSeq }

    public var state: ICState { channel.state }

    /// The guest opened the channel: the negotiate request to send first. Opening again starts over.
    public mutating func opened() -> ICOutgoing {
        dropOutstanding()
        return channel.open()
    }

    /// The channel was closed (or rescinded): nothing is outstanding any more.
    public mutating func closed() {
        dropOutstanding()
        channel.close()
    }

    /// The next heartbeat request, or nil while the channel is not ready.
    public mutating func tick() -> ICOutgoing? {
        guard case .ready = channel.state else { return nil }
        let seq = nextSeq
        guard let request = channel.request(type: ICMsgType.heartbeat, body: HeartbeatMsgData(seqNum: seq).bytes)
        else { return nil }
        dropOutstanding()
        nextSeq &+= 1
        outstanding = (request.transactionID, seq)
        return request
    }

    /// A packet from the guest: its data and trans_id, and when it arrived.
    public mutating func received(_ payload: [UInt8], transactionID: UInt64,
                                  at now: ContinuousClock.Instant) -> ICEvent {
        let event = handle(payload, transactionID: transactionID, at: now)
        if case .rejected = event { rejectedReplies += 1 }
        return event
    }

    private mutating func handle(_ payload: [UInt8], transactionID: UInt64,
                                 at now: ContinuousClock.Instant) -> ICEvent {
        if channel.isNegotiating { return channel.receiveNegotiation(payload, transactionID: transactionID) }
        guard case .ready = channel.state else { return .rejected(.channelNotOpen) }
        guard let request = outstanding, request.transactionID == transactionID else {
            return .rejected(.unexpectedTransaction(transactionID))
        }
        let data: HeartbeatMsgData
        let message: ICMessage
        do {
            message = try ICChannel.decodeReply(payload, type: ICMsgType.heartbeat)
            data = try HeartbeatMsgData(decoding: message.body)
        } catch {
            return .rejected(error)
        }
        // The guest did answer this transaction; right or wrong, it is no longer outstanding.
        outstanding = nil
        guard message.header.status == ICStatus.hvSOK else { return .rejected(.failedStatus(message.header.status)) }
        let expected = request.seq &+ 1
        guard data.seqNum == expected else { return .rejected(.wrongSequence(expected: expected, got: data.seqNum)) }
        acceptedHeartbeats += 1
        lastSeq = data.seqNum
        lastHeartbeatAt = now
        return .heartbeat(seq: data.seqNum)
    }

    private mutating func dropOutstanding() {
        if outstanding != nil { missedHeartbeats += 1 }
        outstanding = nil
    }
}
