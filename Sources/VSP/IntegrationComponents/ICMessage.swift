// Hyper-V integration-component (IC) framing: what travels in the VMBus inband packets of the heartbeat and
// shutdown channels (and KVP, VSS, time sync, which hv does not offer yet). Layouts and numbers are Linux 6.1's:
// include/linux/hyperv.h (struct vmbuspipe_hdr, ic_version, icmsg_hdr, icmsg_negotiate, heartbeat_msg_data,
// shutdown_msg_data, ICMSGTYPE_*, ICMSGHDRFLAG_*, ICMSG_HDR), include/uapi/linux/hyperv.h (UTIL_FW_VERSION,
// HV_S_OK, HV_E_FAIL, ...), drivers/hv/channel_mgmt.c (vmbus_prep_negotiate_resp) and drivers/hv/hv_util.c.
//
// One IC message, little-endian, packed:
//
//   offset  size  field
//   0       4     vmbuspipe_hdr.flags      hv writes 1 (a message-pipe data packet); Linux ignores it and echoes it
//   4       4     vmbuspipe_hdr.msgsize    bytes after the pipe header; Linux ignores it and echoes it
//   8       4     icmsg_hdr.icverframe     framework version {u16 major, u16 minor}
//   12      2     icmsg_hdr.icmsgtype      ICMSGTYPE_*
//   14      4     icmsg_hdr.icvermsg       message (service) version {major, minor}
//   18      2     icmsg_hdr.icmsgsize      bytes of body after the 28-byte ICMSG_HDR
//   20      4     icmsg_hdr.status         HV_S_OK / HV_E_FAIL ... (the guest's answer)
//   24      1     icmsg_hdr.ictransaction_id
//   25      1     icmsg_hdr.icflags        ICMSGHDRFLAG_TRANSACTION | _REQUEST (host) or | _RESPONSE (guest)
//   26      2     icmsg_hdr.reserved
//   28      ...   body (icmsg_negotiate, heartbeat_msg_data or shutdown_msg_data)
//
// What the guest (Linux 6.1 hv_utils; the guest stub's C client does the same) does with each message. The host
// sends every request as a VM_PKT_DATA_INBAND packet with VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED and a
// transaction id; the guest never sends a completion packet. Instead, for every packet it reads (util callbacks:
// shutdown_onchannelcallback, heartbeat_onchannelcallback):
//   1. vmbus_recvpacket(channel, buf, HV_HYP_PAGE_SIZE, &recvlen, &requestid): recvlen is the packet's data
//      length rounded up to 8 (it includes the ring's padding), requestid is the packet's trans_id. A packet
//      over 4096 bytes is not read at all.
//   2. recvlen < ICMSG_HDR (28): drop it silently, no reply.
//   3. icmsgtype == ICMSGTYPE_NEGOTIATE (0): vmbus_prep_negotiate_resp() rewrites the message in place:
//        - recvlen < 28 + 4 (up to icmsg_negotiate.reserved): log, leave the buffer as it is (it is still sent);
//        - icmsgsize = 0x10;
//        - icframe_vercnt > 100 or icmsg_vercnt > 100 (IC_VERSION_NEGOTIATION_MAX_VER_COUNT) or
//          28 + 8 + 4 * (icframe_vercnt + icmsg_vercnt) > recvlen: failure;
//        - otherwise walk the guest's own framework list, newest first (fw_versions[] = UTIL_FW_VERSION 3.0,
//          UTIL_WS2K8_FW_VERSION 1.0), and take the first one present among the host's icframe_vercnt entries;
//          then likewise the service list (hb_versions[] = 3.0, 1.0; sd_versions[] = 3.2, 3.1, 3.0, 1.0) against
//          the host's icmsg_vercnt entries that follow. The host's order does not matter;
//        - success: icframe_vercnt = icmsg_vercnt = 1, icversion_data[0] = chosen framework version,
//          icversion_data[1] = chosen message version. Failure: both counts 0 (icversion_data[0..1] then hold
//          leftovers). status is NOT changed: a failed negotiation still says HV_S_OK.
//   4. heartbeat channel, icmsgtype == ICMSGTYPE_HEARTBEAT (1): recvlen < 28 + 8: drop, no reply. Otherwise
//      heartbeat_msg_data.seq_num += 1 in place; status unchanged.
//   5. shutdown channel, icmsgtype == ICMSGTYPE_SHUTDOWN (3): recvlen < 28 + 2060 (sizeof shutdown_msg_data):
//      drop, no reply. Otherwise by shutdown_msg_data.flags: 0 or 1 -> status = HV_S_OK, orderly_poweroff;
//      2 or 3 -> HV_S_OK, orderly_reboot; 4 or 5 -> HV_S_OK and a hibernate uevent when the guest can
//      hibernate, else HV_E_FAIL; anything else -> HV_E_FAIL. (Bit 0 is "force"; Linux always forces.) The
//      service version does not gate any of this.
//   6. any other icmsgtype: status = HV_E_FAIL.
//   7. icflags = ICMSGHDRFLAG_TRANSACTION | ICMSGHDRFLAG_RESPONSE (5), then
//      vmbus_sendpacket(channel, buf, recvlen, requestid, VM_PKT_DATA_INBAND, 0): the whole buffer (pipe header,
//      icverframe, icvermsg, ictransaction_id and body echoed as received) goes back as an inband packet with
//      flags 0 and the request's transaction id.
// The shutdown itself happens after the reply is sent (schedule_work), so the host sees the answer first.

