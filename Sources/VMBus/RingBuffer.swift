// The Hyper-V ring buffer (vmbus-protocol.md §4; Linux drivers/hv/ring_buffer.c): a 4 KiB control page, then a
// data area of packets, each `vmpacket_descriptor` + body padded to 8 bytes + an 8-byte trailer. A channel has two:
// the guest writes its outbound ring and hv reads it (`RingBufferReader`); hv writes the guest's inbound ring
// (`RingBufferWriter`). Both live in guest memory, so every value read from them is hostile: indices are checked
// before use, descriptors before their lengths are trusted, and neither side's bookkeeping trusts the other's.

import Synchronization

/// The bytes a ring lives in: control page at offset 0, data area from 4096. Guest rings are GPADL pages that are
/// not contiguous in hv's address space, so access goes through this instead of a pointer. Offsets are from the
/// start of the ring; an implementation checks them against `count` and throws rather than trapping.
public protocol RingMemory {
    /// Bytes in all: control page plus data area.
    var count: Int { get }
    func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(VMBusError)
    func write(at offset: Int, from buffer: UnsafeRawBufferPointer) throws(VMBusError)
    /// One 4-byte load of a control-page field, read once (the guest may change it at any time).
    func loadUInt32(at offset: Int) throws(VMBusError) -> UInt32
    /// One 4-byte store of a control-page field.
    func storeUInt32(_ value: UInt32, at offset: Int) throws(VMBusError)
    /// The data area mapped twice in a row (2 × data size bytes), so that any packet is one contiguous span even
    /// where it wraps; nil when the memory is not mapped that way (then packets are copied out).
    var mirroredData: UnsafeMutableRawPointer? { get }
}

extension RingMemory {
    public var mirroredData: UnsafeMutableRawPointer? { nil }

    /// Through `read`; an implementation over shared memory overrides this with a single aligned atomic load.
    public func loadUInt32(at offset: Int) throws(VMBusError) -> UInt32 {
        var value: UInt32 = 0
        try withUnsafeMutableBytes(of: &value) { (buffer) throws(VMBusError) in try read(at: offset, into: buffer) }
        return UInt32(littleEndian: value)
    }

    /// Through `write`; an implementation over shared memory overrides this with a single aligned atomic store.
    public func storeUInt32(_ value: UInt32, at offset: Int) throws(VMBusError) {
        var littleEndian = value.littleEndian
        try withUnsafeBytes(of: &littleEndian) { (buffer) throws(VMBusError) in try write(at: offset, from: buffer) }
    }
}

/// Offsets and sizes of the ring layout (struct hv_ring_buffer).
public enum RingLayout {
    public static let controlPageSize = 4096
    public static let writeIndexOffset = 0
    public static let readIndexOffset = 4
    /// Set by the ring's reader: "do not signal me".
    public static let interruptMaskOffset = 8
    /// Set by the ring's writer: "signal me when this many bytes are free" (0 = do not).
    public static let pendingSendSizeOffset = 12
    /// Bit 0, feat_pending_send_sz: the writer of this ring sets pending_send_sz and honours it in the other ring.
    public static let featureBitsOffset = 64
    public static let featurePendingSendSize: UInt32 = 1
    /// The u64 after every packet: the packet's start offset in the upper 32 bits. Not counted in len8.
    public static let trailerSize = 8
    /// Indices and packet lengths are multiples of this.
    public static let alignment = 8
}

/// vmpacket_descriptor type (enum vmbus_packet_type).
public struct PacketType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let invalid = PacketType(rawValue: 0x0)
    public static let synch = PacketType(rawValue: 0x1)
    public static let addTransferPageSet = PacketType(rawValue: 0x2)
    public static let removeTransferPageSet = PacketType(rawValue: 0x3)
    public static let establishGPADL = PacketType(rawValue: 0x4)
    public static let teardownGPADL = PacketType(rawValue: 0x5)
    /// Payload follows the descriptor (NVSP/VSTOR/IC messages).
    public static let dataInband = PacketType(rawValue: 0x6)
    /// Host → guest: data already placed in a guest receive buffer (NetVSC).
    public static let dataUsingTransferPages = PacketType(rawValue: 0x7)
    public static let dataUsingGPADL = PacketType(rawValue: 0x8)
    /// Guest → host: data buffers described by guest PFNs (GPA ranges after the descriptor).
    public static let dataUsingGPADirect = PacketType(rawValue: 0x9)
    public static let cancelRequest = PacketType(rawValue: 0xA)
    /// Completion of a packet that asked for one; echoes its transaction id.
    public static let completion = PacketType(rawValue: 0xB)
    public static let dataUsingAdditionalPacket = PacketType(rawValue: 0xC)
    public static let additionalData = PacketType(rawValue: 0xD)

    public var description: String { "packet type \(rawValue)" }
}

