// The host side of the synthetic NIC as a pure state machine: NVSP negotiation and buffers, RNDIS control and data,
// receive-buffer bookkeeping. No threads and no I/O: guest packets come in through `receive`, frames from the host
// network through `receiveFrame`; what hv must send to the guest waits in an outbound queue that the shell empties
// with `flush` (which stops, keeping the rest, when the guest's inbound ring is full), except that the completion of
// a data packet goes straight to the shell's `sendCompletion` while that queue is empty; frames for the host network
// go to the `transmit` closure, all of one SEND_RNDIS_PKT's frames (Linux batches up to max_pkt_per_msg RNDIS packets
// in a send section) in one call. Guest memory is reached only through NetVSPMemory/NetVSPBuffer (bounds-checked).
// The data path (SEND_RNDIS_PKT inband, the guest's receive completions) is decoded in place and allocates nothing.
//
// The sequence Linux 6.1 drives (netvsc_connect_vsp, netvsc_init_buf, rndis_filter_device_add):
//   INIT(v) for v = 6.1, 6, 5, 4, 2, 1 until one succeeds → SEND_NDIS_CONFIG (v ≥ 2) → SEND_NDIS_VER →
//   SEND_RECV_BUF (GPADL, id 0xCAFE) → SEND_SEND_BUF (GPADL, id 0) → RNDIS over SEND_RNDIS_PKT (channel 1, page
//   buffers): INITIALIZE, QUERY MAXIMUM_FRAME_SIZE, PERMANENT_ADDRESS, FRIENDLY_NAME, TCP_OFFLOAD_HARDWARE_CAPABILITIES,
//   SET TCP_OFFLOAD_PARAMETERS, QUERY MEDIA_CONNECT_STATUS, and from NVSP 5 LINK_SPEED and RECEIVE_SCALE_CAPABILITIES;
//   SET CURRENT_PACKET_FILTER when the interface comes up. RNDIS answers travel like received frames: written into a
//   free receive-buffer section and announced with a transfer-page packet (channel type 1).

import VMBus

/// What NetVSP offers the guest.
public struct NetVSPConfiguration: Sendable, Equatable {
    /// The permanent MAC address (6 bytes).
    public var mac: [UInt8]
    /// The link MTU (IP payload): OID_GEN_MAXIMUM_FRAME_SIZE. Linux lowers its MTU to this.
    public var mtu: Int = 1500
    /// OID_GEN_LINK_SPEED in units of 100 bit/s (100,000,000 = 10 Gbit/s).
    public var linkSpeed: UInt32 = 100_000_000
    public var linkUp = true
    /// The newest NVSP version offered; older ones Linux tries are refused above it.
    public var maxVersion: NVSPVersion = .v61
    /// The send-buffer section size hv chooses (Hyper-V and OpenVMM: 6144; Linux needs ≥ 68).
    public var sendSectionSize = 6144
    /// RNDIS messages per transfer-page packet at most (Linux takes up to 562 within its 4624-byte packet limit).
    public var maxRangesPerTransfer = 64
    /// Receive sections filled but not yet announced (the guest's inbound ring was full) before frames are dropped.
    public var maxQueuedRanges = 256
    /// Page-buffer ranges and pages one GPA-direct packet may name (Linux: at most 32 page buffers).
    public var maxPageRanges = 64
    public var maxPages = 96
    /// RNDIS answers waiting for a free receive section before more are dropped.
    public var maxPendingControl = 32
    /// INITIALIZE_CMPLT.max_pkt_per_msg: RNDIS packets Linux may batch into one send-buffer section.
    public var maxPacketsPerMessage: UInt32 = 8

    public init(mac: [UInt8]) {
        precondition(mac.count == 6, "a MAC address is 6 bytes")
        self.mac = mac
    }
}

/// What NetVSP counted. Drops are by reason; "tx" is guest → host network, "rx" host network → guest.
public struct NetVSPCounters: Sendable, Equatable {
    public var txFrames: UInt64 = 0
    public var txBytes: UInt64 = 0
    /// Data before NVSP or RNDIS initialization.
    public var txDroppedNotReady: UInt64 = 0
    /// RNDIS messages whose lengths or offsets point past the message, or that cannot be parsed.
    public var txDroppedMalformed: UInt64 = 0
    public var txDroppedOversized: UInt64 = 0
    /// Send-buffer sections out of range, or no send buffer.
    public var txDroppedBadSection: UInt64 = 0
    /// Page buffers outside guest RAM, or too many of them.
    public var txDroppedBadPages: UInt64 = 0
    /// Frames the back end did not take.
    public var txDroppedBackend: UInt64 = 0
    public var rxFrames: UInt64 = 0
    public var rxBytes: UInt64 = 0
    /// Frames before RNDIS initialization (or after HALT), or with no receive buffer.
    public var rxDroppedNotReady: UInt64 = 0
    /// Frames the guest's packet filter does not want.
    public var rxDroppedFiltered: UInt64 = 0
    public var rxDroppedOversized: UInt64 = 0
    /// No free receive-buffer section: the guest has not completed enough earlier packets.
    public var rxDroppedNoSection: UInt64 = 0
    /// Too many frames waiting for room in the guest's inbound ring.
    public var rxDroppedRingFull: UInt64 = 0
    /// Transfer-page packets the guest completed with a failure status.
    public var rxRejectedByGuest: UInt64 = 0
    /// RNDIS control requests answered.
    public var controlRequests: UInt64 = 0
    /// RNDIS answers dropped (no receive buffer, or too many waiting for a section).
    public var controlDropped: UInt64 = 0
    public var unsupportedOIDs: UInt64 = 0
    /// NVSP messages that are malformed, unknown, out of order, or name GPADLs that do not exist.
    public var protocolErrors: UInt64 = 0
    /// Completions for transactions that are not outstanding.
    public var unknownCompletions: UInt64 = 0

    public init() {}
}

/// A packet for the guest's inbound ring.
public struct NetVSPPacket: Equatable, Sendable {
    public var type: PacketType
    public var flags: UInt16
    public var transactionID: UInt64
    /// The type-specific header (transfer-page ranges), empty for inband and completion packets.
    public var header: [UInt8]
    public var payload: [UInt8]

    public init(type: PacketType, flags: UInt16 = 0, transactionID: UInt64, header: [UInt8] = [], payload: [UInt8]) {
        self.type = type
        self.flags = flags
        self.transactionID = transactionID
        self.header = header
        self.payload = payload
    }
}

public enum RNDISState: Sendable, Equatable {
    case uninitialized
    case initialized
    /// After RNDIS HALT: nothing moves until the next INITIALIZE.
    case halted
}