import VMBus

/// struct ic_version: a framework or message version. Linux's tables hold it as an int, major << 16 | minor.
public struct ICVersion: Hashable, Sendable, CustomStringConvertible {
    public static let size = 4

    public var major: UInt16
    public var minor: UInt16

    public init(_ major: UInt16, _ minor: UInt16) {
        self.major = major
        self.minor = minor
    }

    /// From Linux's packed form (`UTIL_FW_VERSION`, `HB_VERSION`, ...): major << 16 | minor.
    public init(packed: UInt32) { self.init(UInt16(truncatingIfNeeded: packed >> 16), UInt16(truncatingIfNeeded: packed)) }

    public var packed: UInt32 { UInt32(major) << 16 | UInt32(minor) }

    public var description: String { "\(major).\(minor)" }

    /// UTIL_WS2K8_FW_VERSION: framework 1.0.
    public static let utilWS2K8Framework = ICVersion(1, 0)
    /// UTIL_FW_VERSION: framework 3.0.
    public static let utilFramework = ICVersion(3, 0)
}

/// ICMSGTYPE_*: icmsg_hdr.icmsgtype.
public enum ICMsgType {
    public static let negotiate: UInt16 = 0
    public static let heartbeat: UInt16 = 1
    public static let kvpExchange: UInt16 = 2
    public static let shutdown: UInt16 = 3
    public static let timeSync: UInt16 = 4
    public static let vss: UInt16 = 5
    public static let fcopy: UInt16 = 7
}

/// ICMSGHDRFLAG_*: bits of icmsg_hdr.icflags.
public enum ICMsgHdrFlag {
    public static let transaction: UInt8 = 1
    public static let request: UInt8 = 2
    public static let response: UInt8 = 4
}

/// Status codes (include/uapi/linux/hyperv.h) carried in icmsg_hdr.status.
public enum ICStatus {
    public static let hvSOK: UInt32 = 0x0000_0000
    public static let hvEFail: UInt32 = 0x8000_4005
    public static let hvSCont: UInt32 = 0x8007_0103
    public static let hvErrorNotSupported: UInt32 = 0x8007_0032
    public static let hvErrorMachineLocked: UInt32 = 0x8007_04F7
    public static let hvErrorDeviceNotConnected: UInt32 = 0x8007_048F
    public static let hvInvalidArg: UInt32 = 0x8007_0057
    public static let hvGUIDNotFound: UInt32 = 0x8004_1002
    public static let hvErrorAlreadyExists: UInt32 = 0x8007_0050
    public static let hvErrorDiskFull: UInt32 = 0x8007_0070
}

/// Sizes and limits of the IC framing.
public enum ICLayout {
    /// ICMSG_HDR: sizeof(vmbuspipe_hdr) + sizeof(icmsg_hdr), where the body starts.
    public static let icmsgHdr = VMBusPipeHeader.size + ICMsgHeader.size
    /// IC_VERSION_NEGOTIATION_MAX_VER_COUNT: Linux fails a negotiation that lists more versions of either kind.
    public static let maxVersionCount = 100
    /// The guest reads IC packets into one HV_HYP_PAGE_SIZE buffer; a longer packet is never read.
    public static let maxPacketSize = 4096
}

