// `null`: no host network. Frames the guest sends are counted and dropped (a sink); optionally a source delivers
// generated frames to the guest, for benchmarks.
import Glibc
import Synchronization

public final class NullBackend: NetworkBackend {
    /// Generated frames for the guest: `count` frames (nil: until `stop`) of `frameSize` bytes, at most
    /// `framesPerSecond` (nil: as fast as the guest takes them).
    ///
    /// Each frame is a broadcast Ethernet frame from 02:00:00:00:00:01 with EtherType 0x88B5 (IEEE "local
    /// experimental", which no host stack handles), carrying its sequence number (0, 1, 2, … as a little-endian
    /// UInt64) at byte 14 when the frame has room for it; the rest of the payload is zero.
    public struct Source: Sendable, Equatable, CustomStringConvertible {
        public var frameSize: Int
        public var count: UInt64?
        public var framesPerSecond: UInt64?

        /// Frame sizes the source accepts: an Ethernet header at least, a 16-bit IP-style length at most.
        public static let frameSizes = 14...65535

        public static func frames(size: Int, count: UInt64? = nil, rate framesPerSecond: UInt64? = nil) -> Source {
            Source(frameSize: size, count: count, framesPerSecond: framesPerSecond)
        }

        /// Why this source cannot be used, or nil.
        public var problem: String? {
            if !Source.frameSizes.contains(frameSize) {
                return "the frame size must be \(Source.frameSizes.lowerBound)…\(Source.frameSizes.upperBound) bytes, not \(frameSize)"
            }
            if framesPerSecond == 0 { return "the rate must be at least 1 frame per second" }
            return nil
        }

        /// The CLI form, as `NetworkBackendSpec` parses it: "rx=SIZE[,count=N][,rate=FPS]".
        public var description: String {
            "rx=\(frameSize)" + (count.map { ",count=\($0)" } ?? "") + (framesPerSecond.map { ",rate=\($0)" } ?? "")
        }

        /// The frame with sequence number `sequence`, as the source sends it.
        public func frame(_ sequence: UInt64) -> [UInt8] {
            var frame = [UInt8](repeating: 0, count: frameSize)
            frame.withUnsafeMutableBytes { NullBackend.fill($0, sequence: sequence) }
            return frame
        }
    }

    public let name: String
    public let source: Source?
    private let counters_ = AtomicCounters()
    private let finished = Atomic<Bool>(false)
    private let retries = Atomic<UInt64>(0)
    private let thread: ReceiveThread

    /// A sink, and with `source` also a frame generator. The source must be valid (`source.problem == nil`;
    /// `NetworkBackendSpec` checks this for the command line).
    public init(source: Source? = nil) {
        if let problem = source?.problem { preconditionFailure("NullBackend: \(problem)") }
        name = source.map { "null:\($0)" } ?? "null"
        self.source = source
        thread = ReceiveThread(name: name)
    }

    deinit { stop() }

    public var counters: NetworkBackendCounters { counters_.snapshot }

    /// How many times the source found the guest full and retried a frame (the source never drops).
    public var sourceRetries: UInt64 { retries.load(ordering: .relaxed) }

    /// Whether the source has delivered all of its `count` frames (false for a sink or an endless source).
    public var sourceFinished: Bool { finished.load(ordering: .acquiring) }

    public func transmit(_ frames: [UnsafeRawBufferPointer]) -> Int {
        counters_.add(transmitted: frames.count)
        return frames.count
    }

    /// A sink has nothing to deliver and starts no thread; a source starts its generator thread.
    public func start(receive: @escaping @Sendable (UnsafeRawBufferPointer) -> Bool) throws(NetworkBackendError) {
        guard let source else { return }
        try thread.start { [self] token in generate(source, receive, token) }
    }

    public func stop() {
        thread.stop {}
    }

    private static let header: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x88, 0xB5]

    static func fill(_ frame: UnsafeMutableRawBufferPointer, sequence: UInt64) {
        fillHeader(frame)
        setSequence(frame, sequence)
    }

    private static func fillHeader(_ frame: UnsafeMutableRawBufferPointer) {
        frame.copyBytes(from: header.prefix(frame.count))
    }

    private static func setSequence(_ frame: UnsafeMutableRawBufferPointer, _ sequence: UInt64) {
        if frame.count >= 22 { frame.storeBytes(of: sequence.littleEndian, toByteOffset: 14, as: UInt64.self) }
    }

    /// Delivers frames; when `receive` says the guest is full, retries the same frame after a backoff that grows
    /// from a yield to 1 ms and starts over after each success. With a rate, frame i is due i/rate seconds after
    /// the start, so a slow guest catches up in a burst instead of lowering the average.
    private func generate(_ source: Source, _ receive: @Sendable (UnsafeRawBufferPointer) -> Bool, _ token: RunToken) {
        let frame = UnsafeMutableRawBufferPointer.allocate(byteCount: source.frameSize, alignment: 16)
        defer { frame.deallocate() }
        frame.initializeMemory(as: UInt8.self, repeating: 0)
        NullBackend.fillHeader(frame)
        let started = monotonicNanoseconds()
        var sequence: UInt64 = 0
        var backoff: UInt64 = 0
        while !token.stopped {
            if let count = source.count, sequence >= count {
                finished.store(true, ordering: .releasing)
                return
            }
            if let rate = source.framesPerSecond {
                let due = started &+ UInt64((Double(sequence) * 1e9 / Double(rate)).rounded())
                let now = monotonicNanoseconds()
                // Sleep in slices so that `stop` is seen within a millisecond.
                if due > now { sleepNanoseconds(min(due - now, 1_000_000)); continue }
            }
            NullBackend.setSequence(frame, sequence)
            if receive(UnsafeRawBufferPointer(frame)) {
                counters_.add(received: 1)
                sequence += 1
                backoff = 0
            } else {
                retries.wrappingAdd(1, ordering: .relaxed)
                if backoff == 0 { sched_yield(); backoff = 10_000 } else { sleepNanoseconds(backoff); backoff = min(backoff * 2, 1_000_000) }
            }
        }
    }
}