/// vmpacket_descriptor: the 16 bytes that start every packet on a ring.
public struct PacketDescriptor: Equatable, Sendable {
    public static let size = 16
    /// Descriptor flag bit 0 (VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED).
    public static let completionRequested: UInt16 = 1

    public var type: PacketType
    /// Where the payload starts, from the descriptor, in 8-byte units (≥ 2).
    public var dataOffset8: UInt16
    /// The whole packet from the descriptor on, in 8-byte units (≥ dataOffset8); the trailer is not counted.
    public var length8: UInt16
    public var flags: UInt16
    /// Echoed unchanged in the completion.
    public var transactionID: UInt64

    public init(type: PacketType, dataOffset8: UInt16, length8: UInt16, flags: UInt16, transactionID: UInt64) {
        self.type = type
        self.dataOffset8 = dataOffset8
        self.length8 = length8
        self.flags = flags
        self.transactionID = transactionID
    }

    /// From the first 16 of `bytes` (the caller has them).
    init(_ bytes: [UInt8]) {
        self.init(bytes.withUnsafeBytes { $0 })
    }

    /// From the first 16 bytes at `raw`, each read once.
    init(_ raw: UnsafeRawBufferPointer) {
        type = PacketType(rawValue: UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt16.self)))
        dataOffset8 = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        length8 = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 4, as: UInt16.self))
        flags = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
        transactionID = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
    }

    public var bytes: [UInt8] {
        var wire = WireWriter(capacity: Self.size)
        wire.u16(type.rawValue)
        wire.u16(dataOffset8)
        wire.u16(length8)
        wire.u16(flags)
        wire.u64(transactionID)
        return wire.bytes
    }
}

/// One packet read from a ring.
public struct RingPacket: Equatable, Sendable {
    public var descriptor: PacketDescriptor
    /// The whole packet, descriptor included: length8 × 8 bytes, trailer excluded.
    public var bytes: [UInt8]

    /// The type-specific header between the descriptor and the payload (GPA ranges, transfer-page ranges).
    public var typeSpecificHeader: ArraySlice<UInt8> { bytes[PacketDescriptor.size..<Int(descriptor.dataOffset8) * 8] }
    /// From dataOffset8 × 8 to the end, padding included (inner protocols carry their own lengths).
    public var payload: ArraySlice<UInt8> { bytes[(Int(descriptor.dataOffset8) * 8)...] }
}

/// The outcome of offering a packet to a ring writer: a full ring is an expected condition, not an error.
public enum RingWriteResult: Equatable, Sendable {
    case written
    /// `required` bytes (packet + trailer) do not fit in the `available` free bytes; the ring is unchanged.
    case full(required: Int, available: Int)
}

/// Eight zero bytes that live as long as the process, for padding packets to 8. nonisolated(unsafe): written
/// once when initialised, only read afterwards.
nonisolated(unsafe) private let ringZeroPadding: UnsafeRawBufferPointer = {
    let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 8)
    bytes.initializeMemory(as: UInt8.self, repeating: 0)
    return UnsafeRawBufferPointer(bytes)
}()

/// `count` (0–7) bytes of zero padding.
func ringPadding(_ count: Int) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: ringZeroPadding[..<count]) }

/// Geometry and checked access shared by the reader and the writer.
struct RingData<Memory: RingMemory> {
    let memory: Memory
    let dataSize: Int

    init(memory: Memory) throws(VMBusError) {
        let dataSize = memory.count - RingLayout.controlPageSize
        guard dataSize >= 2 * RingLayout.alignment, dataSize % RingLayout.alignment == 0,
              dataSize <= Int(UInt32.max) else { throw .ringSizeInvalid(memory.count) }
        self.memory = memory
        self.dataSize = dataSize
    }

