// NVSP, the Network VSP protocol that NetVSC and NetVSP speak over a VMBus channel (shared/reference/vmbus-protocol.md
// §5; Linux drivers/net/hyperv/hyperv_net.h). Every message is `msg_type u32` followed by a body; both sides send
// sizeof(struct nvsp_message) = 40 bytes, and hv pads every message it sends to that size because Linux checks
// completion lengths against the largest message it might be (netvsc_send_completion falls through its cases).
// Little-endian throughout, packed.

import VMBus

/// An NVSP protocol version (NVSP_PROTOCOL_VERSION_*): major << 16 | minor, except version 1, which is 2.
public struct NVSPVersion: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let v1 = NVSPVersion(rawValue: 0x0000_0002)
    public static let v2 = NVSPVersion(rawValue: 0x0003_0002)
    public static let v4 = NVSPVersion(rawValue: 0x0004_0000)
    public static let v5 = NVSPVersion(rawValue: 0x0005_0000)
    public static let v6 = NVSPVersion(rawValue: 0x0006_0000)
    public static let v61 = NVSPVersion(rawValue: 0x0006_0001)

    /// Every version Linux 6.1's netvsc_connect_vsp offers (it tries them newest first), oldest first.
    public static let known: [NVSPVersion] = [.v1, .v2, .v4, .v5, .v6, .v61]

    public static func < (lhs: NVSPVersion, rhs: NVSPVersion) -> Bool { lhs.rawValue < rhs.rawValue }

    public var description: String {
        switch self {
        case .v1: "1"
        case .v2: "2"
        default: "\(rawValue >> 16).\(rawValue & 0xFFFF)"
        }
    }
}

/// nvsp_message_header.msg_type values.
public enum NVSPMessageType {
    public static let initialize: UInt32 = 1
    public static let initializeComplete: UInt32 = 2
    public static let sendNDISVersion: UInt32 = 100
    public static let sendReceiveBuffer: UInt32 = 101
    public static let sendReceiveBufferComplete: UInt32 = 102
    public static let revokeReceiveBuffer: UInt32 = 103
    public static let sendSendBuffer: UInt32 = 104
    public static let sendSendBufferComplete: UInt32 = 105
    public static let revokeSendBuffer: UInt32 = 106
    public static let sendRNDISPacket: UInt32 = 107
    public static let sendRNDISPacketComplete: UInt32 = 108
    /// NVSP 2.
    public static let sendNDISConfig: UInt32 = 125
    /// NVSP 4.
    public static let sendVFAssociation: UInt32 = 128
    public static let switchDataPath: UInt32 = 129
    /// NVSP 5.
    public static let oidQueryEx: UInt32 = 131
    public static let oidQueryExComplete: UInt32 = 132
    public static let subchannel: UInt32 = 133
    public static let sendIndirectionTable: UInt32 = 134
}

/// NVSP_STAT_* values.
public enum NVSPStatus: UInt32, Sendable {
    case none = 0
    case success = 1
    case failure = 2
    case protocolTooNew = 3
    case protocolTooOld = 4
    case invalidRNDISPacket = 5
    case busy = 6
    case protocolUnsupported = 7
}

/// Sizes and fixed values of the NVSP wire format.
public enum NVSPLayout {
    /// sizeof(struct nvsp_message): what every message is padded to.
    public static let messageSize = 40
    public static let headerSize = 4
    /// NETVSC_RECEIVE_BUFFER_ID: the id Linux gives its receive buffer, and so the transfer page set id.
    public static let receiveBufferID: UInt16 = 0xCAFE
    /// NETVSC_SEND_BUFFER_ID.
    public static let sendBufferID: UInt16 = 0
    /// send_buf_section_index when the RNDIS message is not in the send buffer.
    public static let noSection: UInt32 = 0xFFFF_FFFF
    /// nvsp_1_message_send_rndis_packet.channel_type.
    public static let dataChannel: UInt32 = 0
    public static let controlChannel: UInt32 = 1
    /// NVSP_SUBCHANNEL_ALLOCATE.
    public static let subchannelAllocate: UInt32 = 1
}

/// A malformed NVSP message from the guest.
public enum NVSPError: Error, Equatable, Sendable, CustomStringConvertible {
    case tooShort(type: UInt32, length: Int, needed: Int)

    public var description: String {
        switch self {
        case .tooShort(let type, let length, let needed):
            "NVSP message type \(type) of \(length) bytes, needs \(needed)"
        }
    }
}

