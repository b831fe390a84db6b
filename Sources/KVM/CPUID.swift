import CKVM

/// A vCPU's CPUID answers, as KVM_SET_CPUID2 takes them.
public struct CPUIDTable: Sendable {
    public var entries: [kvm_cpuid_entry2]

    public init(entries: [kvm_cpuid_entry2]) { self.entries = entries }

    public func entry(function: UInt32, index: UInt32 = 0) -> kvm_cpuid_entry2? {
        entries.first { $0.function == function && (!$0.isIndexed || $0.index == index) }
    }

    /// Changes every entry for `function` (and `index`, for indexed leaves) in place.
    public mutating func update(function: UInt32, index: UInt32? = nil, _ change: (inout kvm_cpuid_entry2) -> Void) {
        for i in entries.indices where entries[i].function == function && (index == nil || entries[i].index == index!) {
            change(&entries[i])
        }
    }

    /// Adds or replaces the entry for (function, index).
    public mutating func set(_ entry: kvm_cpuid_entry2) {
        if let i = entries.firstIndex(where: { $0.function == entry.function && $0.index == entry.index }) {
            entries[i] = entry
        } else {
            entries.append(entry)
        }
    }

    func withKVMStructure<R>(_ body: (UnsafeMutablePointer<kvm_cpuid2>) throws(KVMError) -> R) throws(KVMError) -> R {
        try withKVMBuffer(kvm_cpuid2.self, size: Int(ckvm_cpuid2_size(UInt32(entries.count)))) { header throws(KVMError) in
            header.pointee.nent = UInt32(entries.count)
            let target = ckvm_cpuid2_entries(header)!
            for (i, entry) in entries.enumerated() { target[i] = entry }
            return try body(header)
        }
    }
}

extension kvm_cpuid_entry2: @retroactive @unchecked Sendable {}

extension kvm_cpuid_entry2 {
    /// Leaves whose subleaf (ECX) selects different answers.
    public var isIndexed: Bool { flags & UInt32(KVM_CPUID_FLAG_SIGNIFCANT_INDEX) != 0 }

    public init(function: UInt32, index: UInt32 = 0, indexed: Bool = false, eax: UInt32, ebx: UInt32, ecx: UInt32, edx: UInt32) {
        self.init()
        self.function = function
        self.index = index
        self.flags = indexed ? UInt32(KVM_CPUID_FLAG_SIGNIFCANT_INDEX) : 0
        self.eax = eax; self.ebx = ebx; self.ecx = ecx; self.edx = edx
    }
}