    /// Loads an index from the control page and checks it: 8-byte aligned and inside the data area.
    func index(_ field: RingIndexField) throws(VMBusError) -> Int {
        let offset = field == .writeIndex ? RingLayout.writeIndexOffset : RingLayout.readIndexOffset
        let raw = try memory.loadUInt32(at: offset)
        guard raw % UInt32(RingLayout.alignment) == 0, Int(raw) < dataSize else {
            throw .ringIndexInvalid(field: field, value: raw, dataSize: dataSize)
        }
        return Int(raw)
    }

    func store(_ field: RingIndexField, _ value: Int) throws(VMBusError) {
        let offset = field == .writeIndex ? RingLayout.writeIndexOffset : RingLayout.readIndexOffset
        try memory.storeUInt32(UInt32(value), at: offset)
    }

    /// Bytes from `from` to `to` going forward around the ring: what is readable from a read index to a write index.
    func distance(from: Int, to: Int) -> Int { to >= from ? to - from : dataSize - from + to }

    func advance(_ index: Int, by count: Int) -> Int { (index + count) % dataSize }

    /// Copies `count` bytes out of the data area from `start`, in two pieces where they wrap past the end.
    func copyOut(from start: Int, count: Int) throws(VMBusError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        let first = min(count, dataSize - start)
        // Array's withUnsafe*Bytes only rethrows untyped errors, so the typed error is carried out by hand.
        var failure: VMBusError?
        bytes.withUnsafeMutableBytes { buffer in
            do throws(VMBusError) {
                try memory.read(at: RingLayout.controlPageSize + start,
                                into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<first]))
                if first < count {
                    try memory.read(at: RingLayout.controlPageSize,
                                    into: UnsafeMutableRawBufferPointer(rebasing: buffer[first...]))
                }
            } catch { failure = error }
        }
        if let failure { throw failure }
        return bytes
    }

    /// Copies `bytes` into the data area from `start`, wrapping past the end; returns the index after them.
    @discardableResult
    func copyIn(_ bytes: UnsafeRawBufferPointer, at start: Int) throws(VMBusError) -> Int {
        guard bytes.count > 0 else { return start }
        let first = min(bytes.count, dataSize - start)
        try memory.write(at: RingLayout.controlPageSize + start, from: UnsafeRawBufferPointer(rebasing: bytes[..<first]))
        if first < bytes.count {
            try memory.write(at: RingLayout.controlPageSize, from: UnsafeRawBufferPointer(rebasing: bytes[first...]))
        }
        return advance(start, by: bytes.count)
    }
}

/// A packet on a ring, seen in place: its bytes are the ring's own when the memory is mirrored (and the guest
/// may change them under hv: copy what you check before trusting it), or a private copy otherwise. Valid until
/// the reader moves on.
public struct RingPacketView {
    public let descriptor: PacketDescriptor
    let shared: UnsafeRawBufferPointer?
    let copied: [UInt8]?
    /// Where the packet after this one starts.
    let nextIndex: Int

    /// The whole packet, descriptor included (length8 × 8 bytes, trailer excluded).
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        if let shared { return try body(shared) }
        return try copied!.withUnsafeBytes(body)
    }

    /// A copy of the packet, for code that keeps it.
    public var packet: RingPacket { RingPacket(descriptor: descriptor, bytes: withBytes { Array($0) }) }
}

/// hv's side of a ring the guest writes (the guest's outbound ring). Reads packets at a private index and
/// publishes read_index only on `commit()`, which also decides whether the guest, blocked for space, must be
/// signalled: a batch of reads ends in one decision.
public struct RingBufferReader<Memory: RingMemory> {
    let ring: RingData<Memory>
    /// Where the next packet starts; ahead of the published read_index between `next` and `commit`.
    private var readIndex: Int
    /// What read_index in the control page holds (hv owns it; the guest's copy is never read back).
    private var publishedReadIndex: Int

    /// Starts reading where the control page's read_index says (0 on a freshly opened channel).
    public init(memory: Memory) throws(VMBusError) {
        ring = try RingData(memory: memory)
        readIndex = try ring.index(.readIndex)
        publishedReadIndex = readIndex
    }

    public var dataSize: Int { ring.dataSize }

