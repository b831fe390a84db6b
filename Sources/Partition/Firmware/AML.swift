/// Just enough ACPI Machine Language to describe hv's platform in a DSDT: names, integers,
/// packages, buffers, devices and scopes (ACPI 6.5 §20.2 encodings), and the resource descriptors
/// their _CRS buffers hold. No methods: a PCI _PRT is a Name with a package of packages.
public indirect enum AML {
    case name(String, AML)
    case scope(String, [AML])
    case device(String, [AML])
    case integer(UInt64)
    case eisaID(String)
    case package([AML])
    case buffer([UInt8])
    case string(String)

    public var bytes: [UInt8] {
        switch self {
        case .name(let name, let value):
            return [0x08] + AML.nameString(name) + value.bytes
        case .scope(let name, let terms):
            return [0x10] + AML.withPackageLength(AML.nameString(name) + terms.flatMap(\.bytes))
        case .device(let name, let terms):
            return [0x5B, 0x82] + AML.withPackageLength(AML.nameString(name) + terms.flatMap(\.bytes))
        case .integer(let value):
            switch value {
            case 0: return [0x00]                                                  // ZeroOp
            case 1: return [0x01]                                                  // OneOp
            case 2...0xFF: return [0x0A, UInt8(value)]                             // BytePrefix
            case 0x100...0xFFFF: return [0x0B] + littleEndianBytes(UInt16(value))                // WordPrefix
            case 0x1_0000...0xFFFF_FFFF: return [0x0C] + littleEndianBytes(UInt32(value))        // DWordPrefix
            default: return [0x0E] + littleEndianBytes(value)                                    // QWordPrefix
            }
        case .eisaID(let id):
            return AML.integer(UInt64(AML.compressedEISAID(id))).bytes
        case .package(let elements):
            return [0x12] + AML.withPackageLength([UInt8(elements.count)] + elements.flatMap(\.bytes))
        case .buffer(let contents):
            return [0x11] + AML.withPackageLength(AML.integer(UInt64(contents.count)).bytes + contents)
        case .string(let text):
            return [0x0D] + Array(text.utf8.filter { $0 > 0 && $0 < 0x80 }) + [0]     // StringPrefix, ASCII, NUL
        }
    }

    /// A NameString: an optional root prefix `\` and 4-character segments joined by dots.
    static func nameString(_ name: String) -> [UInt8] {
        var text = Substring(name)
        var bytes: [UInt8] = []
        if text.hasPrefix("\\") { bytes.append(0x5C); text = text.dropFirst() }
        let segments = text.split(separator: ".").map { segment -> [UInt8] in
            let padded = Array(segment.utf8) + [UInt8](repeating: UInt8(ascii: "_"), count: max(0, 4 - segment.utf8.count))
            precondition(padded.count == 4, "AML name segment '\(segment)' is longer than 4 characters")
            return padded
        }
        switch segments.count {
        case 1: bytes += segments[0]
        case 2: bytes += [0x2E] + segments[0] + segments[1]                      // DualNamePrefix
        default: bytes += [0x2F, UInt8(segments.count)] + segments.flatMap { $0 } // MultiNamePrefix
        }
        return bytes
    }

    /// PkgLength counts itself: one byte up to 63, else a lead byte with the low nibble and
    /// 1 to 3 more bytes.
    static func withPackageLength(_ body: [UInt8]) -> [UInt8] {
        if body.count + 1 <= 0x3F { return [UInt8(body.count + 1)] + body }
        for extra in 1...3 {
            let total = body.count + 1 + extra
            if total < 1 << (4 + 8 * extra) {
                var encoded = [UInt8(extra << 6) | UInt8(total & 0x0F)]
                for i in 0..<extra { encoded.append(UInt8((total >> (4 + 8 * i)) & 0xFF)) }
                return encoded + body
            }
        }
        preconditionFailure("AML package of \(body.count) bytes is too large")
    }

    /// "PNP0501" → 0x0105D041: three letters in 5 bits each, then four hex digits, byte-swapped.
    static func compressedEISAID(_ id: String) -> UInt32 {
        let chars = Array(id.utf8)
        precondition(chars.count == 7, "EISA ID '\(id)' must be 3 letters and 4 hex digits")
        let vendor = (UInt16(chars[0] - 0x40) << 10) | (UInt16(chars[1] - 0x40) << 5) | UInt16(chars[2] - 0x40)
        let product = UInt16(String(decoding: chars[3...], as: UTF8.self), radix: 16)!
        let bytes = [UInt8(vendor >> 8), UInt8(vendor & 0xFF), UInt8(product >> 8), UInt8(product & 0xFF)]
        return UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
    }

    /// ResourceTemplate items (ACPI §6.4): a 16-bit-decode I/O range, an ISA IRQ, the end tag.
    public static func ioResource(base: UInt16, length: UInt8) -> [UInt8] {
        [0x47, 0x01] + littleEndianBytes(base) + littleEndianBytes(base) + [0x01, length]
    }

    public static func irqResource(_ irq: Int) -> [UInt8] {
        [0x22] + littleEndianBytes(UInt16(1) << UInt16(irq))
    }

    public static let endTag: [UInt8] = [0x79, 0x00]

    // Large address-space descriptors (ACPI §6.4.3.5) for a bridge's windows. General flags 0x0C: the bridge
    // produces the range (bit 0 clear), positive decode, minimum and maximum fixed.

    /// WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, min, max, 0, length).
    public static func wordBusNumber(_ buses: ClosedRange<UInt16>) -> [UInt8] {
        wordAddressSpace(resourceType: 2, typeFlags: 0, buses)
    }

    /// WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, min, max, 0, length).
    public static func wordIO(_ ports: ClosedRange<UInt16>) -> [UInt8] {
        wordAddressSpace(resourceType: 1, typeFlags: 0x03, ports)
    }

    static func wordAddressSpace(resourceType: UInt8, typeFlags: UInt8, _ range: ClosedRange<UInt16>) -> [UInt8] {
        let length = (range.upperBound - range.lowerBound) &+ 1
        return [0x88] + littleEndianBytes(UInt16(13)) + [resourceType, 0x0C, typeFlags]
            + littleEndianBytes(UInt16(0)) + littleEndianBytes(range.lowerBound) + littleEndianBytes(range.upperBound)
            + littleEndianBytes(UInt16(0)) + littleEndianBytes(length)
    }

    /// DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite, 0, min, max, 0, length).
    public static func dwordMemory(_ range: ClosedRange<UInt32>) -> [UInt8] {
        let length = (range.upperBound - range.lowerBound) &+ 1
        return [0x87] + littleEndianBytes(UInt16(23)) + [0, 0x0C, 0x01]
            + littleEndianBytes(UInt32(0)) + littleEndianBytes(range.lowerBound) + littleEndianBytes(range.upperBound)
            + littleEndianBytes(UInt32(0)) + littleEndianBytes(length)
    }

    /// Memory32Fixed (ReadWrite, base, length): memory a device (here the motherboard) consumes.
    public static func memory32Fixed(base: UInt32, length: UInt32) -> [UInt8] {
        [0x86] + littleEndianBytes(UInt16(9)) + [0x01] + littleEndianBytes(base) + littleEndianBytes(length)
    }
}

func littleEndianBytes<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { Array($0) }
}
