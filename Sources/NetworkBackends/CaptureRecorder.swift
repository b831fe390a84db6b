// `--capture FILE.pcap`: every frame a back end moves, in both directions, written with libpcap's dump API to a
// classic pcap file (link type Ethernet, snaplen 65535) that tcpdump, tshark and Wireshark read.
import CPcap
import Glibc
import Synchronization

/// A pcap file being written. Thread-safe: both NICs' back ends and their receive threads may share one.
public final class CaptureRecorder: Sendable {
    public let path: String

    private struct File {
        var dead: PcapHandle?
        var dumper: PcapHandle?
        var frames: UInt64 = 0
    }
    private let file: Mutex<File>

    /// Creates (or truncates) `path`. A file that cannot be written is one clear line.
    public init(path: String) throws(NetworkBackendError) {
        try loadLibpcap(for: "capture \(path)")
        guard let dead = cpcap_open_dead(DLT_EN10MB, 65535) else {
            throw NetworkBackendError("capture \(path): pcap_open_dead failed")
        }
        guard let dumper = cpcap_dump_open(dead, path) else {
            // libpcap's text is "PATH: strerror"; say what we were doing around it.
            let detail = String(cString: cpcap_geterr(dead))
            cpcap_close(dead)
            throw NetworkBackendError("capture: cannot write \(detail.hasPrefix(path) ? detail : "\(path): \(detail)")")
        }
        self.path = path
        self.file = Mutex(File(dead: PcapHandle(pointer: dead), dumper: PcapHandle(pointer: dumper)))
    }

    deinit { close() }

    /// How many frames have been written.
    public var frames: UInt64 { file.withLock { $0.frames } }

    /// Appends one frame, stamped with the current time. Empty frames and calls after `close` do nothing.
    public func record(_ frame: UnsafeRawBufferPointer) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var header = pcap_pkthdr()
        header.ts = timeval(tv_sec: now.tv_sec, tv_usec: now.tv_nsec / 1000)
        header.caplen = UInt32(min(frame.count, 65535))
        header.len = UInt32(frame.count)
        guard let bytes = frame.baseAddress?.assumingMemoryBound(to: UInt8.self), frame.count > 0 else { return }
        file.withLock { file in
            guard let dumper = file.dumper else { return }
            cpcap_dump(UnsafeMutableRawPointer(dumper.pointer).assumingMemoryBound(to: UInt8.self), &header, bytes)
            file.frames += 1
        }
    }

    /// Pushes what is buffered to the file.
    public func flush() {
        file.withLock { file in
            if let dumper = file.dumper { cpcap_dump_flush(dumper.pointer) }
        }
    }

    /// Flushes and closes the file; later `record` calls do nothing.
    public func close() {
        file.withLock { file in
            if let dumper = file.dumper { cpcap_dump_close(dumper.pointer) }
            if let dead = file.dead { cpcap_close(dead.pointer) }
            file.dumper = nil
            file.dead = nil
        }
    }
}

/// A back end that records every frame the guest sends (before the inner back end takes or drops it) and every
/// frame the inner back end delivers (before the guest takes or drops it), then passes it on unchanged.
public final class CapturingBackend: NetworkBackend {
    public let inner: any NetworkBackend
    public let recorder: CaptureRecorder

    public init(wrapping inner: any NetworkBackend, recorder: CaptureRecorder) {
        self.inner = inner
        self.recorder = recorder
    }

    public var name: String { inner.name }
    public var counters: NetworkBackendCounters { inner.counters }

    public func transmit(_ frames: [UnsafeRawBufferPointer]) -> Int {
        for frame in frames { recorder.record(frame) }
        return inner.transmit(frames)
    }

    public func start(receive: @escaping @Sendable (UnsafeRawBufferPointer) -> Bool) throws(NetworkBackendError) {
        let recorder = recorder
        try inner.start { frame in
            recorder.record(frame)
            return receive(frame)
        }
    }

    /// Stops the inner back end and flushes the file (which the recorder's owner closes).
    public func stop() {
        inner.stop()
        recorder.flush()
    }
}