/// Why a frame for the guest was dropped.
public enum NetVSPDropReason: Sendable, Equatable {
    case notReady
    case filtered
    case oversized
    case noSection
    case ringFull
}

public enum NetVSPFrameDisposition: Sendable, Equatable {
    /// Copied into the guest's receive buffer; it goes out with the next `flush`.
    case accepted
    case dropped(NetVSPDropReason)
}

public struct NetVSP: Sendable {
    public let configuration: NetVSPConfiguration
    public private(set) var counters = NetVSPCounters()
    /// The negotiated NVSP version; nil until INIT succeeds.
    public private(set) var version: NVSPVersion?
    /// From SEND_NDIS_VER: major << 16 | minor.
    public private(set) var ndisVersion: UInt32?
    /// From SEND_NDIS_CONFIG: the guest's frame size (MTU + 14) and capability bits.
    public private(set) var ndisMTU: UInt32?
    public private(set) var ndisCapabilities: UInt64 = 0
    public private(set) var rndisState = RNDISState.uninitialized
    public private(set) var packetFilter: UInt32 = 0
    /// OID_802_3_CURRENT_ADDRESS: the permanent address unless the guest set "NetworkAddress".
    public private(set) var currentMAC: [UInt8]
    public private(set) var linkUp: Bool

    var memory: (any NetVSPMemory)?
    var receiveBuffer: ReceiveBuffer?
    var sendBuffer: SendBuffer?
    var outbound: [Outbound] = []
    /// Ranges in `.transfer` items of `outbound` (filled sections not yet announced).
    var queuedRanges = 0
    /// Transfer-page packets the guest has not completed: transaction id → their ranges (sections).
    var outstanding: [UInt64: [QueuedRange]] = [:]
    var nextTransactionID: UInt64 = 1
    /// RNDIS answers waiting for a free receive section.
    var pendingControl: [[UInt8]] = []
    var notes: [String] = []
    /// transmitRNDIS's frame list, kept for its capacity.
    var transmitFrames = FrameList()

    /// An empty array of frame pointers with capacity, so that a SEND_RNDIS_PKT allocates no list. @unchecked
    /// Sendable: it is empty whenever it is stored (transmitRNDIS fills it only inside one call), so no pointer into
    /// guest memory ever travels with the state machine.
    struct FrameList: @unchecked Sendable {
        var frames: [UnsafeRawBufferPointer] = []
    }

    struct ReceiveBuffer {
        var id: UInt16
        var buffer: any NetVSPBuffer
        var sectionSize: Int
        var sectionCount: Int
        /// Free sections; the next one used is the last.
        var free: [UInt32]
    }

    struct SendBuffer {
        var id: UInt16
        var buffer: any NetVSPBuffer
        var sectionSize: Int
        var sectionCount: Int
    }

    struct QueuedRange {
        var section: UInt32
        var length: UInt32
    }

    enum Outbound {
        case packet(NetVSPPacket)
        /// RNDIS messages already in receive sections, announced together in one transfer-page packet.
        case transfer(channelType: UInt32, ranges: [QueuedRange])
    }

    public init(configuration: NetVSPConfiguration) {
        self.configuration = configuration
        configuredFrameSize = configuration.mtu + 14
        currentMAC = configuration.mac
        linkUp = configuration.linkUp
    }

    // MARK: lifecycle

    /// The guest opened the channel: a new session over `memory`. Counters carry over.
    public mutating func open(memory: any NetVSPMemory) {
        close()
        self.memory = memory
    }

    /// The channel closed: every buffer and queued packet is forgotten.
    public mutating func close() {
        resetSession()
        memory = nil
    }

    mutating func resetSession() {
        version = nil
        ndisVersion = nil
        ndisMTU = nil
        ndisCapabilities = 0
        rndisState = .uninitialized
        packetFilter = 0
        currentMAC = configuration.mac
        receiveBuffer = nil
        sendBuffer = nil
        outbound = []
        queuedRanges = 0
        outstanding = [:]
        pendingControl = []
    }

    // MARK: state for the shell and tests

    /// Whether frames from the host network can reach the guest: RNDIS initialized, a receive buffer, a packet filter.
    public var receiveEnabled: Bool {
        version != nil && rndisState == .initialized && receiveBuffer != nil && packetFilter != 0
    }

    /// Whether `flush` has anything to send.
    public var hasPendingOutput: Bool { !outbound.isEmpty }

    /// The receive-buffer layout hv announced, if any.
    public var receiveSections: NVSPReceiveBufferSection? {
        receiveBuffer.map { NVSPReceiveBufferSection(offset: 0, subAllocationSize: UInt32($0.sectionSize),
                                                      subAllocationCount: UInt32($0.sectionCount),
                                                      endOffset: UInt32($0.sectionSize * $0.sectionCount)) }
    }

    public var freeReceiveSections: Int { receiveBuffer?.free.count ?? 0 }
    public var sendSectionCount: Int { sendBuffer?.sectionCount ?? 0 }
    public var outstandingTransfers: Int { outstanding.count }

    /// The largest Ethernet frame either way: the larger of the guest's NDIS frame size and hv's MTU + 14, plus a
    /// VLAN tag.
    public var frameLimit: Int { max(Int(ndisMTU ?? 0), configuredFrameSize) + 4 }
    /// configuration.mtu + 14, kept apart: reading it through `configuration` (or calling the getter above) from a
    /// mutating method copies the whole state machine.
    let configuredFrameSize: Int

    /// The receive section size for the current frame limit: an RNDIS packet header and a frame, rounded to 64.
    public var receiveSectionSize: Int { (RNDISLayout.packetMessageHeaderSize + frameLimit + 63) / 64 * 64 }

    /// Problems seen since the last call, for the shell's log.
    public mutating func takeNotes() -> [String] {
        defer { notes = [] }
        return notes
    }

    /// Whether `takeNotes` has anything.
    public var hasNotes: Bool { !notes.isEmpty }

    mutating func note(_ text: String) {
        if notes.count < 32 { notes.append(text) }
    }

    // MARK: output

