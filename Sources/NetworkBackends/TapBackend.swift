// `tap:NAME`: a Linux TUN/TAP device in tap mode. Frames the guest sends come out of the host interface NAME as if
// received from a wire; frames the host sends to NAME go to the guest.
import CPcap
import Glibc
import Logging

public final class TapBackend: NetworkBackend {
    public let name: String
    /// The interface name as the kernel has it.
    public let interface: String
    /// Whether this back end created the device (it disappears when hv closes it) rather than attached to an
    /// existing, persistent one.
    public let created: Bool

    private let fd: Int32
    private let counters_ = AtomicCounters()
    private let stopSignal: StopSignal
    private let thread: ReceiveThread
    private let logger = Logger(label: "hv.net.tap")

    /// Opens /dev/net/tun and creates or attaches the tap `interface` (IFF_TAP | IFF_NO_PI, no virtio-net header),
    /// then brings it up if it is down. Needs CAP_NET_ADMIN to create a device or to bring one up; a persistent tap
    /// made with `ip tuntap add NAME mode tap user USER` and already up needs neither.
    public init(interface: String) throws(NetworkBackendError) {
        let label = "tap:\(interface)"
        if let problem = TapBackend.problem(withInterfaceName: interface) { throw NetworkBackendError("\(label): \(problem)") }
        let fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            let hint = code == EACCES || code == EPERM ? " (needs root or CAP_NET_ADMIN)" : code == ENOENT ? " (no TUN/TAP support: modprobe tun)" : ""
            throw NetworkBackendError("\(label): cannot open /dev/net/tun: \(errnoText(code))\(hint)")
        }
        var actual = [CChar](repeating: 0, count: Int(CPCAP_IFNAMSIZ))
        let existed = if_nametoindex(interface) != 0
        guard cpcap_tun_set_tap(fd, interface, &actual) == 0 else {
            let code = errno
            close(fd)
            let hint = switch code {
            case EPERM: existed ? " (the tap belongs to another user, or needs CAP_NET_ADMIN)" : " (creating a tap needs root or CAP_NET_ADMIN)"
            case EBUSY: " (the tap is already open, by another process or another back end)"
            case EINVAL: existed ? " (an interface of that name exists and is not a single-queue tap)" : ""
            default: ""
            }
            throw NetworkBackendError("\(label): cannot create or attach the tap device (TUNSETIFF): \(errnoText(code))\(hint)")
        }
        let kernelName = string(fromCString: actual)
        do throws(NetworkBackendError) {
            try TapBackend.bringUp(kernelName, label: label)
        } catch {
            close(fd)
            throw error
        }
        self.fd = fd
        self.interface = kernelName
        self.name = "tap:\(kernelName)"
        self.created = !existed
        self.stopSignal = try StopSignal(for: label)
        self.thread = ReceiveThread(name: label)
    }

    deinit {
        stop()
        close(fd)
    }

    /// Why `name` cannot be a Linux interface name, or nil.
    static func problem(withInterfaceName name: String) -> String? {
        let bytes = Array(name.utf8)
        if bytes.isEmpty { return "the interface name is empty" }
        if bytes.count >= Int(CPCAP_IFNAMSIZ) { return "the interface name is longer than \(CPCAP_IFNAMSIZ - 1) bytes" }
        if name == "." || name == ".." || bytes.contains(where: { $0 <= 0x20 || $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 >= 0x7F }) {
            return "'\(name)' is not a valid interface name"
        }
        return nil
    }

    private static func bringUp(_ interface: String, label: String) throws(NetworkBackendError) {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard socket >= 0 else { throw NetworkBackendError("\(label): socket: \(errnoText(errno))") }
        defer { close(socket) }
        var flags: Int16 = 0
        guard cpcap_get_interface_flags(socket, interface, &flags) == 0 else {
            throw NetworkBackendError("\(label): cannot read the interface flags (SIOCGIFFLAGS): \(errnoText(errno))")
        }
        if flags & CPCAP_IFF_UP != 0 { return }
        guard cpcap_set_interface_flags(socket, interface, flags | CPCAP_IFF_UP) == 0 else {
            let code = errno
            throw NetworkBackendError("\(label): cannot bring the interface up (SIOCSIFFLAGS): \(errnoText(code))\(code == EPERM ? " (needs root or CAP_NET_ADMIN, or `ip link set \(interface) up` beforehand)" : "")")
        }
    }

    public var counters: NetworkBackendCounters { counters_.snapshot }

    /// One write(2) per frame: a tap takes exactly one frame per write, and writev would only gather one frame's
    /// pieces. A write that fails (EAGAIN: the kernel's backlog is full; EIO: the interface is down) drops that
    /// frame and the rest of the batch.
    public func transmit(_ frames: [UnsafeRawBufferPointer]) -> Int {
        var taken = 0
        for frame in frames {
            var written: Int
            repeat { written = write(fd, frame.baseAddress, frame.count) } while written < 0 && errno == EINTR
            if written != frame.count { break }
            taken += 1
        }
        counters_.add(transmitted: taken)
        counters_.add(transmitDropped: frames.count - taken)
        return taken
    }

    public func start(receive: @escaping @Sendable (UnsafeRawBufferPointer) -> Bool) throws(NetworkBackendError) {
        stopSignal.clear()
        try thread.start { [self] token in receiveLoop(receive, token) }
    }

    public func stop() {
        thread.stop { stopSignal.signal() }
    }

    /// Reads until EAGAIN after each wake-up, so that a burst costs one poll.
    private func receiveLoop(_ receive: @Sendable (UnsafeRawBufferPointer) -> Bool, _ token: RunToken) {
        // A tap frame is at most MTU (≤ 65535) + the 14-byte Ethernet header (+ 4 for a VLAN tag).
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536 + 64, alignment: 16)
        defer { buffer.deallocate() }
        var failures = 0
        while true {
            let stopSignalled = failures > 0 ? waitStop(stopSignal, timeoutMilliseconds: 100) : waitReadable(fd, orStop: stopSignal)
            if stopSignalled || token.stopped { return }
            while !token.stopped {
                let count = read(fd, buffer.baseAddress, buffer.count)
                if count > 0 {
                    failures = 0
                    if receive(UnsafeRawBufferPointer(rebasing: buffer[0..<count])) {
                        counters_.add(received: 1)
                    } else {
                        counters_.add(receiveDropped: 1)
                    }
                    continue
                }
                if count < 0 && errno == EINTR { continue }
                if count < 0 && errno != EAGAIN && errno != EWOULDBLOCK {
                    // The device went away (EBADFD after `ip link delete`) or similar: poll slowly, and say so on
                    // the 1st, 10th, 100th, … failure in a row.
                    failures += 1
                    if isPowerOfTen(failures) { logger.error("\(name): read: \(errnoText(errno)) (\(failures) in a row)") }
                } else {
                    failures = 0
                }
                break
            }
        }
    }
}
