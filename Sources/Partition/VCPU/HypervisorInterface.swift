import CKVM
import KVM

/// The hypervisor interface a partition shows its guest beyond what KVM does itself: MSRs that
/// KVM's MSR filter sends to user space and I/O ports that need the vCPU's registers (a hypercall
/// page that traps). VMBus's Hyper-V emulation is the one implementation (design.md §1, §5).
public protocol HypervisorInterface: AnyObject, Sendable {
    /// MSRs whose every read and write comes here; KVM keeps all others.
    var msrRanges: [ClosedRange<UInt32>] { get }
    /// Ports whose accesses come here, with the vCPU, instead of going to the I/O bus.
    var ports: ClosedRange<UInt16> { get }
    /// RDMSR on vCPU `vp`: the value, or nil for #GP.
    func readMSR(_ index: UInt32, vp: Int) -> UInt64?
    /// WRMSR on vCPU `vp`: false for #GP.
    func writeMSR(_ index: UInt32, value: UInt64, vp: Int) -> Bool
    /// An access to one of `ports` by vCPU `vp`; `vcpu` gives its registers.
    func portIO(_ io: VCPUExit.PortIO, vp: Int, vcpu: VirtualCPU)
}

extension CPUIDTable {
    /// Replaces every leaf of the hypervisor range 0x4000_0000–0x4FFF_FFFF (KVM's own PV leaves
    /// included) with `leaves`: a guest must see one hypervisor, or it picks the one it likes best.
    public mutating func replaceHypervisorLeaves(with leaves: [kvm_cpuid_entry2]) {
        entries.removeAll { $0.function >= 0x4000_0000 && $0.function <= 0x4FFF_FFFF }
        entries.append(contentsOf: leaves)
    }
}