    /// Sends queued packets in order through `send` (which returns false when the guest's inbound ring is full).
    /// Returns true when the queue is empty; false leaves the rest, to try again later.
    public mutating func flush(_ send: (NetVSPPacket) -> Bool) -> Bool {
        if outbound.isEmpty { return true }
        var sent = 0
        defer {
            if sent == outbound.count { outbound.removeAll(keepingCapacity: true) } else if sent > 0 { outbound.removeFirst(sent) }
        }
        while sent < outbound.count {
            switch outbound[sent] {
            case .packet(let packet):
                guard send(packet) else { return false }
            case .transfer(let channelType, let ranges):
                // Only the two fields: binding the whole ReceiveBuffer would copy (retain) it per packet.
                guard let pageSetID = receiveBuffer?.id, let sectionSize = receiveBuffer?.sectionSize else { break }
                let transactionID = nextTransactionID
                let packet = NetVSPPacket(type: .dataUsingTransferPages, flags: PacketDescriptor.completionRequested,
                                          transactionID: transactionID,
                                          header: Self.transferHeader(pageSetID: pageSetID, ranges: ranges, sectionSize: sectionSize),
                                          payload: channelType == NVSPLayout.dataChannel ? Self.dataAnnouncement : Self.controlAnnouncement)
                guard send(packet) else { return false }
                nextTransactionID &+= 1
                outstanding[transactionID] = ranges
                queuedRanges -= ranges.count
            }
            sent += 1
        }
        return true
    }

    /// vmtransfer_page_packet_header after the descriptor (TransferPageHeader's layout), built in one allocation.
    static func transferHeader(pageSetID: UInt16, ranges: [QueuedRange], sectionSize: Int) -> [UInt8] {
        let count = TransferPageHeader.fixedSize + TransferPageHeader.rangeSize * ranges.count
        return [UInt8](unsafeUninitializedCapacity: count) { bytes, initialized in
            let raw = UnsafeMutableRawBufferPointer(bytes)
            raw.storeBytes(of: UInt32(pageSetID).littleEndian, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: UInt32(ranges.count).littleEndian, toByteOffset: 4, as: UInt32.self)
            for (index, range) in ranges.enumerated() {
                let offset = TransferPageHeader.fixedSize + TransferPageHeader.rangeSize * index
                raw.storeBytes(of: range.length.littleEndian, toByteOffset: offset, as: UInt32.self)
                raw.storeBytes(of: (range.section &* UInt32(sectionSize)).littleEndian, toByteOffset: offset + 4, as: UInt32.self)
            }
            initialized = count
        }
    }

    /// The NVSP message of every transfer-page packet: SEND_RNDIS_PKT on the data or the control channel.
    static let dataAnnouncement = NVSPReply.rndisPacket(channelType: NVSPLayout.dataChannel)
    static let controlAnnouncement = NVSPReply.rndisPacket(channelType: NVSPLayout.controlChannel)

    mutating func complete(_ transactionID: UInt64, _ payload: [UInt8]) {
        outbound.append(.packet(NetVSPPacket(type: .completion, transactionID: transactionID, payload: payload)))
    }

    mutating func enqueue(section: UInt32, length: Int, channelType: UInt32) {
        let range = QueuedRange(section: section, length: UInt32(length))
        queuedRanges += 1
        if case .transfer(let type, var ranges) = outbound.last, type == channelType,
           ranges.count < configuration.maxRangesPerTransfer {
            ranges.append(range)
            outbound[outbound.count - 1] = .transfer(channelType: type, ranges: ranges)
        } else {
            outbound.append(.transfer(channelType: channelType, ranges: [range]))
        }
    }

    // MARK: frames from the host network

    /// Copies `frame` into a free receive section as an RNDIS packet message and queues its announcement.
    public mutating func receiveFrame(_ frame: UnsafeRawBufferPointer) -> NetVSPFrameDisposition {
        guard version != nil, rndisState == .initialized, let sectionSize = receiveBuffer?.sectionSize else {
            counters.rxDroppedNotReady += 1
            return .dropped(.notReady)
        }
        guard passesFilter(frame) else {
            counters.rxDroppedFiltered += 1
            return .dropped(.filtered)
        }
        let length = RNDISLayout.packetMessageHeaderSize + frame.count
        guard !frame.isEmpty, length <= sectionSize else {
            counters.rxDroppedOversized += 1
            return .dropped(.oversized)
        }
        guard queuedRanges < configuration.maxQueuedRanges else {
            counters.rxDroppedRingFull += 1
            return .dropped(.ringFull)
        }
        guard let section = receiveBuffer!.free.popLast() else {
            counters.rxDroppedNoSection += 1
            return .dropped(.noSection)
        }
        guard let span = receiveBuffer!.buffer.span(Int(section) * sectionSize, length) else {
            receiveBuffer!.free.append(section)
            counters.rxDroppedNoSection += 1
            return .dropped(.noSection)
        }
        RNDISPacketHeader.store(frameLength: frame.count, at: span.baseAddress!)
        (span.baseAddress! + RNDISLayout.packetMessageHeaderSize).copyMemory(from: frame.baseAddress!, byteCount: frame.count)
        enqueue(section: section, length: length, channelType: NVSPLayout.dataChannel)
        counters.rxFrames += 1
        counters.rxBytes += UInt64(frame.count)
        return .accepted
    }

    /// The guest's packet filter (NDIS_PACKET_TYPE_*) applied to the destination address.
    func passesFilter(_ frame: UnsafeRawBufferPointer) -> Bool {
        if packetFilter & NDIS.filterPromiscuous != 0 { return true }
        guard frame.count >= 6 else { return false }
        if frame[0] & 1 == 0 {
            return packetFilter & NDIS.filterDirected != 0 && frame.prefix(6).elementsEqual(currentMAC)
        }
        if frame.prefix(6).allSatisfy({ $0 == 0xFF }) { return packetFilter & NDIS.filterBroadcast != 0 }
        return packetFilter & (NDIS.filterMulticast | NDIS.filterAllMulticast) != 0
    }

    /// Tells the guest the link went up or down (RNDIS_STATUS_MEDIA_CONNECT / _DISCONNECT).
    public mutating func setLink(up: Bool) {
        guard up != linkUp else { return }
        linkUp = up
        if rndisState == .initialized {
            answer(RNDISReply.indicateStatus(up ? RNDISStatus.mediaConnect : RNDISStatus.mediaDisconnect), counted: false)
        }
    }

    // MARK: packets from the guest

    /// Sends a completion packet (transaction id, NVSP payload) to the guest at once; false when its ring is full.
    public typealias CompletionSender = (_ transactionID: UInt64, _ payload: [UInt8]) -> Bool

