import Glibc

/// Guest pages that are scattered in guest-physical memory, mapped side by side in hv's address space from the
/// same memfd, so code that walks them (a VMBus ring) sees one contiguous span. With `repeatingFrom`, the pages
/// from that index on are mapped a second time right after the first run: a ring's data area then reads and
/// writes across its end without being split, the way Linux maps its own rings.
///
/// `@unchecked Sendable`: the mapping is fixed for the object's life and shared with the guest by design; the
/// protocols on top (ring indices) order the accesses.
public final class GuestPageMapping: @unchecked Sendable {
    public static let pageSize = 4096
    public let base: UnsafeMutableRawPointer
    /// Bytes mapped, the repeated pages included.
    public let size: Int
    /// Keeps the memfd (and so the pages) alive as long as the mapping.
    let memory: GuestMemory

    /// Maps guest page numbers `pages` in order; fails unless every page is RAM.
    public init(memory: GuestMemory, pages: [UInt64], repeatingFrom repeatStart: Int? = nil) throws(GuestMemoryError) {
        var offsets: [UInt64] = []
        offsets.reserveCapacity(pages.count)
        for page in pages {
            guard page < UInt64.max >> 12, let offset = memory.backingOffset(of: page << 12, count: Self.pageSize) else {
                throw GuestMemoryError(address: page << 12, length: UInt64(Self.pageSize))
            }
            offsets.append(offset)
        }
        if let repeatStart {
            precondition(repeatStart >= 0 && repeatStart <= pages.count)
            offsets += offsets[repeatStart...]
        }
        let size = offsets.count * Self.pageSize
        // Reserve the span first, then put each page in place: nothing else can land in between.
        guard size > 0, let reserved = mmap(nil, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0),
              reserved != MAP_FAILED else { throw GuestMemoryError(address: pages.first.map { $0 << 12 } ?? 0, length: UInt64(size)) }
        for (index, offset) in offsets.enumerated() {
            let target = reserved + index * Self.pageSize
            let placed = mmap(target, Self.pageSize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, memory.memfd, off_t(offset))
            if placed == MAP_FAILED {
                munmap(reserved, size)
                throw GuestMemoryError(address: pages[index % pages.count] << 12, length: UInt64(Self.pageSize))
            }
        }
        base = reserved
        self.size = size
        self.memory = memory
    }

    deinit { munmap(base, size) }
}

extension GuestMemory {
    /// Where guest-physical [address, address + count) lives in the memfd, or nil unless it is RAM in one region.
    func backingOffset(of address: UInt64, count: Int) -> UInt64? {
        guard let host = hostRange(address, count) else { return nil }
        return UInt64(host - base)
    }
}
