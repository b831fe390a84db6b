import Testing
@testable import VMBus

@Suite struct RingBufferTests {
    @Test func layoutSizes() {
        #expect(PacketDescriptor.size == 16)
        #expect(PacketDescriptor(type: .dataInband, dataOffset8: 2, length8: 3, flags: 1, transactionID: 7).bytes.count == 16)
        #expect(RingLayout.controlPageSize == 4096 && RingLayout.trailerSize == 8)
        #expect(RingLayout.featureBitsOffset == 64 && RingLayout.pendingSendSizeOffset == 12)
    }

    @Test func ringsTooSmallOrUnalignedAreRejected() {
        #expect(throws: VMBusError.ringSizeInvalid(4096 + 12)) {
            try RingBufferReader(memory: PagedRingMemory(dataSize: 12))
        }
        #expect(throws: VMBusError.ringSizeInvalid(4096 + 8)) {
            try RingBufferWriter(memory: PagedRingMemory(dataSize: 8))
        }
    }

    @Test func emptyRingReadsNothingAndSignalsNothing() throws {
        var reader = try RingBufferReader(memory: PagedRingMemory(dataSize: 256))
        #expect(try reader.next(maxPacketSize: 4096) == nil)
        #expect(try reader.bytesToRead() == 0)
        #expect(try reader.commit() == false)
    }

    /// A packet the way Linux's hv_ringbuffer_write lays it out, built by hand: inband, offset8 2, len8 3,
    /// completion requested, 8 payload bytes, then the trailer with the start offset in the upper half.
    @Test func readsAPacketAsLinuxWritesIt() throws {
        let memory = PagedRingMemory(dataSize: 256)
        let packet: [UInt8] = [6, 0, 2, 0, 3, 0, 1, 0] + littleEndian(0x1122_3344_5566_7788) + Array(1...8)
        memory.setData(packet + littleEndian(0), at: 0)
        memory.writeIndex = 32
        var reader = try RingBufferReader(memory: memory)
        let read = try #require(try reader.next(maxPacketSize: 4096))
        #expect(read.descriptor == PacketDescriptor(type: .dataInband, dataOffset8: 2, length8: 3,
                                                    flags: PacketDescriptor.completionRequested,
                                                    transactionID: 0x1122_3344_5566_7788))
        #expect(Array(read.payload) == Array(1...8))
        #expect(read.typeSpecificHeader.isEmpty)
        #expect(memory.readIndex == 0)                          // not published before commit
        #expect(try reader.commit() == false)
        #expect(memory.readIndex == 32)
        #expect(try reader.next(maxPacketSize: 4096) == nil)
    }

    @Test func writesDescriptorPayloadPaddingAndTrailer() throws {
        let memory = PagedRingMemory(dataSize: 256)
        memory.readIndex = 64
        memory.writeIndex = 64
        var writer = try RingBufferWriter(memory: memory)
        let result = try writer.write(type: .completion, transactionID: 42, payload: [0xA1, 0xA2, 0xA3])
        #expect(result == .written)
        #expect(memory.writeIndex == 64)                        // staged, not visible yet
        #expect(try writer.commit())
        #expect(memory.writeIndex == 64 + 24 + 8)
        #expect(memory.data(at: 64, count: 16) == [0x0B, 0, 2, 0, 3, 0, 0, 0] + littleEndian(42))
        #expect(memory.data(at: 80, count: 8) == [0xA1, 0xA2, 0xA3, 0, 0, 0, 0, 0])
        // Trailer: the packet's start (64) in the upper 32 bits.
        #expect(memory.data(at: 88, count: 8) == littleEndian(64 << 32))
    }

    @Test func typeSpecificHeaderIsPaddedAndFramesThePayload() throws {
        let memory = PagedRingMemory(dataSize: 512)
        var writer = try RingBufferWriter(memory: memory)
        // Transfer-page header: pageset id 0xCAFE, sender_owns 0, reserved, range_cnt 1, one range (12 bytes → 16).
        let header: [UInt8] = [0xFE, 0xCA, 0, 0, 1, 0, 0, 0, 0x40, 0, 0, 0]
        #expect(try writer.write(type: .dataUsingTransferPages, transactionID: 1, header: header, payload: [9, 9]) == .written)
        _ = try writer.commit()
        var reader = try RingBufferReader(memory: memory)
        let packet = try #require(try reader.next(maxPacketSize: 4096))
        #expect(packet.descriptor.dataOffset8 == 4 && packet.descriptor.length8 == 5)
        #expect(Array(packet.typeSpecificHeader) == header + [0, 0, 0, 0])
        #expect(Array(packet.payload) == [9, 9, 0, 0, 0, 0, 0, 0])
    }

    @Test func aPacketWrapsAroundTheEndOfTheDataArea() throws {
        let memory = PagedRingMemory(dataSize: 128, pageSize: 24)
        memory.readIndex = 96
        memory.writeIndex = 96
        var writer = try RingBufferWriter(memory: memory)
        let payload = (0..<40).map { UInt8($0 + 1) }
        #expect(try writer.write(type: .dataInband, transactionID: 0xABCD, payload: payload) == .written)
        #expect(try writer.commit())
        // 16 + 40 = 56 bytes from 96: 32 before the end, 24 after it; then the trailer at 24..<32.
        #expect(memory.writeIndex == 32)
        #expect(memory.data(at: 0, count: 24) == Array(payload[16...]))
        #expect(memory.data(at: 24, count: 8) == littleEndian(96 << 32))

        var reader = try RingBufferReader(memory: memory)
        let packet = try #require(try reader.next(maxPacketSize: 4096))
        #expect(packet.descriptor.transactionID == 0xABCD)
        #expect(Array(packet.payload) == payload)
        _ = try reader.commit()
        #expect(memory.readIndex == 32)
    }

    @Test func theDescriptorAndTrailerMayStraddleTheWrap() throws {
        let memory = PagedRingMemory(dataSize: 128)
        memory.readIndex = 120
        memory.writeIndex = 120
        var writer = try RingBufferWriter(memory: memory)
        #expect(try writer.write(type: .dataInband, transactionID: 5, payload: [1, 2, 3, 4, 5, 6, 7, 8]) == .written)
        _ = try writer.commit()
        #expect(memory.writeIndex == (120 + 24 + 8) % 128)
        var reader = try RingBufferReader(memory: memory)
        let packet = try #require(try reader.next(maxPacketSize: 64))
        #expect(packet.descriptor.transactionID == 5 && Array(packet.payload) == [1, 2, 3, 4, 5, 6, 7, 8])
    }

    @Test func fullRingIsATypedResultAndNeverFilledCompletely() throws {
        let memory = PagedRingMemory(dataSize: 64)
        var writer = try RingBufferWriter(memory: memory)
        #expect(writer.maxPacketLength == 48)
        // 56 + 8 = 64 bytes would fill the ring exactly, which would look empty: no ring state can take it.
        #expect(throws: VMBusError.ringPacketTooLarge(length: 56, limit: 48)) {
            try writer.write(type: .dataInband, transactionID: 1, payload: [UInt8](repeating: 0, count: 40))
        }
        #expect(try writer.write(type: .dataInband, transactionID: 1, payload: [UInt8](repeating: 7, count: 24)) == .written)
        #expect(try writer.freeBytes() == 16)
        #expect(try writer.write(type: .dataInband, transactionID: 2, payload: []) == .full(required: 24, available: 16))
        #expect(try writer.commit())
        #expect(memory.writeIndex == 48)
        // Once the guest consumes the packet, there is room again.
        memory.readIndex = 48
        #expect(try writer.write(type: .dataInband, transactionID: 2, payload: []) == .written)
    }

    @Test func exactFitIsFull() throws {
        let memory = PagedRingMemory(dataSize: 128)
        memory.readIndex = 64                                  // 64 free bytes ahead of write_index 0
        var writer = try RingBufferWriter(memory: memory)
        #expect(try writer.freeBytes() == 64)
        // 40 + 16 = 56 + trailer 8 = 64 = free: refused (Linux: avail <= total is full).
        #expect(try writer.write(type: .dataInband, transactionID: 1, payload: [UInt8](repeating: 0, count: 40))
                == .full(required: 64, available: 64))
        #expect(try writer.write(type: .dataInband, transactionID: 1, payload: [UInt8](repeating: 0, count: 32)) == .written)
    }

    // MARK: Signalling the reader (hv writes the guest's inbound ring).

    @Test func writerSignalsOnEmptyToNonEmptyWhenUnmasked() throws {
        let memory = PagedRingMemory(dataSize: 512)
        var writer = try RingBufferWriter(memory: memory)
        _ = try writer.write(type: .dataInband, transactionID: 1, payload: [1])
        #expect(try writer.commit() == true)
        // Not consumed yet: the ring was not empty before this write.
        _ = try writer.write(type: .dataInband, transactionID: 2, payload: [2])
        #expect(try writer.commit() == false)
        // The guest drains everything: the next write makes it non-empty again.
        memory.readIndex = memory.writeIndex
        _ = try writer.write(type: .dataInband, transactionID: 3, payload: [3])
        #expect(try writer.commit() == true)
        #expect(try writer.commit() == false)                  // nothing new: no decision to make
    }

    @Test func writerDoesNotSignalAMaskedReader() throws {
        let memory = PagedRingMemory(dataSize: 512)
        memory.interruptMask = 1
        var writer = try RingBufferWriter(memory: memory)
        _ = try writer.write(type: .dataInband, transactionID: 1, payload: [1])
        #expect(try writer.commit() == false)
        #expect(memory.writeIndex == 32)
    }

    @Test func aBatchOfWritesEndsInOneDecision() throws {
        let memory = PagedRingMemory(dataSize: 1024)
        var writer = try RingBufferWriter(memory: memory)
        for id in 1...4 { #expect(try writer.write(type: .dataInband, transactionID: UInt64(id), payload: [UInt8(id)]) == .written) }
        #expect(memory.writeIndex == 0)
        #expect(try writer.commit() == true)
        #expect(memory.writeIndex == 4 * 32)
        var reader = try RingBufferReader(memory: memory)
        let (packets, _) = try reader.readBatch(maxPackets: 10, maxPacketSize: 64)
        #expect(packets.map(\.descriptor.transactionID) == [1, 2, 3, 4])
    }

    @Test func writerOutOfSpaceRequestsASignal() throws {
        let memory = PagedRingMemory(dataSize: 64)
        var writer = try RingBufferWriter(memory: memory)
        _ = try writer.write(type: .dataInband, transactionID: 1, payload: [UInt8](repeating: 0, count: 24))
        #expect(try writer.requestSpace(bytes: 21) == false)   // 16 free, 24 wanted
        #expect(memory.pendingSendSize == 24)
        #expect(memory.featureBits & RingLayout.featurePendingSendSize != 0)
        memory.readIndex = 48
        #expect(try writer.requestSpace(bytes: 24) == true)
        try writer.clearSpaceRequest()
        #expect(memory.pendingSendSize == 0)
    }

    // MARK: Signalling the writer (hv reads the guest's outbound ring).

    /// A ring whose guest writer has filled `used` bytes in packets of 32 (24 + trailer 8) and asked for a signal
    /// once `pending` bytes are free.
    func blockedGuestRing(dataSize: Int, packets: Int, pending: UInt32, feature: Bool = true) throws -> PagedRingMemory {
        let memory = PagedRingMemory(dataSize: dataSize)
        var guest = try RingBufferWriter(memory: memory)
        for id in 0..<packets {
            #expect(try guest.write(type: .dataInband, transactionID: UInt64(id), payload: [UInt8](repeating: 1, count: 8)) == .written)
        }
        _ = try guest.commit()
        memory.featureBits = feature ? 1 : 0
        memory.pendingSendSize = pending
        return memory
    }

    @Test func readerSignalsWhenFreeSpaceCrossesPendingSendSize() throws {
        // 256-byte ring, 7 packets of 32: 32 free. The guest waits for 40; one packet read frees 64.
        let memory = try blockedGuestRing(dataSize: 256, packets: 7, pending: 40)
        var reader = try RingBufferReader(memory: memory)
        _ = try reader.next(maxPacketSize: 64)
        #expect(try reader.commit() == true)
        // Already enough free space before the next read: no second signal.
        _ = try reader.next(maxPacketSize: 64)
        #expect(try reader.commit() == false)
    }

    @Test func readerDoesNotSignalBelowPendingSendSize() throws {
        // The guest waits for 100 bytes; reading one packet leaves 64 free: not enough yet.
        let memory = try blockedGuestRing(dataSize: 256, packets: 7, pending: 100)
        var reader = try RingBufferReader(memory: memory)
        _ = try reader.next(maxPacketSize: 64)
        #expect(try reader.commit() == false)
        _ = try reader.next(maxPacketSize: 64)                  // 96 free: still ≤ 100
        #expect(try reader.commit() == false)
        _ = try reader.next(maxPacketSize: 64)                  // 128 free: crosses now
        #expect(try reader.commit() == true)
    }

    @Test func readerTreatsExactlyPendingSendSizeAsNotEnough() throws {
        // Free after the read = 64 = pending: Linux's hv_pkt_iter_close needs strictly more.
        let memory = try blockedGuestRing(dataSize: 256, packets: 7, pending: 64)
        var reader = try RingBufferReader(memory: memory)
        _ = try reader.next(maxPacketSize: 64)
        #expect(try reader.commit() == false)
        // Free before = 32 = pending counts as blocked.
        let other = try blockedGuestRing(dataSize: 256, packets: 7, pending: 32)
        var otherReader = try RingBufferReader(memory: other)
        _ = try otherReader.next(maxPacketSize: 64)
        #expect(try otherReader.commit() == true)
    }

    @Test func readerDoesNotSignalAWriterThatDidNotAsk() throws {
        let noFeature = try blockedGuestRing(dataSize: 256, packets: 7, pending: 40, feature: false)
        var reader = try RingBufferReader(memory: noFeature)
        _ = try reader.next(maxPacketSize: 64)
        #expect(try reader.commit() == false)
        let noPending = try blockedGuestRing(dataSize: 256, packets: 7, pending: 0)
        var other = try RingBufferReader(memory: noPending)
        _ = try other.next(maxPacketSize: 64)
        #expect(try other.commit() == false)
    }

    @Test func aBatchOfReadsEndsInOneDecision() throws {
        let memory = try blockedGuestRing(dataSize: 256, packets: 7, pending: 40)
        var reader = try RingBufferReader(memory: memory)
        let (packets, signal) = try reader.readBatch(maxPackets: 100, maxPacketSize: 64)
        #expect(packets.map(\.descriptor.transactionID) == Array(0..<7))
        #expect(signal)
        #expect(memory.readIndex == memory.writeIndex)
        let (more, again) = try reader.readBatch(maxPackets: 100, maxPacketSize: 64)
        #expect(more.isEmpty && !again)
    }

    @Test func aBatchStopsAtItsLimit() throws {
        let memory = try blockedGuestRing(dataSize: 256, packets: 5, pending: 0)
        var reader = try RingBufferReader(memory: memory)
        #expect(try reader.readBatch(maxPackets: 2, maxPacketSize: 64).packets.count == 2)
        #expect(memory.readIndex == 64)
        #expect(try reader.readBatch(maxPackets: 10, maxPacketSize: 64).packets.count == 3)
    }

    @Test func peekDoesNotConsume() throws {
        let memory = try blockedGuestRing(dataSize: 256, packets: 2, pending: 0)
        var reader = try RingBufferReader(memory: memory)
        #expect(try reader.peek(maxPacketSize: 64)?.descriptor.transactionID == 0)
        #expect(try reader.peek(maxPacketSize: 64)?.descriptor.transactionID == 0)
        #expect(try reader.next(maxPacketSize: 64)?.descriptor.transactionID == 0)
        #expect(try reader.next(maxPacketSize: 64)?.descriptor.transactionID == 1)
    }

    @Test func interruptMaskIsTheReadersToSet() throws {
        let memory = PagedRingMemory(dataSize: 256)
        let reader = try RingBufferReader(memory: memory)
        try reader.setInterruptMask(true)
        #expect(memory.interruptMask == 1)
        try reader.setInterruptMask(false)
        #expect(memory.interruptMask == 0)
    }

    // MARK: Hostile control pages and descriptors.

    @Test(arguments: [(UInt32(13), RingIndexField.writeIndex), (256, .writeIndex), (0xFFFF_FFF8, .writeIndex)])
    func hostileWriteIndicesAreRejected(value: UInt32, field: RingIndexField) throws {
        let memory = PagedRingMemory(dataSize: 256)
        memory.writeIndex = value
        let reader = try RingBufferReader(memory: memory)
        #expect(throws: VMBusError.ringIndexInvalid(field: .writeIndex, value: value, dataSize: 256)) {
            try reader.peek(maxPacketSize: 4096)
        }
        #expect(throws: VMBusError.ringIndexInvalid(field: .writeIndex, value: value, dataSize: 256)) {
            try RingBufferWriter(memory: memory)
        }
    }

    @Test(arguments: [UInt32(4), 260, 0x8000_0000])
    func hostileReadIndicesAreRejected(value: UInt32) throws {
        let memory = PagedRingMemory(dataSize: 256)
        var writer = try RingBufferWriter(memory: memory)
        memory.readIndex = value
        #expect(throws: VMBusError.ringIndexInvalid(field: .readIndex, value: value, dataSize: 256)) {
            try writer.write(type: .dataInband, transactionID: 1, payload: [1])
        }
        #expect(throws: VMBusError.ringIndexInvalid(field: .readIndex, value: value, dataSize: 256)) {
            try RingBufferReader(memory: memory)
        }
        // A read_index that turns bad between a write and its commit fails the signalling decision, not hv.
        memory.readIndex = 0
        _ = try writer.write(type: .dataInband, transactionID: 1, payload: [1])
        memory.readIndex = value
        #expect(throws: VMBusError.ringIndexInvalid(field: .readIndex, value: value, dataSize: 256)) {
            try writer.commit()
        }
    }

    /// Writes a hand-made descriptor at 0 and sets write_index so that `available` bytes are readable.
    func ringWithDescriptor(offset8: UInt16, len8: UInt16, available: UInt32) -> PagedRingMemory {
        let memory = PagedRingMemory(dataSize: 256)
        memory.setData(littleEndian(6, width: 2) + littleEndian(UInt64(offset8), width: 2)
                       + littleEndian(UInt64(len8), width: 2) + [0, 0] + littleEndian(1), at: 0)
        memory.writeIndex = available
        return memory
    }

    @Test(arguments: [
        (UInt16(2), UInt16(100), UInt32(32)),    // len8 claims 800 bytes, 32 there
        (2, 3, 24),                              // packet fits but its trailer does not
        (1, 3, 64),                              // payload would start inside the descriptor
        (0, 0, 64),                              // zero-length packet
        (5, 3, 64),                              // payload offset past the packet's end
        (2, 0xFFFF, 248),                        // largest len8 against a nearly full ring
    ])
    func descriptorsClaimingTooMuchAreRejected(offset8: UInt16, len8: UInt16, available: UInt32) throws {
        var reader = try RingBufferReader(memory: ringWithDescriptor(offset8: offset8, len8: len8, available: available))
        #expect(throws: VMBusError.ringPacketInvalid(offset8: offset8, len8: len8, available: Int(available))) {
            try reader.next(maxPacketSize: 1 << 20)
        }
        #expect(try reader.commit() == false)                   // nothing consumed
    }

    @Test func fewerBytesThanADescriptorAreRejected() throws {
        var reader = try RingBufferReader(memory: ringWithDescriptor(offset8: 2, len8: 2, available: 16))
        #expect(throws: VMBusError.ringPacketTruncated(available: 16)) { try reader.next(maxPacketSize: 64) }
    }

    @Test func packetsOverTheCallersLimitAreRejectedAndLeftInPlace() throws {
        let memory = ringWithDescriptor(offset8: 2, len8: 8, available: 72)
        var reader = try RingBufferReader(memory: memory)
        #expect(throws: VMBusError.ringPacketTooLarge(length: 64, limit: 32)) { try reader.next(maxPacketSize: 32) }
        #expect(try reader.next(maxPacketSize: 64)?.bytes.count == 64)
    }

    @Test func aBadPacketEndsABatchAfterCommittingTheGoodOnes() throws {
        let memory = try blockedGuestRing(dataSize: 256, packets: 2, pending: 0)
        // A third "packet" claiming 800 bytes after the two good ones.
        memory.setData(littleEndian(6, width: 2) + littleEndian(2, width: 2) + littleEndian(100, width: 2)
                       + [0, 0] + littleEndian(9), at: 64)
        memory.writeIndex = 96
        var reader = try RingBufferReader(memory: memory)
        #expect(throws: VMBusError.ringPacketInvalid(offset8: 2, len8: 100, available: 32)) {
            try reader.readBatch(maxPackets: 10, maxPacketSize: 4096)
        }
        #expect(memory.readIndex == 64)
    }

    @Test func memoryAccessesOutsideTheRingThrow() {
        let memory = PagedRingMemory(dataSize: 64)
        var byte: UInt8 = 0
        #expect(throws: VMBusError.ringMemoryOutOfRange(offset: 4096 + 64, length: 1, size: 4096 + 64)) {
            try withUnsafeMutableBytes(of: &byte) { (buffer) throws(VMBusError) in try memory.read(at: 4096 + 64, into: buffer) }
        }
    }
}