    /// Bytes consumed since the last `commit`: space the guest gets back on the next one.
    public var uncommittedBytes: Int { ring.distance(from: publishedReadIndex, to: readIndex) }

    /// Bytes the guest has written that this reader has not consumed yet.
    public func bytesToRead() throws(VMBusError) -> Int {
        ring.distance(from: readIndex, to: try ring.index(.writeIndex))
    }

    /// The next packet without consuming it, or nil when the ring is empty.
    public func peek(maxPacketSize: Int) throws(VMBusError) -> RingPacket? {
        try packet(maxPacketSize: maxPacketSize)?.packet
    }

    /// The next packet, consumed (read_index moves on `commit()`), or nil when the ring is empty. A packet
    /// longer than `maxPacketSize` or malformed is an error and is not consumed.
    public mutating func next(maxPacketSize: Int) throws(VMBusError) -> RingPacket? {
        guard let (packet, nextIndex) = try packet(maxPacketSize: maxPacketSize) else { return nil }
        readIndex = nextIndex
        return packet
    }

    private func packet(maxPacketSize: Int) throws(VMBusError) -> (packet: RingPacket, nextIndex: Int)? {
        guard let view = try peekView(maxPacketSize: maxPacketSize) else { return nil }
        return (view.packet, view.nextIndex)
    }

    /// The next packet in place, without consuming it (`consume` does), or nil when the ring is empty. A packet
    /// longer than `maxPacketSize` or malformed is an error.
    public func peekView(maxPacketSize: Int) throws(VMBusError) -> RingPacketView? {
        let writeIndex = try ring.index(.writeIndex)
        // Acquire: the packet bytes are read only after the write_index that covers them.
        atomicMemoryFence(ordering: .acquiring)
        let available = ring.distance(from: readIndex, to: writeIndex)
        if available == 0 { return nil }
        guard available >= PacketDescriptor.size + RingLayout.trailerSize else {
            throw .ringPacketTruncated(available: available)
        }
        // Read the descriptor once into hv's memory; the checks below use this copy, not the ring.
        let descriptor: PacketDescriptor
        if let data = ring.memory.mirroredData {
            descriptor = PacketDescriptor(UnsafeRawBufferPointer(start: data + readIndex, count: PacketDescriptor.size))
        } else {
            descriptor = PacketDescriptor(try ring.copyOut(from: readIndex, count: PacketDescriptor.size))
        }
        let length = Int(descriptor.length8) * 8
        guard descriptor.dataOffset8 >= 2, descriptor.dataOffset8 <= descriptor.length8,
              length + RingLayout.trailerSize <= available else {
            throw .ringPacketInvalid(offset8: descriptor.dataOffset8, len8: descriptor.length8, available: available)
        }
        guard length <= maxPacketSize else { throw .ringPacketTooLarge(length: length, limit: maxPacketSize) }
        let next = ring.advance(readIndex, by: length + RingLayout.trailerSize)
        if let data = ring.memory.mirroredData {
            return RingPacketView(descriptor: descriptor, shared: UnsafeRawBufferPointer(start: data + readIndex, count: length),
                                  copied: nil, nextIndex: next)
        }
        return RingPacketView(descriptor: descriptor, shared: nil, copied: try ring.copyOut(from: readIndex, count: length),
                              nextIndex: next)
    }

    /// Consumes the packet `peekView` returned (read_index moves on `commit()`).
    public mutating func consume(_ view: RingPacketView) {
        readIndex = view.nextIndex
    }

    /// Reads up to `maxPackets` packets and commits once: one signalling decision for the batch. A malformed
    /// packet ends the batch with an error after the packets before it have been committed.
    public mutating func readBatch(
        maxPackets: Int, maxPacketSize: Int
    ) throws(VMBusError) -> (packets: [RingPacket], signalWriter: Bool) {
        var packets: [RingPacket] = []
        do {
            while packets.count < maxPackets, let packet = try next(maxPacketSize: maxPacketSize) {
                packets.append(packet)
            }
        } catch {
            _ = try commit()
            throw error
        }
        return (packets, try commit())
    }

