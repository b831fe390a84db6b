// Network back ends: where a virtual NIC's frames go on the host. The synthetic NIC (NetVSP, over VMBus) and
// the emulated one (e1000) share them, so that the two NICs differ only in how frames cross the guest boundary.

/// A host-side network attachment for one virtual NIC. Frames are whole Ethernet frames without FCS.
public protocol NetworkBackend: AnyObject, Sendable {
    /// A short description for log lines ("tap:hv0", "pcap:eth1", "null").
    var name: String { get }
    /// Sends frames from the guest to the host network, in order. Returns how many were taken; the rest were
    /// dropped (and counted) because the host side is full or down. Called from one device thread at a time.
    func transmit(_ frames: [UnsafeRawBufferPointer]) -> Int
    /// Starts delivering frames from the host network to `receive`, on a thread of the back end's own, until
    /// `stop`. `receive` returns false when the guest has no room: the back end drops the frame and counts it.
    /// The buffer is the back end's and valid only during the call: `receive` copies what it keeps. Start once;
    /// after `stop` a back end may be started again.
    func start(receive: @escaping @Sendable (UnsafeRawBufferPointer) -> Bool) throws(NetworkBackendError)
    /// Stops the receive thread; no `receive` call runs after this returns (called from inside `receive`, the
    /// thread ends when that call returns). Safe to call when not started, and more than once.
    func stop()
    var counters: NetworkBackendCounters { get }
}

/// What a back end moved and dropped, for statistics and benchmarks.
public struct NetworkBackendCounters: Sendable, Equatable {
    public var transmitted: UInt64 = 0
    public var transmitDropped: UInt64 = 0
    public var received: UInt64 = 0
    public var receiveDropped: UInt64 = 0
    public init() {}
}

import CPcap

/// Loads libpcap on first use (hv does not link it, so that starting hv does not pay for it): a missing libpcap
/// is a host configuration problem like any other.
func loadLibpcap(for what: String) throws(NetworkBackendError) {
    guard cpcap_load() != 0 else {
        throw NetworkBackendError("\(what): cannot load libpcap (\(String(cString: cpcap_load_error()))); install Debian's libpcap0.8")
    }
}

/// A host configuration problem (no such interface, no permission, capture file not writable): hv refuses to
/// start with this one line.
public struct NetworkBackendError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
