// A scripted Linux 6.1 netvsc guest for the NetVSP state machine, transcribed by hand from
// drivers/net/hyperv/{netvsc.c, rndis_filter.c, netvsc_drv.c, hyperv_net.h}, include/linux/rndis.h and
// include/linux/hyperv.h. It builds every message byte by byte at Linux's offsets and decodes every answer the
// same way, sharing no code with the VSP module, so a layout mistake on either side fails a test. It also applies
// the checks Linux applies to what the host sends (netvsc_init_buf, netvsc_receive, rndis_filter_receive,
// rndis_filter_query_device) and records a failure where Linux would refuse.

import Partition
import Synchronization
import Testing
@testable import VMBus
@testable import VSP

// MARK: little-endian fields

extension Array where Element == UInt8 {
    func netU16(_ offset: Int) -> UInt16 { UInt16(self[offset]) | UInt16(self[offset + 1]) << 8 }
    func netU32(_ offset: Int) -> UInt32 { (0..<4).reduce(UInt32(0)) { $0 | UInt32(self[offset + $1]) << (8 * $1) } }
    func netU64(_ offset: Int) -> UInt64 { (0..<8).reduce(UInt64(0)) { $0 | UInt64(self[offset + $1]) << (8 * $1) } }
    mutating func netPut32(_ offset: Int, _ value: UInt32) {
        for index in 0..<4 { self[offset + index] = UInt8(truncatingIfNeeded: value >> (8 * index)) }
    }
}