    /// Publishes read_index and says whether to signal the writer: only when it asked (feat_pending_send_sz and
    /// a nonzero pending_send_sz) and this commit took the free space from "not enough" (≤ pending_send_sz) to
    /// "enough" (> pending_send_sz), as Linux's hv_pkt_iter_close decides for its own inbound ring.
    public mutating func commit() throws(VMBusError) -> Bool {
        guard readIndex != publishedReadIndex else { return false }
        let bytesRead = ring.distance(from: publishedReadIndex, to: readIndex)
        // Release: every read of the consumed packets is done before the writer may reuse their space.
        atomicMemoryFence(ordering: .releasing)
        try ring.store(.readIndex, readIndex)
        publishedReadIndex = readIndex
        guard try ring.memory.loadUInt32(at: RingLayout.featureBitsOffset) & RingLayout.featurePendingSendSize != 0 else {
            return false
        }
        // Full barrier: the read_index store is visible before pending_send_sz is sampled, or a writer that set
        // pending_send_sz and re-checked the free space in between would wait forever.
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        let pendingSendSize = try ring.memory.loadUInt32(at: RingLayout.pendingSendSizeOffset)
        if pendingSendSize == 0 { return false }
        atomicMemoryFence(ordering: .acquiring)
        let freeNow = UInt32(ring.dataSize - ring.distance(from: readIndex, to: try ring.index(.writeIndex)))
        // Wrapping as in Linux: if the writer wrote more meanwhile, "before" underflows to large = "was not blocked".
        let freeBefore = freeNow &- UInt32(bytesRead)
        return freeBefore <= pendingSendSize && freeNow > pendingSendSize
    }

    /// Sets this ring's interrupt_mask: hv is draining and needs no signal (Linux's hv_begin_read/hv_end_read).
    /// After unmasking, check `bytesToRead()` again: a packet written just before would otherwise go unnoticed.
    public func setInterruptMask(_ masked: Bool) throws(VMBusError) {
        try ring.memory.storeUInt32(masked ? 1 : 0, at: RingLayout.interruptMaskOffset)
        // Full barrier: the mask store is ordered before the caller's next look at write_index.
        atomicMemoryFence(ordering: .sequentiallyConsistent)
    }
}

/// hv's side of a ring the guest reads (the guest's inbound ring). Writes packets at a private index and
/// publishes write_index only on `commit()`, which decides whether to interrupt the guest: a batch of writes
/// ends in one decision.
public struct RingBufferWriter<Memory: RingMemory> {
    let ring: RingData<Memory>
    /// Where the next packet goes; ahead of the published write_index between `write` and `commit`.
    private var writeIndex: Int
    /// What write_index in the control page holds. hv owns it and never reads it back: a guest scribbling on
    /// it only confuses itself.
    private var publishedWriteIndex: Int

    /// Starts writing where the control page's write_index says (0 on a freshly opened channel).
    public init(memory: Memory) throws(VMBusError) {
        ring = try RingData(memory: memory)
        writeIndex = try ring.index(.writeIndex)
        publishedWriteIndex = writeIndex
    }

    public var dataSize: Int { ring.dataSize }

    /// Free bytes as the protocol counts them (data size minus unread bytes). A packet fits only if its length
    /// plus trailer is strictly less, so the ring never becomes completely full (full would look empty).
    public func freeBytes() throws(VMBusError) -> Int {
        ring.dataSize - ring.distance(from: try ring.index(.readIndex), to: writeIndex)
    }

    /// The largest packet (descriptor to end, trailer excluded) this ring can ever take.
    public var maxPacketLength: Int {
        min(ring.dataSize - RingLayout.trailerSize - RingLayout.alignment, Int(UInt16.max) * 8)
    }

    /// Stages one packet: descriptor, `header` (the type-specific part, padded to 8), `payload`, zero padding to
    /// 8, trailer. The guest sees it after `commit()`. Returns `.full` and changes nothing when it does not fit.
    public mutating func write(
        type: PacketType, flags: UInt16 = 0, transactionID: UInt64, header: [UInt8] = [], payload: [UInt8]
    ) throws(VMBusError) -> RingWriteResult {
        // Array's withUnsafeBytes only rethrows untyped errors, so the typed error is carried out by hand.
        var outcome: Result<RingWriteResult, VMBusError> = .failure(.ringMemoryOutOfRange(offset: 0, length: 0, size: 0))
        header.withUnsafeBytes { header in
            payload.withUnsafeBytes { payload in
                do throws(VMBusError) {
                    outcome = .success(try write(type: type, flags: flags, transactionID: transactionID, header: header, payload: payload))
                } catch { outcome = .failure(error) }
            }
        }
        return try outcome.get()
    }

