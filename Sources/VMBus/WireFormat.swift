/// Little-endian field access for VMBus wire structures. The reader is only used after the caller has checked
/// the input's length against the structure's fixed size, so every fixed offset it is given is in bounds.
public struct WireReader {
    public let bytes: [UInt8]

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var count: Int { bytes.count }

    public func u8(_ offset: Int) -> UInt8 { bytes[offset] }

    public func u16(_ offset: Int) -> UInt16 { UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8 }

    public func u32(_ offset: Int) -> UInt32 {
        var value: UInt32 = 0
        for index in 0..<4 { value |= UInt32(bytes[offset + index]) << (8 * index) }
        return value
    }

    public func u64(_ offset: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in 0..<8 { value |= UInt64(bytes[offset + index]) << (8 * index) }
        return value
    }

    public func guid(_ offset: Int) -> GUID { GUID(wireBytes: bytes[offset..<offset + 16]) }

    public func slice(_ offset: Int, _ length: Int) -> [UInt8] { Array(bytes[offset..<offset + length]) }
}

/// Builds a little-endian wire structure by appending fields in order.
public struct WireWriter {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int) { bytes.reserveCapacity(capacity) }

    public mutating func u8(_ value: UInt8) { bytes.append(value) }

    public mutating func u16(_ value: UInt16) { appendLittleEndian(UInt64(value), width: 2) }

    public mutating func u32(_ value: UInt32) { appendLittleEndian(UInt64(value), width: 4) }

    public mutating func u64(_ value: UInt64) { appendLittleEndian(value, width: 8) }

    public mutating func guid(_ value: GUID) { bytes.append(contentsOf: value.wireBytes) }

    /// Appends exactly `width` bytes: `data` cut or zero-padded to that width.
    public mutating func fixed(_ data: [UInt8], width: Int) {
        bytes.append(contentsOf: data.prefix(width))
        if data.count < width { bytes.append(contentsOf: repeatElement(0, count: width - data.count)) }
    }

    private mutating func appendLittleEndian(_ value: UInt64, width: Int) {
        for index in 0..<width { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * index))) }
    }
}