/// One NVSP message from the guest, decoded from a copy of its bytes.
public enum NVSPMessage: Equatable, Sendable {
    /// nvsp_message_init: the range of versions the guest accepts (Linux sets both to the one it tries).
    case initialize(minVersion: UInt32, maxVersion: UInt32)
    /// nvsp_1_message_send_ndis_version.
    case sendNDISVersion(major: UInt32, minor: UInt32)
    /// nvsp_2_send_ndis_config: the MTU is the Ethernet frame size (MTU + 14); capability bits (vmq, chimney,
    /// sriov, ieee8021q, correlation_id, teaming, vsubnetid, rsc from bit 0).
    case sendNDISConfig(mtu: UInt32, capabilities: UInt64)
    /// nvsp_1_message_send_receive_buffer.
    case sendReceiveBuffer(gpadl: UInt32, id: UInt16)
    /// nvsp_1_message_revoke_receive_buffer.
    case revokeReceiveBuffer(id: UInt16)
    /// nvsp_1_message_send_send_buffer.
    case sendSendBuffer(gpadl: UInt32, id: UInt16)
    /// nvsp_1_message_revoke_send_buffer.
    case revokeSendBuffer(id: UInt16)
    /// nvsp_1_message_send_rndis_packet.
    case sendRNDISPacket(NVSPRNDISPacket)
    /// nvsp_1_message_send_rndis_packet_complete (in a completion packet).
    case sendRNDISPacketComplete(status: UInt32)
    /// nvsp_4_sw_datapath.
    case switchDataPath(activeDataPath: UInt32)
    /// nvsp_5_subchannel_request.
    case subchannel(operation: UInt32, count: UInt32)
    case other(type: UInt32)

    /// Decodes a message from `bytes` (the packet's payload, copied). Longer input (padding) is fine.
    public init(decoding bytes: [UInt8]) throws(NVSPError) {
        guard bytes.count >= NVSPLayout.headerSize else { throw .tooShort(type: 0, length: bytes.count, needed: 4) }
        let wire = WireReader(bytes)
        let type = wire.u32(0)
        func need(_ body: Int) throws(NVSPError) {
            guard bytes.count >= NVSPLayout.headerSize + body else {
                throw .tooShort(type: type, length: bytes.count, needed: NVSPLayout.headerSize + body)
            }
        }
        switch type {
        case NVSPMessageType.initialize:
            try need(8)
            self = .initialize(minVersion: wire.u32(4), maxVersion: wire.u32(8))
        case NVSPMessageType.sendNDISVersion:
            try need(8)
            self = .sendNDISVersion(major: wire.u32(4), minor: wire.u32(8))
        case NVSPMessageType.sendNDISConfig:
            try need(16)
            self = .sendNDISConfig(mtu: wire.u32(4), capabilities: wire.u64(12))
        case NVSPMessageType.sendReceiveBuffer:
            try need(6)
            self = .sendReceiveBuffer(gpadl: wire.u32(4), id: wire.u16(8))
        case NVSPMessageType.revokeReceiveBuffer:
            try need(2)
            self = .revokeReceiveBuffer(id: wire.u16(4))
        case NVSPMessageType.sendSendBuffer:
            try need(6)
            self = .sendSendBuffer(gpadl: wire.u32(4), id: wire.u16(8))
        case NVSPMessageType.revokeSendBuffer:
            try need(2)
            self = .revokeSendBuffer(id: wire.u16(4))
        case NVSPMessageType.sendRNDISPacket:
            try need(12)
            self = .sendRNDISPacket(NVSPRNDISPacket(channelType: wire.u32(4), sectionIndex: wire.u32(8), sectionSize: wire.u32(12)))
        case NVSPMessageType.sendRNDISPacketComplete:
            try need(4)
            self = .sendRNDISPacketComplete(status: wire.u32(4))
        case NVSPMessageType.switchDataPath:
            try need(4)
            self = .switchDataPath(activeDataPath: wire.u32(4))
        case NVSPMessageType.subchannel:
            try need(8)
            self = .subchannel(operation: wire.u32(4), count: wire.u32(8))
        default:
            self = .other(type: type)
        }
    }
}