    /// One packet from the guest's outbound ring, in place (copied before it is checked). Frames for the host
    /// network go to `transmit` during the call; it returns how many it took. With `sendCompletion`, the completion
    /// of a data packet (SEND_RNDIS_PKT_COMPLETE) goes out through it directly when nothing else waits in the
    /// outbound queue (so the order is kept), instead of being queued for `flush`.
    public mutating func receive(_ packet: VMBusPacket, transmit: ([UnsafeRawBufferPointer]) -> Int,
                                 sendCompletion: CompletionSender = { _, _ in false }) {
        let descriptor = packet.descriptor
        let requested = descriptor.flags & PacketDescriptor.completionRequested != 0
        // The data path, once NVSP is up: SEND_RNDIS_PKT inband (a send-buffer section), decoded in place without
        // copying the message into an array. Everything else takes the general path below.
        if descriptor.type == .dataInband, version != nil, let request = Self.inbandRNDISPacket(packet.payload) {
            let status = transmitRNDIS(request, pages: [], transmit: transmit)
            guard requested else { return }
            let payload = status == .success ? Self.rndisPacketSuccess : NVSPReply.rndisPacketComplete(status: status)
            if outbound.isEmpty, sendCompletion(descriptor.transactionID, payload) { return }
            complete(descriptor.transactionID, payload)
            return
        }
        // The receive path: the guest completing a transfer-page packet, likewise in place.
        if descriptor.type == .completion, let status = Self.rndisPacketCompletion(packet.payload) {
            receiveCompletion(descriptor.transactionID, status: status)
            return
        }
        let message = Array(packet.payload.prefix(NVSPLayout.messageSize))
        switch descriptor.type {
        case .completion:
            receiveCompletion(descriptor.transactionID, message)
        case .dataInband:
            handle(message, transactionID: descriptor.transactionID, completionRequested: requested, pages: [],
                   transmit: transmit)
        case .dataUsingGPADirect:
            let ranges: [GPARange]
            do {
                ranges = try GPADirectHeader.parse(Array(packet.typeSpecificHeader), maxRanges: configuration.maxPageRanges,
                                                   maxPages: configuration.maxPages)
            } catch {
                counters.txDroppedBadPages += 1
                note("page buffers refused: \(error)")
                if requested { complete(descriptor.transactionID, NVSPReply.rndisPacketComplete(status: .failure)) }
                return
            }
            handle(message, transactionID: descriptor.transactionID, completionRequested: requested, pages: ranges,
                   transmit: transmit)
        default:
            counters.protocolErrors += 1
            note("unexpected \(descriptor.type) from the guest")
        }
    }

    /// The SEND_RNDIS_PKT request in an NVSP message still in the ring, or nil when it is another message (or too
    /// short to be one: NVSPMessage(decoding:) then says why). Each field is read once.
    static func inbandRNDISPacket(_ payload: UnsafeRawBufferPointer) -> NVSPRNDISPacket? {
        guard payload.count >= NVSPLayout.headerSize + NVSPRNDISPacket.size,
              UInt32(littleEndian: payload.loadUnaligned(as: UInt32.self)) == NVSPMessageType.sendRNDISPacket else { return nil }
        return NVSPRNDISPacket(channelType: UInt32(littleEndian: payload.loadUnaligned(fromByteOffset: 4, as: UInt32.self)),
                               sectionIndex: UInt32(littleEndian: payload.loadUnaligned(fromByteOffset: 8, as: UInt32.self)),
                               sectionSize: UInt32(littleEndian: payload.loadUnaligned(fromByteOffset: 12, as: UInt32.self)))
    }

    /// SEND_RNDIS_PKT_COMPLETE for one SEND_RNDIS_PKT; the common answer is built once.
    mutating func completeRNDIS(_ transactionID: UInt64, _ status: NVSPStatus) {
        complete(transactionID, status == .success ? Self.rndisPacketSuccess : NVSPReply.rndisPacketComplete(status: status))
    }

    static let rndisPacketSuccess = NVSPReply.rndisPacketComplete(status: .success)

    mutating func receiveCompletion(_ transactionID: UInt64, _ message: [UInt8]) {
        guard case .sendRNDISPacketComplete(let status)? = try? NVSPMessage(decoding: message) else {
            counters.protocolErrors += 1
            note("completion \(transactionID) is not SEND_RNDIS_PKT_COMPLETE")
            return
        }
        receiveCompletion(transactionID, status: status)
    }

    /// The guest completed transfer-page packet `transactionID`: its sections are free again.
    mutating func receiveCompletion(_ transactionID: UInt64, status: UInt32) {
        guard let ranges = outstanding.removeValue(forKey: transactionID) else {
            counters.unknownCompletions += 1
            note("completion for transaction \(transactionID), which is not outstanding")
            return
        }
        if status != NVSPStatus.success.rawValue { counters.rxRejectedByGuest += 1 }
        for range in ranges { receiveBuffer?.free.append(range.section) }
        if !pendingControl.isEmpty { writePendingControl() }
    }

