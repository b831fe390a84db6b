/// The one error type of the VMBus layer. Everything a guest puts in a channel message or a ring is hostile;
/// decoding it either yields a value that is safe to act on or one of these cases, which name what was wrong
/// so that the caller can log it (rate-limited), answer with the protocol's error status, and count it.
public enum VMBusError: Error, Equatable, Sendable, CustomStringConvertible {
    // Channel messages (SynIC message payloads).
    /// The message is shorter than the fixed part of its type (or than the 8-byte header).
    case messageTruncated(type: UInt32, length: Int, required: Int)
    /// The message is longer than a SynIC message payload can be.
    case messageTooLong(length: Int, limit: Int)
    /// The message type is not one hv understands (0, 18–20, Copper's 25+, or anything else).
    case unknownMessageType(UInt32)
    /// A variable part made of u64 words (GPADL PFNs) does not end on a word boundary.
    case messageMisaligned(type: UInt32, length: Int)

    // GPADLs and GPA ranges.
    /// GPADL_HEADER.range_buflen is not a whole number of u64 words or cannot hold one range with one page.
    case gpadlRangeBufferLength(UInt16)
    /// GPADL_HEADER.rangecount is 0 or more ranges than range_buflen can hold.
    case gpadlRangeCount(count: UInt16, rangeBufferLength: UInt16)
    /// A GPADL message carries more range words than the header announced in range_buflen.
    case gpadlMoreDataThanAnnounced(carried: Int, announced: Int)
    /// The data ends before the header of range `index` (counting from 0).
    case gpaRangeHeaderMissing(index: Int)
    /// A GPA range with byte_offset outside its first page or byte_count 0.
    case gpaRangeInvalid(byteCount: UInt32, byteOffset: UInt32)
    /// A GPA range claims more page numbers than the data carries.
    case gpaRangePagesMissing(claimed: UInt64, available: Int)
    /// Words are left over after the announced ranges.
    case gpaRangeTrailingData(words: Int)
    /// The ranges describe more pages than the caller allows.
    case gpaTooManyPages(count: UInt64, limit: Int)

    // Ring buffers.
    /// The ring's memory cannot hold a control page and a non-empty, 8-byte-multiple data area.
    case ringSizeInvalid(Int)
    /// An index read from the shared control page is not 8-byte aligned or not below the data size.
    case ringIndexInvalid(field: RingIndexField, value: UInt32, dataSize: Int)
    /// The ring holds some bytes but fewer than a descriptor plus its trailer.
    case ringPacketTruncated(available: Int)
    /// A descriptor whose offset8/len8 are impossible or claim more than the ring holds.
    case ringPacketInvalid(offset8: UInt16, len8: UInt16, available: Int)
    /// A packet longer than the caller's limit (reading) or than len8 can express (writing).
    case ringPacketTooLarge(length: Int, limit: Int)
    /// An access outside the ring's memory (a bug in the caller or in a RingMemory).
    case ringMemoryOutOfRange(offset: Int, length: Int, size: Int)

    public var description: String {
        switch self {
        case .messageTruncated(let type, let length, let required):
            "VMBus message type \(type): \(length) bytes, at least \(required) required"
        case .messageTooLong(let length, let limit):
            "VMBus message of \(length) bytes exceeds the \(limit)-byte SynIC payload"
        case .unknownMessageType(let type):
            "unknown VMBus message type \(type)"
        case .messageMisaligned(let type, let length):
            "VMBus message type \(type): \(length) bytes is not a whole number of u64 words"
        case .gpadlRangeBufferLength(let length):
            "GPADL range_buflen \(length) is not a multiple of 8 of at least 16"
        case .gpadlRangeCount(let count, let length):
            "GPADL rangecount \(count) does not fit range_buflen \(length)"
        case .gpadlMoreDataThanAnnounced(let carried, let announced):
            "GPADL carries \(carried) range words, \(announced) announced"
        case .gpaRangeHeaderMissing(let index):
            "GPA range \(index) is missing"
        case .gpaRangeInvalid(let count, let offset):
            "GPA range byte_count \(count) byte_offset \(offset) is invalid"
        case .gpaRangePagesMissing(let claimed, let available):
            "GPA range claims \(claimed) pages, \(available) present"
        case .gpaRangeTrailingData(let words):
            "\(words) words left over after the GPA ranges"
        case .gpaTooManyPages(let count, let limit):
            "GPA ranges describe \(count) pages, limit \(limit)"
        case .ringSizeInvalid(let size):
            "ring of \(size) bytes: need a 4096-byte control page and a non-empty data area, multiple of 8"
        case .ringIndexInvalid(let field, let value, let dataSize):
            "ring \(field) \(value) is unaligned or outside the \(dataSize)-byte data area"
        case .ringPacketTruncated(let available):
            "ring holds \(available) bytes, less than a packet descriptor and trailer"
        case .ringPacketInvalid(let offset8, let len8, let available):
            "ring packet offset8 \(offset8) len8 \(len8) is invalid with \(available) bytes available"
        case .ringPacketTooLarge(let length, let limit):
            "ring packet of \(length) bytes exceeds the limit of \(limit)"
        case .ringMemoryOutOfRange(let offset, let length, let size):
            "ring access at \(offset) + \(length) is outside its \(size) bytes"
        }
    }
}

/// Which shared ring index a `VMBusError.ringIndexInvalid` is about.
public enum RingIndexField: String, Sendable, CustomStringConvertible {
    case writeIndex = "write_index"
    case readIndex = "read_index"
    public var description: String { rawValue }
}
