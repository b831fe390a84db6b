import KVM
import Logging
import Synchronization

/// A device on the I/O-port bus. Reads answer with the low `size` bytes of the result.
public protocol PortDevice: AnyObject, Sendable {
    func portRead(_ port: UInt16, size: Int) -> UInt32
    func portWrite(_ port: UInt16, size: Int, value: UInt32)
}

/// A device on the MMIO bus; offsets are relative to the start of its range.
public protocol MMIODevice: AnyObject, Sendable {
    func mmioRead(offset: UInt64, size: Int) -> UInt64
    func mmioWrite(offset: UInt64, size: Int, value: UInt64)
}

/// Address-range dispatch for one bus. Ranges are registered while the partition is built
/// and never change after, so lookups take no lock.
public struct AddressRangeMap<Address: FixedWidthInteger & Sendable, Device: Sendable>: Sendable {
    public struct Entry: Sendable {
        public let range: ClosedRange<Address>
        public let device: Device
    }
    public private(set) var entries: [Entry] = []

    public init() {}

    /// Adds a range; overlapping an existing one is a programming error in hv's wiring.
    public mutating func insert(_ range: ClosedRange<Address>, _ device: Device) {
        precondition(!entries.contains { $0.range.overlaps(range) }, "overlapping device ranges at \(range)")
        entries.append(Entry(range: range, device: device))
        entries.sort { $0.range.lowerBound < $1.range.lowerBound }
    }

    public func lookup(_ address: Address) -> (device: Device, base: Address)? {
        // Few entries: a linear scan beats anything cleverer here.
        for entry in entries where entry.range.contains(address) { return (entry.device, entry.range.lowerBound) }
        return nil
    }
}

/// Port I/O and MMIO dispatch for a partition's vCPU exits. Accesses nobody claims read as
/// all ones (what an empty ISA or PCI bus returns) and are counted, logged at a limited rate.
public final class IOBus: Sendable {
    public let ports: AddressRangeMap<UInt16, any PortDevice>
    public let mmio: AddressRangeMap<UInt64, any MMIODevice>
    let unclaimed = Atomic<UInt64>(0)
    let logger: Logger

    public init(ports: AddressRangeMap<UInt16, any PortDevice>, mmio: AddressRangeMap<UInt64, any MMIODevice>, logger: Logger) {
        self.ports = ports
        self.mmio = mmio
        self.logger = logger
    }

    /// Accesses that no device claimed so far.
    public var unclaimedAccesses: UInt64 { unclaimed.load(ordering: .relaxed) }

    public func handlePortIO(direction: VCPUExit.PortIO.Direction, port: UInt16, size: Int, data: UnsafeMutableRawBufferPointer) {
        // String I/O (INS/OUTS) arrives as `data.count / size` accesses to the same port.
        let device = ports.lookup(port)?.device
        if device == nil { noteUnclaimed("port 0x\(String(port, radix: 16))", write: direction == .output) }
        var offset = 0
        while offset + size <= data.count {
            switch direction {
            case .input:
                let value = device?.portRead(port, size: size) ?? UInt32.max
                storeLittleEndian(UInt64(value), size: size, into: data, at: offset)
            case .output:
                device?.portWrite(port, size: size, value: UInt32(truncatingIfNeeded: loadLittleEndian(size: size, from: data, at: offset)))
            }
            offset += size
        }
    }

    public func handleMMIO(address: UInt64, isWrite: Bool, data: UnsafeMutableRawBufferPointer) {
        let size = data.count
        guard let (device, base) = mmio.lookup(address) else {
            noteUnclaimed("MMIO 0x\(String(address, radix: 16))", write: isWrite)
            if !isWrite { storeLittleEndian(UInt64.max, size: size, into: data, at: 0) }
            return
        }
        if isWrite {
            device.mmioWrite(offset: address - base, size: size, value: loadLittleEndian(size: size, from: data, at: 0))
        } else {
            storeLittleEndian(device.mmioRead(offset: address - base, size: size), size: size, into: data, at: 0)
        }
    }

    func noteUnclaimed(_ what: @autoclosure () -> String, write: Bool) {
        let count = unclaimed.wrappingAdd(1, ordering: .relaxed).newValue
        if RateLimit.shouldLog(count) {
            logger.debug("unclaimed \(write ? "write to" : "read from") \(what()) (\(count) so far)")
        }
    }
}

/// Logs the 1st to 10th occurrence, then every 1000th: guest-triggered noise stays bounded.
public enum RateLimit {
    public static func shouldLog(_ count: UInt64) -> Bool { count <= 10 || count % 1000 == 0 }
}

@inline(__always)
func loadLittleEndian(size: Int, from data: UnsafeMutableRawBufferPointer, at offset: Int) -> UInt64 {
    var value: UInt64 = 0
    for i in 0..<min(size, 8) { value |= UInt64(data[offset + i]) << (8 * UInt64(i)) }
    return value
}

@inline(__always)
func storeLittleEndian(_ value: UInt64, size: Int, into data: UnsafeMutableRawBufferPointer, at offset: Int) {
    for i in 0..<min(size, 8) { data[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
}
