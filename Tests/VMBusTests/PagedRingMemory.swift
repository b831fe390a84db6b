@testable import VMBus

/// A ring in separate page-sized arrays, as a GPADL's pages are separate in hv's address space: accesses that
/// cross a page boundary are split here, so the ring code is tested against non-contiguous memory. A small page
/// size makes every packet cross boundaries.
final class PagedRingMemory: RingMemory {
    let pageSize: Int
    private(set) var pages: [[UInt8]]
    let count: Int

    init(dataSize: Int, pageSize: Int = 64) {
        self.pageSize = pageSize
        count = RingLayout.controlPageSize + dataSize
        pages = Array(repeating: [UInt8](repeating: 0, count: pageSize), count: (count + pageSize - 1) / pageSize)
    }

    private func check(_ offset: Int, _ length: Int) throws(VMBusError) {
        guard offset >= 0, length >= 0, offset <= count - length else {
            throw .ringMemoryOutOfRange(offset: offset, length: length, size: count)
        }
    }

    func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(VMBusError) {
        try check(offset, buffer.count)
        for index in 0..<buffer.count {
            buffer[index] = pages[(offset + index) / pageSize][(offset + index) % pageSize]
        }
    }

    func write(at offset: Int, from buffer: UnsafeRawBufferPointer) throws(VMBusError) {
        try check(offset, buffer.count)
        for index in 0..<buffer.count {
            pages[(offset + index) / pageSize][(offset + index) % pageSize] = buffer[index]
        }
    }

    // Test helpers: the control page as the guest sees it, and the data area.
    func field(_ offset: Int) -> UInt32 { (try? loadUInt32(at: offset)) ?? 0xDEAD_BEEF }
    func setField(_ offset: Int, _ value: UInt32) { try? storeUInt32(value, at: offset) }

    var writeIndex: UInt32 {
        get { field(RingLayout.writeIndexOffset) }
        set { setField(RingLayout.writeIndexOffset, newValue) }
    }
    var readIndex: UInt32 {
        get { field(RingLayout.readIndexOffset) }
        set { setField(RingLayout.readIndexOffset, newValue) }
    }
    var interruptMask: UInt32 {
        get { field(RingLayout.interruptMaskOffset) }
        set { setField(RingLayout.interruptMaskOffset, newValue) }
    }
    var pendingSendSize: UInt32 {
        get { field(RingLayout.pendingSendSizeOffset) }
        set { setField(RingLayout.pendingSendSizeOffset, newValue) }
    }
    var featureBits: UInt32 {
        get { field(RingLayout.featureBitsOffset) }
        set { setField(RingLayout.featureBitsOffset, newValue) }
    }

    /// `length` bytes of the data area from `start`, wrapping.
    func data(at start: Int, count length: Int) -> [UInt8] {
        let dataSize = count - RingLayout.controlPageSize
        return (0..<length).map { index in
            let offset = RingLayout.controlPageSize + (start + index) % dataSize
            return pages[offset / pageSize][offset % pageSize]
        }
    }

    func setData(_ bytes: [UInt8], at start: Int) {
        let dataSize = count - RingLayout.controlPageSize
        for (index, byte) in bytes.enumerated() {
            let offset = RingLayout.controlPageSize + (start + index) % dataSize
            pages[offset / pageSize][offset % pageSize] = byte
        }
    }
}

func littleEndian(_ value: UInt64, width: Int = 8) -> [UInt8] {
    (0..<width).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }
}