    /// As above, from bytes anywhere (a packet still on another ring, for instance): copied once, in place.
    public mutating func write(
        type: PacketType, flags: UInt16 = 0, transactionID: UInt64, header: UnsafeRawBufferPointer,
        payload: UnsafeRawBufferPointer
    ) throws(VMBusError) -> RingWriteResult {
        let dataOffset = (PacketDescriptor.size + header.count + 7) / 8 * 8
        let length = (dataOffset + payload.count + 7) / 8 * 8
        guard length <= maxPacketLength else { throw .ringPacketTooLarge(length: length, limit: maxPacketLength) }
        let required = length + RingLayout.trailerSize
        let available = try freeBytes()
        // Strictly greater (Linux: `bytes_avail_towrite <= totalbytes_towrite` is full).
        guard available > required else { return .full(required: required, available: available) }

        // Descriptor, header, padding to 8, payload, padding to 8, then the trailer: this packet's start offset
        // in the upper half (Linux's hv_get_ring_bufferindices).
        var fixed: (descriptor: (UInt16, UInt16, UInt16, UInt16, UInt64), trailer: UInt64) = (
            (type.rawValue.littleEndian, UInt16(dataOffset / 8).littleEndian, UInt16(length / 8).littleEndian,
             flags.littleEndian, transactionID.littleEndian),
            (UInt64(writeIndex) << 32).littleEndian)
        var position = writeIndex
        try withUnsafeBytes(of: &fixed.descriptor) { (raw) throws(VMBusError) in position = try ring.copyIn(raw, at: position) }
        position = try ring.copyIn(header, at: position)
        position = try ring.copyIn(ringPadding(dataOffset - PacketDescriptor.size - header.count), at: position)
        position = try ring.copyIn(payload, at: position)
        position = try ring.copyIn(ringPadding(length - dataOffset - payload.count), at: position)
        try withUnsafeBytes(of: &fixed.trailer) { (raw) throws(VMBusError) in position = try ring.copyIn(raw, at: position) }
        writeIndex = position
        return .written
    }


    /// Publishes write_index and says whether to interrupt the reader: only when the ring was empty before this
    /// batch (read_index == the write_index published before it) and the reader's interrupt_mask is 0.
    public mutating func commit() throws(VMBusError) -> Bool {
        guard writeIndex != publishedWriteIndex else { return false }
        let batchStart = publishedWriteIndex
        // Release: the packets are visible before the write_index that covers them.
        atomicMemoryFence(ordering: .releasing)
        try ring.store(.writeIndex, writeIndex)
        publishedWriteIndex = writeIndex
        // Full barrier: the write_index store is ordered before the loads of interrupt_mask and read_index, or a
        // reader that unmasked and re-checked in between would miss both the data and the interrupt.
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if try ring.memory.loadUInt32(at: RingLayout.interruptMaskOffset) != 0 { return false }
        return try ring.index(.readIndex) == batchStart
    }

    /// The out-of-space protocol: asks the reader to signal once `bytes` (rounded up to 8) are free, by setting
    /// pending_send_sz and the feature bit in this ring. Returns true when that much is already free, in which
    /// case the caller retries now instead of waiting (the re-check that avoids a lost wakeup).
    public func requestSpace(bytes: Int) throws(VMBusError) -> Bool {
        let needed = UInt32(clamping: (bytes + 7) / 8 * 8)
        let features = try ring.memory.loadUInt32(at: RingLayout.featureBitsOffset)
        try ring.memory.storeUInt32(features | RingLayout.featurePendingSendSize, at: RingLayout.featureBitsOffset)
        try ring.memory.storeUInt32(needed, at: RingLayout.pendingSendSizeOffset)
        // Full barrier: pending_send_sz is visible before read_index is sampled again.
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        return try freeBytes() > Int(needed)
    }

    /// Withdraws a `requestSpace` once the packet has been written.
    public func clearSpaceRequest() throws(VMBusError) {
        try ring.memory.storeUInt32(0, at: RingLayout.pendingSendSizeOffset)
    }
}
