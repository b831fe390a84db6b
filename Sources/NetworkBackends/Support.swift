// Small pieces the back ends share: the receive thread, the stop signal, the counters and errno text.
import CPcap
import Glibc
import Partition
import Synchronization

/// The text of an errno value ("No such device").
func errnoText(_ code: Int32) -> String { String(cString: strerror(code)) }

/// The text of a NUL-terminated C string filled into an array (an error buffer, an interface name).
func string(fromCString buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// A libpcap handle (pcap_t or pcap_dumper_t). @unchecked Sendable because libpcap handles are not: every use
/// happens under the Mutex that holds this value, so no two threads touch the handle at once.
struct PcapHandle: @unchecked Sendable {
    let pointer: OpaquePointer
}

/// The four counters of `NetworkBackendCounters`, updated from any thread.
final class AtomicCounters: Sendable {
    let transmitted = Atomic<UInt64>(0)
    let transmitDropped = Atomic<UInt64>(0)
    let received = Atomic<UInt64>(0)
    let receiveDropped = Atomic<UInt64>(0)

    var snapshot: NetworkBackendCounters {
        var counters = NetworkBackendCounters()
        counters.transmitted = transmitted.load(ordering: .relaxed)
        counters.transmitDropped = transmitDropped.load(ordering: .relaxed)
        counters.received = received.load(ordering: .relaxed)
        counters.receiveDropped = receiveDropped.load(ordering: .relaxed)
        return counters
    }

    func add(transmitted: Int = 0, transmitDropped: Int = 0, received: Int = 0, receiveDropped: Int = 0) {
        if transmitted > 0 { self.transmitted.wrappingAdd(UInt64(transmitted), ordering: .relaxed) }
        if transmitDropped > 0 { self.transmitDropped.wrappingAdd(UInt64(transmitDropped), ordering: .relaxed) }
        if received > 0 { self.received.wrappingAdd(UInt64(received), ordering: .relaxed) }
        if receiveDropped > 0 { self.receiveDropped.wrappingAdd(UInt64(receiveDropped), ordering: .relaxed) }
    }
}

/// An eventfd that a receive thread polls next to its data descriptor: `signal` wakes it for `stop`.
struct StopSignal: ~Copyable {
    let fd: Int32

    init(for backend: String) throws(NetworkBackendError) {
        fd = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard fd >= 0 else { throw NetworkBackendError("\(backend): eventfd: \(errnoText(errno))") }
    }

    func signal() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { write(fd, $0.baseAddress, 8) }
    }

    func clear() {
        var value: UInt64 = 0
        _ = withUnsafeMutableBytes(of: &value) { read(fd, $0.baseAddress, 8) }
    }

    deinit { close(fd) }
}

/// Waits until `fd` is readable or the stop signal fires; true when the thread should stop.
func waitReadable(_ fd: Int32, orStop stop: borrowing StopSignal, timeoutMilliseconds: Int32 = -1) -> Bool {
    var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: stop.fd, events: Int16(POLLIN), revents: 0)]
    let ready = poll(&fds, 2, timeoutMilliseconds)
    return ready > 0 && fds[1].revents != 0
}

/// Waits up to `timeoutMilliseconds` for the stop signal; true when the thread should stop.
func waitStop(_ stop: borrowing StopSignal, timeoutMilliseconds: Int32) -> Bool {
    var entry = pollfd(fd: stop.fd, events: Int16(POLLIN), revents: 0)
    return poll(&entry, 1, timeoutMilliseconds) > 0
}

/// One run of a receive thread. `stop` marks it before waking the thread, and the loop checks it before every
/// read and every callback, so that nothing is delivered once `stop` has begun.
final class RunToken: Sendable {
    private let flag = Atomic<Bool>(false)
    var stopped: Bool { flag.load(ordering: .acquiring) }
    fileprivate func markStopped() { flag.store(true, ordering: .releasing) }
}

/// One receive thread: a pthread with a small stack, joined by `stop` so that no callback runs after it returns.
/// (The thread itself comes from `Partition.startThread`.)
final class ReceiveThread: Sendable {
    private struct State { var thread: pthread_t?; var token: RunToken? }
    private let state = Mutex(State())
    private let name: String

    init(name: String) { self.name = name }

    var isRunning: Bool { state.withLock { $0.thread != nil } }

    func start(_ body: @escaping @Sendable (RunToken) -> Void) throws(NetworkBackendError) {
        try state.withLock { (state: inout State) throws(NetworkBackendError) in
            guard state.thread == nil else { throw NetworkBackendError("\(name): already started") }
            let token = RunToken()
            let thread: pthread_t
            do { thread = try Partition.startThread { body(token) } } catch {
                throw NetworkBackendError("\(name): cannot start the receive thread: \(error)")
            }
            state.thread = thread
            state.token = token
        }
    }

    /// Marks the run stopped, calls `wake` (so that a thread blocked in poll sees it) and joins the thread. From the
    /// thread itself (a `receive` callback that calls `stop`) it detaches instead: the thread delivers nothing more
    /// and ends when the callback returns.
    func stop(wake: () -> Void) {
        let running = state.withLock { state -> (pthread_t, RunToken)? in
            defer { state.thread = nil; state.token = nil }
            guard let thread = state.thread, let token = state.token else { return nil }
            return (thread, token)
        }
        guard let (thread, token) = running else { return }
        token.markStopped()
        wake()
        if pthread_equal(thread, pthread_self()) != 0 {
            pthread_detach(thread)
        } else {
            pthread_join(thread, nil)
        }
    }
}

/// 1, 10, 100, …: when a repeating error is logged again.
func isPowerOfTen(_ value: Int) -> Bool {
    var value = value
    while value >= 10 && value % 10 == 0 { value /= 10 }
    return value == 1
}

/// The monotonic clock in nanoseconds.
func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

func sleepNanoseconds(_ nanoseconds: UInt64) {
    var request = timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}
