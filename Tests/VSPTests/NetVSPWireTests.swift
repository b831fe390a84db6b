// NVSP and RNDIS wire formats: every structure's size and field offsets, checked against bytes written by hand at
// the offsets of Linux's structs (hyperv_net.h, rndis.h, hyperv.h).

import Testing
@testable import VMBus
@testable import VSP

@Suite struct NetVSPWireTests {
    // MARK: sizes

    @Test func structureSizes() {
        #expect(NVSPLayout.messageSize == 40)               // sizeof(struct nvsp_message)
        #expect(NVSPLayout.headerSize == 4)                 // struct nvsp_message_header
        #expect(NVSPRNDISPacket.size == 12)                 // struct nvsp_1_message_send_rndis_packet
        #expect(NVSPReceiveBufferSection.size == 16)        // struct nvsp_1_receive_buffer_section
        #expect(TransferPageHeader.fixedSize == 8)          // vmtransfer_page_packet_header after the descriptor
        #expect(TransferPageHeader.rangeSize == 8)          // struct vmtransfer_page_range
        #expect(GPADirectHeader.fixedSize == 8)             // {reserved, rangecount} of vmbus_channel_packet_page_buffer
        #expect(RNDISLayout.headerSize == 8)                // RNDIS_HEADER_SIZE
        #expect(RNDISLayout.packetBodySize == 36)           // struct rndis_packet
        #expect(RNDISLayout.packetMessageHeaderSize == 44)
        #expect(RNDISLayout.initializeRequestSize == 24)    // RNDIS_MESSAGE_SIZE(struct rndis_initialize_request)
        #expect(RNDISLayout.initializeCompleteSize == 52)   // RNDIS_MESSAGE_SIZE(struct rndis_initialize_complete)
        #expect(RNDISLayout.queryRequestSize == 28)         // RNDIS_MESSAGE_SIZE(struct rndis_query_request)
        #expect(RNDISLayout.setRequestSize == 28)           // RNDIS_MESSAGE_SIZE(struct rndis_set_request)
        #expect(RNDISLayout.requestInfoOffset == 20)        // sizeof(struct rndis_query_request)
        #expect(RNDISLayout.queryCompleteSize == 24)        // RNDIS_MESSAGE_SIZE(struct rndis_query_complete)
        #expect(RNDISLayout.queryCompleteInfoOffset == 16)  // sizeof(struct rndis_query_complete)
        #expect(RNDISLayout.setCompleteSize == 16)
        #expect(RNDISLayout.resetCompleteSize == 16)
        #expect(RNDISLayout.keepaliveRequestSize == 12 && RNDISLayout.keepaliveCompleteSize == 16)
        #expect(RNDISLayout.haltRequestSize == 12 && RNDISLayout.resetRequestSize == 12)
        #expect(RNDISLayout.indicateStatusSize == 20)       // RNDIS_MESSAGE_SIZE(struct rndis_indicate_status)
        #expect(RNDISLayout.perPacketInfoSize == 12)        // struct rndis_per_packet_info
        #expect(RNDISLayout.configParameterInfoSize == 20)  // struct rndis_config_parameter_info
        #expect(RNDISLayout.objectHeaderSize == 4)          // struct ndis_object_header
        #expect(RNDISLayout.offloadParametersV4Size == 22)  // VERSION_4_OFFLOAD_SIZE
        #expect(RNDISLayout.offloadParametersSize == 28)    // sizeof(struct ndis_offload_params)
        #expect(NDIS.offloadSizes == [1: 112, 2: 144, 3: 156])
    }

    // MARK: NVSP replies (host → guest)

