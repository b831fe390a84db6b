import CKVM
import Glibc
import Synchronization

/// A device's own thread: it sleeps until kicked or until the time its body asked for, runs the body, and sleeps
/// again; `stop` ends and joins it. The kick is an eventfd, so KVM can write it too (registered as an ioeventfd):
/// a guest's doorbell then wakes the thread without an exit to user space.
public final class WakeableThread: Sendable {
    /// Written by `kick`, or by KVM when registered as an ioeventfd.
    public let kickFD: Int32
    let stopFD: Int32
    let thread = Mutex<pthread_t?>(nil)

    public init() throws(PartitionError) {
        kickFD = ckvm_eventfd_blocking()
        stopFD = ckvm_eventfd_blocking()
        guard kickFD >= 0, stopFD >= 0 else {
            if kickFD >= 0 { close(kickFD) }
            if stopFD >= 0 { close(stopFD) }
            throw .hostErrno("eventfd for a device thread")
        }
    }

    deinit {
        stop()
        close(kickFD)
        close(stopFD)
    }

    /// Starts the thread. `body` runs at once (kicked: false), then after every wake-up (kicked: whether the
    /// eventfd fired; kicks that arrive while it runs fold into one more run). It returns the seconds until it
    /// wants to run again without a kick, or nil to wait for one.
    public func start(_ body: @escaping @Sendable (_ kicked: Bool) -> Double?) throws(PartitionError) {
        let (kick, stop) = (kickFD, stopFD)
        let started = try Partition.startThread {
            var wake = body(false).map { monotonicSeconds() + $0 }
            var fds = [pollfd(fd: kick, events: Int16(POLLIN), revents: 0), pollfd(fd: stop, events: Int16(POLLIN), revents: 0)]
            while true {
                fds[0].revents = 0
                fds[1].revents = 0
                let timeout = wake.map { Int32(min(max(0, ($0 - monotonicSeconds()) * 1000).rounded(.up), Double(Int32.max))) } ?? -1
                if poll(&fds, 2, timeout) < 0 && errno != EINTR { return }
                if fds[1].revents != 0 { return }
                let kicked = fds[0].revents != 0
                if kicked {
                    var value: UInt64 = 0
                    _ = read(kick, &value, 8)
                } else if let due = wake, monotonicSeconds() < due {
                    continue   // EINTR
                }
                wake = body(kicked).map { monotonicSeconds() + $0 }
            }
        }
        thread.withLock { $0 = started }
    }

    public func kick() {
        var one: UInt64 = 1
        _ = write(kickFD, &one, 8)
    }

    /// No run of the body starts after this returns. Safe to call more than once.
    public func stop() {
        guard let started = thread.withLock({ $0.take() }) else { return }
        var one: UInt64 = 1
        _ = write(stopFD, &one, 8)
        pthread_join(started, nil)
    }
}
