import Testing
@testable import NetworkBackends

@Suite struct NullBackendTests {
    @Test func sinkCountsAndDropsEverything() throws {
        let sink = NullBackend()
        let frames = (0..<5).map { testFrame(marker: UInt8($0)) }
        let taken = frames.withUnsafeBufferPointers { sink.transmit($0) }
        #expect(taken == 5)
        #expect(sink.transmit([]) == 0)
        let collector = FrameCollector()
        try sink.start(receive: collector.receive)
        sleepNanoseconds(20_000_000)
        sink.stop()
        var expected = NetworkBackendCounters()
        expected.transmitted = 5
        #expect(sink.counters == expected)
        #expect(collector.all.isEmpty)
        #expect(!sink.sourceFinished)
    }

    @Test func sourceDeliversEveryFrameInOrderRetryingWhenTheGuestIsFull() throws {
        // The "guest" refuses every third call: the source must retry that frame, not drop it.
        let collector = FrameCollector(accept: { $0 % 3 != 2 })
        let source = NullBackend(source: .frames(size: 64, count: 1000))
        try source.start(receive: collector.receive)
        #expect(waitUntil { source.sourceFinished })
        source.stop()
        let frames = collector.all
        #expect(frames.count == 1000)
        #expect(frames.allSatisfy { $0.count == 64 })
        #expect(frames.enumerated().allSatisfy { index, frame in
            frame.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 14, as: UInt64.self)) } == UInt64(index)
        })
        #expect(frames.first.map { Array($0[0..<14]) } == [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02, 0, 0, 0, 0, 1, 0x88, 0xB5])
        #expect(frames.first == NullBackend.Source.frames(size: 64).frame(0))
        #expect(source.counters.received == 1000)
        #expect(source.counters.receiveDropped == 0)
        #expect(source.sourceRetries >= 499)
    }

    @Test func endlessSourceStopsAndKeepsItsRate() throws {
        let collector = FrameCollector()
        let source = NullBackend(source: .frames(size: 1514, rate: 1000))
        let started = monotonicNanoseconds()
        try source.start(receive: collector.receive)
        #expect(waitUntil { collector.all.count >= 20 })
        source.stop()
        let elapsed = Double(monotonicNanoseconds() - started) / 1e9
        let delivered = collector.all.count
        // Frame i is not sent before i/rate seconds: never more than elapsed × rate + the first one.
        #expect(Double(delivered) <= elapsed * 1000 + 1)
        #expect(source.counters.received == UInt64(delivered))
        // No receive call after stop returns; a second stop is harmless; it can start again.
        sleepNanoseconds(20_000_000)
        #expect(collector.all.count == delivered)
        source.stop()
        try source.start(receive: collector.receive)
        #expect(throws: NetworkBackendError.self) { try source.start(receive: collector.receive) }
        #expect(waitUntil { collector.all.count > delivered })
        source.stop()
        #expect(!source.sourceFinished)
    }

    @Test func sourceProblemsAreNamed() {
        #expect(NullBackend.Source.frames(size: 13).problem != nil)
        #expect(NullBackend.Source.frames(size: 65536).problem != nil)
        #expect(NullBackend.Source.frames(size: 64, rate: 0).problem != nil)
        #expect(NullBackend.Source.frames(size: 14, count: 0).problem == nil)
        // A frame too short for the sequence number is header only.
        #expect(NullBackend.Source.frames(size: 14).frame(7) == [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02, 0, 0, 0, 0, 1, 0x88, 0xB5])
    }
}

extension Array where Element == [UInt8] {
    /// The frames as buffers, valid inside `body`.
    func withUnsafeBufferPointers<R>(_ body: ([UnsafeRawBufferPointer]) throws -> R) rethrows -> R {
        var pointers: [UnsafeRawBufferPointer] = []
        var storage: [UnsafeMutableRawBufferPointer] = []
        defer { storage.forEach { $0.deallocate() } }
        for frame in self {
            let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: frame.count, alignment: 1)
            copy.copyBytes(from: frame)
            storage.append(copy)
            pointers.append(UnsafeRawBufferPointer(copy))
        }
        return try body(pointers)
    }
}