func net16(_ value: UInt16) -> [UInt8] { (0..<2).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
func net32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
func net64(_ value: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }

// MARK: Linux's constants, copied from the headers (not from VSP)

enum LinuxNet {
    // hyperv_net.h
    static let nvspVersions: [UInt32] = [0x2, 0x30002, 0x40000, 0x50000, 0x60000, 0x60001]  // ver_list[]
    static let msgInit: UInt32 = 1, msgInitComplete: UInt32 = 2
    static let msgSendNDISVersion: UInt32 = 100, msgSendRecvBuf: UInt32 = 101, msgSendRecvBufComplete: UInt32 = 102
    static let msgRevokeRecvBuf: UInt32 = 103, msgSendSendBuf: UInt32 = 104, msgSendSendBufComplete: UInt32 = 105
    static let msgRevokeSendBuf: UInt32 = 106, msgSendRNDISPacket: UInt32 = 107, msgSendRNDISPacketComplete: UInt32 = 108
    static let msgSendNDISConfig: UInt32 = 125, msgSwitchDataPath: UInt32 = 129, msgSubchannel: UInt32 = 133
    static let statSuccess: UInt32 = 1, statFail: UInt32 = 2
    static let nvspMessageSize = 40                   // sizeof(struct nvsp_message)
    static let receiveBufferID: UInt16 = 0xCAFE       // NETVSC_RECEIVE_BUFFER_ID
    static let sendBufferID: UInt16 = 0               // NETVSC_SEND_BUFFER_ID
    static let invalidIndex: UInt32 = 0xFFFF_FFFF     // NETVSC_INVALID_INDEX
    static let mtuMin: UInt32 = 68                    // NETVSC_MTU_MIN
    static let ndisOffloadSize = 156                  // sizeof(struct ndis_offload)
    static let ndisOffloadSize60 = 112                // offsetof(struct ndis_offload, ipsecv2)
    static let ndisOffloadSize61 = 144                // offsetof(struct ndis_offload, rsc)
    // include/linux/rndis.h
    static let rndisPacket: UInt32 = 1, rndisInit: UInt32 = 2, rndisInitC: UInt32 = 0x8000_0002, rndisHalt: UInt32 = 3
    static let rndisQuery: UInt32 = 4, rndisQueryC: UInt32 = 0x8000_0004, rndisSet: UInt32 = 5, rndisSetC: UInt32 = 0x8000_0005
    static let rndisReset: UInt32 = 6, rndisResetC: UInt32 = 0x8000_0006, rndisIndicate: UInt32 = 7
    static let rndisKeepalive: UInt32 = 8, rndisKeepaliveC: UInt32 = 0x8000_0008
    static let statusSuccess: UInt32 = 0, statusNotSupported: UInt32 = 0xC000_00BB, statusInvalidData: UInt32 = 0xC001_0015
    static let statusMediaConnect: UInt32 = 0x4001_000B, statusMediaDisconnect: UInt32 = 0x4001_000C
    static let oidMaximumFrameSize: UInt32 = 0x0001_0106, oidLinkSpeed: UInt32 = 0x0001_0107
    static let oidCurrentPacketFilter: UInt32 = 0x0001_010E, oidMediaConnectStatus: UInt32 = 0x0001_0114
    static let oidReceiveScaleCapabilities: UInt32 = 0x0001_0203, oidFriendlyName: UInt32 = 0x0002_0216
    static let oidConfigParameter: UInt32 = 0x0001_021B
    static let oidPermanentAddress: UInt32 = 0x0101_0101, oidCurrentAddress: UInt32 = 0x0101_0102
    static let oidOffloadParameters: UInt32 = 0xFC01_020C, oidOffloadHardwareCapabilities: UInt32 = 0xFC01_020D
    static let filterDirected: UInt32 = 1, filterAllMulticast: UInt32 = 4, filterBroadcast: UInt32 = 8, filterPromiscuous: UInt32 = 0x20
    // include/linux/hyperv.h
    static let pktDataInband: UInt16 = 6, pktDataUsingXferPages: UInt16 = 7, pktDataUsingGPADirect: UInt16 = 9, pktComp: UInt16 = 0xB
    static let completionRequested: UInt16 = 1        // VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED
    static let pageSize = 4096
    // ndis_per_pkt_info_type
    static let ppiIEEE8021Q: UInt32 = 6, ppiNBLHash: UInt32 = 8
}

/// A packet the host wrote for the guest, as the guest sees it on its inbound ring.
struct NetHostPacket {
    var type: UInt16
    var flags: UInt16
    var transactionID: UInt64
    var header: [UInt8]
    var payload: [UInt8]
}

/// A transfer-page packet, decoded as netvsc_receive does.
struct NetTransfer {
    var transactionID: UInt64
    var channelType: UInt32
    var ranges: [(count: UInt32, offset: UInt32)]
    /// The RNDIS message of each range, read from the receive buffer.
    var messages: [[UInt8]]
}

/// The GPADLs the guest created, shared with the memory adapter (which may be called from any thread).
final class NetGPADLTable: Sendable {
    let pages = Mutex<[UInt32: [UInt64]]>([:])
    subscript(handle: UInt32) -> [UInt64]? {
        get { pages.withLock { $0[handle] } }
        set { pages.withLock { $0[handle] = newValue } }
    }
}

// MARK: the guest

final class LinuxNetVSC {
    static let mac: [UInt8] = [0x00, 0x15, 0x5D, 0x12, 0x34, 0x56]
    let memory: GuestMemory
    let gpadls = NetGPADLTable()
    var machine: NetVSP
    /// The guest's inbound ring: what the host sent and the guest has not handled yet.
    var inbound: [NetHostPacket] = []
    var transmitted: [[UInt8]] = []
    /// Simulates a full inbound ring: flush sends nothing.
    var ringFull = false
    /// Simulates a back end that takes only this many frames per call.
    var backendTakes: Int?
    var nextTransactionID: UInt64 = 0x1000

    // What Linux learned (struct netvsc_device).
    var nvspVersion: UInt32 = 0
    var recvBufSize = 0
    var recvSectionSize = 0
    var recvSectionCount = 0
    var sendSectionSize = 0
    var sendSectionCount = 0
    var maxPacketsPerMessage: UInt32 = 0
    var packetAlignment = 0
    var nextRequestID: UInt32 = 0

    static let recvGPADL: UInt32 = 0xE001, sendGPADL: UInt32 = 0xE002
    /// Where rndis_request lives (request_msg crosses a page boundary, so it takes two page buffers).
    static let requestAddress: UInt64 = 0x30_0000 + 4096 - 24
    static let dataPages: UInt64 = 0x380

    init(configuration: NetVSPConfiguration = NetVSPConfiguration(mac: LinuxNetVSC.mac), memory: (any NetVSPMemory)? = nil) throws {
        self.memory = try GuestMemory(map: try MemoryMap(ramSize: 16 << 20))
        machine = NetVSP(configuration: configuration)
        machine.open(memory: memory ?? defaultMemory)
    }

    /// The partition's RAM and this guest's GPADLs, as NetVSPDevice would give them.
    var defaultMemory: GuestNetVSPMemory {
        let table = gpadls
        return GuestNetVSPMemory(memory: memory, gpadlPages: { table[$0] })
    }

    // MARK: packets, byte by byte (struct vmpacket_descriptor and friends)

    /// vmpacket_descriptor {type u16, offset8 u16, len8 u16, flags u16, trans_id u64}, the type-specific header,
    /// the payload padded to 8.
    static func packet(type: UInt16, flags: UInt16, transactionID: UInt64, header: [UInt8] = [], payload: [UInt8]) -> [UInt8] {
        let offset = 16 + header.count
        precondition(offset % 8 == 0)
        var payload = payload
        while payload.count % 8 != 0 { payload.append(0) }
        return net16(type) + net16(UInt16(offset / 8)) + net16(UInt16((offset + payload.count) / 8)) + net16(flags)
            + net64(transactionID) + header + payload
    }

    /// An NVSP message as Linux sends it: the whole struct nvsp_message, zero-filled.
    static func nvsp(_ type: UInt32, _ body: [UInt8]) -> [UInt8] {
        var message = net32(type) + body
        message += [UInt8](repeating: 0, count: max(0, LinuxNet.nvspMessageSize - message.count))
        return message
    }

    /// Hands raw packet bytes to NetVSP as the channel would (in place), then lets it flush into the inbound ring.
    func deliver(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            let descriptor = PacketDescriptor(type: PacketType(rawValue: bytes.netU16(0)), dataOffset8: bytes.netU16(2),
                                              length8: bytes.netU16(4), flags: bytes.netU16(6),
                                              transactionID: bytes.netU64(8))
            machine.receive(VMBusPacket(descriptor: descriptor, bytes: raw)) { frames in
                let taken = min(frames.count, backendTakes ?? frames.count)
                transmitted += frames[..<taken].map { Array($0) }
                return taken
            }
        }
        flush()
    }

    func flush() {
        _ = machine.flush { packet in
            guard !ringFull else { return false }
            inbound.append(NetHostPacket(type: packet.type.rawValue, flags: packet.flags, transactionID: packet.transactionID,
                                      header: packet.header, payload: packet.payload))
            return true
        }
    }

    func newTransaction() -> UInt64 {
        nextTransactionID += 1
        return nextTransactionID
    }

    /// vmbus_sendpacket(VM_PKT_DATA_INBAND, COMPLETION_REQUESTED).
    @discardableResult
    func inband(_ message: [UInt8], completion: Bool = true) -> UInt64 {
        let id = newTransaction()
        deliver(Self.packet(type: LinuxNet.pktDataInband, flags: completion ? LinuxNet.completionRequested : 0, transactionID: id,
                            payload: message))
        return id
    }

    /// vmbus_sendpacket_pagebuffer: vmbus_channel_packet_page_buffer {desc, reserved u32, rangecount u32,
    /// range[] {len u32, offset u32, pfn u64}}.
    @discardableResult
    func pageBuffer(_ message: [UInt8], ranges: [(len: UInt32, offset: UInt32, pfn: UInt64)]) -> UInt64 {
        let id = newTransaction()
        var header = net32(0) + net32(UInt32(ranges.count))
        for range in ranges { header += net32(range.len) + net32(range.offset) + net64(range.pfn) }
        deliver(Self.packet(type: LinuxNet.pktDataUsingGPADirect, flags: LinuxNet.completionRequested, transactionID: id,
                            header: header, payload: message))
        return id
    }

    /// send_recv_completions: a VM_PKT_COMP with struct recv_comp_msg {hdr, status} (8 bytes).
    func completeTransfer(_ transactionID: UInt64, status: UInt32 = LinuxNet.statSuccess) {
        deliver(Self.packet(type: LinuxNet.pktComp, flags: 0, transactionID: transactionID,
                            payload: net32(LinuxNet.msgSendRNDISPacketComplete) + net32(status)))
    }

    /// The completion packet for `transactionID`, removed from the ring.
    func takeCompletion(_ transactionID: UInt64) -> [UInt8]? {
        guard let index = inbound.firstIndex(where: { $0.type == LinuxNet.pktComp && $0.transactionID == transactionID }) else {
            return nil
        }
        return inbound.remove(at: index).payload
    }

    /// The next transfer-page packet, checked and decoded as netvsc_receive and rndis_filter_receive do.
    func takeTransfer(sourceLocation: SourceLocation = #_sourceLocation) -> NetTransfer? {
        guard let index = inbound.firstIndex(where: { $0.type == LinuxNet.pktDataUsingXferPages }) else { return nil }
        let packet = inbound.remove(at: index)
        let header = packet.header
        let message = packet.payload
        // vmtransfer_page_packet_header: {desc, xfer_pageset_id u16, sender_owns_set u8, reserved u8, range_cnt u32,
        // ranges[] {byte_count u32, byte_offset u32}}.
        #expect(packet.flags & LinuxNet.completionRequested != 0, "transfer pages without completion request", sourceLocation: sourceLocation)
        #expect(header.count >= 8 && header.netU16(0) == LinuxNet.receiveBufferID, "xfer_pageset_id", sourceLocation: sourceLocation)
        let count = Int(header.netU32(4))
        #expect(header.count >= 8 + 8 * count, "range count beyond offset8", sourceLocation: sourceLocation)
        #expect(message.count >= 16 && message.netU32(0) == LinuxNet.msgSendRNDISPacket, "NVSP type", sourceLocation: sourceLocation)
        #expect(16 + header.count + message.count <= 4624, "longer than NETVSC_MAX_PKT_SIZE", sourceLocation: sourceLocation)
        var transfer = NetTransfer(transactionID: packet.transactionID, channelType: message.netU32(4), ranges: [], messages: [])
        #expect(message.netU32(8) == LinuxNet.invalidIndex, sourceLocation: sourceLocation)
        for range in 0..<count {
            let byteCount = header.netU32(8 + 8 * range), byteOffset = header.netU32(12 + 8 * range)
            transfer.ranges.append((byteCount, byteOffset))
            #expect(UInt64(byteOffset) + UInt64(byteCount) <= UInt64(recvBufSize), "Packet offset + len too big", sourceLocation: sourceLocation)
            #expect(Int(byteCount) <= recvSectionSize, "Packet too big: buflen > recv_section_size", sourceLocation: sourceLocation)
            let bytes = readReceiveBuffer(Int(byteOffset), Int(byteCount))
            // rndis_filter_receive: msg_len ≥ 8 and ≤ buflen.
            #expect(bytes.count >= 8 && bytes.netU32(4) >= 8 && Int(bytes.netU32(4)) <= bytes.count, "rndis msg_len",
                    sourceLocation: sourceLocation)
            transfer.messages.append(bytes)
        }
        return transfer
    }

    // MARK: guest memory

    func gpadl(_ handle: UInt32, pages: [UInt64]) { gpadls[handle] = pages }

    /// Reads the receive buffer at a buffer offset, through its (scattered) GPADL pages.
    func readReceiveBuffer(_ offset: Int, _ count: Int) -> [UInt8] { readBuffer(Self.recvGPADL, offset, count) }

    func readBuffer(_ handle: UInt32, _ offset: Int, _ count: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        var position = offset
        while bytes.count < count {
            let page = gpadls[handle]![position / 4096], within = position % 4096
            let take = min(count - bytes.count, 4096 - within)
            bytes += try! memory.read(at: page << 12 + UInt64(within), count: take)
            position += take
        }
        return bytes
    }

    func writeBuffer(_ handle: UInt32, _ offset: Int, _ data: [UInt8]) {
        var position = offset, written = 0
        while written < data.count {
            let page = gpadls[handle]![position / 4096], within = position % 4096
            let take = min(data.count - written, 4096 - within)
            try! memory.write(data[written..<written + take], at: page << 12 + UInt64(within))
            position += take
            written += take
        }
    }

    /// Page buffers for guest-physical bytes, one per page touched (what netvsc builds with offset_in_hvpage).
    static func pageRanges(at address: UInt64, count: Int) -> [(len: UInt32, offset: UInt32, pfn: UInt64)] {
        var ranges: [(len: UInt32, offset: UInt32, pfn: UInt64)] = []
        var address = address, left = count
        while left > 0 {
            let within = Int(address % 4096), take = min(left, 4096 - within)
            ranges.append((UInt32(take), UInt32(within), address >> 12))
            address += UInt64(take)
            left -= take
        }
        return ranges
    }

    // MARK: netvsc_connect_vsp

    /// negotiate_nvsp_ver for each version, newest first; NDIS config (v ≥ 2) and NDIS version after the first
    /// success. Returns the statuses the host gave each INIT.
    @discardableResult
    func connect(mtu: UInt32 = 1500) -> [UInt32: UInt32] {
        var statuses: [UInt32: UInt32] = [:]
        for version in LinuxNet.nvspVersions.reversed() {
            // nvsp_message_init {min_protocol_ver, max_protocol_ver}
            let id = inband(Self.nvsp(LinuxNet.msgInit, net32(version) + net32(version)))
            guard let reply = takeCompletion(id) else {
                Issue.record("no INIT_COMPLETE for version 0x\(String(version, radix: 16))")
                return statuses
            }
            // netvsc_send_completion: INIT_COMPLETE falls through to the largest completion it knows.
            #expect(reply.count >= 4 + 24 && reply.netU32(0) == LinuxNet.msgInitComplete)
            // nvsp_message_init_complete {negotiated_protocol_ver, max_mdl_chain_len, status}
            statuses[version] = reply.netU32(12)
            guard reply.netU32(12) == LinuxNet.statSuccess else { continue }
            nvspVersion = version
            if version != LinuxNet.nvspVersions[0] {
                // nvsp_2_send_ndis_config {mtu, reserved, capability u64}: ieee8021q, and sriov + teaming from v5, rsc from v6.1.
                var capability: UInt64 = 1 << 3
                if version >= 0x50000 { capability |= 1 << 2 | 1 << 5 }
                if version >= 0x60001 { capability |= 1 << 7 }
                inband(Self.nvsp(LinuxNet.msgSendNDISConfig, net32(mtu + 14) + net32(0) + net64(capability)), completion: false)
            }
            // nvsp_1_message_send_ndis_version: 6.1 up to NVSP 4, 6.30 after.
            let ndis: UInt32 = version <= 0x40000 ? 0x0006_0001 : 0x0006_001E
            inband(Self.nvsp(LinuxNet.msgSendNDISVersion, net32(ndis >> 16) + net32(ndis & 0xFFFF)), completion: false)
            return statuses
        }
        return statuses
    }

    /// netvsc_init_buf: the receive buffer (GPADL, id 0xCAFE) and the send buffer (GPADL, id 0). Returns the two
    /// completion statuses.
    @discardableResult
    func initBuffers(recvPages: [UInt64], sendPages: [UInt64]) -> (recv: UInt32, send: UInt32) {
        gpadl(Self.recvGPADL, pages: recvPages)
        gpadl(Self.sendGPADL, pages: sendPages)
        recvBufSize = recvPages.count * 4096
        // nvsp_1_message_send_receive_buffer {gpadl_handle u32, id u16}
        var id = inband(Self.nvsp(LinuxNet.msgSendRecvBuf, net32(Self.recvGPADL) + net16(LinuxNet.receiveBufferID)))
        guard let recv = takeCompletion(id) else {
            Issue.record("no SEND_RECV_BUF_COMPLETE")
            return (0, 0)
        }
        #expect(recv.count >= 4 + 24 && recv.netU32(0) == LinuxNet.msgSendRecvBufComplete)
        // {status, num_sections, sections[0] {offset, sub_alloc_size, num_sub_allocs, end_offset}}
        let recvStatus = recv.netU32(4)
        if recvStatus == LinuxNet.statSuccess {
            #expect(recv.netU32(8) == 1 && recv.netU32(12) == 0, "one section at offset 0")
            recvSectionSize = Int(recv.netU32(16))
            recvSectionCount = Int(recv.netU32(20))
            #expect(UInt32(recvSectionSize) >= LinuxNet.mtuMin && recvSectionSize * recvSectionCount <= recvBufSize,
                    "invalid recv_section_size")
        }
        // nvsp_1_message_send_send_buffer {gpadl_handle u32, id u16}
        id = inband(Self.nvsp(LinuxNet.msgSendSendBuf, net32(Self.sendGPADL) + net16(LinuxNet.sendBufferID)))
        guard let send = takeCompletion(id) else {
            Issue.record("no SEND_SEND_BUF_COMPLETE")
            return (recvStatus, 0)
        }
        #expect(send.count >= 4 + 24 && send.netU32(0) == LinuxNet.msgSendSendBufComplete)
        let sendStatus = send.netU32(4)
        if sendStatus == LinuxNet.statSuccess {
            sendSectionSize = Int(send.netU32(8))
            #expect(UInt32(sendSectionSize) >= LinuxNet.mtuMin, "invalid send_section_size")
            sendSectionCount = sendPages.count * 4096 / max(sendSectionSize, 1)
        }
        return (recvStatus, sendStatus)
    }

    // MARK: rndis_filter

    /// rndis_filter_send_request: the request in guest memory, sent as page buffers on the control channel; then
    /// the SEND_RNDIS_PKT completion and the answer in the receive buffer (nil for HALT, which has none).
    func request(_ message: [UInt8], expectAnswer: Bool = true, sourceLocation: SourceLocation = #_sourceLocation) -> [UInt8]? {
        try! memory.write(message, at: Self.requestAddress)
        // nvsp_1_message_send_rndis_packet {channel_type 1, send_buf_section_index -1, send_buf_section_size 0}
        let nvsp = Self.nvsp(LinuxNet.msgSendRNDISPacket, net32(1) + net32(LinuxNet.invalidIndex) + net32(0))
        let id = pageBuffer(nvsp, ranges: Self.pageRanges(at: Self.requestAddress, count: message.count))
        let completion = takeCompletion(id)
        #expect(completion?.netU32(0) == LinuxNet.msgSendRNDISPacketComplete, sourceLocation: sourceLocation)
        #expect(completion?.netU32(4) == LinuxNet.statSuccess, sourceLocation: sourceLocation)
        guard expectAnswer else { return nil }
        guard let transfer = takeTransfer(sourceLocation: sourceLocation) else {
            Issue.record("no RNDIS answer", sourceLocation: sourceLocation)
            return nil
        }
        // netvsc_receive hands each range to rndis_filter_receive: the answer, and maybe indications after it.
        #expect(transfer.channelType == 1, sourceLocation: sourceLocation)
        completeTransfer(transfer.transactionID)
        var answer: [UInt8]?
        for message in transfer.messages {
            if message.netU32(0) == LinuxNet.rndisIndicate {
                indications.append(message.netU32(8))
            } else {
                #expect(answer == nil, "one answer per request", sourceLocation: sourceLocation)
                answer = message
            }
        }
        return answer
    }

    /// RNDIS_MSG_INDICATE statuses seen (netvsc_linkstatus_callback).
    var indications: [UInt32] = []

    func newRequestID() -> UInt32 {
        nextRequestID += 1
        return nextRequestID
    }

    /// rndis_filter_init_device: rndis_initialize_request {req_id, major 1, minor 0, max_xfer_size 0x4000}.
    func rndisInitialize() -> [UInt8]? {
        let requestID = newRequestID()
        let answer = request(net32(LinuxNet.rndisInit) + net32(24) + net32(requestID) + net32(1) + net32(0) + net32(0x4000))
        if let answer {
            // rndis_initialize_complete {req_id, status, major, minor, dev_flags, medium, max_pkt_per_msg,
            // max_xfer_size, pkt_alignment_factor, af_list_offset, af_list_size}
            #expect(answer.netU32(0) == LinuxNet.rndisInitC && answer.netU32(8) == requestID)
            maxPacketsPerMessage = answer.netU32(32)
            packetAlignment = 1 << answer.netU32(40)
        }
        return answer
    }

    /// rndis_filter_query_device: rndis_query_request {req_id, oid, info_buflen, info_buf_offset = 20,
    /// dev_vc_handle}, then the checks on rndis_query_complete. Returns (status, information) or nil where Linux
    /// would fail the query.
    func query(_ oid: UInt32, information: [UInt8] = [], resultSize: Int = 4096) -> (status: UInt32, data: [UInt8])? {
        let requestID = newRequestID()
        let message = net32(LinuxNet.rndisQuery) + net32(UInt32(28 + information.count)) + net32(requestID) + net32(oid)
            + net32(UInt32(information.count)) + net32(20) + net32(0) + information
        guard let answer = request(message) else { return nil }
        #expect(answer.netU32(0) == LinuxNet.rndisQueryC && answer.netU32(8) == requestID)
        // {req_id, status, info_buflen, info_buf_offset}: msg_len - 8 ≥ 16, buflen ≤ result, offset ≥ 16, inside.
        let length = Int(answer.netU32(4)), infoLength = Int(answer.netU32(16)), infoOffset = Int(answer.netU32(20))
        guard length - 8 >= 16, infoLength <= resultSize, infoOffset >= 16, length - 8 >= infoOffset,
              length - 8 - infoOffset >= infoLength else { return nil }
        return (answer.netU32(12), Array(answer[8 + infoOffset..<8 + infoOffset + infoLength]))
    }

    /// rndis_set_request {req_id, oid, info_buflen, info_buf_offset = 20, dev_vc_handle, info_buf[]}; returns the
    /// rndis_set_complete status.
    func set(_ oid: UInt32, _ information: [UInt8]) -> UInt32? {
        let requestID = newRequestID()
        let message = net32(LinuxNet.rndisSet) + net32(UInt32(28 + information.count)) + net32(requestID) + net32(oid)
            + net32(UInt32(information.count)) + net32(20) + net32(0) + information
        guard let answer = request(message) else { return nil }
        #expect(answer.netU32(0) == LinuxNet.rndisSetC && answer.netU32(4) == 16 && answer.netU32(8) == requestID)
        return answer.netU32(12)
    }

    /// What rndis_filter_device_add learns.
    struct DeviceInfo {
        var mtu: UInt32?
        var mac: [UInt8]?
        var friendlyName: [UInt8]?
        var offload: [UInt8]?
        var offloadParametersStatus: UInt32?
        var linkDown: Bool?
        var linkSpeed: UInt32?
        var receiveQueues: UInt32?
        var indications: [UInt32] = []
    }

    /// rndis_filter_device_add after netvsc_device_add: INIT, then the queries and sets in Linux's order.
    func deviceAdd() -> DeviceInfo {
        var info = DeviceInfo()
        guard rndisInitialize()?.netU32(12) == LinuxNet.statusSuccess else {
            Issue.record("RNDIS INITIALIZE failed")
            return info
        }
        // Indications after INIT (ignored by Linux before register_netdevice).
        while let transfer = takeTransfer() {
            for message in transfer.messages where message.netU32(0) == LinuxNet.rndisIndicate { indications.append(message.netU32(8)) }
            completeTransfer(transfer.transactionID)
        }
        info.indications = indications
        if let (_, data) = query(LinuxNet.oidMaximumFrameSize, resultSize: 4), data.count == 4 { info.mtu = data.netU32(0) }
        if let (_, data) = query(LinuxNet.oidPermanentAddress, resultSize: 6) { info.mac = data }
        if let (_, data) = query(LinuxNet.oidFriendlyName, resultSize: 512) { info.friendlyName = data }
        // rndis_query_hwcaps: the request carries an ndis_offload header {type 0xa7, revision, size}.
        let (revision, size): (UInt8, Int) = nvspVersion >= 0x50000 ? (3, LinuxNet.ndisOffloadSize)
            : nvspVersion >= 0x40000 ? (2, LinuxNet.ndisOffloadSize61) : (1, LinuxNet.ndisOffloadSize60)
        var request = [UInt8](repeating: 0, count: size)
        request[0] = 0xA7
        request[1] = revision
        request[2] = UInt8(size & 0xFF)
        request[3] = UInt8(size >> 8)
        if let (_, data) = query(LinuxNet.oidOffloadHardwareCapabilities, information: request, resultSize: LinuxNet.ndisOffloadSize) {
            info.offload = data
        }
        // rndis_netdev_set_hwcaps with no capabilities: ip_v4_csum = TX_RX_DISABLED, everything else no change.
        var parameters = [UInt8](repeating: 0, count: nvspVersion <= 0x40000 ? 22 : 28)
        parameters[0] = 0x80
        parameters[1] = 3
        parameters[2] = UInt8(parameters.count)
        parameters[4] = 1
        info.offloadParametersStatus = set(LinuxNet.oidOffloadParameters, parameters)
        if let (status, data) = query(LinuxNet.oidMediaConnectStatus, resultSize: 4), status == LinuxNet.statusSuccess, data.count >= 4 {
            info.linkDown = data.netU32(0) != 0
        }
        if nvspVersion >= 0x50000 {
            if let (_, data) = query(LinuxNet.oidLinkSpeed, resultSize: 4), data.count == 4 { info.linkSpeed = data.netU32(0) }
            // ndis_recv_scale_cap {hdr {0x88, 2, 18}, cap_flag, num_int_msg, num_recv_que, num_indirect_tabent u16}
            let capabilities = [0x88, 2] + net16(18) + [UInt8](repeating: 0, count: 14)
            if let (_, data) = query(LinuxNet.oidReceiveScaleCapabilities, information: capabilities, resultSize: 18) {
                info.receiveQueues = data.count >= 16 ? data.netU32(12) : 0
            }
        }
        return info
    }

    /// rndis_filter_open_device: BROADCAST | ALL_MULTICAST | DIRECTED.
    func openDevice() -> UInt32? {
        set(LinuxNet.oidCurrentPacketFilter, net32(LinuxNet.filterBroadcast | LinuxNet.filterAllMulticast | LinuxNet.filterDirected))
    }

    /// The whole bring-up with default buffers: 20 receive pages (scattered, every other page), 8 send pages.
    func bringUp() {
        connect()
        initBuffers(recvPages: (0..<20).map { 0x100 + 2 * $0 }, sendPages: (0..<8).map { 0x200 + $0 })
        _ = deviceAdd()
        #expect(openDevice() == LinuxNet.statusSuccess)
    }

    // MARK: netvsc_start_xmit

    /// One RNDIS packet message as netvsc_start_xmit builds it: header, rndis_packet, per-packet info (always the
    /// hash value; a VLAN tag when given), then the frame; msg_len padded to `pad` when batching.
    static func rndisPacket(frame: [UInt8], vlan: UInt32? = nil, pad: Int = 1) -> [UInt8] {
        // rndis_per_packet_info {size, type:31 internal:1, ppi_offset = 12} + data
        var ppi = net32(16) + net32(LinuxNet.ppiNBLHash) + net32(12) + net32(0x1234_5678)
        if let vlan { ppi += net32(16) + net32(LinuxNet.ppiIEEE8021Q) + net32(12) + net32(vlan) }
        // rndis_packet {data_offset, data_len, oob_data_offset, oob_data_len, num_oob_data_elements,
        // per_pkt_info_offset, per_pkt_info_len, vc_handle, reserved}; offsets from rndis_packet.
        var length = 8 + 36 + ppi.count + frame.count
        let padding = (pad - length % pad) % pad
        length += padding
        return net32(LinuxNet.rndisPacket) + net32(UInt32(length)) + net32(UInt32(36 + ppi.count)) + net32(UInt32(frame.count))
            + net32(0) + net32(0) + net32(0) + net32(36) + net32(UInt32(ppi.count)) + net32(0) + net32(0) + ppi + frame
            + [UInt8](repeating: 0, count: padding)
    }

    /// netvsc_send with batching: the messages copied into send section `section` back to back (each but the last
    /// padded to pkt_align), sent inband with the section index and the bytes used. Returns the completion status.
    func transmitInSection(_ frames: [[UInt8]], section: UInt32 = 0) -> UInt32? {
        var bytes: [UInt8] = []
        for (index, frame) in frames.enumerated() {
            bytes += Self.rndisPacket(frame: frame, pad: index < frames.count - 1 ? packetAlignment : 1)
        }
        writeBuffer(Self.sendGPADL, Int(section) * sendSectionSize, bytes)
        let id = inband(Self.nvsp(LinuxNet.msgSendRNDISPacket, net32(0) + net32(section) + net32(UInt32(bytes.count))))
        return takeCompletion(id)?.netU32(4)
    }

    /// netvsc_send without the send buffer: the RNDIS header and per-packet info in one page buffer, the frame in
    /// the following ones (split at page boundaries). Returns the completion status.
    func transmitInPages(_ frame: [UInt8], vlan: UInt32? = nil, frameAddress: UInt64 = LinuxNetVSC.dataPages << 12 + 4096 - 100) -> UInt32? {
        let message = Self.rndisPacket(frame: frame, vlan: vlan)
        let headerLength = message.count - frame.count
        let headerAddress = (Self.dataPages - 1) << 12 + 64
        try! memory.write(message[..<headerLength], at: headerAddress)
        try! memory.write(frame, at: frameAddress)
        let ranges = Self.pageRanges(at: headerAddress, count: headerLength) + Self.pageRanges(at: frameAddress, count: frame.count)
        let id = pageBuffer(Self.nvsp(LinuxNet.msgSendRNDISPacket, net32(0) + net32(LinuxNet.invalidIndex) + net32(0)), ranges: ranges)
        return takeCompletion(id)?.netU32(4)
    }

    /// An Ethernet frame to `destination`.
    static func frame(to destination: [UInt8] = LinuxNetVSC.mac, length: Int, seed: UInt8 = 0) -> [UInt8] {
        destination + [0x02, 0, 0, 0, 0, 0x01] + [0x08, 0x00] + (0..<max(0, length - 14)).map { UInt8(truncatingIfNeeded: $0 * 7 + Int(seed)) }
    }
}