/// Why hv did not accept a message from the guest. Every malformed or unexpected reply maps to one of these,
/// never to a trap.
public enum ICRejection: Error, Equatable, Sendable, CustomStringConvertible {
    /// Fewer than the 8 bytes of vmbuspipe_hdr.
    case truncatedPipeHeader(count: Int)
    /// Fewer than the 28 bytes of ICMSG_HDR.
    case truncatedICMsgHeader(count: Int)
    /// icmsgsize says the body runs past the end of the packet.
    case messageSizePastEnd(icmsgsize: Int, available: Int)
    /// The body is shorter than the structure the message type needs.
    case truncatedBody(icmsgtype: UInt16, needed: Int, icmsgsize: Int)
    /// icmsg_negotiate lists more than IC_VERSION_NEGOTIATION_MAX_VER_COUNT versions of one kind.
    case tooManyVersions(framework: Int, message: Int)
    case wrongMessageType(expected: UInt16, got: UInt16)
    /// icflags lacks ICMSGHDRFLAG_RESPONSE.
    case notAResponse(icflags: UInt8)
    /// The packet's transaction id matches no request hv has outstanding on this channel.
    case unexpectedTransaction(UInt64)
    /// ictransaction_id was not echoed.
    case wrongICTransactionID(expected: UInt8, got: UInt8)
    /// A negotiate reply whose counts are neither 1/1 (chosen) nor 0/0 (no common version).
    case badNegotiateCounts(framework: Int, message: Int)
    /// The guest "chose" a version hv never offered.
    case versionNotOffered(framework: ICVersion, message: ICVersion)
    case wrongSequence(expected: UInt64, got: UInt64)
    /// A non-success status where the guest has no reason to fail.
    case failedStatus(UInt32)
    /// Something arrived while the channel is closed or its negotiation failed.
    case channelNotOpen

    public var description: String {
        switch self {
        case .truncatedPipeHeader(let count): "IC packet of \(count) bytes has no complete vmbuspipe_hdr"
        case .truncatedICMsgHeader(let count): "IC packet of \(count) bytes has no complete icmsg_hdr"
        case .messageSizePastEnd(let size, let available):
            "icmsgsize \(size) runs past the end of the packet (\(available) bytes of body)"
        case .truncatedBody(let type, let needed, let size):
            "IC message type \(type) needs \(needed) bytes of body, icmsgsize is \(size)"
        case .tooManyVersions(let framework, let message):
            "icmsg_negotiate lists \(framework) framework and \(message) message versions"
        case .wrongMessageType(let expected, let got): "expected IC message type \(expected), got \(got)"
        case .notAResponse(let flags): "IC reply without ICMSGHDRFLAG_RESPONSE (icflags \(flags))"
        case .unexpectedTransaction(let id): "IC reply for transaction \(id), which is not outstanding"
        case .wrongICTransactionID(let expected, let got): "ictransaction_id \(got), sent \(expected)"
        case .badNegotiateCounts(let framework, let message):
            "negotiate reply with \(framework) framework and \(message) message versions"
        case .versionNotOffered(let framework, let message):
            "guest chose framework \(framework) / message \(message), which were not offered"
        case .wrongSequence(let expected, let got): "heartbeat reply seq_num \(got), expected \(expected)"
        case .failedStatus(let status): "IC reply with status \(hex(status))"
        case .channelNotOpen: "IC message on a channel that is not open"
        }
    }
}

/// struct vmbuspipe_hdr.
public struct VMBusPipeHeader: Equatable, Sendable {
    public static let size = 8
    /// What hv puts in `flags`: a message-pipe data packet (the value Microsoft's OpenVMM writes; Linux ignores
    /// the field).
    public static let dataPacket: UInt32 = 1

    public var flags: UInt32
    public var msgsize: UInt32

    public init(flags: UInt32 = VMBusPipeHeader.dataPacket, msgsize: UInt32) {
        self.flags = flags
        self.msgsize = msgsize
    }
}

/// struct icmsg_hdr.
public struct ICMsgHeader: Equatable, Sendable {
    public static let size = 20

    public var icverframe: ICVersion
    public var icmsgtype: UInt16
    public var icvermsg: ICVersion
    public var icmsgsize: UInt16
    public var status: UInt32
    public var ictransactionID: UInt8
    public var icflags: UInt8

    public init(icverframe: ICVersion, icmsgtype: UInt16, icvermsg: ICVersion, icmsgsize: UInt16,
                status: UInt32 = ICStatus.hvSOK, ictransactionID: UInt8 = 0,
                icflags: UInt8 = ICMsgHdrFlag.transaction | ICMsgHdrFlag.request) {
        self.icverframe = icverframe
        self.icmsgtype = icmsgtype
        self.icvermsg = icvermsg
        self.icmsgsize = icmsgsize
        self.status = status
        self.ictransactionID = ictransactionID
        self.icflags = icflags
    }

