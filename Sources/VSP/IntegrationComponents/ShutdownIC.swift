// The host side of the shutdown IC (interface {0e0b6031-5213-4934-818b-38d90ced39db}, GUID.shutdown). After
// the negotiation, `requestShutdown` sends one ICMSGTYPE_SHUTDOWN request; the guest's status says whether it
// took it (shutdown_onchannelcallback answers first, then powers off or reboots).

/// What the guest is asked to do.
public enum ShutdownKind: Sendable {
    /// flags 0 (| force): Linux runs orderly_poweroff.
    case powerOff
    /// flags 2 (| force): Linux runs orderly_reboot.
    case reboot
}

/// The shutdown IC's state machine.
public struct ShutdownIC: Sendable {
    /// Framework versions offered: those Linux 6.1 accepts (hv_util.c fw_versions[]). Linux picks 3.0.
    public static let frameworkVersions: [ICVersion] = [.utilFramework, .utilWS2K8Framework]
    /// Shutdown message versions offered: those Linux 6.1 accepts (hv_util.c sd_versions[]: SD_VERSION_3_2,
    /// SD_VERSION_3_1, SD_VERSION, SD_VERSION_1). shutdown_msg_data is the same in all of them and Linux reads
    /// the flags the same way whichever was chosen; it picks 3.2.
    public static let messageVersions: [ICVersion] = [ICVersion(3, 2), ICVersion(3, 1), ICVersion(3, 0),
                                                      ICVersion(1, 0)]

    private var channel = ICChannel(frameworkVersions: ShutdownIC.frameworkVersions,
                                    messageVersions: ShutdownIC.messageVersions)
    private var pending: UInt64?

    /// Replies turned away (malformed or unexpected).
    public private(set) var rejectedReplies = 0

    public init() {}

    public var state: ICState { channel.state }

    /// Whether a shutdown request is waiting for its answer.
    public var shutdownPending: Bool { pending != nil }

    /// The guest opened the channel: the negotiate request to send first. Opening again starts over.
    public mutating func opened() -> ICOutgoing {
        pending = nil
        return channel.open()
    }

    /// The channel was closed (or rescinded).
    public mutating func closed() {
        pending = nil
        channel.close()
    }

    /// The shutdown request to send, or nil while the channel is not ready or an earlier request is unanswered.
    /// `force` sets flag bit 0 (Linux forces anyway); `reason` is shutdown_msg_data.reason_code; timeout_seconds
    /// and display_message are sent as zeros (Linux reads neither).
    public mutating func requestShutdown(kind: ShutdownKind, force: Bool = false,
                                         reason: UInt32 = ShutdownMsgData.reasonPlanned) -> ICOutgoing? {
        guard pending == nil else { return nil }
        var flags: UInt32 = force ? ShutdownMsgData.flagForce : 0
        if kind == .reboot { flags |= ShutdownMsgData.flagRestart }
        let data = ShutdownMsgData(reasonCode: reason, timeoutSeconds: 0, flags: flags)
        guard let request = channel.request(type: ICMsgType.shutdown, body: data.bytes) else { return nil }
        pending = request.transactionID
        return request
    }

    /// A packet from the guest: its data and trans_id.
    public mutating func received(_ payload: [UInt8], transactionID: UInt64) -> ICEvent {
        let event = handle(payload, transactionID: transactionID)
        if case .rejected = event { rejectedReplies += 1 }
        return event
    }

    private mutating func handle(_ payload: [UInt8], transactionID: UInt64) -> ICEvent {
        if channel.isNegotiating { return channel.receiveNegotiation(payload, transactionID: transactionID) }
        guard case .ready = channel.state else { return .rejected(.channelNotOpen) }
        guard let id = pending, id == transactionID else { return .rejected(.unexpectedTransaction(transactionID)) }
        let message: ICMessage
        do {
            message = try ICChannel.decodeReply(payload, type: ICMsgType.shutdown)
        } catch {
            return .rejected(error)
        }
        // Linux echoes the whole shutdown_msg_data, but only the status matters here: the body is not checked.
        pending = nil
        let status = message.header.status
        return status == ICStatus.hvSOK ? .shutdownAccepted : .shutdownRefused(status: status)
    }
}