    @Test func initializeComplete() {
        let bytes = NVSPReply.initializeComplete(negotiated: 0x60001, maxMDLChainLength: 34, status: .success)
        // nvsp_message_header, nvsp_message_init_complete {negotiated_protocol_ver, max_mdl_chain_len, status}
        #expect(bytes.count == 40)
        #expect([bytes.netU32(0), bytes.netU32(4), bytes.netU32(8), bytes.netU32(12)] == [2, 0x60001, 34, 1])
        #expect(bytes[16...].allSatisfy { $0 == 0 })
    }

    @Test func receiveBufferComplete() {
        let section = NVSPReceiveBufferSection(offset: 0, subAllocationSize: 1600, subAllocationCount: 51, endOffset: 81600)
        let bytes = NVSPReply.receiveBufferComplete(status: .success, section: section)
        // {status, num_sections, sections[0] {offset, sub_alloc_size, num_sub_allocs, end_offset}}
        #expect(bytes.count == 40)
        #expect((0..<7).map { bytes.netU32(4 * $0) } == [102, 1, 1, 0, 1600, 51, 81600])
        let failed = NVSPReply.receiveBufferComplete(status: .failure, section: nil)
        #expect(failed.count == 40 && failed.netU32(4) == 2 && failed.netU32(8) == 0)
    }

    @Test func sendBufferAndRNDISPacketMessages() {
        let send = NVSPReply.sendBufferComplete(status: .success, sectionSize: 6144)
        #expect(send.count == 40 && [send.netU32(0), send.netU32(4), send.netU32(8)] == [105, 1, 6144])
        // nvsp_1_message_send_rndis_packet {channel_type, send_buf_section_index, send_buf_section_size}
        let packet = NVSPReply.rndisPacket(channelType: 1)
        #expect(packet.count == 40 && [packet.netU32(0), packet.netU32(4), packet.netU32(8), packet.netU32(12)] == [107, 1, 0xFFFF_FFFF, 0])
        let complete = NVSPReply.rndisPacketComplete(status: .invalidRNDISPacket)
        #expect(complete.count == 40 && [complete.netU32(0), complete.netU32(4)] == [108, 5])
        // nvsp_5_subchannel_complete {status, num_subchannels}
        let subchannel = NVSPReply.subchannelComplete(status: .failure, count: 0)
        #expect(subchannel.count == 40 && [subchannel.netU32(0), subchannel.netU32(4), subchannel.netU32(8)] == [133, 2, 0])
        #expect(NVSPReply.failure(type: 999).prefix(8) == [0xE7, 0x03, 0, 0, 2, 0, 0, 0])
    }

    @Test func transferPageHeader() {
        let header = TransferPageHeader(pageSetID: 0xCAFE, ranges: [TransferPageRange(byteCount: 104, byteOffset: 0),
                                                                   TransferPageRange(byteCount: 60, byteOffset: 1600)])
        let bytes = header.bytes
        // {xfer_pageset_id u16, sender_owns_set u8, reserved u8, range_cnt u32, {byte_count, byte_offset}...}
        #expect(bytes.count == 24)
        #expect(bytes.netU16(0) == 0xCAFE && bytes[2] == 0 && bytes[3] == 0 && bytes.netU32(4) == 2)
        #expect([bytes.netU32(8), bytes.netU32(12), bytes.netU32(16), bytes.netU32(20)] == [104, 0, 60, 1600])
    }

    // MARK: NVSP requests (guest → host)