    /// The status of a SEND_RNDIS_PKT_COMPLETE still in the ring (the guest's completion of a transfer-page packet),
    /// or nil for anything else. Read once.
    static func rndisPacketCompletion(_ payload: UnsafeRawBufferPointer) -> UInt32? {
        guard payload.count >= NVSPLayout.headerSize + 4,
              UInt32(littleEndian: payload.loadUnaligned(as: UInt32.self)) == NVSPMessageType.sendRNDISPacketComplete else { return nil }
        return UInt32(littleEndian: payload.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
    }

    mutating func handle(_ bytes: [UInt8], transactionID: UInt64, completionRequested: Bool, pages: [GPARange],
                         transmit: ([UnsafeRawBufferPointer]) -> Int) {
        let message: NVSPMessage
        do { message = try NVSPMessage(decoding: bytes) } catch {
            counters.protocolErrors += 1
            note("\(error)")
            if completionRequested { complete(transactionID, NVSPReply.failure(type: bytes.count >= 4 ? WireReader(bytes).u32(0) : 0)) }
            return
        }
        if case .initialize(let minimum, let maximum) = message {
            negotiate(minimum: minimum, maximum: maximum, transactionID: transactionID)
            return
        }
        guard let version else {
            counters.protocolErrors += 1
            note("NVSP message before INIT: \(message)")
            if case .sendRNDISPacket = message {
                counters.txDroppedNotReady += 1
                if completionRequested { complete(transactionID, NVSPReply.rndisPacketComplete(status: .failure)) }
            } else if completionRequested {
                complete(transactionID, NVSPReply.failure(type: WireReader(bytes).u32(0)))
            }
            return
        }
        switch message {
        case .initialize:
            break
        case .sendNDISVersion(let major, let minor):
            ndisVersion = major << 16 | (minor & 0xFFFF)
            if completionRequested { complete(transactionID, []) }
        case .sendNDISConfig(let mtu, let capabilities) where version >= .v2:
            if mtu >= 14 + 68 && mtu <= 14 + 65535 {
                ndisMTU = mtu
                ndisCapabilities = capabilities
            } else {
                counters.protocolErrors += 1
                note("NDIS config with frame size \(mtu)")
            }
            if completionRequested { complete(transactionID, []) }
        case .sendReceiveBuffer(let gpadl, let id):
            complete(transactionID, attachReceiveBuffer(gpadl: gpadl, id: id))
        case .sendSendBuffer(let gpadl, let id):
            complete(transactionID, attachSendBuffer(gpadl: gpadl, id: id))
        case .revokeReceiveBuffer(let id):
            if let receive = receiveBuffer, receive.id == id {
                dropReceiveBuffer()
            } else {
                counters.protocolErrors += 1
                note("revoke of receive buffer \(id), which is not attached")
            }
            if completionRequested { complete(transactionID, []) }
        case .revokeSendBuffer(let id):
            if let send = sendBuffer, send.id == id {
                sendBuffer = nil
            } else {
                counters.protocolErrors += 1
                note("revoke of send buffer \(id), which is not attached")
            }
            if completionRequested { complete(transactionID, []) }
        case .sendRNDISPacket(let request):
            let status = transmitRNDIS(request, pages: pages, transmit: transmit)
            if completionRequested { completeRNDIS(transactionID, status) }
        case .switchDataPath where version >= .v4:
            // There is never a VF: the data path stays synthetic. Linux waits for an empty completion.
            if completionRequested { complete(transactionID, []) }
        case .subchannel where version >= .v5:
            // RSS is not offered, so there are no subchannels to allocate.
            complete(transactionID, NVSPReply.subchannelComplete(status: .failure, count: 0))
        default:
            counters.protocolErrors += 1
            note("unexpected NVSP message at version \(version): \(message)")
            if completionRequested { complete(transactionID, NVSPReply.failure(type: WireReader(bytes).u32(0))) }
        }
    }

    // MARK: NVSP initialization

    mutating func negotiate(minimum: UInt32, maximum: UInt32, transactionID: UInt64) {
        let offered = NVSPVersion.known.filter { $0 <= configuration.maxVersion }
        if let chosen = offered.last(where: { $0.rawValue >= minimum && $0.rawValue <= maximum }) {
            resetSession()
            version = chosen
            complete(transactionID, NVSPReply.initializeComplete(negotiated: chosen.rawValue, maxMDLChainLength: 0, status: .success))
            return
        }
        let status: NVSPStatus = if let newest = offered.last, minimum > newest.rawValue { .protocolTooNew }
            else if let oldest = offered.first, maximum < oldest.rawValue { .protocolTooOld }
            else { .protocolUnsupported }
        complete(transactionID, NVSPReply.initializeComplete(negotiated: 0, maxMDLChainLength: 0, status: status))
    }

    mutating func attachReceiveBuffer(gpadl: UInt32, id: UInt16) -> [UInt8] {
        let failure = NVSPReply.receiveBufferComplete(status: .failure, section: nil)
        guard receiveBuffer == nil else {
            counters.protocolErrors += 1
            note("a second receive buffer (GPADL \(gpadl))")
            return failure
        }
        guard let buffer = memory?.buffer(gpadl: gpadl) else {
            counters.protocolErrors += 1
            note("receive buffer GPADL \(gpadl) does not exist")
            return failure
        }
        let sectionSize = receiveSectionSize
        let count = min(buffer.count / sectionSize, Int(UInt32.max) / sectionSize)
        guard count >= 1 else {
            counters.protocolErrors += 1
            note("receive buffer of \(buffer.count) bytes holds no \(sectionSize)-byte section")
            return failure
        }
        receiveBuffer = ReceiveBuffer(id: id, buffer: buffer, sectionSize: sectionSize, sectionCount: count,
                                      free: (0..<UInt32(count)).reversed())
        return NVSPReply.receiveBufferComplete(status: .success, section: receiveSections)
    }

    mutating func attachSendBuffer(gpadl: UInt32, id: UInt16) -> [UInt8] {
        let failure = NVSPReply.sendBufferComplete(status: .failure, sectionSize: 0)
        guard sendBuffer == nil else {
            counters.protocolErrors += 1
            note("a second send buffer (GPADL \(gpadl))")
            return failure
        }
        guard let buffer = memory?.buffer(gpadl: gpadl) else {
            counters.protocolErrors += 1
            note("send buffer GPADL \(gpadl) does not exist")
            return failure
        }
        let sectionSize = configuration.sendSectionSize
        guard buffer.count / sectionSize >= 1 else {
            counters.protocolErrors += 1
            note("send buffer of \(buffer.count) bytes holds no \(sectionSize)-byte section")
            return failure
        }
        sendBuffer = SendBuffer(id: id, buffer: buffer, sectionSize: sectionSize, sectionCount: buffer.count / sectionSize)
        return NVSPReply.sendBufferComplete(status: .success, sectionSize: UInt32(sectionSize))
    }

    /// The guest revoked its receive buffer: nothing refers to it any more.
    mutating func dropReceiveBuffer() {
        receiveBuffer = nil
        outstanding = [:]
        outbound.removeAll { if case .transfer = $0 { true } else { false } }
        queuedRanges = 0
        pendingControl = []
    }

    // MARK: RNDIS from the guest

    /// The bytes of one SEND_RNDIS_PKT: the send-buffer section (if any) followed by the page buffers, in order.
    /// Linux may put several RNDIS messages in a section, and may put the last message's header in the section and
    /// its frame in page buffers; read as one stream, every case is the same. The first segment is kept inline, so
    /// the common case (a section alone) allocates nothing.
    struct Stream {
        var head = UnsafeRawBufferPointer(start: nil, count: 0)
        var tail: [UnsafeRawBufferPointer] = []
        var count = 0

        mutating func append(_ segment: UnsafeRawBufferPointer) {
            guard !segment.isEmpty else { return }
            if head.isEmpty { head = segment } else { tail.append(segment) }
            count += segment.count
        }

        var segmentCount: Int { head.isEmpty ? 0 : 1 + tail.count }
        @inline(__always) func segment(_ index: Int) -> UnsafeRawBufferPointer { index == 0 ? head : tail[index - 1] }

        /// Copies [offset, offset + length) out, or nil when it is not all inside the stream.
        func copy(_ offset: Int, _ length: Int) -> [UInt8]? {
            guard offset >= 0, length >= 0, offset <= count, length <= count - offset else { return nil }
            var bytes = [UInt8](repeating: 0, count: length)
            bytes.withUnsafeMutableBytes { gather(offset, into: $0) }
            return bytes
        }

        /// The little-endian UInt32 at `offset` (the caller checked that it lies inside), read once.
        @inline(__always) func u32(_ offset: Int) -> UInt32 {
            if offset + 4 <= head.count { return UInt32(littleEndian: head.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
            return u32Split(offset)
        }

        func u32Split(_ offset: Int) -> UInt32 {
            var value: UInt32 = 0
            withUnsafeMutableBytes(of: &value) { gather(offset, into: $0) }
            return UInt32(littleEndian: value)
        }

        /// The range in place when it lies inside one segment.
        @inline(__always) func contiguous(_ offset: Int, _ length: Int) -> UnsafeRawBufferPointer? {
            if offset + length <= head.count { return UnsafeRawBufferPointer(rebasing: head[offset..<offset + length]) }
            return contiguousInTail(offset, length)
        }

        func contiguousInTail(_ offset: Int, _ length: Int) -> UnsafeRawBufferPointer? {
            var start = offset
            for index in 0..<segmentCount {
                let segment = segment(index)
                if start < segment.count {
                    guard length <= segment.count - start else { return nil }
                    return UnsafeRawBufferPointer(rebasing: segment[start..<start + length])
                }
                start -= segment.count
            }
            return nil
        }

        /// Copies bytes from `offset` to fill `destination` (the caller checked the range).
        func gather(_ offset: Int, into destination: UnsafeMutableRawBufferPointer) {
            var skip = offset
            var filled = 0
            for index in 0..<segmentCount where filled < destination.count {
                let segment = segment(index)
                if skip >= segment.count {
                    skip -= segment.count
                    continue
                }
                let take = min(segment.count - skip, destination.count - filled)
                (destination.baseAddress! + filled).copyMemory(from: segment.baseAddress! + skip, byteCount: take)
                filled += take
                skip = 0
            }
        }
    }

    /// Frames that had to be copied (split across segments, or given a VLAN tag); freed after transmit.
    struct Scratch {
        var buffers: [UnsafeMutableRawBufferPointer] = []
        mutating func allocate(_ count: Int) -> UnsafeMutableRawBufferPointer {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 16)
            buffers.append(buffer)
            return buffer
        }
        func release() { for buffer in buffers { buffer.deallocate() } }
    }

    /// Handles the RNDIS messages of one SEND_RNDIS_PKT; returns the status for its completion. The frames of all of
    /// its RNDIS_PACKET_MSGs (Linux batches up to max_pkt_per_msg in a section) go to `transmit` in one call.
    mutating func transmitRNDIS(_ request: NVSPRNDISPacket, pages: [GPARange],
                                transmit: ([UnsafeRawBufferPointer]) -> Int) -> NVSPStatus {
        var stream = Stream()
        if request.sectionIndex != NVSPLayout.noSection {
            // In place through the optional: copying SendBuffer out would retain its buffer for every packet.
            guard let sectionSize = sendBuffer?.sectionSize, request.sectionIndex < UInt32(sendBuffer!.sectionCount),
                  request.sectionSize <= UInt32(sectionSize),
                  let section = sendBuffer!.buffer.span(Int(request.sectionIndex) * sectionSize, Int(request.sectionSize)) else {
                counters.txDroppedBadSection += 1
                note("send-buffer section \(request.sectionIndex) (\(request.sectionSize) bytes) is not in the send buffer")
                return .failure
            }
            stream.append(UnsafeRawBufferPointer(section))
        }
        for range in pages {
            var remaining = Int(range.byteCount)
            var offset = Int(range.byteOffset)
            for page in range.pageNumbers where remaining > 0 {
                let length = min(remaining, GPARange.pageSize - offset)
                guard page < UInt64(1) << 52,
                      let bytes = memory?.physical(page * UInt64(GPARange.pageSize) + UInt64(offset), length) else {
                    counters.txDroppedBadPages += 1
                    note("page buffer at page 0x\(String(page, radix: 16)) is not guest RAM")
                    return .failure
                }
                stream.append(UnsafeRawBufferPointer(bytes))
                remaining -= length
                offset = 0
            }
        }
        guard stream.count >= RNDISLayout.headerSize else {
            counters.txDroppedMalformed += 1
            note("SEND_RNDIS_PKT with \(stream.count) bytes of RNDIS")
            return .invalidRNDISPacket
        }

        var status = NVSPStatus.success
        // The frame list is kept between calls (its capacity reused); it holds guest pointers only during a call.
        var frames = transmitFrames.frames      // empty
        transmitFrames.frames = []
        var scratch = Scratch()
        defer {
            scratch.release()
            frames.removeAll(keepingCapacity: true)
            transmitFrames.frames = frames
        }
        let limit = max(Int(ndisMTU ?? 0), configuredFrameSize) + 4
        var position = 0
        while position < stream.count {
            guard stream.count - position >= RNDISLayout.headerSize else {
                counters.txDroppedMalformed += 1
                note("\(stream.count - position) stray bytes after the RNDIS messages")
                status = .invalidRNDISPacket
                break
            }
            let type = stream.u32(position)
            let length = Int(stream.u32(position + 4))
            guard length >= RNDISLayout.headerSize, length <= stream.count - position else {
                counters.txDroppedMalformed += 1
                note("RNDIS message of \(length) bytes at \(position) in \(stream.count)")
                status = .invalidRNDISPacket
                break
            }
            if type == RNDISMessageType.packet {
                switch extractFrame(stream, at: position, length: length, frameLimit: limit, scratch: &scratch) {
                case .frame(let frame): frames.append(frame)
                case .notReady: status = .failure
                case .dropped: break
                case .malformed: status = .invalidRNDISPacket
                }
            } else if length <= RNDISLayout.maxControlMessage, let message = stream.copy(position, length) {
                if !control(message) { status = .invalidRNDISPacket }
            } else {
                counters.txDroppedMalformed += 1
                note("RNDIS control message of \(length) bytes")
                status = .invalidRNDISPacket
            }
            position += length
        }

        if !frames.isEmpty {
            let taken = max(0, min(transmit(frames), frames.count))
            var bytes = 0
            for frame in frames[..<taken] { bytes += frame.count }
            counters.txFrames += UInt64(taken)
            counters.txBytes += UInt64(bytes)
            counters.txDroppedBackend += UInt64(frames.count - taken)
        }
        return status
    }

    enum Extracted {
        case frame(UnsafeRawBufferPointer)
        case notReady
        case dropped
        case malformed
    }

    /// One RNDIS_MSG_PACKET at `position` (its `length` bytes lie inside the stream): checks its offsets against the
    /// message and finds the frame. Each header field is read from the guest's bytes once, then checked.
    mutating func extractFrame(_ stream: Stream, at position: Int, length: Int, frameLimit: Int,
                               scratch: inout Scratch) -> Extracted {
        guard rndisState == .initialized else {
            counters.txDroppedNotReady += 1
            note("RNDIS packet before RNDIS INITIALIZE")
            return .notReady
        }
        guard length >= RNDISLayout.packetMessageHeaderSize else {
            counters.txDroppedMalformed += 1
            note("RNDIS packet message of \(length) bytes")
            return .malformed
        }
        // struct rndis_packet after the 8-byte header: data_offset, data_len, then per_pkt_info_offset and
        // per_pkt_info_len at 20 and 24.
        let body = position + RNDISLayout.headerSize
        let dataOffset = stream.u32(body)
        let dataLength = stream.u32(body + 4)
        let perPacketInfoOffset = stream.u32(body + 20)
        let perPacketInfoLength = stream.u32(body + 24)
        // Offsets count from byte 8; everything must lie after the 36-byte header and inside the message.
        let bodyLength = UInt64(length - RNDISLayout.headerSize)
        guard dataLength > 0, dataOffset >= UInt32(RNDISLayout.packetBodySize),
              UInt64(dataOffset) + UInt64(dataLength) <= bodyLength else {
            counters.txDroppedMalformed += 1
            note("RNDIS packet data of \(dataLength) bytes at \(dataOffset) in a \(length)-byte message")
            return .malformed
        }
        var vlan: UInt32?
        if perPacketInfoLength > 0 {
            guard perPacketInfoOffset >= UInt32(RNDISLayout.packetBodySize),
                  UInt64(perPacketInfoOffset) + UInt64(perPacketInfoLength) <= bodyLength,
                  perPacketInfoLength <= 4096,
                  let info = stream.copy(body + Int(perPacketInfoOffset), Int(perPacketInfoLength)),
                  case .valid(let found) = Self.scanPerPacketInfo(info) else {
                counters.txDroppedMalformed += 1
                note("RNDIS per-packet info of \(perPacketInfoLength) bytes at \(perPacketInfoOffset) "
                     + "in a \(length)-byte message")
                return .malformed
            }
            vlan = found
        }
        let frameLength = Int(dataLength)
        let tagged = vlan.map { $0 & 0xFFFF != 0 } ?? false
        guard frameLength + (tagged ? 4 : 0) <= frameLimit else {
            counters.txDroppedOversized += 1
            return .dropped
        }
        guard frameLength >= 14 else {
            counters.txDroppedMalformed += 1
            note("RNDIS packet of \(frameLength) bytes, shorter than an Ethernet header")
            return .malformed
        }
        let start = body + Int(dataOffset)
        if tagged, let info = vlan {
            // IEEE_8021Q_INFO: pri 2:0, cfi 3, vlanid 15:4; the tag goes after the two addresses.
            let tci = UInt16(truncatingIfNeeded: (info & 0x7) << 13 | (info >> 3 & 1) << 12 | (info >> 4 & 0xFFF))
            let frame = scratch.allocate(frameLength + 4)
            stream.gather(start, into: UnsafeMutableRawBufferPointer(rebasing: frame[0..<12]))
            frame[12] = 0x81
            frame[13] = 0x00
            frame[14] = UInt8(tci >> 8)
            frame[15] = UInt8(tci & 0xFF)
            stream.gather(start + 12, into: UnsafeMutableRawBufferPointer(rebasing: frame[16...]))
            return .frame(UnsafeRawBufferPointer(frame))
        }
        if let frame = stream.contiguous(start, frameLength) { return .frame(frame) }
        let frame = scratch.allocate(frameLength)
        stream.gather(start, into: frame)
        return .frame(UnsafeRawBufferPointer(frame))
    }

    enum PerPacketInfo: Equatable {
        /// Well-formed; the IEEE_8021Q_INFO value if there is one.
        case valid(vlan: UInt32?)
        case malformed
    }

    /// Walks per-packet info records ({size, type:31 internal:1, ppi_offset} + data), each inside the previous
    /// one's bounds, and picks out the VLAN tag. Other types (Linux always adds a hash value) are skipped.
    static func scanPerPacketInfo(_ info: [UInt8]) -> PerPacketInfo {
        let wire = WireReader(info)
        var position = 0
        var vlan: UInt32?
        while position < info.count {
            guard info.count - position >= RNDISLayout.perPacketInfoSize else { return .malformed }
            let size = Int(wire.u32(position))
            let type = wire.u32(position + 4)
            let offset = Int(wire.u32(position + 8))
            guard size >= RNDISLayout.perPacketInfoSize, size <= info.count - position,
                  offset >= RNDISLayout.perPacketInfoSize, offset <= size else { return .malformed }
            if type == NDIS.ppiIEEE8021Q && size - offset >= 4 { vlan = wire.u32(position + offset) }
            position += size
        }
        return .valid(vlan: vlan)
    }

    // MARK: RNDIS control

    /// Answers one control message; false when it was malformed.
    mutating func control(_ message: [UInt8]) -> Bool {
        let request: RNDISRequest
        do { request = try RNDISRequest(decoding: message) } catch {
            note("\(error)")
            if case .badInformationBuffer = error, let requestID = RNDISRequest.requestID(of: message) {
                // A request hv can name: the RNDIS answer carries the error.
                let type = WireReader(message).u32(0)
                answer(type == RNDISMessageType.query
                       ? RNDISReply.queryComplete(requestID: requestID, status: RNDISStatus.invalidData, information: [])
                       : RNDISReply.setComplete(requestID: requestID, status: RNDISStatus.invalidData))
                return true
            }
            counters.txDroppedMalformed += 1
            return false
        }
        switch request {
        case .initialize(let requestID, _, _, _):
            rndisState = .initialized
            packetFilter = 0
            answer(RNDISReply.initializeComplete(requestID: requestID, status: RNDISStatus.success,
                                                 maxPacketsPerMessage: configuration.maxPacketsPerMessage,
                                                 maxTransferSize: UInt32(configuration.maxPages * GPARange.pageSize),
                                                 alignmentShift: 3))
            if linkUp { answer(RNDISReply.indicateStatus(RNDISStatus.mediaConnect), counted: false) }
        case .query(let requestID, let oid, let information):
            let (status, data) = query(oid, information)
            answer(RNDISReply.queryComplete(requestID: requestID, status: status, information: data))
        case .set(let requestID, let oid, let information):
            answer(RNDISReply.setComplete(requestID: requestID, status: set(oid, information)))
        case .reset:
            answer(RNDISReply.resetComplete(status: RNDISStatus.success, addressingReset: 0))
        case .keepalive(let requestID):
            answer(RNDISReply.keepaliveComplete(requestID: requestID, status: RNDISStatus.success))
        case .halt:
            // No answer; Linux then waits for every outstanding completion and revokes the buffers.
            rndisState = .halted
            packetFilter = 0
        }
        return true
    }

    func u32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }

    mutating func query(_ oid: UInt32, _ information: [UInt8]) -> (UInt32, [UInt8]) {
        switch oid {
        case RNDISOID.permanentAddress: return (RNDISStatus.success, configuration.mac)
        case RNDISOID.currentAddress: return (RNDISStatus.success, currentMAC)
        case RNDISOID.maximumFrameSize: return (RNDISStatus.success, u32(UInt32(configuration.mtu)))
        case RNDISOID.maximumTotalSize: return (RNDISStatus.success, u32(UInt32(configuration.mtu + 14)))
        case RNDISOID.linkSpeed: return (RNDISStatus.success, u32(configuration.linkSpeed))
        case RNDISOID.mediaConnectStatus: return (RNDISStatus.success, u32(linkUp ? 0 : 1))
        case RNDISOID.currentPacketFilter: return (RNDISStatus.success, u32(packetFilter))
        case RNDISOID.tcpOffloadHardwareCapabilities:
            // Answer the revision asked for (its header is in the information buffer), no larger than the size
            // asked for; without one, the revision Linux uses at this NVSP version.
            var revision = NDISOffload.revision(for: version ?? .v1)
            if information.count >= RNDISLayout.objectHeaderSize, information[0] == NDIS.objectTypeOffload {
                let size = Int(information[2]) | Int(information[3]) << 8
                revision = min(max(information[1], 1), 3)
                while revision > 1, NDIS.offloadSizes[revision]! > size { revision -= 1 }
            }
            return (RNDISStatus.success, NDISOffload.noOffloads(revision: revision))
        default:
            // OID_GEN_FRIENDLY_NAME (Linux keeps no alias), OID_GEN_RECEIVE_SCALE_CAPABILITIES (no RSS: Linux stays
            // on one channel), and everything else.
            counters.unsupportedOIDs += 1
            return (RNDISStatus.notSupported, [])
        }
    }

    mutating func set(_ oid: UInt32, _ information: [UInt8]) -> UInt32 {
        switch oid {
        case RNDISOID.currentPacketFilter:
            guard information.count >= 4 else { return RNDISStatus.invalidLength }
            packetFilter = WireReader(information).u32(0)
            return RNDISStatus.success
        case RNDISOID.tcpOffloadParameters:
            guard information.count >= RNDISLayout.objectHeaderSize else { return RNDISStatus.invalidLength }
            guard information[0] == NDIS.objectTypeDefault else { return RNDISStatus.invalidData }
            return NDISOffloadParameters.enablesUnsupported(information) ? RNDISStatus.notSupported : RNDISStatus.success
        case RNDISOID.rndisConfigParameter:
            return setConfigParameter(information)
        default:
            counters.unsupportedOIDs += 1
            return RNDISStatus.notSupported
        }
    }

    /// OID_GEN_RNDIS_CONFIG_PARAMETER: rndis_config_parameter_info {name_offset, name_length, type, value_offset,
    /// value_length}, offsets from its start, strings UTF-16LE. Only "NetworkAddress" (a MAC as 12 hex digits, how
    /// Linux's rndis_filter_set_device_mac sends it) is understood.
    mutating func setConfigParameter(_ information: [UInt8]) -> UInt32 {
        guard information.count >= RNDISLayout.configParameterInfoSize else { return RNDISStatus.invalidLength }
        let wire = WireReader(information)
        func utf16(_ offset: UInt32, _ length: UInt32) -> String? {
            guard length % 2 == 0, UInt64(offset) + UInt64(length) <= UInt64(information.count) else { return nil }
            let units = stride(from: Int(offset), to: Int(offset) + Int(length), by: 2).map {
                UInt16(information[$0]) | UInt16(information[$0 + 1]) << 8
            }
            return String(decoding: units, as: UTF16.self)
        }
        guard let name = utf16(wire.u32(0), wire.u32(4)) else { return RNDISStatus.invalidData }
        guard name.lowercased() == "networkaddress" else {
            counters.unsupportedOIDs += 1
            return RNDISStatus.notSupported
        }
        guard wire.u32(8) == NDIS.configParameterString, let value = utf16(wire.u32(12), wire.u32(16)) else {
            return RNDISStatus.invalidData
        }
        let digits = Array(value.filter(\.isHexDigit))
        guard digits.count == 12, value.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "-" }) else {
            return RNDISStatus.invalidData
        }
        let mac = stride(from: 0, to: 12, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
        guard mac[0] & 1 == 0 else { return RNDISStatus.invalidData }
        currentMAC = mac
        return RNDISStatus.success
    }

