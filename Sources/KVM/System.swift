import CKVM
import Glibc

/// Which kind of virtualization backs /dev/kvm. PVM (Ant Group's pagetable-based VM)
/// has no VMX/SVM: guest CPL3 runs natively, guest CPL0 is emulated (design.md §2).
public enum KVMBackend: String, Sendable {
    case hardwareIntel = "hardware (Intel VMX)"
    case hardwareAMD = "hardware (AMD SVM)"
    case pvm = "PVM (no hardware virtualization)"
    case unknown = "unknown"

    /// Reads the loaded KVM vendor module from /sys/module.
    public static func detect() -> KVMBackend {
        if access("/sys/module/kvm_pvm", F_OK) == 0 { return .pvm }
        if access("/sys/module/kvm_intel", F_OK) == 0 { return .hardwareIntel }
        if access("/sys/module/kvm_amd", F_OK) == 0 { return .hardwareAMD }
        return .unknown
    }
}

/// The /dev/kvm system file descriptor.
public final class KVMSystem: Sendable {
    public static let defaultPath = "/dev/kvm"
    /// KVM's stable API version; every kernel since 2.6.22 reports 12.
    public static let expectedAPIVersion: Int32 = 12

    public let fd: Int32
    public let path: String

    /// Opens /dev/kvm. The error names the path and says what a user can do about it.
    public init(path: String = KVMSystem.defaultPath) throws(KVMError) {
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else {
            let code = Glibc.errno
            switch code {
            case ENOENT: throw KVMError("open \(path) (no KVM on this host: load kvm_intel, kvm_amd or kvm_pvm)", errno: code)
            case EACCES, EPERM: throw KVMError("open \(path) (add your user to the kvm group, or run as root)", errno: code)
            default: throw KVMError("open \(path)", errno: code)
            }
        }
        self.fd = fd
        self.path = path
        let version = ckvm_ioctl_value(fd, CKVM_GET_API_VERSION, 0)
        guard version == KVMSystem.expectedAPIVersion else {
            close(fd)
            throw KVMError("KVM_GET_API_VERSION returned \(version), expected \(KVMSystem.expectedAPIVersion)", errno: version < 0 ? Glibc.errno : EINVAL)
        }
    }

    deinit { close(fd) }

    public var apiVersion: Int32 { ckvm_ioctl_value(fd, CKVM_GET_API_VERSION, 0) }

    /// KVM_CHECK_EXTENSION: 0 when absent, otherwise a capability-specific positive value.
    public func check(_ capability: Int32) -> Int32 {
        max(0, ckvm_ioctl_value(fd, CKVM_CHECK_EXTENSION, UInt(capability)))
    }

    public func vcpuMmapSize() throws(KVMError) -> Int {
        Int(try retryingEINTR("KVM_GET_VCPU_MMAP_SIZE") { ckvm_ioctl_value(fd, CKVM_GET_VCPU_MMAP_SIZE, 0) })
    }

    /// The most vCPUs one VM may have (KVM_CAP_MAX_VCPUS, falling back to NR_VCPUS, then 4 as the API says).
    public var maxVCPUs: Int {
        let max = check(KVM_CAP_MAX_VCPUS)
        if max > 0 { return Int(max) }
        let recommended = check(KVM_CAP_NR_VCPUS)
        return recommended > 0 ? Int(recommended) : 4
    }

    public func supportedCPUID() throws(KVMError) -> CPUIDTable {
        // KVM answers E2BIG until the buffer is large enough.
        var capacity: UInt32 = 128
        while true {
            let answer = try withKVMBuffer(kvm_cpuid2.self, size: Int(ckvm_cpuid2_size(capacity))) { header throws(KVMError) -> CPUIDTable? in
                header.pointee.nent = capacity
                if ckvm_ioctl(fd, CKVM_GET_SUPPORTED_CPUID, header) == 0 {
                    let entries = ckvm_cpuid2_entries(header)!
                    return CPUIDTable(entries: (0..<Int(header.pointee.nent)).map { entries[$0] })
                }
                let code = Glibc.errno
                if (code == E2BIG && capacity < 4096) || code == EINTR { return nil }
                throw KVMError("KVM_GET_SUPPORTED_CPUID", errno: code)
            }
            if let answer { return answer }
            if capacity < 4096 { capacity *= 2 }
        }
    }

