// RNDIS as NetVSC carries it inside NVSP (shared/reference/vmbus-protocol.md §5.4; Linux include/linux/rndis.h and
// drivers/net/hyperv/hyperv_net.h). Every message starts with {msg_type u32, msg_len u32}; msg_len counts the whole
// message. Offsets inside a message body count from byte 8 (the first field after the header). Little-endian.

import VMBus

/// rndis_message.ndis_msg_type values.
public enum RNDISMessageType {
    public static let packet: UInt32 = 0x0000_0001
    public static let initialize: UInt32 = 0x0000_0002
    public static let initializeComplete: UInt32 = 0x8000_0002
    public static let halt: UInt32 = 0x0000_0003
    public static let query: UInt32 = 0x0000_0004
    public static let queryComplete: UInt32 = 0x8000_0004
    public static let set: UInt32 = 0x0000_0005
    public static let setComplete: UInt32 = 0x8000_0005
    public static let reset: UInt32 = 0x0000_0006
    public static let resetComplete: UInt32 = 0x8000_0006
    public static let indicateStatus: UInt32 = 0x0000_0007
    public static let keepalive: UInt32 = 0x0000_0008
    public static let keepaliveComplete: UInt32 = 0x8000_0008
}

/// RNDIS_STATUS_* values (completion statuses and indications).
public enum RNDISStatus {
    public static let success: UInt32 = 0x0000_0000
    public static let failure: UInt32 = 0xC000_0001
    public static let notSupported: UInt32 = 0xC000_00BB
    public static let invalidLength: UInt32 = 0xC001_0014
    public static let invalidData: UInt32 = 0xC001_0015
    public static let mediaConnect: UInt32 = 0x4001_000B
    public static let mediaDisconnect: UInt32 = 0x4001_000C
    public static let linkSpeedChange: UInt32 = 0x4001_0013
    public static let networkChange: UInt32 = 0x4001_0018
}

/// The OIDs hv answers (include/linux/rndis.h, hyperv_net.h).
public enum RNDISOID {
    public static let maximumFrameSize: UInt32 = 0x0001_0106
    public static let linkSpeed: UInt32 = 0x0001_0107
    public static let currentPacketFilter: UInt32 = 0x0001_010E
    public static let maximumTotalSize: UInt32 = 0x0001_0111
    public static let mediaConnectStatus: UInt32 = 0x0001_0114
    public static let receiveScaleCapabilities: UInt32 = 0x0001_0203
    public static let receiveScaleParameters: UInt32 = 0x0001_0204
    public static let friendlyName: UInt32 = 0x0002_0216
    public static let rndisConfigParameter: UInt32 = 0x0001_021B
    public static let permanentAddress: UInt32 = 0x0101_0101
    public static let currentAddress: UInt32 = 0x0101_0102
    public static let offloadEncapsulation: UInt32 = 0x0101_010A
    public static let tcpOffloadParameters: UInt32 = 0xFC01_020C
    public static let tcpOffloadHardwareCapabilities: UInt32 = 0xFC01_020D
}

/// NDIS values used in OID payloads.
public enum NDIS {
    /// NDIS_PACKET_TYPE_* bits of OID_GEN_CURRENT_PACKET_FILTER.
    public static let filterDirected: UInt32 = 0x01
    public static let filterMulticast: UInt32 = 0x02
    public static let filterAllMulticast: UInt32 = 0x04
    public static let filterBroadcast: UInt32 = 0x08
    public static let filterPromiscuous: UInt32 = 0x20
    /// ndis_object_header.type of NDIS_OFFLOAD (OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES).
    public static let objectTypeOffload: UInt8 = 0xA7
    /// ndis_object_header.type of NDIS_OFFLOAD_PARAMETERS (OID_TCP_OFFLOAD_PARAMETERS).
    public static let objectTypeDefault: UInt8 = 0x80
    /// sizeof(struct ndis_offload) for revisions 1 (NDIS 6.0), 2 (6.1) and 3 (6.30): Linux asks for revision 1 below
    /// NVSP 4, 2 at NVSP 4 and 3 from NVSP 5, and refuses an answer smaller than 112 or larger than it asked for.
    public static let offloadSizes: [UInt8: Int] = [1: 112, 2: 144, 3: 156]
    /// NDIS_OFFLOAD_PARAMETERS_* values of the checksum fields: 0 no change, 1 disabled, 2 TX only, 3 RX only, 4 both.
    public static let offloadTXEnabled: UInt8 = 2
    public static let offloadTXRXEnabled: UInt8 = 4
    /// NDIS_OFFLOAD_PARAMETERS_LSOV1/LSOV2_ENABLED.
    public static let offloadLSOEnabled: UInt8 = 2
    /// RNDIS_CONFIG_PARAM_TYPE_STRING.
    public static let configParameterString: UInt32 = 2
    /// ndis_per_packet_info types hv looks at.
    public static let ppiIEEE8021Q: UInt32 = 6
}

