import Glibc

/// The one error type of the KVM layer: the operation that failed and the errno it left.
public struct KVMError: Error, CustomStringConvertible, Equatable, Sendable {
    public let operation: String
    public let errno: Int32

    public init(_ operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    /// Builds the error from the current errno; call right after a -1 return.
    public static func fromErrno(_ operation: String) -> KVMError {
        KVMError(operation, errno: Glibc.errno)
    }

    public var description: String {
        "\(operation): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// Retries a system call that failed with EINTR; any other -1 becomes a KVMError.
@inline(__always)
func retryingEINTR(_ operation: @autoclosure () -> String, _ call: () -> Int32) throws(KVMError) -> Int32 {
    while true {
        let result = call()
        if result >= 0 { return result }
        if Glibc.errno == EINTR { continue }
        throw KVMError.fromErrno(operation())
    }
}

/// Runs `body` on a zeroed, 8-byte-aligned scratch buffer of `size` bytes, bound to `Header`:
/// the shape of KVM's variable-length structures (kvm_cpuid2, kvm_msrs, kvm_irq_routing),
/// a header followed by a flexible array.
func withKVMBuffer<Header, R>(_ header: Header.Type, size: Int,
                              _ body: (UnsafeMutablePointer<Header>) throws(KVMError) -> R) throws(KVMError) -> R {
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
    defer { buffer.deallocate() }
    buffer.initializeMemory(as: UInt8.self, repeating: 0, count: size)
    return try body(buffer.bindMemory(to: Header.self, capacity: 1))
}