    public func createVM() throws(KVMError) -> VirtualMachine {
        let vmFD = try retryingEINTR("KVM_CREATE_VM") { ckvm_ioctl_value(fd, CKVM_CREATE_VM, 0) }
        return VirtualMachine(fd: vmFD, system: self)
    }

    /// The capabilities hv relies on, with whether this host has them.
    public func capabilityReport() -> [CapabilityStatus] {
        KVMCapability.used.map { CapabilityStatus(capability: $0, value: check($0.number)) }
    }
}

/// A KVM capability hv uses, and why.
public struct KVMCapability: Sendable {
    public let name: String
    public let number: Int32
    public let purpose: String
    /// hv cannot run a guest without it.
    public let required: Bool

    public static let used: [KVMCapability] = [
        KVMCapability(name: "KVM_CAP_USER_MEMORY", number: KVM_CAP_USER_MEMORY, purpose: "guest RAM from hv's mappings", required: true),
        KVMCapability(name: "KVM_CAP_SET_TSS_ADDR", number: KVM_CAP_SET_TSS_ADDR, purpose: "real-mode TSS area", required: true),
        KVMCapability(name: "KVM_CAP_SPLIT_IRQCHIP", number: KVM_CAP_SPLIT_IRQCHIP, purpose: "local APICs in KVM, IOAPIC in hv", required: true),
        KVMCapability(name: "KVM_CAP_SIGNAL_MSI", number: KVM_CAP_SIGNAL_MSI, purpose: "IOAPIC delivery by MSI", required: true),
        KVMCapability(name: "KVM_CAP_IRQ_ROUTING", number: KVM_CAP_IRQ_ROUTING, purpose: "level-triggered EOI exits", required: true),
        KVMCapability(name: "KVM_CAP_IMMEDIATE_EXIT", number: KVM_CAP_IMMEDIATE_EXIT, purpose: "race-free vCPU stop", required: true),
        KVMCapability(name: "KVM_CAP_MP_STATE", number: KVM_CAP_MP_STATE, purpose: "APs wait for INIT/SIPI", required: true),
        KVMCapability(name: "KVM_CAP_EXT_CPUID", number: KVM_CAP_EXT_CPUID, purpose: "CPUID from KVM_GET_SUPPORTED_CPUID", required: true),
        KVMCapability(name: "KVM_CAP_IRQFD", number: KVM_CAP_IRQFD, purpose: "device interrupts without a vCPU exit", required: false),
        KVMCapability(name: "KVM_CAP_IOEVENTFD", number: KVM_CAP_IOEVENTFD, purpose: "guest doorbells without a user-space exit", required: false),
        KVMCapability(name: "KVM_CAP_READONLY_MEM", number: KVM_CAP_READONLY_MEM, purpose: "read-only guest memory", required: false),
        KVMCapability(name: "KVM_CAP_X86_USER_SPACE_MSR", number: KVM_CAP_X86_USER_SPACE_MSR, purpose: "MSR exits for the Hyper-V interface", required: false),
        KVMCapability(name: "KVM_CAP_X86_MSR_FILTER", number: KVM_CAP_X86_MSR_FILTER, purpose: "choose which MSRs exit", required: false),
        KVMCapability(name: "KVM_CAP_TSC_DEADLINE_TIMER", number: KVM_CAP_TSC_DEADLINE_TIMER, purpose: "LAPIC TSC-deadline timer", required: false),
        KVMCapability(name: "KVM_CAP_X2APIC_API", number: KVM_CAP_X2APIC_API, purpose: "x2APIC IDs", required: false),
        KVMCapability(name: "KVM_CAP_HYPERV", number: KVM_CAP_HYPERV, purpose: "in-kernel Hyper-V (hv emulates it when absent)", required: false),
    ]
}

public struct CapabilityStatus: Sendable {
    public let capability: KVMCapability
    /// The KVM_CHECK_EXTENSION answer; 0 means absent.
    public let value: Int32
    public var present: Bool { value > 0 }
}
