// A ring's bytes in guest memory, as a GPADL describes them: whole guest pages in any order, mapped side by
// side in hv with the data pages mapped twice (GuestPageMapping), so a packet is one span even where it wraps
// and the device can read it in place. Every page was checked to be RAM when the ring was mapped; the guest can
// still change the contents at any time, which the ring reader and writer allow for.

import CKVM
import Partition

public struct GPADLRingMemory: RingMemory, Sendable {
    static let pageSize = GuestPageMapping.pageSize
    let mapping: GuestPageMapping
    public let count: Int

    /// Maps guest pages `pageNumbers` (PFNs) in order: the control page, then the data pages. Fails unless every
    /// page is RAM.
    public init(memory: GuestMemory, pageNumbers: ArraySlice<UInt64>) throws(GuestMemoryError) {
        mapping = try GuestPageMapping(memory: memory, pages: Array(pageNumbers), repeatingFrom: 1)
        count = pageNumbers.count * Self.pageSize
    }

    public var mirroredData: UnsafeMutableRawPointer? { mapping.base + RingLayout.controlPageSize }

    func check(_ offset: Int, _ length: Int) throws(VMBusError) {
        guard offset >= 0, length >= 0, offset <= count, length <= count - offset else {
            throw .ringMemoryOutOfRange(offset: offset, length: length, size: count)
        }
    }

    public func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(VMBusError) {
        try check(offset, buffer.count)
        guard buffer.count > 0 else { return }
        buffer.baseAddress!.copyMemory(from: mapping.base + offset, byteCount: buffer.count)
    }

    public func write(at offset: Int, from buffer: UnsafeRawBufferPointer) throws(VMBusError) {
        try check(offset, buffer.count)
        guard buffer.count > 0 else { return }
        (mapping.base + offset).copyMemory(from: buffer.baseAddress!, byteCount: buffer.count)
    }

    /// Control-page fields are aligned u32s shared with the guest: one atomic access each.
    public func loadUInt32(at offset: Int) throws(VMBusError) -> UInt32 {
        guard offset >= 0, offset % 4 == 0, offset <= RingLayout.controlPageSize - 4 else {
            throw .ringMemoryOutOfRange(offset: offset, length: 4, size: count)
        }
        return UInt32(littleEndian: ckvm_atomic_load_u32(mapping.base + offset))
    }

    public func storeUInt32(_ value: UInt32, at offset: Int) throws(VMBusError) {
        guard offset >= 0, offset % 4 == 0, offset <= RingLayout.controlPageSize - 4 else {
            throw .ringMemoryOutOfRange(offset: offset, length: 4, size: count)
        }
        ckvm_atomic_store_u32(mapping.base + offset, value.littleEndian)
    }
}
