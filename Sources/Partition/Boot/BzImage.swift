/// The setup header of a Linux bzImage (Documentation/arch/x86/boot.rst), checked for
/// what hv needs: boot protocol 2.06 or later and a 64-bit entry point.
public struct BzImage: Equatable, Sendable {
    // Offsets into the file (= offsets into boot_params for the header fields).
    static let setupSectorsOffset = 0x1F1
    static let bootFlagOffset = 0x1FE
    static let headerMagicOffset = 0x202
    static let versionOffset = 0x206
    static let loadFlagsOffset = 0x211
    static let code32StartOffset = 0x214
    static let initrdAddressMaxOffset = 0x22C
    static let kernelAlignmentOffset = 0x230
    static let relocatableOffset = 0x234
    static let xloadflagsOffset = 0x236
    static let cmdlineSizeOffset = 0x238
    static let preferredAddressOffset = 0x258
    static let initSizeOffset = 0x260

    static let headerMagic: UInt32 = 0x5372_6448 // "HdrS"
    public static let minimumProtocol: UInt16 = 0x0206
    /// The 64-bit entry (XLF_KERNEL_64) exists from protocol 2.12.
    public static let minimum64BitProtocol: UInt16 = 0x020C
    static let xlfKernel64: UInt16 = 1 << 0

    public var protocolVersion: UInt16
    public var setupSectors: Int
    public var loadFlags: UInt8
    public var initrdAddressMax: UInt32
    public var kernelAlignment: UInt32
    public var relocatable: Bool
    public var xloadflags: UInt16
    /// Longest cmdline the kernel takes, without the NUL.
    public var cmdlineSize: UInt32
    public var preferredAddress: UInt64
    /// Memory the kernel needs from its run address, decompression included.
    public var initSize: UInt32
    /// The setup header bytes from 0x1F1 to its end, copied into boot_params.
    public var setupHeader: [UInt8]
    /// Where the protected-mode kernel starts in the file, and how long it is.
    public var payloadOffset: Int
    public var payloadSize: Int


    /// Whether the file looks like a bzImage at all (boot flag and "HdrS").
    public static func isBzImage(_ bytes: [UInt8]) -> Bool {
        bytes.le(UInt16.self, at: bootFlagOffset) == 0xAA55 && bytes.le(UInt32.self, at: headerMagicOffset) == headerMagic
    }

    public init(parsing bytes: [UInt8], name: String) throws(PartitionError) {
        guard BzImage.isBzImage(bytes) else { throw .image("\(name): not a Linux bzImage (no 0xAA55 boot flag and HdrS header)") }
        let version = bytes.le(UInt16.self, at: BzImage.versionOffset)!
        protocolVersion = version
        let found = "\(version >> 8).\(String(format2: version & 0xFF))"
        guard version >= BzImage.minimumProtocol else {
            throw .image("\(name): boot protocol \(found) is too old; hv needs 2.06 or later")
        }
        guard let headerEndByte = bytes.le(UInt8.self, at: 0x201), let initSize = bytes.le(UInt32.self, at: BzImage.initSizeOffset) else {
            throw .image("\(name): truncated bzImage header")
        }
        let headerEnd = 0x202 + Int(headerEndByte)
        guard headerEnd <= bytes.count, headerEnd > BzImage.initSizeOffset + 4 else {
            throw .image("\(name): truncated bzImage header (ends at 0x\(String(headerEnd, radix: 16)))")
        }
        xloadflags = bytes.le(UInt16.self, at: BzImage.xloadflagsOffset)!
        guard version >= BzImage.minimum64BitProtocol, xloadflags & BzImage.xlfKernel64 != 0 else {
            throw .image("\(name): kernel has no 64-bit entry point (needs boot protocol 2.12+ with XLF_KERNEL_64; found \(found))")
        }
        let sectors = Int(bytes[BzImage.setupSectorsOffset])
        setupSectors = sectors == 0 ? 4 : sectors
        payloadOffset = (setupSectors + 1) * 512
        guard payloadOffset < bytes.count else { throw .image("\(name): truncated bzImage (no kernel after the setup sectors)") }
        // syssize counts 16-byte paragraphs of the protected-mode kernel.
        let sysSize = Int(bytes.le(UInt32.self, at: 0x1F4)!) * 16
        guard sysSize > 0, payloadOffset + sysSize <= bytes.count else {
            throw .image("\(name): truncated bzImage (header says \(payloadOffset + sysSize) bytes, file has \(bytes.count))")
        }
        payloadSize = bytes.count - payloadOffset
        loadFlags = bytes[BzImage.loadFlagsOffset]
        initrdAddressMax = bytes.le(UInt32.self, at: BzImage.initrdAddressMaxOffset)!
        kernelAlignment = bytes.le(UInt32.self, at: BzImage.kernelAlignmentOffset)!
        relocatable = bytes[BzImage.relocatableOffset] != 0
        cmdlineSize = bytes.le(UInt32.self, at: BzImage.cmdlineSizeOffset)!
        preferredAddress = bytes.le(UInt64.self, at: BzImage.preferredAddressOffset)!
        self.initSize = initSize
        setupHeader = Array(bytes[BzImage.setupSectorsOffset..<headerEnd])
    }
}

extension String {
    /// Two-digit decimal, for "2.06".
    init(format2 value: UInt16) {
        self = value < 10 ? "0\(value)" : "\(value)"
    }
}
