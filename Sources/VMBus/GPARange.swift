/// One range of guest-physical pages, as GPADLs (channel messages) and GPA-direct packets (rings) carry it:
/// `byte_count u32, byte_offset u32, pfn u64[ceil((byte_offset + byte_count) / 4096)]`. The buffer starts
/// `byteOffset` bytes into the first page and is `byteCount` bytes long.
public struct GPARange: Equatable, Sendable {
    public static let pageSize = 4096

    public var byteCount: UInt32
    public var byteOffset: UInt32
    /// Guest page frame numbers (guest-physical address / 4096), unchecked against guest RAM here.
    public var pageNumbers: [UInt64]

    public init(byteCount: UInt32, byteOffset: UInt32, pageNumbers: [UInt64]) {
        self.byteCount = byteCount
        self.byteOffset = byteOffset
        self.pageNumbers = pageNumbers
    }

    /// The number of pages a range with these counts spans (computed in 64 bits: no overflow for any u32 pair).
    public static func pageCount(byteCount: UInt32, byteOffset: UInt32) -> UInt64 {
        (UInt64(byteOffset) + UInt64(byteCount) + UInt64(pageSize) - 1) / UInt64(pageSize)
    }

    /// The range as u64 words: the header word (byte_count in the low half, byte_offset in the high half), then the PFNs.
    public var words: [UInt64] { [UInt64(byteCount) | UInt64(byteOffset) << 32] + pageNumbers }

    /// Parses exactly `rangeCount` ranges from `words`, which must hold nothing else. Every count is checked
    /// before it is used: offsets inside the first page, non-empty ranges, page lists present in full, and at
    /// most `maxPages` pages in all.
    public static func parse(
        words: some Collection<UInt64>, rangeCount: Int, maxPages: Int
    ) throws(VMBusError) -> [GPARange] {
        let words = Array(words)
        var ranges: [GPARange] = []
        var position = 0
        var totalPages: UInt64 = 0
        for index in 0..<max(rangeCount, 0) {
            guard position < words.count else { throw .gpaRangeHeaderMissing(index: index) }
            let byteCount = UInt32(truncatingIfNeeded: words[position])
            let byteOffset = UInt32(truncatingIfNeeded: words[position] >> 32)
            position += 1
            guard byteCount > 0, byteOffset < UInt32(pageSize) else {
                throw .gpaRangeInvalid(byteCount: byteCount, byteOffset: byteOffset)
            }
            let pages = pageCount(byteCount: byteCount, byteOffset: byteOffset)
            totalPages += pages
            guard totalPages <= UInt64(maxPages) else { throw .gpaTooManyPages(count: totalPages, limit: maxPages) }
            let remaining = words.count - position
            guard pages <= UInt64(remaining) else { throw .gpaRangePagesMissing(claimed: pages, available: remaining) }
            let end = position + Int(pages)
            ranges.append(GPARange(byteCount: byteCount, byteOffset: byteOffset, pageNumbers: Array(words[position..<end])))
            position = end
        }
        guard position == words.count else { throw .gpaRangeTrailingData(words: words.count - position) }
        return ranges
    }
}
