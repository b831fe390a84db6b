import Dispatch
import Glibc
import NetworkBackends
import Synchronization
@testable import Devices
@testable import Partition

/// A back end that records what the NIC sends and lets a test deliver frames as the back end's thread would.
final class FakeNetworkBackend: NetworkBackend {
    let name = "fake"
    let sent = Mutex<[[UInt8]]>([])
    let receiver = Mutex<(@Sendable (UnsafeRawBufferPointer) -> Bool)?>(nil)

    func transmit(_ frames: [UnsafeRawBufferPointer]) -> Int {
        sent.withLock { $0 += frames.map { Array($0) } }
        return frames.count
    }

    func start(receive: @escaping @Sendable (UnsafeRawBufferPointer) -> Bool) throws(NetworkBackendError) {
        receiver.withLock { $0 = receive }
    }

    func stop() { receiver.withLock { $0 = nil } }

    var counters: NetworkBackendCounters { NetworkBackendCounters() }

    /// Delivers a frame through the callback `start` registered; what the callback answered.
    func deliver(_ frame: [UInt8]) -> Bool {
        guard let receive = receiver.withLock({ $0 }) else { return false }
        return frame.withUnsafeBytes { receive($0) }
    }

    var frames: [[UInt8]] { sent.withLock { $0 } }
}

/// Every level change on every GSI, with when it happened.
final class InterruptRecorder: Sendable {
    struct Event: Equatable { var gsi: Int; var asserted: Bool; var time: UInt64 }
    let events = Mutex<[Event]>([])

    func record(_ gsi: Int, _ asserted: Bool) {
        events.withLock { $0.append(Event(gsi: gsi, asserted: asserted, time: DispatchTime.now().uptimeNanoseconds)) }
    }

    /// The current level of `gsi` (low when it never changed).
    func level(_ gsi: Int) -> Bool { events.withLock { $0.last { $0.gsi == gsi }?.asserted ?? false } }
    var assertions: [UInt64] { events.withLock { $0.filter(\.asserted).map(\.time) } }
}

/// A guest's view of one e1000 on a PCI bus: 16 MiB of RAM, registers reached through the bus's memory window.
struct E1000Rig {
    static let mac: [UInt8] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]
    static let txRing: UInt64 = 0x1_0000
    static let rxRing: UInt64 = 0x2_0000
    static let buffers: UInt64 = 0x10_0000

    let memory: GuestMemory
    let backend = FakeNetworkBackend()
    let interrupts = InterruptRecorder()
    let bus: PCIBus
    let nic: E1000
    let slot: Int

    init() throws {
        memory = try GuestMemory(map: MemoryMap(ramSize: 16 << 20))
        let recorder = interrupts
        bus = PCIBus { gsi, asserted in recorder.record(gsi, asserted) }
        nic = try E1000(mac: E1000Rig.mac, backend: backend, memory: memory)
        slot = try bus.plug(nic)
        try nic.start()
        setCommand(PCIConfigSpace.commandMemorySpace | PCIConfigSpace.commandIOSpace | PCIConfigSpace.commandBusMaster)
    }

    var gsi: Int { Int(bus.configRead(device: slot, offset: PCIConfigSpace.interruptLineOffset, size: 1)) }
    var registerBase: UInt64 { UInt64(bus.configRead(device: slot, offset: 0x10, size: 4) & ~0xF) }
    var ioBase: UInt16 { UInt16(bus.configRead(device: slot, offset: 0x14, size: 4) & ~0x3) }

    func setCommand(_ command: UInt16) {
        bus.configWrite(device: slot, offset: PCIConfigSpace.commandOffset, size: 2, value: UInt32(command))
    }

    func write(_ register: Int, _ value: UInt32) {
        bus.mmioWrite(address: registerBase + UInt64(register), size: 4, value: UInt64(value))
    }

    func read(_ register: Int) -> UInt32 {
        UInt32(truncatingIfNeeded: bus.mmioRead(address: registerBase + UInt64(register), size: 4))
    }

    // MARK: rings

    /// TX ring of `count` descriptors at `txRing`, head and tail at `start`, transmit enabled with padding.
    func setUpTransmit(count: Int = 8, start: Int = 0) {
        write(E1000Register.tdbal, UInt32(E1000Rig.txRing))
        write(E1000Register.tdbah, 0)
        write(E1000Register.tdlen, UInt32(count * 16))
        write(E1000Register.tdh, UInt32(start))
        write(E1000Register.tdt, UInt32(start))
        write(E1000Register.tctl, E1000Bits.tctlEnable | E1000Bits.tctlPadShortPackets)
    }

    /// A legacy TX descriptor.
    func legacyTX(_ index: Int, buffer: UInt64, length: Int, command: UInt8, ring: UInt64 = E1000Rig.txRing) throws {
        let at = ring + UInt64(index) * 16
        try memory.store(buffer, at: at)
        try memory.store(UInt16(length), at: at + 8)
        try memory.store(UInt8(0), at: at + 10)
        try memory.store(command, at: at + 11)
        try memory.store(UInt32(0), at: at + 12)
    }

    /// A TX context descriptor.
    func contextTX(_ index: Int, ipcss: UInt8, ipcso: UInt8, ipcse: UInt16, tucss: UInt8, tucso: UInt8, tucse: UInt16,
                   payloadLength: Int, tucmd: UInt8, headerLength: UInt8, mss: UInt16) throws {
        let at = E1000Rig.txRing + UInt64(index) * 16
        try memory.write([ipcss, ipcso] + leBytes(ipcse) + [tucss, tucso] + leBytes(tucse), at: at)
        try memory.store(UInt32(payloadLength & 0xF_FFFF) | UInt32(tucmd | E1000Bits.txExtension) << 24, at: at + 8)
        try memory.write([0, headerLength] + leBytes(mss), at: at + 12)
    }

    /// A TX data descriptor (DEXT, DTYP 1).
    func dataTX(_ index: Int, buffer: UInt64, length: Int, command: UInt8, options: UInt8) throws {
        let at = E1000Rig.txRing + UInt64(index) * 16
        try memory.store(buffer, at: at)
        try memory.store(UInt32(length & 0xF_FFFF) | 1 << 20 | UInt32(command | E1000Bits.txExtension) << 24, at: at + 8)
        try memory.write([0, options, 0, 0], at: at + 12)
    }

    func txStatus(_ index: Int) throws -> UInt8 { try memory.load(UInt8.self, at: E1000Rig.txRing + UInt64(index) * 16 + 12) }

    /// RX ring of `count` descriptors, each with a buffer of 16 KiB at `buffers + i * 16 KiB`; head `head`,
    /// tail `tail`; receive enabled with broadcast accepted.
    func setUpReceive(count: Int = 8, head: Int = 0, tail: Int = 7, rctl: UInt32 = E1000Bits.rctlEnable | E1000Bits.rctlBroadcastAccept) throws {
        for i in 0..<count {
            let at = E1000Rig.rxRing + UInt64(i) * 16
            try memory.store(rxBuffer(i), at: at)
            try memory.store(UInt64(0), at: at + 8)
        }
        write(E1000Register.rdbal, UInt32(E1000Rig.rxRing))
        write(E1000Register.rdbah, 0)
        write(E1000Register.rdlen, UInt32(count * 16))
        write(E1000Register.rdh, UInt32(head))
        write(E1000Register.rdt, UInt32(tail))
        write(E1000Register.rctl, rctl)
    }

    func rxBuffer(_ index: Int) -> UInt64 { E1000Rig.buffers + UInt64(index) * 0x4000 }

    /// (length, checksum, status, errors, special) of RX descriptor `index`.
    func rxDescriptor(_ index: Int) throws -> (length: Int, checksum: UInt16, status: UInt8, errors: UInt8, special: UInt16) {
        let at = E1000Rig.rxRing + UInt64(index) * 16
        return (Int(try memory.load(UInt16.self, at: at + 8)), try memory.load(UInt16.self, at: at + 10),
                try memory.load(UInt8.self, at: at + 12), try memory.load(UInt8.self, at: at + 13), try memory.load(UInt16.self, at: at + 14))
    }
}

func leBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { Array($0) }
}

// MARK: frames

enum Frames {
    static let peer: [UInt8] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01]

    /// An Ethernet frame from `source` to `destination` with `etherType` and `payload`.
    static func ethernet(to destination: [UInt8], from source: [UInt8] = peer, etherType: UInt16 = 0x88B5, payload: [UInt8]) -> [UInt8] {
        destination + source + [UInt8(etherType >> 8), UInt8(etherType & 0xFF)] + payload
    }

    static func pattern(_ count: Int, seed: Int = 0) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 * 7 + seed) } }

    /// Ethernet + IPv4 (20 bytes) + TCP (20 bytes) + payload, with both checksums left for the NIC: IP
    /// checksum 0, TCP checksum holding the pseudo-header sum (`withLength`: over the TCP length, as for
    /// checksum offload; without: as Linux seeds it for TSO, with IP total length 0).
    static func tcp(payload: [UInt8], sequence: UInt32, flags: UInt8, id: UInt16, withLength: Bool) -> [UInt8] {
        let tcpLength = 20 + payload.count
        var ip: [UInt8] = [0x45, 0, 0, 0, UInt8(id >> 8), UInt8(id & 0xFF), 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]
        if withLength { ip.setBigEndian16(UInt16(20 + tcpLength), at: 2) }
        var tcp: [UInt8] = [0x30, 0x39, 0x00, 0x50] + [0, 0, 0, 0] + [0, 0, 0, 0] + [0x50, flags, 0xFF, 0xFF, 0, 0, 0, 0]
        tcp.setBigEndian32(sequence, at: 4)
        let pseudo = InternetChecksum.pseudoHeader(source: ip[12..<16], destination: ip[16..<20], protocol: 6, length: withLength ? tcpLength : 0)
        tcp.setBigEndian16(InternetChecksum.fold(pseudo), at: 16)
        return ethernet(to: peer, from: E1000Rig.mac, etherType: 0x0800, payload: ip + tcp + payload)
    }

    /// Whether an Ethernet + IPv4 + TCP/UDP frame's IP header and L4 checksums verify.
    static func checksumsVerify(_ frame: [UInt8]) -> (ip: Bool, l4: Bool) {
        let ihl = Int(frame[14] & 0x0F) * 4
        let ipOK = InternetChecksum.fold(InternetChecksum.sum(frame[14..<14 + ihl])) == 0xFFFF
        let total = Int(frame.bigEndian16(at: 16))
        let l4 = 14 + ihl
        let pseudo = InternetChecksum.pseudoHeader(source: frame[26..<30], destination: frame[30..<34], protocol: frame[23], length: total - ihl)
        let l4OK = InternetChecksum.fold(InternetChecksum.sum(frame[l4..<14 + total], initial: pseudo)) == 0xFFFF
        return (ipOK, l4OK)
    }
}

/// Polls `condition` for up to `seconds`.
func eventually(_ seconds: Double = 2, _ condition: () -> Bool) -> Bool {
    let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
    while DispatchTime.now().uptimeNanoseconds < deadline {
        if condition() { return true }
        var pause = timespec(tv_sec: 0, tv_nsec: 200_000)
        nanosleep(&pause, nil)
    }
    return condition()
}
