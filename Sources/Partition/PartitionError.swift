import Glibc
import KVM

/// The one error type of the partition layer. Each case names what failed in words a
/// user can act on; the CLI turns the case into a documented exit status.
public enum PartitionError: Error, CustomStringConvertible, Equatable, Sendable {
    /// A KVM call failed.
    case kvm(KVMError)
    /// A host system call failed (memory reservation, threads, files).
    case host(operation: String, errno: Int32)
    /// A file hv was asked to read (kernel image, initrd) cannot be opened or read.
    case unreadable(String)
    /// The kernel image, initrd or cmdline cannot be booted as given.
    case image(String)
    /// The configuration asked for something impossible (memory size, vCPU count).
    case configuration(String)

    public static func hostErrno(_ operation: String) -> PartitionError {
        .host(operation: operation, errno: Glibc.errno)
    }

    public var description: String {
        switch self {
        case .kvm(let error): error.description
        case .host(let operation, let code): "\(operation): \(String(cString: strerror(code))) (errno \(code))"
        case .unreadable(let message): message
        case .image(let message): message
        case .configuration(let message): message
        }
    }
}

/// A guest-physical access outside guest RAM. Raised by the bounds-checked accessors;
/// devices answer it with their protocol's error status and count it, never trap.
public struct GuestMemoryError: Error, CustomStringConvertible, Equatable, Sendable {
    public let address: UInt64
    public let length: UInt64

    public init(address: UInt64, length: UInt64) {
        self.address = address
        self.length = length
    }

    public var description: String {
        "guest-physical range 0x\(String(address, radix: 16)) + \(length) is outside guest RAM"
    }
}
