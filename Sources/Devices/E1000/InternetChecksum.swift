/// The Internet checksum (RFC 1071): a ones'-complement sum of big-endian 16-bit words, an odd last byte padded
/// with zero. Sums are kept unfolded in 32 bits so that pieces (pseudo-header, header, payload) add up.
enum InternetChecksum {
    static func sum<C: Collection>(_ bytes: C, initial: UInt32 = 0) -> UInt32 where C.Element == UInt8 {
        var sum = UInt64(initial)
        var high = true
        for byte in bytes {
            sum += high ? UInt64(byte) << 8 : UInt64(byte)
            high.toggle()
        }
        return fold32(sum)
    }

    static func fold32(_ value: UInt64) -> UInt32 {
        var value = value
        while value >> 32 != 0 { value = (value & 0xFFFF_FFFF) + (value >> 32) }
        return UInt32(value)
    }

    /// Folds a sum to 16 bits (end-around carry).
    static func fold(_ sum: UInt32) -> UInt16 {
        var sum = sum
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
        return UInt16(sum)
    }

    /// The IPv4 pseudo-header of a TCP or UDP segment.
    static func pseudoHeader(source: ArraySlice<UInt8>, destination: ArraySlice<UInt8>, protocol: UInt8, length: Int) -> UInt32 {
        sum(source, initial: sum(destination, initial: UInt32(`protocol`) + UInt32(length & 0xFFFF)))
    }
}

/// Big-endian field access inside frames; callers check the bounds.
extension Array where Element == UInt8 {
    func bigEndian16(at offset: Int) -> UInt16 {
        UInt16(self[offset]) << 8 | UInt16(self[offset + 1])
    }

    func bigEndian32(at offset: Int) -> UInt32 {
        UInt32(bigEndian16(at: offset)) << 16 | UInt32(bigEndian16(at: offset + 2))
    }

    mutating func setBigEndian16(_ value: UInt16, at offset: Int) {
        self[offset] = UInt8(value >> 8)
        self[offset + 1] = UInt8(value & 0xFF)
    }

    mutating func setBigEndian32(_ value: UInt32, at offset: Int) {
        setBigEndian16(UInt16(value >> 16), at: offset)
        setBigEndian16(UInt16(value & 0xFFFF), at: offset + 2)
    }
}
