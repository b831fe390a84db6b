// How NetVSP reaches guest memory: the receive and send buffers (GPADLs the guest created for the channel, mapped
// side by side with GuestPageMapping) and the pages a GPA-direct packet names. Every span is bounds-checked here;
// the state machine never computes a host address itself. The bytes are shared with the guest, which may change
// them at any time: NetVSP copies headers out before it checks them.

import Partition
import VMBus

/// A guest buffer used in place: `count` bytes, shared with the guest.
public protocol NetVSPBuffer: Sendable {
    var count: Int { get }
    /// The bytes [offset, offset + length), or nil unless they lie wholly inside the buffer.
    func span(_ offset: Int, _ length: Int) -> UnsafeMutableRawBufferPointer?
}

/// Guest memory as NetVSP sees it.
public protocol NetVSPMemory: Sendable {
    /// The buffer the guest described with GPADL `handle` on this channel, mapped contiguously, or nil when there
    /// is no such GPADL (or it cannot be mapped).
    func buffer(gpadl handle: UInt32) -> (any NetVSPBuffer)?
    /// Guest-physical [address, address + length) as host bytes, or nil unless it is RAM in one piece.
    func physical(_ address: UInt64, _ length: Int) -> UnsafeMutableRawBufferPointer?
}

/// A GPADL's pages mapped contiguously from the partition's RAM.
public final class MappedGuestBuffer: NetVSPBuffer {
    public let mapping: GuestPageMapping
    public let count: Int

    public init(mapping: GuestPageMapping, count: Int) {
        precondition(count >= 0 && count <= mapping.size)
        self.mapping = mapping
        self.count = count
    }

    public func span(_ offset: Int, _ length: Int) -> UnsafeMutableRawBufferPointer? {
        guard offset >= 0, length >= 0, offset <= count, length <= count - offset else { return nil }
        return UnsafeMutableRawBufferPointer(start: mapping.base + offset, count: length)
    }
}

/// The partition's memory and a channel's GPADLs: what NetVSPDevice gives the state machine.
public struct GuestNetVSPMemory: NetVSPMemory {
    public let memory: GuestMemory
    public let gpadlPages: @Sendable (UInt32) -> [UInt64]?
    /// The largest buffer mapped (Linux allows the receive buffer up to 31 MiB).
    public static let maxBufferBytes = 64 << 20

    public init(memory: GuestMemory, gpadlPages: @escaping @Sendable (UInt32) -> [UInt64]?) {
        self.memory = memory
        self.gpadlPages = gpadlPages
    }

    public func buffer(gpadl handle: UInt32) -> (any NetVSPBuffer)? {
        guard let pages = gpadlPages(handle), !pages.isEmpty,
              pages.count <= Self.maxBufferBytes / GuestPageMapping.pageSize,
              let mapping = try? GuestPageMapping(memory: memory, pages: pages) else { return nil }
        return MappedGuestBuffer(mapping: mapping, count: pages.count * GuestPageMapping.pageSize)
    }

    public func physical(_ address: UInt64, _ length: Int) -> UnsafeMutableRawBufferPointer? {
        guard length >= 0, let host = try? memory.hostPointer(address, count: length) else { return nil }
        return UnsafeMutableRawBufferPointer(start: host, count: length)
    }
}