/// nvsp_1_message_send_rndis_packet (body of NVSP_MSG1_TYPE_SEND_RNDIS_PKT, 12 bytes).
public struct NVSPRNDISPacket: Equatable, Sendable {
    public static let size = 12
    /// 0 data (RMC_DATA), 1 control (RMC_CONTROL).
    public var channelType: UInt32
    /// The send-buffer section holding the RNDIS message, or NVSPLayout.noSection.
    public var sectionIndex: UInt32
    /// Bytes used in that section.
    public var sectionSize: UInt32

    public init(channelType: UInt32, sectionIndex: UInt32, sectionSize: UInt32) {
        self.channelType = channelType
        self.sectionIndex = sectionIndex
        self.sectionSize = sectionSize
    }
}

/// nvsp_1_receive_buffer_section (16 bytes): Linux wants exactly one, at offset 0.
public struct NVSPReceiveBufferSection: Equatable, Sendable {
    public static let size = 16
    public var offset: UInt32
    public var subAllocationSize: UInt32
    public var subAllocationCount: UInt32
    public var endOffset: UInt32

    public init(offset: UInt32, subAllocationSize: UInt32, subAllocationCount: UInt32, endOffset: UInt32) {
        self.offset = offset
        self.subAllocationSize = subAllocationSize
        self.subAllocationCount = subAllocationCount
        self.endOffset = endOffset
    }
}

/// The messages hv sends, each padded to NVSPLayout.messageSize.
public enum NVSPReply {
    /// NVSP_MSG_TYPE_INIT_COMPLETE: nvsp_message_init_complete {negotiated_protocol_ver, max_mdl_chain_len, status}.
    public static func initializeComplete(negotiated: UInt32, maxMDLChainLength: UInt32, status: NVSPStatus) -> [UInt8] {
        message(NVSPMessageType.initializeComplete) { w in
            w.u32(negotiated)
            w.u32(maxMDLChainLength)
            w.u32(status.rawValue)
        }
    }

    /// NVSP_MSG1_TYPE_SEND_RECV_BUF_COMPLETE: {status, num_sections, sections[1]}; on failure no section.
    public static func receiveBufferComplete(status: NVSPStatus, section: NVSPReceiveBufferSection?) -> [UInt8] {
        message(NVSPMessageType.sendReceiveBufferComplete) { w in
            w.u32(status.rawValue)
            w.u32(section == nil ? 0 : 1)
            let section = section ?? NVSPReceiveBufferSection(offset: 0, subAllocationSize: 0, subAllocationCount: 0, endOffset: 0)
            w.u32(section.offset)
            w.u32(section.subAllocationSize)
            w.u32(section.subAllocationCount)
            w.u32(section.endOffset)
        }
    }

    /// NVSP_MSG1_TYPE_SEND_SEND_BUF_COMPLETE: {status, section_size}.
    public static func sendBufferComplete(status: NVSPStatus, sectionSize: UInt32) -> [UInt8] {
        message(NVSPMessageType.sendSendBufferComplete) { w in
            w.u32(status.rawValue)
            w.u32(sectionSize)
        }
    }

    /// NVSP_MSG1_TYPE_SEND_RNDIS_PKT: what hv sends with a transfer-page packet (the RNDIS messages are in the
    /// receive buffer, so there is no send-buffer section).
    public static func rndisPacket(channelType: UInt32) -> [UInt8] {
        message(NVSPMessageType.sendRNDISPacket) { w in
            w.u32(channelType)
            w.u32(NVSPLayout.noSection)
            w.u32(0)
        }
    }

    /// NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE: {status}.
    public static func rndisPacketComplete(status: NVSPStatus) -> [UInt8] {
        message(NVSPMessageType.sendRNDISPacketComplete) { w in w.u32(status.rawValue) }
    }

    /// NVSP_MSG5_TYPE_SUBCHANNEL completion: nvsp_5_subchannel_complete {status, num_subchannels}.
    public static func subchannelComplete(status: NVSPStatus, count: UInt32) -> [UInt8] {
        message(NVSPMessageType.subchannel) { w in
            w.u32(status.rawValue)
            w.u32(count)
        }
    }

    /// A completion for a request hv does not implement: the request's type and a failure status.
    public static func failure(type: UInt32) -> [UInt8] {
        message(type) { w in w.u32(NVSPStatus.failure.rawValue) }
    }

