// Helpers for the back-end tests: frames, waiting, and a private network namespace to make taps in.
import CPcap
import Glibc
import Testing
import Synchronization
import TestSupport
@testable import NetworkBackends

/// A test frame: broadcast, EtherType 0x88B5 (local experimental, which no host stack answers), `marker` as the
/// first payload byte and the rest a pattern, `size` bytes in all.
func testFrame(marker: UInt8, size: Int = 64) -> [UInt8] {
    var frame: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02, 0x00, 0x00, 0x00, 0x00, 0x07, 0x88, 0xB5, marker]
    while frame.count < size { frame.append(UInt8(truncatingIfNeeded: frame.count &* 7 &+ Int(marker))) }
    return frame
}

/// Short stand-ins for frames in expectations, so that a failure prints "marker/size/hash" rather than bytes.
func digest(_ frames: [[UInt8]]) -> [String] {
    frames.map { frame in
        let hash = frame.reduce(UInt32(2166136261)) { ($0 ^ UInt32($1)) &* 16777619 }
        return "\(frame.count > 14 ? frame[14] : 0)/\(frame.count)/\(String(hash, radix: 16))"
    }
}

func isTestFrame(_ frame: [UInt8]) -> Bool { frame.count > 14 && frame[12] == 0x88 && frame[13] == 0xB5 }

/// Polls `condition` every millisecond until it holds or `seconds` pass; returns whether it held.
func waitUntil(seconds: Double = 5, _ condition: () -> Bool) -> Bool {
    let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
    while !condition() {
        if monotonicNanoseconds() > deadline { return false }
        sleepNanoseconds(1_000_000)
    }
    return true
}

/// Frames a back end delivered, collected from its receive thread.
final class FrameCollector: Sendable {
    private final class Store: Sendable { let frames = Mutex<[[UInt8]]>([]) }
    private let store: Store
    /// Returns what `accept` says for the nth call (0, 1, …), keeping the frame when true ("the guest has room").
    let receive: @Sendable (UnsafeRawBufferPointer) -> Bool

    init(accept: @escaping @Sendable (Int) -> Bool = { _ in true }) {
        let store = Store()
        let calls = CallCounter()
        self.store = store
        receive = { buffer in
            guard accept(calls.next()) else { return false }
            store.frames.withLock { $0.append(Array(buffer)) }
            return true
        }
    }

    var all: [[UInt8]] { store.frames.withLock { $0 } }
    var testFrames: [[UInt8]] { all.filter(isTestFrame) }
}

final class CallCounter: Sendable {
    private let count = Atomic<Int>(0)
    func next() -> Int { count.wrappingAdd(1, ordering: .relaxed).oldValue }
}

/// Where tap and pcap tests can run without touching the host's networking: a network namespace of their own.
/// Network namespaces belong to threads, so a fresh pthread calls unshare(CLONE_NEWNET) and runs the test body
/// there; devices, sockets and child processes (`ip`) it makes live in that namespace, which disappears with its
/// last thread and descriptor. Nothing is ever given an IP address.
enum NetworkLab {
    static let comment: Comment = "needs root, /dev/net/tun, ip(8) and unshare(CLONE_NEWNET)"

    /// Why the lab cannot run here, or nil; printed once when the tests skip.
    static let skipReason: String? = {
        var reason: String?
        if getuid() != 0 {
            reason = "not root (uid \(getuid()))"
        } else if access("/dev/net/tun", R_OK | W_OK) != 0 {
            reason = "no /dev/net/tun: \(errnoText(errno))"
        } else if ipCommand == nil {
            reason = "no ip(8) in /usr/sbin, /sbin or /usr/bin"
        } else {
            do {
                let links = try run { try ip(["-o", "link", "show"]) }
                // A fresh namespace holds only its loopback device; anything else means we are not in one.
                let names = links.split(separator: "\n").map { $0.split(separator: ":")[1].trimmingPrefix(" ") }
                if names != ["lo"] { reason = "the new namespace is not empty: \(names)" }
            } catch {
                reason = "\(error)"
            }
        }
        if let reason { print("NetworkBackendsTests: skipping tap and pcap tests: \(reason)") }
        return reason
    }()

    static var available: Bool { skipReason == nil }

    static let ipCommand: String? = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first { access($0, X_OK) == 0 }

    struct LabError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// Runs `ip ARGUMENTS` (in the calling thread's namespace: posix_spawn's child inherits it).
    static func ip(_ arguments: [String]) throws(LabError) -> String {
        let result = runProcess([ipCommand ?? "ip"] + arguments, timeLimit: 10)
        guard result.status == 0 else { throw LabError("ip \(arguments.joined(separator: " ")): \(result)") }
        return result.stdout
    }