    public var isResponse: Bool { icflags & ICMsgHdrFlag.response != 0 }
}

/// One IC message: pipe header, IC header and `icmsgsize` bytes of body.
public struct ICMessage: Equatable, Sendable {
    public var pipe: VMBusPipeHeader
    public var header: ICMsgHeader
    public var body: [UInt8]

    public init(pipe: VMBusPipeHeader, header: ICMsgHeader, body: [UInt8]) {
        self.pipe = pipe
        self.header = header
        self.body = body
    }

    /// A host request: TRANSACTION | REQUEST, status HV_S_OK, ictransaction_id 0 (the transaction is matched by
    /// the VMBus packet's id), pipe and IC sizes filled in from `body`, which must fit icmsgsize (u16).
    public static func request(type: UInt16, framework: ICVersion, message: ICVersion, body: [UInt8]) -> ICMessage {
        precondition(body.count <= Int(UInt16.max), "IC body larger than icmsgsize can say")
        return ICMessage(
            pipe: VMBusPipeHeader(msgsize: UInt32(ICMsgHeader.size + body.count)),
            header: ICMsgHeader(icverframe: framework, icmsgtype: type, icvermsg: message,
                                icmsgsize: UInt16(body.count)),
            body: body)
    }

    /// The packet payload: exactly ICMSG_HDR + body.count bytes (the ring pads it to 8).
    public var bytes: [UInt8] {
        var writer = WireWriter(capacity: ICLayout.icmsgHdr + body.count)
        writer.u32(pipe.flags)
        writer.u32(pipe.msgsize)
        writer.u16(header.icverframe.major)
        writer.u16(header.icverframe.minor)
        writer.u16(header.icmsgtype)
        writer.u16(header.icvermsg.major)
        writer.u16(header.icvermsg.minor)
        writer.u16(header.icmsgsize)
        writer.u32(header.status)
        writer.u8(header.ictransactionID)
        writer.u8(header.icflags)
        writer.u16(0)
        var bytes = writer.bytes
        bytes.append(contentsOf: body)
        return bytes
    }

    /// Checked decode of a packet payload. The body is the `icmsgsize` bytes after ICMSG_HDR; bytes after it
    /// (the ring's padding to 8, which Linux echoes) are ignored. vmbuspipe_hdr is read but not trusted.
    public init(decoding payload: [UInt8]) throws(ICRejection) {
        guard payload.count >= VMBusPipeHeader.size else { throw .truncatedPipeHeader(count: payload.count) }
        guard payload.count >= ICLayout.icmsgHdr else { throw .truncatedICMsgHeader(count: payload.count) }
        let reader = WireReader(payload)
        pipe = VMBusPipeHeader(flags: reader.u32(0), msgsize: reader.u32(4))
        header = ICMsgHeader(
            icverframe: ICVersion(reader.u16(8), reader.u16(10)),
            icmsgtype: reader.u16(12),
            icvermsg: ICVersion(reader.u16(14), reader.u16(16)),
            icmsgsize: reader.u16(18),
            status: reader.u32(20),
            ictransactionID: reader.u8(24),
            icflags: reader.u8(25))
        let available = payload.count - ICLayout.icmsgHdr
        let size = Int(header.icmsgsize)
        guard size <= available else { throw .messageSizePastEnd(icmsgsize: size, available: available) }
        body = Array(payload[ICLayout.icmsgHdr..<ICLayout.icmsgHdr + size])
    }
}

/// struct icmsg_negotiate: counts, reserved, then icframe_vercnt framework versions followed by icmsg_vercnt
/// message versions.
public struct ICNegotiate: Equatable, Sendable {
    /// Up to icversion_data.
    public static let fixedSize = 8

    public var frameworkVersions: [ICVersion]
    public var messageVersions: [ICVersion]

    public init(frameworkVersions: [ICVersion], messageVersions: [ICVersion]) {
        self.frameworkVersions = frameworkVersions
        self.messageVersions = messageVersions
    }