    @Test func nvspMessagesAsLinuxSendsThem() throws {
        func decode(_ type: UInt32, _ body: [UInt8]) throws -> NVSPMessage { try NVSPMessage(decoding: LinuxNetVSC.nvsp(type, body)) }
        #expect(try decode(1, net32(0x60001) + net32(0x60001)) == .initialize(minVersion: 0x60001, maxVersion: 0x60001))
        #expect(try decode(100, net32(6) + net32(30)) == .sendNDISVersion(major: 6, minor: 30))
        // nvsp_2_send_ndis_config {mtu, reserved, capability u64}
        #expect(try decode(125, net32(1514) + net32(0) + net64(0xAC)) == .sendNDISConfig(mtu: 1514, capabilities: 0xAC))
        // nvsp_1_message_send_receive_buffer {gpadl_handle u32, id u16} (packed)
        #expect(try decode(101, net32(0xE001) + net16(0xCAFE)) == .sendReceiveBuffer(gpadl: 0xE001, id: 0xCAFE))
        #expect(try decode(103, net16(0xCAFE)) == .revokeReceiveBuffer(id: 0xCAFE))
        #expect(try decode(104, net32(0xE002) + net16(0)) == .sendSendBuffer(gpadl: 0xE002, id: 0))
        #expect(try decode(106, net16(0)) == .revokeSendBuffer(id: 0))
        #expect(try decode(107, net32(0) + net32(3) + net32(1500))
                == .sendRNDISPacket(NVSPRNDISPacket(channelType: 0, sectionIndex: 3, sectionSize: 1500)))
        // struct recv_comp_msg {hdr, status}: 8 bytes, no padding.
        #expect(try NVSPMessage(decoding: net32(108) + net32(1)) == .sendRNDISPacketComplete(status: 1))
        #expect(try decode(129, net32(1)) == .switchDataPath(activeDataPath: 1))
        #expect(try decode(133, net32(1) + net32(7)) == .subchannel(operation: 1, count: 7))
        #expect(try decode(999, []) == .other(type: 999))
        #expect(throws: NVSPError.tooShort(type: 101, length: 8, needed: 10)) { try NVSPMessage(decoding: net32(101) + net32(5)) }
        #expect(throws: NVSPError.self) { try NVSPMessage(decoding: [1, 0]) }
    }

    @Test func gpaDirectHeaders() throws {
        // vmbus_channel_packet_page_buffer: two ranges of one page each.
        let pageBuffer = net32(0) + net32(2) + net32(96) + net32(4000) + net64(0x380) + net32(300) + net32(0) + net64(0x381)
        let ranges = try GPADirectHeader.parse(pageBuffer, maxRanges: 64, maxPages: 96)
        #expect(ranges == [GPARange(byteCount: 96, byteOffset: 4000, pageNumbers: [0x380]),
                           GPARange(byteCount: 300, byteOffset: 0, pageNumbers: [0x381])])
        // The multipage form: one range spanning three pages.
        let multipage = net32(0) + net32(1) + net32(8200) + net32(100) + net64(7) + net64(9) + net64(11) + net64(0)
        #expect(try GPADirectHeader.parse(multipage, maxRanges: 64, maxPages: 96)
                == [GPARange(byteCount: 8200, byteOffset: 100, pageNumbers: [7, 9, 11])])
        #expect(throws: GPADirectError.truncated) { try GPADirectHeader.parse(Array(pageBuffer.dropLast(8)), maxRanges: 64, maxPages: 96) }
        #expect(throws: GPADirectError.tooManyRanges(2, limit: 1)) { try GPADirectHeader.parse(pageBuffer, maxRanges: 1, maxPages: 96) }
        #expect(throws: GPADirectError.tooManyPages(3, limit: 2)) { try GPADirectHeader.parse(multipage, maxRanges: 64, maxPages: 2) }
        #expect(throws: GPADirectError.badRange(byteCount: 1, byteOffset: 4096)) {
            try GPADirectHeader.parse(net32(0) + net32(1) + net32(1) + net32(4096) + net64(1), maxRanges: 64, maxPages: 96)
        }
        #expect(throws: GPADirectError.badRange(byteCount: 0, byteOffset: 0)) {
            try GPADirectHeader.parse(net32(0) + net32(1) + net32(0) + net32(0) + net64(1), maxRanges: 64, maxPages: 96)
        }
    }

    // MARK: RNDIS

    @Test func rndisAnswers() {
        // rndis_initialize_complete
        let initialize = RNDISReply.initializeComplete(requestID: 7, status: 0, maxPacketsPerMessage: 8, maxTransferSize: 0x6000, alignmentShift: 3)
        #expect(initialize.count == 52)
        #expect((0..<13).map { initialize.netU32(4 * $0) } == [0x8000_0002, 52, 7, 0, 1, 0, 1, 0, 8, 0x6000, 3, 0, 0])
        // rndis_query_complete + information at offset 16 from byte 8
        let query = RNDISReply.queryComplete(requestID: 9, status: 0, information: [1, 2, 3, 4, 5, 6])
        #expect(query.count == 30 && (0..<6).map { query.netU32(4 * $0) } == [0x8000_0004, 30, 9, 0, 6, 16])
        #expect(Array(query[24...]) == [1, 2, 3, 4, 5, 6])
        let empty = RNDISReply.queryComplete(requestID: 9, status: 0xC000_00BB, information: [])
        #expect(empty.count == 24 && empty.netU32(16) == 0 && empty.netU32(20) == 16)
        #expect((0..<4).map { RNDISReply.setComplete(requestID: 3, status: 0).netU32(4 * $0) } == [0x8000_0005, 16, 3, 0])
        // rndis_reset_complete {status, addressing_reset}
        #expect((0..<4).map { RNDISReply.resetComplete(status: 0, addressingReset: 1).netU32(4 * $0) } == [0x8000_0006, 16, 0, 1])
        #expect((0..<4).map { RNDISReply.keepaliveComplete(requestID: 5, status: 0).netU32(4 * $0) } == [0x8000_0008, 16, 5, 0])
        // rndis_indicate_status {status, status_buflen, status_buf_offset}
        #expect((0..<5).map { RNDISReply.indicateStatus(0x4001_000B).netU32(4 * $0) } == [7, 20, 0x4001_000B, 0, 0])
    }

    @Test func rndisPacketHeader() {
        var bytes = [UInt8](repeating: 0xEE, count: 44)
        bytes.withUnsafeMutableBytes { RNDISPacketHeader.store(frameLength: 60, at: $0.baseAddress!) }
        // {type, msg_len}, rndis_packet {data_offset, data_len, oob_data_offset, oob_data_len, num_oob, ppi_offset,
        // ppi_len, vc_handle, reserved}
        #expect((0..<11).map { bytes.netU32(4 * $0) } == [1, 104, 36, 60, 0, 0, 0, 0, 0, 0, 0])
        let header = RNDISPacketHeader((0..<9).flatMap { net32(UInt32($0 + 1)) })
        #expect([header.dataOffset, header.dataLength, header.oobDataOffset, header.oobDataLength, header.oobElementCount,
                 header.perPacketInfoOffset, header.perPacketInfoLength, header.vcHandle, header.reserved] == Array(1...9))
    }

    @Test func rndisRequestsAsLinuxSendsThem() throws {
        #expect(try RNDISRequest(decoding: net32(2) + net32(24) + net32(1) + net32(1) + net32(0) + net32(0x4000))
                == .initialize(requestID: 1, major: 1, minor: 0, maxTransferSize: 0x4000))
        // rndis_query_request {req_id, oid, info_buflen, info_buf_offset = 20, dev_vc_handle} + info
        #expect(try RNDISRequest(decoding: net32(4) + net32(32) + net32(2) + net32(0xFC01_020D) + net32(4) + net32(20) + net32(0) + [0xA7, 3, 156, 0])
                == .query(requestID: 2, oid: 0xFC01_020D, information: [0xA7, 3, 156, 0]))
        #expect(try RNDISRequest(decoding: net32(5) + net32(32) + net32(3) + net32(0x0001_010E) + net32(4) + net32(20) + net32(0) + net32(0xD))
                == .set(requestID: 3, oid: 0x0001_010E, information: net32(0xD)))
        // An empty information buffer: the offset does not matter.
        #expect(try RNDISRequest(decoding: net32(4) + net32(28) + net32(4) + net32(0x0101_0101) + net32(0) + net32(0) + net32(0))
                == .query(requestID: 4, oid: 0x0101_0101, information: []))
        #expect(try RNDISRequest(decoding: net32(3) + net32(12) + net32(5)) == .halt(requestID: 5))
        #expect(try RNDISRequest(decoding: net32(8) + net32(12) + net32(6)) == .keepalive(requestID: 6))
        #expect(try RNDISRequest(decoding: net32(6) + net32(12) + net32(0)) == .reset)
        #expect(throws: RNDISError.tooShort(type: 2, length: 20, needed: 24)) {
            try RNDISRequest(decoding: net32(2) + net32(20) + net32(1) + net32(1) + net32(0))
        }
        #expect(throws: RNDISError.badInformationBuffer(offset: 20, length: 8, messageLength: 32)) {
            try RNDISRequest(decoding: net32(4) + net32(32) + net32(2) + net32(1) + net32(8) + net32(20) + net32(0) + net32(0))
        }
        #expect(throws: RNDISError.badInformationBuffer(offset: 12, length: 4, messageLength: 32)) {
            try RNDISRequest(decoding: net32(5) + net32(32) + net32(2) + net32(1) + net32(4) + net32(12) + net32(0) + net32(0))
        }
        #expect(throws: RNDISError.badInformationBuffer(offset: 0xFFFF_FFF0, length: 0x20, messageLength: 32)) {
            try RNDISRequest(decoding: net32(5) + net32(32) + net32(2) + net32(1) + net32(0x20) + net32(0xFFFF_FFF0) + net32(0) + net32(0))
        }
        #expect(throws: RNDISError.unknownType(0x99)) { try RNDISRequest(decoding: net32(0x99) + net32(8)) }
    }

    @Test func offloadStructures() {
        for (revision, size) in [(UInt8(1), 112), (2, 144), (3, 156)] {
            let bytes = NDISOffload.noOffloads(revision: revision)
            // ndis_object_header {type 0xa7, revision, size u16}, every capability zero.
            #expect(bytes.count == size && bytes[0] == 0xA7 && bytes[1] == revision && Int(bytes.netU16(2)) == size)
            #expect(bytes[4...].allSatisfy { $0 == 0 })
        }
        #expect(NDISOffload.noOffloads(revision: 9).count == 156 && NDISOffload.noOffloads(revision: 0).count == 112)
        #expect([NVSPVersion.v1, .v2, .v4, .v5, .v6, .v61].map(NDISOffload.revision(for:)) == [1, 1, 2, 3, 3, 3])
        // ndis_offload_params as rndis_netdev_set_hwcaps sends it with no capabilities: ip_v4_csum = 1.
        var linux = [UInt8](repeating: 0, count: 28)
        linux[0] = 0x80; linux[1] = 3; linux[2] = 28; linux[4] = 1
        #expect(!NDISOffloadParameters.enablesUnsupported(linux))
        var receiveOnly = linux; receiveOnly[5] = 3       // tcp_ip_v4_csum = RX_ENABLED_TX_DISABLED
        #expect(!NDISOffloadParameters.enablesUnsupported(receiveOnly))
        var transmit = linux; transmit[7] = 4              // tcp_ip_v6_csum = TX_RX_ENABLED
        #expect(NDISOffloadParameters.enablesUnsupported(transmit))
        var lso = linux; lso[11] = 2                       // lso_v2_ipv4 = LSOV2_ENABLED
        #expect(NDISOffloadParameters.enablesUnsupported(lso))
    }

    @Test func versions() {
        #expect(NVSPVersion.known.map(\.rawValue) == LinuxNet.nvspVersions)
        #expect(NVSPVersion.known == NVSPVersion.known.sorted())
        #expect(NVSPVersion.v61.description == "6.1" && NVSPVersion.v2.description == "2")
    }
}
