import CKVM
import Glibc

/// A KVM vCPU file descriptor and its shared kvm_run page.
///
/// `@unchecked Sendable`: KVM_RUN and the register calls are made only by the thread that
/// runs this vCPU; other threads touch nothing but `immediate_exit`, which is written with
/// an atomic store (ckvm_run_set_immediate_exit), as KVM's API intends.
public final class VirtualCPU: @unchecked Sendable {
    public let id: UInt32
    public let fd: Int32
    let run: UnsafeMutableRawPointer
    let runSize: Int

    init(id: UInt32, fd: Int32, run: UnsafeMutableRawPointer, runSize: Int) {
        self.id = id
        self.fd = fd
        self.run = run
        self.runSize = runSize
    }

    deinit {
        munmap(run, runSize)
        close(fd)
    }

    /// Enters the guest until the next exit. A signal that interrupts KVM_RUN, or a set
    /// immediate_exit, gives `.interrupted` so the caller can look at its stop flag.
    public func runOnce() throws(KVMError) -> VCPUExit {
        if ckvm_ioctl_value(fd, CKVM_RUN, 0) < 0 {
            let code = Glibc.errno
            if code == EINTR || code == EAGAIN { return .interrupted }
            throw KVMError("KVM_RUN on vCPU \(id)", errno: code)
        }
        return VCPUExit.decode(run: run, size: runSize)
    }

    /// Makes the next (or current, once kicked by a signal) KVM_RUN return at once.
    public func setImmediateExit(_ on: Bool) {
        ckvm_run_set_immediate_exit(ckvm_run(run), on ? 1 : 0)
    }

    // MARK: state

    public func registers() throws(KVMError) -> kvm_regs {
        var regs = kvm_regs()
        _ = try retryingEINTR("KVM_GET_REGS on vCPU \(id)") { ckvm_ioctl(fd, CKVM_GET_REGS, &regs) }
        return regs
    }

    public func setRegisters(_ regs: kvm_regs) throws(KVMError) {
        var regs = regs
        _ = try retryingEINTR("KVM_SET_REGS on vCPU \(id)") { ckvm_ioctl(fd, CKVM_SET_REGS, &regs) }
    }

    public func specialRegisters() throws(KVMError) -> kvm_sregs {
        var sregs = kvm_sregs()
        _ = try retryingEINTR("KVM_GET_SREGS on vCPU \(id)") { ckvm_ioctl(fd, CKVM_GET_SREGS, &sregs) }
        return sregs
    }

    public func setSpecialRegisters(_ sregs: kvm_sregs) throws(KVMError) {
        var sregs = sregs
        _ = try retryingEINTR("KVM_SET_SREGS on vCPU \(id)") { ckvm_ioctl(fd, CKVM_SET_SREGS, &sregs) }
    }

    public func setFPU(_ fpu: kvm_fpu) throws(KVMError) {
        var fpu = fpu
        _ = try retryingEINTR("KVM_SET_FPU on vCPU \(id)") { ckvm_ioctl(fd, CKVM_SET_FPU, &fpu) }
    }

    public func setCPUID(_ table: CPUIDTable) throws(KVMError) {
        try table.withKVMStructure { buffer throws(KVMError) in
            _ = try retryingEINTR("KVM_SET_CPUID2 on vCPU \(id)") { ckvm_ioctl(fd, CKVM_SET_CPUID2, buffer) }
        }
    }

    /// Writes MSRs; KVM stops at the first it refuses, which is reported by index.
    public func setMSRs(_ msrs: [(index: UInt32, value: UInt64)]) throws(KVMError) {
        let written = try withMSRBuffer(msrs) { buffer throws(KVMError) in
            try retryingEINTR("KVM_SET_MSRS on vCPU \(id)") { ckvm_ioctl(fd, CKVM_SET_MSRS, buffer) }
        }
        if Int(written) < msrs.count {
            let refused = msrs[Int(written)].index
            throw KVMError("KVM_SET_MSRS on vCPU \(id): MSR 0x\(String(refused, radix: 16)) refused", errno: EINVAL)
        }
    }

    /// Reads MSRs the way the host does (no filter applies); used for the guest's TSC.
    public func readMSRs(_ indices: [UInt32]) throws(KVMError) -> [UInt64] {
        try withMSRBuffer(indices.map { (index: $0, value: 0) }) { buffer throws(KVMError) in
            let read = try retryingEINTR("KVM_GET_MSRS on vCPU \(id)") { ckvm_ioctl(fd, CKVM_GET_MSRS, buffer) }
            guard Int(read) == indices.count else {
                throw KVMError("KVM_GET_MSRS on vCPU \(id): MSR 0x\(String(indices[Int(read)], radix: 16)) refused", errno: EINVAL)
            }
            let entries = ckvm_msrs_entries(buffer)!
            return (0..<indices.count).map { entries[$0].data }
        }
    }

    /// The guest's TSC frequency in kHz.
    public func tscKHz() throws(KVMError) -> UInt32 {
        UInt32(try retryingEINTR("KVM_GET_TSC_KHZ on vCPU \(id)") { ckvm_ioctl_value(fd, CKVM_GET_TSC_KHZ, 0) })
    }

    /// A kvm_msrs holding `msrs`, for one KVM_SET_MSRS or KVM_GET_MSRS.
    func withMSRBuffer<R>(_ msrs: [(index: UInt32, value: UInt64)],
                          _ body: (UnsafeMutablePointer<kvm_msrs>) throws(KVMError) -> R) throws(KVMError) -> R {
        try withKVMBuffer(kvm_msrs.self, size: Int(ckvm_msrs_size(UInt32(msrs.count)))) { header throws(KVMError) in
            header.pointee.nmsrs = UInt32(msrs.count)
            let entries = ckvm_msrs_entries(header)!
            for (i, msr) in msrs.enumerated() {
                entries[i].index = msr.index
                entries[i].data = msr.value
            }
            return try body(header)
        }
    }

    /// The local APIC's 1 KiB register page as KVM holds it.
    public func localAPIC() throws(KVMError) -> kvm_lapic_state {
        var state = kvm_lapic_state()
        _ = try retryingEINTR("KVM_GET_LAPIC on vCPU \(id)") { ckvm_ioctl(fd, CKVM_GET_LAPIC, &state) }
        return state
    }

    public func setLocalAPIC(_ state: kvm_lapic_state) throws(KVMError) {
        var state = state
        _ = try retryingEINTR("KVM_SET_LAPIC on vCPU \(id)") { ckvm_ioctl(fd, CKVM_SET_LAPIC, &state) }
    }
}

extension kvm_lapic_state {
    /// Reads a 32-bit LAPIC register at its MMIO offset (0x20 ID, 0x350 LVT LINT0, ...).
    public func register(_ offset: Int) -> UInt32 {
        withUnsafeBytes(of: regs) { $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self) }
    }

    public mutating func setRegister(_ offset: Int, _ value: UInt32) {
        withUnsafeMutableBytes(of: &regs) { $0.storeBytes(of: value, toByteOffset: offset, as: UInt32.self) }
    }
}
