/// A Microsoft GUID as VMBus carries it: 16 bytes whose first three groups are little-endian
/// (data1 u32, data2 u16, data3 u16) and whose last 8 bytes are in text order. So
/// "57164f39-9115-4e78-ab55-382f3bd5422d" is on the wire as 39 4f 16 57 15 91 78 4e ab 55 38 2f 3b d5 42 2d.
public struct GUID: Hashable, Sendable, CustomStringConvertible {
    /// The 16 wire bytes, packed as two little-endian u64s so the type is cheap to copy, compare and hash.
    private let low: UInt64
    private let high: UInt64

    /// From the 16 bytes in wire order.
    public init(wireBytes: some Collection<UInt8>) {
        var low: UInt64 = 0, high: UInt64 = 0
        for (index, byte) in wireBytes.prefix(16).enumerated() {
            if index < 8 { low |= UInt64(byte) << (8 * index) } else { high |= UInt64(byte) << (8 * (index - 8)) }
        }
        self.low = low
        self.high = high
    }

    /// From the fields of the text form, as Linux's GUID_INIT takes them.
    public init(_ data1: UInt32, _ data2: UInt16, _ data3: UInt16, _ data4: [UInt8]) {
        var bytes: [UInt8] = []
        for index in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: data1 >> (8 * index))) }
        for index in 0..<2 { bytes.append(UInt8(truncatingIfNeeded: data2 >> (8 * index))) }
        for index in 0..<2 { bytes.append(UInt8(truncatingIfNeeded: data3 >> (8 * index))) }
        bytes.append(contentsOf: data4.prefix(8))
        bytes.append(contentsOf: repeatElement(0, count: 16 - bytes.count))
        self.init(wireBytes: bytes)
    }

    /// Parses "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", optionally in braces, either case.
    public init?(_ string: String) {
        var text = Substring(string)
        if text.first == "{" && text.last == "}" { text = text.dropFirst().dropLast() }
        // Only hex digits and hyphens: UInt32(_:radix:) alone would also take a leading sign.
        guard text.allSatisfy({ $0 == "-" || $0.isHexDigit }) else { return nil }
        let groups = text.split(separator: "-", omittingEmptySubsequences: false)
        guard groups.map(\.count) == [8, 4, 4, 4, 12],
              let data1 = UInt32(groups[0], radix: 16),
              let data2 = UInt16(groups[1], radix: 16),
              let data3 = UInt16(groups[2], radix: 16) else { return nil }
        var data4: [UInt8] = []
        for group in groups[3...4] {
            var rest = group[...]
            while !rest.isEmpty {
                guard let byte = UInt8(rest.prefix(2), radix: 16) else { return nil }
                data4.append(byte)
                rest = rest.dropFirst(2)
            }
        }
        self.init(data1, data2, data3, data4)
    }

    public static let zero = GUID(wireBytes: [UInt8](repeating: 0, count: 16))

    /// The 16 bytes in wire order.
    public var wireBytes: [UInt8] {
        (0..<16).map { index in
            UInt8(truncatingIfNeeded: index < 8 ? low >> (8 * index) : high >> (8 * (index - 8)))
        }
    }

    public var description: String {
        let bytes = wireBytes
        func hex(_ indices: [Int]) -> String {
            indices.map { index in
                let text = String(bytes[index], radix: 16)
                return text.count == 1 ? "0" + text : text
            }.joined()
        }
        return [hex([3, 2, 1, 0]), hex([5, 4]), hex([7, 6]), hex([8, 9]), hex(Array(10..<16))].joined(separator: "-")
    }
}

/// Device class (interface type) GUIDs of the offers Linux's drivers bind to, from include/linux/hyperv.h.
extension GUID {
    /// hv_netvsc: {f8615163-df3e-46c5-913f-f2d2f965ed0e}
    public static let network = GUID(0xF861_5163, 0xDF3E, 0x46C5, [0x91, 0x3F, 0xF2, 0xD2, 0xF9, 0x65, 0xED, 0x0E])
    /// hv_storvsc, SCSI controller: {ba6163d9-04a1-4d29-b605-72e2ffb1dc7f}
    public static let scsi = GUID(0xBA61_63D9, 0x04A1, 0x4D29, [0xB6, 0x05, 0x72, 0xE2, 0xFF, 0xB1, 0xDC, 0x7F])
    /// hv_storvsc, IDE accelerator: {32412632-86cb-44a2-9b5c-50d1417354f5}
    public static let ide = GUID(0x3241_2632, 0x86CB, 0x44A2, [0x9B, 0x5C, 0x50, 0xD1, 0x41, 0x73, 0x54, 0xF5])
    /// hv_utils shutdown: {0e0b6031-5213-4934-818b-38d90ced39db}
    public static let shutdown = GUID(0x0E0B_6031, 0x5213, 0x4934, [0x81, 0x8B, 0x38, 0xD9, 0x0C, 0xED, 0x39, 0xDB])
    /// hv_utils time synchronization: {9527e630-d0ae-497b-adce-e80ab0175caf}
    public static let timeSync = GUID(0x9527_E630, 0xD0AE, 0x497B, [0xAD, 0xCE, 0xE8, 0x0A, 0xB0, 0x17, 0x5C, 0xAF])
    /// hv_utils heartbeat: {57164f39-9115-4e78-ab55-382f3bd5422d}
    public static let heartbeat = GUID(0x5716_4F39, 0x9115, 0x4E78, [0xAB, 0x55, 0x38, 0x2F, 0x3B, 0xD5, 0x42, 0x2D])
    /// hv_utils key-value pair exchange: {a9a0f4e7-5a45-4d96-b827-8a841e8c03e6}
    public static let kvp = GUID(0xA9A0_F4E7, 0x5A45, 0x4D96, [0xB8, 0x27, 0x8A, 0x84, 0x1E, 0x8C, 0x03, 0xE6])
    /// hv_utils volume shadow copy (backup): {35fa2e29-ea23-4236-96ae-3a6ebacba440}
    public static let vss = GUID(0x35FA_2E29, 0xEA23, 0x4236, [0x96, 0xAE, 0x3A, 0x6E, 0xBA, 0xCB, 0xA4, 0x40])
    /// hv_balloon dynamic memory: {525074dc-8985-46e2-8057-a307dc18a502}
    public static let dynamicMemory = GUID(0x5250_74DC, 0x8985, 0x46E2, [0x80, 0x57, 0xA3, 0x07, 0xDC, 0x18, 0xA5, 0x02])
    /// hyperv_keyboard: {f912ad6d-2b17-48ea-bd65-f927a61c7684}
    public static let keyboard = GUID(0xF912_AD6D, 0x2B17, 0x48EA, [0xBD, 0x65, 0xF9, 0x27, 0xA6, 0x1C, 0x76, 0x84])
    /// hid_hyperv mouse: {cfa8b69e-5b4a-4cc0-b98b-8ba1a1f3f95a}
    public static let mouse = GUID(0xCFA8_B69E, 0x5B4A, 0x4CC0, [0xB9, 0x8B, 0x8B, 0xA1, 0xA1, 0xF3, 0xF9, 0x5A])
}