    public var bytes: [UInt8] {
        let versions = frameworkVersions + messageVersions
        var writer = WireWriter(capacity: Self.fixedSize + ICVersion.size * versions.count)
        writer.u16(UInt16(frameworkVersions.count))
        writer.u16(UInt16(messageVersions.count))
        writer.u32(0)
        for version in versions {
            writer.u16(version.major)
            writer.u16(version.minor)
        }
        return writer.bytes
    }

    /// Checked decode of a negotiate body (icmsgsize bytes).
    public init(decoding body: [UInt8]) throws(ICRejection) {
        guard body.count >= Self.fixedSize else {
            throw .truncatedBody(icmsgtype: ICMsgType.negotiate, needed: Self.fixedSize, icmsgsize: body.count)
        }
        let reader = WireReader(body)
        let frameworkCount = Int(reader.u16(0))
        let messageCount = Int(reader.u16(2))
        guard frameworkCount <= ICLayout.maxVersionCount, messageCount <= ICLayout.maxVersionCount else {
            throw .tooManyVersions(framework: frameworkCount, message: messageCount)
        }
        let needed = Self.fixedSize + ICVersion.size * (frameworkCount + messageCount)
        guard body.count >= needed else {
            throw .truncatedBody(icmsgtype: ICMsgType.negotiate, needed: needed, icmsgsize: body.count)
        }
        func version(_ index: Int) -> ICVersion {
            let offset = Self.fixedSize + ICVersion.size * index
            return ICVersion(reader.u16(offset), reader.u16(offset + 2))
        }
        frameworkVersions = (0..<frameworkCount).map(version)
        messageVersions = (frameworkCount..<frameworkCount + messageCount).map(version)
    }
}

/// struct heartbeat_msg_data: seq_num, then 32 reserved bytes. Linux needs only seq_num to be present.
public struct HeartbeatMsgData: Equatable, Sendable {
    public static let size = 40
    /// What Linux 6.1 checks for: ICMSG_HDR + sizeof(u64).
    public static let minimumSize = 8

    public var seqNum: UInt64

    public init(seqNum: UInt64) { self.seqNum = seqNum }

    public var bytes: [UInt8] {
        var writer = WireWriter(capacity: Self.size)
        writer.u64(seqNum)
        writer.fixed([], width: Self.size - 8)
        return writer.bytes
    }

    public init(decoding body: [UInt8]) throws(ICRejection) {
        guard body.count >= Self.minimumSize else {
            throw .truncatedBody(icmsgtype: ICMsgType.heartbeat, needed: Self.minimumSize, icmsgsize: body.count)
        }
        seqNum = WireReader(body).u64(0)
    }
}

/// struct shutdown_msg_data.
public struct ShutdownMsgData: Equatable, Sendable {
    public static let size = 2060
    public static let displayMessageSize = 2048

    /// Bits of `flags` (the cases of shutdown_onchannelcallback's switch): 0 is power off.
    public static let flagForce: UInt32 = 1
    public static let flagRestart: UInt32 = 2
    public static let flagHibernate: UInt32 = 4
    /// SHTDN_REASON_FLAG_PLANNED (Windows SDK): the reason code a host sends for a planned shutdown.
    public static let reasonPlanned: UInt32 = 0x8000_0000

    public var reasonCode: UInt32
    public var timeoutSeconds: UInt32
    public var flags: UInt32
    /// display_message, cut or zero-padded to 2048 bytes on the wire. Linux does not read it.
    public var displayMessage: [UInt8]

    public init(reasonCode: UInt32, timeoutSeconds: UInt32, flags: UInt32, displayMessage: [UInt8] = []) {
        self.reasonCode = reasonCode
        self.timeoutSeconds = timeoutSeconds
        self.flags = flags
        self.displayMessage = displayMessage
    }

    public var bytes: [UInt8] {
        var writer = WireWriter(capacity: Self.size)
        writer.u32(reasonCode)
        writer.u32(timeoutSeconds)
        writer.u32(flags)
        writer.fixed(displayMessage, width: Self.displayMessageSize)
        return writer.bytes
    }

    public init(decoding body: [UInt8]) throws(ICRejection) {
        guard body.count >= Self.size else {
            throw .truncatedBody(icmsgtype: ICMsgType.shutdown, needed: Self.size, icmsgsize: body.count)
        }
        let reader = WireReader(body)
        reasonCode = reader.u32(0)
        timeoutSeconds = reader.u32(4)
        flags = reader.u32(8)
        displayMessage = reader.slice(12, Self.displayMessageSize)
    }
}

private func hex(_ value: UInt32) -> String { "0x" + String(value, radix: 16) }
