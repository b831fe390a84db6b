import Glibc

/// Builds small kernel images byte by byte, so loader and CLI tests control every field.
public enum SyntheticELF {
    public struct Segment {
        public var physicalAddress: UInt64
        public var bytes: [UInt8]
        public var memorySize: UInt64
        public init(physicalAddress: UInt64, bytes: [UInt8], memorySize: UInt64? = nil) {
            self.physicalAddress = physicalAddress
            self.bytes = bytes
            self.memorySize = memorySize ?? UInt64(bytes.count)
        }
    }

    /// An ELF64 x86-64 executable with the given segments and, unless nil, a PVH entry note.
    public static func make(segments: [Segment], pvhEntry: UInt32?, elfClass: UInt8 = 2) -> [UInt8] {
        var note: [UInt8] = []
        if let pvhEntry {
            note += le(UInt32(4)) + le(UInt32(4)) + le(UInt32(18)) + Array("Xen\0".utf8) + le(pvhEntry)
        }
        let headerCount = segments.count + (note.isEmpty ? 0 : 1)
        let phoff = 64
        var dataOffset = phoff + 56 * headerCount
        var headers: [UInt8] = []
        var data: [UInt8] = []
        func header(type: UInt32, offset: Int, address: UInt64, fileSize: Int, memorySize: UInt64) -> [UInt8] {
            le(type) + le(UInt32(7)) + le(UInt64(offset)) + le(address) + le(address) +
                le(UInt64(fileSize)) + le(memorySize) + le(UInt64(0x1000))
        }
        for segment in segments {
            headers += header(type: 1, offset: dataOffset, address: segment.physicalAddress,
                              fileSize: segment.bytes.count, memorySize: segment.memorySize)
            data += segment.bytes
            dataOffset += segment.bytes.count
        }
        if !note.isEmpty {
            headers += header(type: 4, offset: dataOffset, address: 0, fileSize: note.count, memorySize: 0)
            data += note
        }
        var ident: [UInt8] = [0x7F, 0x45, 0x4C, 0x46, elfClass, 1, 1, 0] + [UInt8](repeating: 0, count: 8)
        ident += le(UInt16(2)) + le(UInt16(62)) + le(UInt32(1))                       // ET_EXEC, x86-64, version
        ident += le(UInt64(segments.first?.physicalAddress ?? 0)) + le(UInt64(phoff)) + le(UInt64(0))
        ident += le(UInt32(0)) + le(UInt16(64)) + le(UInt16(56)) + le(UInt16(headerCount))
        ident += le(UInt16(64)) + le(UInt16(0)) + le(UInt16(0))
        return ident + headers + data
    }

    /// A PVH kernel whose 32-bit entry at 1 MiB is `code`.
    public static func withEntryCode(_ code: [UInt8]) -> [UInt8] {
        make(segments: [Segment(physicalAddress: 0x10_0000, bytes: code)], pvhEntry: 0x10_0000)
    }
}

/// A bzImage with a real-looking setup header and `payload` as its protected-mode kernel.
public enum SyntheticBzImage {
    public static func make(version: UInt16 = 0x020F, xloadflags: UInt16 = 0x1, setupSectors: UInt8 = 1,
                            payload: [UInt8] = [UInt8](repeating: 0x90, count: 4096), initSize: UInt32 = 0x10_0000,
                            cmdlineSize: UInt32 = 255, initrdAddressMax: UInt32 = 0x7FFF_FFFF,
                            preferredAddress: UInt64 = 0x100_0000) -> [UInt8] {
        let setupBytes = (Int(setupSectors) + 1) * 512
        var image = [UInt8](repeating: 0, count: setupBytes)
        func put(_ bytes: [UInt8], _ offset: Int) { image.replaceSubrange(offset..<offset + bytes.count, with: bytes) }
        put([setupSectors], 0x1F1)
        put(le(UInt32(payload.count / 16)), 0x1F4)           // syssize
        put(le(UInt16(0xAA55)), 0x1FE)
        put([0xEB, 0x66], 0x200)                              // jmp over the header: header ends at 0x268
        put(le(UInt32(0x5372_6448)), 0x202)                   // "HdrS"
        put(le(version), 0x206)
        put([0x01], 0x211)                                    // LOADED_HIGH
        put(le(UInt32(0x10_0000)), 0x214)
        put(le(initrdAddressMax), 0x22C)
        put(le(UInt32(0x20_0000)), 0x230)
        put([1], 0x234)
        put(le(xloadflags), 0x236)
        put(le(cmdlineSize), 0x238)
        put(le(preferredAddress), 0x258)
        put(le(initSize), 0x260)
        return image + payload
    }
}

public func le<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
    withUnsafeBytes(of: value.littleEndian) { Array($0) }
}

/// Writes bytes to a new file in a fresh temporary directory and returns its path.
public func temporaryFile(named name: String, contents: [UInt8]) -> String {
    var template = Array("/tmp/hv-test-XXXXXX".utf8CString)
    let directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
    let path = directory + "/" + name
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    precondition(fd >= 0, "cannot create \(path)")
    contents.withUnsafeBytes { _ = write(fd, $0.baseAddress, $0.count) }
    close(fd)
    return path
}

/// The package root, found from this file's path (Tests/TestSupport/…).
public let packageRoot: String = {
    var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)
    return parts.joined(separator: "/")
}()

public func fileExists(_ path: String) -> Bool { access(path, F_OK) == 0 }