    /// Runs `body` on a new thread in a new, empty network namespace and hands back its result.
    static func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) throws -> T {
        let result = Mutex<Result<T, any Error>?>(nil)
        let box = Unmanaged.passRetained(ThreadBody {
            guard cpcap_unshare_network_namespace() == 0 else {
                let code = errno
                result.withLock { $0 = .failure(LabError("unshare(CLONE_NEWNET): \(errnoText(code))")) }
                return
            }
            let outcome = Result { try body() }
            result.withLock { $0 = outcome }
        }).toOpaque()
        var thread = pthread_t()
        let created = pthread_create(&thread, nil, { argument in
            Unmanaged<ThreadBody>.fromOpaque(argument!).takeRetainedValue().body()
            return nil
        }, box)
        guard created == 0 else {
            Unmanaged<ThreadBody>.fromOpaque(box).release()
            throw LabError("pthread_create: \(errnoText(created))")
        }
        pthread_join(thread, nil)
        return try result.withLock { $0! }.get()
    }
}

private final class ThreadBody: Sendable {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}

/// A raw AF_PACKET socket on one interface that sees only EtherType 0x88B5: the "host side" of a tap.
final class PacketSocket {
    let fd: Int32
    let index: Int32

    init(interface: String) throws(NetworkLab.LabError) {
        let protocolNumber = UInt16(0x88B5).bigEndian
        fd = socket(AF_PACKET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(protocolNumber))
        guard fd >= 0 else { throw NetworkLab.LabError("socket(AF_PACKET): \(errnoText(errno))") }
        index = Int32(if_nametoindex(interface))
        var address = sockaddr_ll()
        address.sll_family = UInt16(AF_PACKET)
        address.sll_protocol = protocolNumber
        address.sll_ifindex = index
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_ll>.size)) }
        }
        guard index != 0, bound == 0 else {
            close(fd)
            throw NetworkLab.LabError("bind(AF_PACKET, \(interface)): \(errnoText(errno))")
        }
    }

    deinit { close(fd) }

    func send(_ frame: [UInt8]) throws(NetworkLab.LabError) {
        let sent = frame.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
        guard sent == frame.count else { throw NetworkLab.LabError("send(AF_PACKET): \(errnoText(errno))") }
    }

    /// The next frame within `seconds`, or nil.
    func receive(seconds: Double = 5) -> [UInt8]? {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&entry, 1, Int32(seconds * 1000)) > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return count > 0 ? Array(buffer[0..<count]) : nil
    }
}

/// Reads a pcap file back with libpcap: its link type and its frames (caplen bytes, and the original length).
func readCapture(_ path: String) throws(NetworkLab.LabError) -> (linkType: Int32, snapshot: Int32, frames: [(bytes: [UInt8], length: UInt32)]) {
    guard cpcap_load() != 0 else { throw NetworkLab.LabError("libpcap: \(String(cString: cpcap_load_error()))") }
    var errorBuffer = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
    guard let pcap = cpcap_open_offline(path, &errorBuffer) else {
        throw NetworkLab.LabError("pcap_open_offline \(path): \(string(fromCString: errorBuffer))")
    }
    defer { cpcap_close(pcap) }
    var frames: [(bytes: [UInt8], length: UInt32)] = []
    while true {
        var header: UnsafeMutablePointer<pcap_pkthdr>?
        var data: UnsafePointer<UInt8>?
        let result = cpcap_next_ex(pcap, &header, &data)
        if result == PCAP_ERROR_BREAK { break }
        guard result == 1, let header, let data else { throw NetworkLab.LabError("pcap_next_ex: \(result)") }
        frames.append((Array(UnsafeBufferPointer(start: data, count: Int(header.pointee.caplen))), header.pointee.len))
    }
    return (cpcap_datalink(pcap), cpcap_snapshot(pcap), frames)
}

/// A path in a fresh private directory under /tmp; the directory is removed by `removeTemporary`.
func temporaryPath(_ name: String) -> String {
    var template = Array("/tmp/hv-net-test-XXXXXX".utf8CString)
    let directory = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }.map { String(cString: $0) } ?? "/tmp"
    return "\(directory)/\(name)"
}

func removeTemporary(_ path: String) {
    unlink(path)
    if let slash = path.lastIndex(of: "/") { rmdir(String(path[..<slash])) }
}