/// Sizes of the RNDIS structures (header included where the name says message).
public enum RNDISLayout {
    /// {msg_type, msg_len}.
    public static let headerSize = 8
    /// struct rndis_packet.
    public static let packetBodySize = 36
    /// RNDIS header + rndis_packet: where a frame without per-packet info starts.
    public static let packetMessageHeaderSize = 44
    public static let initializeRequestSize = 24
    public static let initializeCompleteSize = 52
    /// RNDIS header + rndis_query_request / rndis_set_request (20 bytes each).
    public static let queryRequestSize = 28
    public static let setRequestSize = 28
    /// Where a QUERY/SET request's information buffer may start at the earliest, from byte 8.
    public static let requestInfoOffset = 20
    /// RNDIS header + rndis_query_complete; the information buffer follows at offset 16 (from byte 8).
    public static let queryCompleteSize = 24
    public static let queryCompleteInfoOffset = 16
    public static let setCompleteSize = 16
    public static let resetCompleteSize = 16
    public static let keepaliveRequestSize = 12
    public static let keepaliveCompleteSize = 16
    public static let haltRequestSize = 12
    public static let resetRequestSize = 12
    /// RNDIS header + rndis_indicate_status.
    public static let indicateStatusSize = 20
    /// struct rndis_per_packet_info {size, type:31 internal:1, ppi_offset}.
    public static let perPacketInfoSize = 12
    /// struct rndis_config_parameter_info.
    public static let configParameterInfoSize = 20
    /// struct ndis_object_header.
    public static let objectHeaderSize = 4
    /// sizeof(struct ndis_offload_params) at NVSP ≤ 4 (VERSION_4_OFFLOAD_SIZE) and from NVSP 5.
    public static let offloadParametersV4Size = 22
    public static let offloadParametersSize = 28
    /// The largest control message hv copies in to answer.
    public static let maxControlMessage = 8192
}

/// struct rndis_packet: the body of RNDIS_MSG_PACKET. Offsets count from the start of this body (byte 8).
public struct RNDISPacketHeader: Equatable, Sendable {
    public var dataOffset: UInt32
    public var dataLength: UInt32
    public var oobDataOffset: UInt32
    public var oobDataLength: UInt32
    public var oobElementCount: UInt32
    public var perPacketInfoOffset: UInt32
    public var perPacketInfoLength: UInt32
    public var vcHandle: UInt32
    public var reserved: UInt32

    public init(dataOffset: UInt32, dataLength: UInt32, perPacketInfoOffset: UInt32 = 0, perPacketInfoLength: UInt32 = 0) {
        self.dataOffset = dataOffset
        self.dataLength = dataLength
        oobDataOffset = 0
        oobDataLength = 0
        oobElementCount = 0
        self.perPacketInfoOffset = perPacketInfoOffset
        self.perPacketInfoLength = perPacketInfoLength
        vcHandle = 0
        reserved = 0
    }

    /// From the 36 bytes of the body.
    public init(_ body: [UInt8]) {
        let wire = WireReader(body)
        dataOffset = wire.u32(0)
        dataLength = wire.u32(4)
        oobDataOffset = wire.u32(8)
        oobDataLength = wire.u32(12)
        oobElementCount = wire.u32(16)
        perPacketInfoOffset = wire.u32(20)
        perPacketInfoLength = wire.u32(24)
        vcHandle = wire.u32(28)
        reserved = wire.u32(32)
    }

    /// The whole RNDIS_MSG_PACKET header for a frame of `frameLength` bytes with no per-packet info, stored at
    /// `destination` (44 bytes): what hv writes in front of every frame it gives the guest.
    public static func store(frameLength: Int, at destination: UnsafeMutableRawPointer) {
        func put(_ index: Int, _ value: UInt32) {
            destination.storeBytes(of: value.littleEndian, toByteOffset: 4 * index, as: UInt32.self)
        }
        put(0, RNDISMessageType.packet)
        put(1, UInt32(RNDISLayout.packetMessageHeaderSize + frameLength))
        put(2, UInt32(RNDISLayout.packetBodySize))  // data_offset: the frame follows the header
        put(3, UInt32(frameLength))
        for index in 4..<11 { put(index, 0) }  // no out-of-band data, no per-packet info
    }
}

/// A malformed RNDIS control message.
public enum RNDISError: Error, Equatable, Sendable, CustomStringConvertible {
    case tooShort(type: UInt32, length: Int, needed: Int)
    case badInformationBuffer(offset: UInt32, length: UInt32, messageLength: Int)
    case unknownType(UInt32)

