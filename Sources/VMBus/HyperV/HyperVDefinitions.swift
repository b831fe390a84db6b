// The Hyper-V hypervisor interface that hv emulates in user space, because this host's KVM has no Hyper-V
// support (vmbus-protocol.md §1, §2, §7; Linux include/asm-generic/hyperv-tlfs.h, arch/x86/include/asm/hyperv-tlfs.h).

import CKVM

/// Synthetic MSRs. Every MSR in `range` exits to hv through KVM's MSR filter.
public enum HyperVMSR {
    public static let range: ClosedRange<UInt32> = 0x4000_0000...0x4000_01FF

    public static let guestOSID: UInt32 = 0x4000_0000
    public static let hypercall: UInt32 = 0x4000_0001
    public static let vpIndex: UInt32 = 0x4000_0002
    public static let timeReferenceCount: UInt32 = 0x4000_0020
    public static let referenceTSC: UInt32 = 0x4000_0021
    public static let tscFrequency: UInt32 = 0x4000_0022
    public static let apicFrequency: UInt32 = 0x4000_0023
    /// Linux writes it on every CPU; hv keeps the value and gives the page no meaning.
    public static let vpAssistPage: UInt32 = 0x4000_0073
    public static let syncControl: UInt32 = 0x4000_0080
    public static let syncVersion: UInt32 = 0x4000_0081
    public static let eventFlagsPage: UInt32 = 0x4000_0082
    public static let messagePage: UInt32 = 0x4000_0083
    public static let endOfMessage: UInt32 = 0x4000_0084
    public static let sint0: UInt32 = 0x4000_0090
    public static let sintCount = 16
}

/// HV_STATUS, returned in RAX bits 15:0.
public struct HVStatus: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let success = HVStatus(rawValue: 0)
    public static let invalidHypercallCode = HVStatus(rawValue: 2)
    public static let invalidHypercallInput = HVStatus(rawValue: 3)
    public static let invalidAlignment = HVStatus(rawValue: 4)
    public static let invalidParameter = HVStatus(rawValue: 5)
    public static let accessDenied = HVStatus(rawValue: 6)
    public static let invalidConnectionID = HVStatus(rawValue: 0x12)
    public static let insufficientBuffers = HVStatus(rawValue: 0x13)

    public var description: String { "HV_STATUS 0x\(String(rawValue, radix: 16))" }
}

public enum HypercallCode {
    public static let postMessage: UInt16 = 0x5C
    public static let signalEvent: UInt16 = 0x5D
    /// RCX bit 16: input in registers instead of memory.
    public static let fastBit: UInt64 = 1 << 16
}

/// The hypercall page hv writes where the guest's HYPERCALL MSR points. A guest only ever `call`s its first
/// byte (RCX control, RDX input, R8 output, status back in RAX), so hv is free to choose the instructions:
/// `vmcall` would stay inside KVM here, so the page traps with port I/O instead (design.md §5).
public enum HypercallPage {
    /// `in eax, 0xE0`: a user-space exit; hv reads RCX/RDX/R8 and answers the status as the port's data.
    public static let callPort: UInt16 = 0xE0
    /// `out 0xE4, eax` with EAX = connection id: HvSignalEvent, caught by an ioeventfd per connection id
    /// inside KVM, so the common signal costs no exit. An id no channel registered exits to hv.
    public static let signalPort: UInt16 = 0xE4
    /// The ports the page uses, 4 bytes each.
    public static let ports: ClosedRange<UInt16> = 0xE0...0xE7

    public static let code: [UInt8] = [
        0x81, 0xF9, 0x5D, 0x00, 0x01, 0x00,  // cmp ecx, 0x1005D      HvSignalEvent, fast
        0x75, 0x07,                          // jne slow
        0x89, 0xD0,                          // mov eax, edx          connection id (flag number ignored)
        0xE7, UInt8(signalPort),             // out 0xE4, eax
        0x31, 0xC0,                          // xor eax, eax          HV_STATUS_SUCCESS
        0xC3,                                // ret
        0xE5, UInt8(callPort),               // slow: in eax, 0xE0    status from hv, upper RAX cleared
        0xC3,                                // ret
    ]
}

/// CPUID leaves 0x4000_0000–0x4000_0005 as Hyper-V presents them, advertising exactly what hv implements:
/// hypercalls, VP index, SynIC, the partition reference counter and TSC page, and the frequency MSRs.
public enum HyperVCPUID {
    // 0x4000_0003 EAX: partition privileges (low half).
    static let accessPartitionReferenceCounter: UInt32 = 1 << 1
    static let accessSynICRegisters: UInt32 = 1 << 2
    static let accessHypercallMSRs: UInt32 = 1 << 5
    static let accessVPIndex: UInt32 = 1 << 6
    static let accessPartitionReferenceTSC: UInt32 = 1 << 9
    static let accessFrequencyMSRs: UInt32 = 1 << 11
    // 0x4000_0003 EBX: privileges (high half). CreatePartitions (bit 0) stays clear: hv's guests are children.
    static let postMessages: UInt32 = 1 << 4
    static let signalEvents: UInt32 = 1 << 5
    // 0x4000_0003 EDX: features.
    static let frequencyMSRsAvailable: UInt32 = 1 << 8
    // 0x4000_0004 EAX: recommendations. KVM's LAPIC cannot do AutoEOI, so the guest must EOI SINT vectors.
    static let deprecatingAutoEOI: UInt32 = 1 << 9

    public static func leaves() -> [kvm_cpuid_entry2] {
        [
            // "Microsoft Hv"
            kvm_cpuid_entry2(function: 0x4000_0000, eax: 0x4000_0005, ebx: 0x7263_694D, ecx: 0x666F_736F, edx: 0x7648_2074),
            // "Hv#1"
            kvm_cpuid_entry2(function: 0x4000_0001, eax: 0x3123_7648, ebx: 0, ecx: 0, edx: 0),
            kvm_cpuid_entry2(function: 0x4000_0002, eax: 0, ebx: 0, ecx: 0, edx: 0),
            kvm_cpuid_entry2(
                function: 0x4000_0003,
                eax: accessPartitionReferenceCounter | accessSynICRegisters | accessHypercallMSRs | accessVPIndex
                    | accessPartitionReferenceTSC | accessFrequencyMSRs,
                ebx: postMessages | signalEvents, ecx: 0, edx: frequencyMSRsAvailable),
            // EBX all ones: never notify on long spin waits.
            kvm_cpuid_entry2(function: 0x4000_0004, eax: deprecatingAutoEOI, ebx: 0xFFFF_FFFF, ecx: 0, edx: 0),
            kvm_cpuid_entry2(function: 0x4000_0005, eax: 0, ebx: 0, ecx: 0, edx: 0),
        ]
    }
}
