// `pcap:IFACE`: the guest shares a host interface through libpcap. Frames that arrive at IFACE (promiscuous, so
// also those for the guest's own MAC) go to the guest; frames the guest sends are injected on IFACE.
import CPcap
import Glibc
import Logging
import Synchronization

public final class PcapBackend: NetworkBackend {
    public let name: String
    public let interface: String

    /// The live handle. libpcap does not promise that one pcap_t may be used from two threads at once, so every
    /// call on it (pcap_next_ex on the receive thread, pcap_inject on the device thread) holds this lock; a
    /// captured frame stays valid after the lock is released until the receive thread's next pcap_next_ex.
    private let handle: Mutex<PcapHandle>
    private let selectableFD: Int32
    private let counters_ = AtomicCounters()
    private let stopSignal: StopSignal
    private let thread: ReceiveThread
    private let logger = Logger(label: "hv.net.pcap")

    /// Opens IFACE for live capture (immediate mode, snaplen 65535, promiscuous, incoming frames only) and
    /// injection. Needs CAP_NET_RAW (root); a missing interface or a refused permission is one clear line.
    public init(interface: String) throws(NetworkBackendError) {
        let label = "pcap:\(interface)"
        guard !interface.isEmpty else { throw NetworkBackendError("\(label): the interface name is empty") }
        try loadLibpcap(for: label)
        var errorBuffer = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        guard let pcap = cpcap_create(interface, &errorBuffer) else {
            throw NetworkBackendError("\(label): \(string(fromCString: errorBuffer))")
        }
        func fail(_ what: String) -> NetworkBackendError {
            let detail = String(cString: cpcap_geterr(pcap))
            cpcap_close(pcap)
            return NetworkBackendError("\(label): \(what)\(detail.isEmpty ? "" : ": \(detail)")")
        }
        cpcap_set_snaplen(pcap, 65535)
        cpcap_set_promisc(pcap, 1)
        cpcap_set_immediate_mode(pcap, 1)
        cpcap_set_buffer_size(pcap, 4 << 20)
        let status = cpcap_activate(pcap)
        if status < 0 {
            switch status {
            case PCAP_ERROR_NO_SUCH_DEVICE: throw fail("no such interface")
            case PCAP_ERROR_PERM_DENIED: throw fail("permission denied (capturing needs root or CAP_NET_RAW)")
            case PCAP_ERROR_IFACE_NOT_UP: throw fail("the interface is down")
            default: throw fail("cannot open for capture (\(String(cString: cpcap_statustostr(status))))")
            }
        }
        if status > 0 {
            Logger(label: "hv.net.pcap").warning("\(label): \(String(cString: cpcap_statustostr(status))): \(String(cString: cpcap_geterr(pcap)))")
        }
        guard cpcap_datalink(pcap) == DLT_EN10MB else {
            let linkType = cpcap_datalink_val_to_name(cpcap_datalink(pcap)).map { String(cString: $0) } ?? "\(cpcap_datalink(pcap))"
            cpcap_close(pcap)
            throw NetworkBackendError("\(label): not an Ethernet interface (link type \(linkType))")
        }
        // Incoming only: frames we inject are looped back to packet sockets as outgoing, and the guest must not
        // see its own frames.
        guard cpcap_setdirection(pcap, PCAP_D_IN) == 0 else { throw fail("cannot capture incoming frames only") }
        guard cpcap_setnonblock(pcap, 1, &errorBuffer) == 0 else {
            cpcap_close(pcap)
            throw NetworkBackendError("\(label): cannot make the capture nonblocking: \(string(fromCString: errorBuffer))")
        }
        let selectableFD = cpcap_get_selectable_fd(pcap)
        guard selectableFD >= 0 else {
            cpcap_close(pcap)
            throw NetworkBackendError("\(label): the capture has no pollable descriptor")
        }
        do throws(NetworkBackendError) {
            self.stopSignal = try StopSignal(for: label)
        } catch {
            cpcap_close(pcap)
            throw error
        }
        self.handle = Mutex(PcapHandle(pointer: pcap))
        self.selectableFD = selectableFD
        self.interface = interface
        self.name = label
        self.thread = ReceiveThread(name: label)
    }

    deinit {
        stop()
        handle.withLock { cpcap_close($0.pointer) }
    }

    public var counters: NetworkBackendCounters { counters_.snapshot }

    public func transmit(_ frames: [UnsafeRawBufferPointer]) -> Int {
        var taken = 0
        handle.withLock { handle in
            for frame in frames {
                guard cpcap_inject(handle.pointer, frame.baseAddress, frame.count) == Int32(frame.count) else { break }
                taken += 1
            }
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

    private func receiveLoop(_ receive: @Sendable (UnsafeRawBufferPointer) -> Bool, _ token: RunToken) {
        var failures = 0
        while true {
            let stopSignalled = failures > 0 ? waitStop(stopSignal, timeoutMilliseconds: 100) : waitReadable(selectableFD, orStop: stopSignal)
            if stopSignalled || token.stopped { return }
            // Drain everything that is ready: pcap_next_ex returns 0 on a nonblocking handle when nothing is left.
            while !token.stopped {
                var header: UnsafeMutablePointer<pcap_pkthdr>?
                var data: UnsafePointer<UInt8>?
                let result = handle.withLock { cpcap_next_ex($0.pointer, &header, &data) }
                if result == 1, let header, let data {
                    failures = 0
                    if receive(UnsafeRawBufferPointer(start: data, count: Int(header.pointee.caplen))) {
                        counters_.add(received: 1)
                    } else {
                        counters_.add(receiveDropped: 1)
                    }
                    continue
                }
                if result < 0 {
                    // The interface went away or went down: retry slowly, and say so on the 1st, 10th, 100th, …
                    // failure in a row.
                    failures += 1
                    if isPowerOfTen(failures) {
                        logger.error("\(name): \(handle.withLock { String(cString: cpcap_geterr($0.pointer)) }) (\(failures) in a row)")
                    }
                } else {
                    failures = 0
                }
                break
            }
        }
    }
}