    /// Writes an RNDIS answer into a free receive section and queues its announcement (channel type 1); without a
    /// free section it waits (in order) for the guest to complete an earlier packet.
    mutating func answer(_ message: [UInt8], counted: Bool = true) {
        if counted { counters.controlRequests += 1 }
        guard receiveBuffer != nil, message.count <= receiveBuffer!.sectionSize else {
            counters.controlDropped += 1
            note("RNDIS answer dropped: no receive buffer")
            return
        }
        guard pendingControl.isEmpty, writeControl(message) else {
            if pendingControl.count < configuration.maxPendingControl {
                pendingControl.append(message)
            } else {
                counters.controlDropped += 1
                note("RNDIS answer dropped: \(pendingControl.count) already wait for a receive section")
            }
            return
        }
    }

    mutating func writeControl(_ message: [UInt8]) -> Bool {
        guard let sectionSize = receiveBuffer?.sectionSize, let section = receiveBuffer!.free.popLast() else { return false }
        guard let span = receiveBuffer!.buffer.span(Int(section) * sectionSize, message.count) else {
            receiveBuffer!.free.append(section)
            return false
        }
        span.copyBytes(from: message)
        enqueue(section: section, length: message.count, channelType: NVSPLayout.controlChannel)
        return true
    }

    mutating func writePendingControl() {
        while let message = pendingControl.first, writeControl(message) { pendingControl.removeFirst() }
    }
}