    public var description: String {
        switch self {
        case .tooShort(let type, let length, let needed): "RNDIS message 0x\(String(type, radix: 16)) of \(length) bytes, needs \(needed)"
        case .badInformationBuffer(let offset, let length, let messageLength):
            "RNDIS information buffer of \(length) bytes at \(offset) in a message of \(messageLength)"
        case .unknownType(let type): "RNDIS message type 0x\(String(type, radix: 16))"
        }
    }
}

/// A control message from the guest, decoded from a copy of the whole message (msg_len bytes).
public enum RNDISRequest: Equatable, Sendable {
    case initialize(requestID: UInt32, major: UInt32, minor: UInt32, maxTransferSize: UInt32)
    case query(requestID: UInt32, oid: UInt32, information: [UInt8])
    case set(requestID: UInt32, oid: UInt32, information: [UInt8])
    case reset
    case halt(requestID: UInt32)
    case keepalive(requestID: UInt32)

    /// The request id of a request that has one, read from byte 8 when the message is long enough (for an error
    /// answer to a message that failed to decode).
    public static func requestID(of message: [UInt8]) -> UInt32? {
        message.count >= 12 ? WireReader(message).u32(8) : nil
    }

    public init(decoding message: [UInt8]) throws(RNDISError) {
        guard message.count >= RNDISLayout.headerSize else { throw .tooShort(type: 0, length: message.count, needed: 8) }
        let wire = WireReader(message)
        let type = wire.u32(0)
        func need(_ size: Int) throws(RNDISError) {
            guard message.count >= size else { throw .tooShort(type: type, length: message.count, needed: size) }
        }
        switch type {
        case RNDISMessageType.initialize:
            try need(RNDISLayout.initializeRequestSize)
            self = .initialize(requestID: wire.u32(8), major: wire.u32(12), minor: wire.u32(16), maxTransferSize: wire.u32(20))
        case RNDISMessageType.query, RNDISMessageType.set:
            try need(RNDISLayout.queryRequestSize)
            let length = wire.u32(16), offset = wire.u32(20)
            var information: [UInt8] = []
            if length > 0 {
                // From byte 8; the buffer must lie after the request's own fields and inside the message.
                let start = 8 + UInt64(offset), end = start + UInt64(length)
                guard offset >= UInt32(RNDISLayout.requestInfoOffset), end <= UInt64(message.count) else {
                    throw .badInformationBuffer(offset: offset, length: length, messageLength: message.count)
                }
                information = Array(message[Int(start)..<Int(end)])
            }
            self = type == RNDISMessageType.query
                ? .query(requestID: wire.u32(8), oid: wire.u32(12), information: information)
                : .set(requestID: wire.u32(8), oid: wire.u32(12), information: information)
        case RNDISMessageType.reset:
            self = .reset
        case RNDISMessageType.halt:
            try need(RNDISLayout.haltRequestSize)
            self = .halt(requestID: wire.u32(8))
        case RNDISMessageType.keepalive:
            try need(RNDISLayout.keepaliveRequestSize)
            self = .keepalive(requestID: wire.u32(8))
        default:
            throw .unknownType(type)
        }
    }
}

/// The control messages hv sends, as complete RNDIS messages.
public enum RNDISReply {
    /// RNDIS_MSG_INIT_C: {req_id, status, major, minor, dev_flags, medium, max_pkt_per_msg, max_xfer_size,
    /// pkt_alignment_factor (log2), af_list_offset, af_list_size}.
    public static func initializeComplete(requestID: UInt32, status: UInt32, maxPacketsPerMessage: UInt32,
                                          maxTransferSize: UInt32, alignmentShift: UInt32) -> [UInt8] {
        message(RNDISMessageType.initializeComplete) { w in
            w.u32(requestID)
            w.u32(status)
            w.u32(1)  // RNDIS 1.0
            w.u32(0)
            w.u32(1)  // RNDIS_DF_CONNECTIONLESS
            w.u32(0)  // RNDIS_MEDIUM_802_3
            w.u32(maxPacketsPerMessage)
            w.u32(maxTransferSize)
            w.u32(alignmentShift)
            w.u32(0)
            w.u32(0)
        }
    }

    /// RNDIS_MSG_QUERY_C: {req_id, status, info_buflen, info_buf_offset = 16} + information. Linux refuses an
    /// offset below 16 even when the buffer is empty, so the offset is 16 either way.
    public static func queryComplete(requestID: UInt32, status: UInt32, information: [UInt8]) -> [UInt8] {
        message(RNDISMessageType.queryComplete) { w in
            w.u32(requestID)
            w.u32(status)
            w.u32(UInt32(information.count))
            w.u32(UInt32(RNDISLayout.queryCompleteInfoOffset))
            w.fixed(information, width: information.count)
        }
    }

