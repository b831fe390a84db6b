import CKVM
import Glibc
import Synchronization

/// Why a partition stopped running.
public enum StopReason: Equatable, Sendable {
    /// The guest wrote this status to the exit port.
    case guestExit(UInt8)
    /// The guest asked to power off (ACPI, KVM system event).
    case powerOff
    /// The guest asked for a reset (i8042 pulse, triple-fault-free reboot).
    case reboot
    /// The guest cannot go on: triple fault, failed entry, KVM internal error. Carries the report.
    case crash(String)
    /// `--timeout` ran out.
    case timeout
    /// hv got SIGINT or SIGTERM.
    case signal(Int32)
    /// The user typed the console's escape sequence.
    case consoleQuit
    /// hv itself failed while running the guest.
    case hostFailure(String)
}

/// The one place a partition's stop is requested. The first reason wins; the main thread
/// sleeps on `wakeFD` (an eventfd) until a device, a vCPU or the console asks to stop.
public final class PartitionControl: Sendable {
    let reason = Mutex<StopReason?>(nil)
    public let wakeFD: Int32
    /// Exits to user space, every vCPU together (KVM_RUN returns, signals and kicks included).
    public let exits = Atomic<UInt64>(0)
    /// State reports asked for so far (SIGUSR2); each vCPU thread answers the latest once.
    let reportRequests = Atomic<UInt64>(0)

    public init() throws(PartitionError) {
        let fd = ckvm_eventfd()
        guard fd >= 0 else { throw .hostErrno("eventfd for the partition's stop signal") }
        wakeFD = fd
    }

    deinit { close(wakeFD) }

    public func requestStop(_ why: StopReason) {
        let first = reason.withLock { current -> Bool in
            guard current == nil else { return false }
            current = why
            return true
        }
        if first {
            var one: UInt64 = 1
            _ = write(wakeFD, &one, 8)
        }
    }

    public var stopReason: StopReason? { reason.withLock { $0 } }
    public var isStopping: Bool { stopReason != nil }
}

/// How SIGTERM stops a partition whose guest can be asked to shut down (the VMBus shutdown IC).
public struct GracefulStop: Sendable {
    /// Asks the guest to shut down; false when it cannot be asked now.
    public var request: @Sendable () -> Bool
    /// Seconds the guest has before hv stops it anyway.
    public var gracePeriod: Double
    public init(gracePeriod: Double, request: @escaping @Sendable () -> Bool) {
        self.request = request
        self.gracePeriod = gracePeriod
    }
}

extension Partition {
    /// Starts a joinable pthread running `body`; pthreads, not tasks, because KVM_RUN blocks.
    public static func startThread(_ body: @escaping @Sendable () -> Void) throws(PartitionError) -> pthread_t {
        final class Box { let body: @Sendable () -> Void; init(_ body: @escaping @Sendable () -> Void) { self.body = body } }
        let box = Unmanaged.passRetained(Box(body)).toOpaque()
        // Small stacks: the loops are shallow, and glibc gives back the unused part of an
        // 8 MiB default stack with madvise at thread exit, which showed in hv's exit time.
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, 512 << 10)
        var thread = pthread_t()
        let result = pthread_create(&thread, &attributes, { argument in
            Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue().body()
            return nil
        }, box)
        guard result == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw .host(operation: "pthread_create", errno: result)
        }
        return thread
    }
}
