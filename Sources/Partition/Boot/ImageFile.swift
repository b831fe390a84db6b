import Glibc

/// Reads a whole file (kernel image, initrd) for the loaders, with errors that name it.
public enum ImageFile {
    public static func read(_ path: String, what: String) throws(PartitionError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = Glibc.errno
            throw .unreadable("cannot open \(what) '\(path)': \(String(cString: strerror(code)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .unreadable("cannot stat \(what) '\(path)': \(String(cString: strerror(Glibc.errno)))") }
        guard (info.st_mode & S_IFMT) == S_IFREG else { throw .unreadable("\(what) '\(path)' is not a regular file") }
        let size = Int(info.st_size)
        var bytes = [UInt8](repeating: 0, count: size)
        var done = 0
        while done < size {
            let count = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + done, size - done) }
            if count < 0 {
                if Glibc.errno == EINTR { continue }
                throw .unreadable("cannot read \(what) '\(path)': \(String(cString: strerror(Glibc.errno)))")
            }
            if count == 0 { break }
            done += count
        }
        guard done == size else { throw .unreadable("\(what) '\(path)' shrank while being read") }
        return bytes
    }
}

/// Little-endian field reads from a byte array, checked against its length.
extension Array where Element == UInt8 {
    func le<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T? {
        guard offset >= 0, offset <= count - MemoryLayout<T>.size else { return nil }
        return withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
    }
}