    /// RNDIS_MSG_SET_C: {req_id, status}.
    public static func setComplete(requestID: UInt32, status: UInt32) -> [UInt8] {
        message(RNDISMessageType.setComplete) { w in
            w.u32(requestID)
            w.u32(status)
        }
    }

    /// RNDIS_MSG_RESET_C: {status, addressing_reset}.
    public static func resetComplete(status: UInt32, addressingReset: UInt32) -> [UInt8] {
        message(RNDISMessageType.resetComplete) { w in
            w.u32(status)
            w.u32(addressingReset)
        }
    }

    /// RNDIS_MSG_KEEPALIVE_C: {req_id, status}.
    public static func keepaliveComplete(requestID: UInt32, status: UInt32) -> [UInt8] {
        message(RNDISMessageType.keepaliveComplete) { w in
            w.u32(requestID)
            w.u32(status)
        }
    }

    /// RNDIS_MSG_INDICATE: {status, status_buflen, status_buf_offset}; no status buffer.
    public static func indicateStatus(_ status: UInt32) -> [UInt8] {
        message(RNDISMessageType.indicateStatus) { w in
            w.u32(status)
            w.u32(0)
            w.u32(0)
        }
    }

    static func message(_ type: UInt32, _ body: (inout WireWriter) -> Void) -> [UInt8] {
        var writer = WireWriter(capacity: 64)
        writer.u32(type)
        writer.u32(0)
        body(&writer)
        var bytes = writer.bytes
        let length = UInt32(bytes.count)
        for index in 0..<4 { bytes[4 + index] = UInt8(truncatingIfNeeded: length >> (8 * index)) }
        return bytes
    }
}

/// struct ndis_offload (OID_TCP_OFFLOAD_HARDWARE_CAPABILITIES) with every capability zero: hv offloads nothing, so
/// Linux computes checksums and segments itself. Layout (not packed, natural alignment): header 4, csum 32, lsov1 16,
/// ipsecv1 28, lsov2 28, flags 4 (= 112, revision 1); ipsecv2 32 (= 144, revision 2); rsc 2, pad 2, encap_gre 8
/// (= 156, revision 3).
public enum NDISOffload {
    /// The answer for `revision` (clamped to 1…3): a zeroed structure with its object header.
    public static func noOffloads(revision: UInt8) -> [UInt8] {
        let revision = min(max(revision, 1), 3)
        let size = NDIS.offloadSizes[revision]!
        var bytes = [UInt8](repeating: 0, count: size)
        bytes[0] = NDIS.objectTypeOffload
        bytes[1] = revision
        bytes[2] = UInt8(truncatingIfNeeded: size)
        bytes[3] = UInt8(truncatingIfNeeded: size >> 8)
        return bytes
    }

    /// The revision Linux asks for at an NVSP version (rndis_filter_query_device).
    public static func revision(for version: NVSPVersion) -> UInt8 {
        version >= .v5 ? 3 : version >= .v4 ? 2 : 1
    }
}

/// struct ndis_offload_params (OID_TCP_OFFLOAD_PARAMETERS): a header, then one byte per offload. Offsets from the
/// start of the structure: ip_v4_csum 4, tcp_ip_v4_csum 5, udp_ip_v4_csum 6, tcp_ip_v6_csum 7, udp_ip_v6_csum 8,
/// lso_v1 9, ip_sec_v1 10, lso_v2_ipv4 11, lso_v2_ipv6 12, tcp_connection_ip_v4 13, tcp_connection_ip_v6 14,
/// flags u32 16, ip_sec_v2 20, ip_sec_v2_ip_v4 21, rsc_ip_v4 22, rsc_ip_v6 23, encapsulated_packet_task_offload 24,
/// encapsulation_types 25.
public enum NDISOffloadParameters {
    public static let checksumFields = 4...8
    public static let lsoFields = [9, 11, 12]

    /// Whether the request turns on an offload hv does not do: transmit checksums or large send. Everything else
    /// (no change, disable, receive checksum) is accepted; hv simply reports no receive checksum results.
    public static func enablesUnsupported(_ information: [UInt8]) -> Bool {
        for index in checksumFields where index < information.count {
            if information[index] == NDIS.offloadTXEnabled || information[index] == NDIS.offloadTXRXEnabled { return true }
        }
        for index in lsoFields where index < information.count {
            if information[index] == NDIS.offloadLSOEnabled { return true }
        }
        return false
    }
}
