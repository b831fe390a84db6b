import CKVM
import KVM

/// What each vCPU sees in CPUID: the host's KVM_GET_SUPPORTED_CPUID answers, with the
/// hypervisor bit, its own APIC ID and a topology of one package with `count` cores.
public enum CPUIDPolicy {
    static let hypervisorBit: UInt32 = 1 << 31      // leaf 1 ECX
    static let htt: UInt32 = 1 << 28                // leaf 1 EDX
    static let topologyLevelSMT: UInt32 = 1
    static let topologyLevelCore: UInt32 = 2

    public static func table(supported: CPUIDTable, apicID: UInt32, count: Int) -> CPUIDTable {
        var table = supported
        let logical = UInt32(count)
        table.update(function: 1) { entry in
            entry.ebx = (entry.ebx & 0x0000_FFFF) | (min(logical, 255) << 16) | (apicID << 24)
            entry.ecx |= hypervisorBit
            if count > 1 { entry.edx |= htt } else { entry.edx &= ~htt }
        }
        // Extended topology (leaf 0xB, and 0x1F where the host has it): one thread per core,
        // `count` cores in the package. x2APIC ID in EDX.
        let coreShift = UInt32(count <= 1 ? 0 : (Int.bitWidth - (count - 1).leadingZeroBitCount))
        for leaf: UInt32 in [0xB, 0x1F] where leaf == 0xB || supported.entry(function: 0x1F) != nil {
            table.entries.removeAll { $0.function == leaf }
            table.set(kvm_cpuid_entry2(function: leaf, index: 0, indexed: true, eax: 0, ebx: 1,
                                       ecx: (topologyLevelSMT << 8) | 0, edx: apicID))
            table.set(kvm_cpuid_entry2(function: leaf, index: 1, indexed: true, eax: coreShift, ebx: logical,
                                       ecx: (topologyLevelCore << 8) | 1, edx: apicID))
            table.set(kvm_cpuid_entry2(function: leaf, index: 2, indexed: true, eax: 0, ebx: 0, ecx: 2, edx: apicID))
        }
        table.update(function: 0) { entry in entry.eax = max(entry.eax, 0xB) }
        // AMD: cores per package in 0x8000_0008 ECX (NC = count - 1, ApicIdCoreIdSize).
        table.update(function: 0x8000_0008) { entry in
            entry.ecx = (entry.ecx & ~0xF0FF) | (coreShift << 12) | (logical - 1)
        }
        // AMD extended APIC ID: one thread per core, core ID = APIC ID.
        table.update(function: 0x8000_001E) { entry in
            entry.eax = apicID
            entry.ebx = apicID & 0xFF
        }
        // Intel deterministic cache leaf: cores per package in EAX[31:26].
        table.update(function: 4) { entry in
            entry.eax = (entry.eax & 0x03FF_FFFF) | (min(logical - 1, 63) << 26)
        }
        return table
    }
}