    static func message(_ type: UInt32, _ body: (inout WireWriter) -> Void) -> [UInt8] {
        var writer = WireWriter(capacity: NVSPLayout.messageSize)
        writer.u32(type)
        body(&writer)
        var bytes = writer.bytes
        if bytes.count < NVSPLayout.messageSize { bytes += repeatElement(0, count: NVSPLayout.messageSize - bytes.count) }
        return bytes
    }
}

/// vmtransfer_page_range: one RNDIS message in the receive buffer.
public struct TransferPageRange: Equatable, Sendable {
    public var byteCount: UInt32
    /// From the start of the receive buffer.
    public var byteOffset: UInt32

    public init(byteCount: UInt32, byteOffset: UInt32) {
        self.byteCount = byteCount
        self.byteOffset = byteOffset
    }
}

/// vmtransfer_page_packet_header after the descriptor: {xfer_pageset_id u16, sender_owns_set u8, reserved u8,
/// range_cnt u32, ranges[range_cnt] {byte_count u32, byte_offset u32}}.
public struct TransferPageHeader: Equatable, Sendable {
    public static let fixedSize = 8
    public static let rangeSize = 8
    public var pageSetID: UInt16
    public var ranges: [TransferPageRange]

    public init(pageSetID: UInt16, ranges: [TransferPageRange]) {
        self.pageSetID = pageSetID
        self.ranges = ranges
    }

    public var bytes: [UInt8] {
        var writer = WireWriter(capacity: Self.fixedSize + Self.rangeSize * ranges.count)
        writer.u16(pageSetID)
        writer.u8(0)
        writer.u8(0)
        writer.u32(UInt32(ranges.count))
        for range in ranges {
            writer.u32(range.byteCount)
            writer.u32(range.byteOffset)
        }
        return writer.bytes
    }
}

/// Why a GPA-direct header was refused.
public enum GPADirectError: Error, Equatable, Sendable, CustomStringConvertible {
    case truncated
    case tooManyRanges(Int, limit: Int)
    case tooManyPages(Int, limit: Int)
    case badRange(byteCount: UInt32, byteOffset: UInt32)

    public var description: String {
        switch self {
        case .truncated: "GPA-direct header cut short"
        case .tooManyRanges(let count, let limit): "\(count) page ranges (at most \(limit))"
        case .tooManyPages(let count, let limit): "\(count) pages (at most \(limit))"
        case .badRange(let count, let offset): "page range of \(count) bytes at offset \(offset)"
        }
    }
}

/// The type-specific header of a VM_PKT_DATA_USING_GPA_DIRECT packet: {reserved u32, rangecount u32, ranges}, each
/// range {byte_count u32, byte_offset u32, pfn u64 × ceil((byte_offset + byte_count) / 4096)}. Linux's netvsc uses
/// the page-buffer form (vmbus_channel_packet_page_buffer: one PFN per range); the multipage form (one range with
/// many PFNs) parses the same way.
public enum GPADirectHeader {
    public static let fixedSize = 8

    /// Parses `bytes` (a copy of the header). Bytes after the last range (padding) are ignored.
    public static func parse(_ bytes: [UInt8], maxRanges: Int, maxPages: Int) throws(GPADirectError) -> [GPARange] {
        guard bytes.count >= fixedSize else { throw .truncated }
        let wire = WireReader(bytes)
        let count = Int(wire.u32(4))
        guard count <= maxRanges else { throw .tooManyRanges(count, limit: maxRanges) }
        var ranges: [GPARange] = []
        ranges.reserveCapacity(count)
        var position = fixedSize
        var pages = 0
        for _ in 0..<count {
            guard bytes.count - position >= 8 else { throw .truncated }
            let byteCount = wire.u32(position)
            let byteOffset = wire.u32(position + 4)
            position += 8
            guard byteCount > 0, byteOffset < UInt32(GPARange.pageSize) else {
                throw .badRange(byteCount: byteCount, byteOffset: byteOffset)
            }
            let rangePages = Int(GPARange.pageCount(byteCount: byteCount, byteOffset: byteOffset))
            pages += rangePages
            guard pages <= maxPages else { throw .tooManyPages(pages, limit: maxPages) }
            guard (bytes.count - position) / 8 >= rangePages else { throw .truncated }
            let numbers = (0..<rangePages).map { wire.u64(position + 8 * $0) }
            position += 8 * rangePages
            ranges.append(GPARange(byteCount: byteCount, byteOffset: byteOffset, pageNumbers: numbers))
        }
        return ranges
    }
}
