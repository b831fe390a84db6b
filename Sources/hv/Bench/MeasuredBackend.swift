import NetworkBackends
import Partition
import Synchronization

/// A back end wrapper that notes when the first and the last frame crossed it in each direction: hv's own view
/// of a benchmark's rate, independent of the guest's clock.
final class MeasuredBackend: NetworkBackend {
    struct Direction {
        var frames: UInt64 = 0
        var bytes: UInt64 = 0
        var first: Double?
        var last: Double?

        mutating func note(_ count: Int, bytes: Int) {
            guard count > 0 else { return }
            let now = monotonicSeconds()
            if first == nil { first = now }
            last = now
            frames += UInt64(count)
            self.bytes += UInt64(bytes)
        }

        /// Frames per second between the first and the last frame (nil with fewer than two).
        var rate: Double? {
            guard let first, let last, last > first, frames > 1 else { return nil }
            return Double(frames - 1) / (last - first)
        }
    }

    let inner: any NetworkBackend
    let transmitted = Mutex(Direction())
    let received = Mutex(Direction())

    init(_ inner: any NetworkBackend) { self.inner = inner }

    var name: String { inner.name }
    var counters: NetworkBackendCounters { inner.counters }

    func transmit(_ frames: [UnsafeRawBufferPointer]) -> Int {
        let taken = inner.transmit(frames)
        let bytes = frames.prefix(taken).reduce(0) { $0 + $1.count }
        transmitted.withLock { $0.note(taken, bytes: bytes) }
        return taken
    }

    func start(receive: @escaping @Sendable (UnsafeRawBufferPointer) -> Bool) throws(NetworkBackendError) {
        try inner.start { [weak self] frame in
            let taken = receive(frame)
            if taken { self?.received.withLock { $0.note(1, bytes: frame.count) } }
            return taken
        }
    }

    func stop() { inner.stop() }
}
