import CKVM
import KVM

/// The state each vCPU starts with: CPUID, boot MSRs, FPU, LAPIC LINT pins, and for the
/// boot vCPU the registers that enter hv's trampoline.
public enum VCPUSetup {
    static let msrMiscEnable: UInt32 = 0x1A0
    static let msrMTRRDefaultType: UInt32 = 0x2FF
    static let lvtLINT0: Int = 0x350
    static let lvtLINT1: Int = 0x360
    static let deliveryModeExtINT: UInt32 = 7
    static let deliveryModeNMI: UInt32 = 4

    public static func configure(_ vcpu: VirtualCPU, index: Int, count: Int, supportedCPUID: CPUIDTable) throws(KVMError) {
        // CPUID first: KVM decides from it which MSRs and modes the vCPU has.
        try vcpu.setCPUID(CPUIDPolicy.table(supported: supportedCPUID, apicID: UInt32(index), count: count))
        try vcpu.setMSRs([
            (msrMiscEnable, 1),                       // fast strings
            (msrMTRRDefaultType, (1 << 11) | 6),      // MTRRs on, default write-back
        ])
        var fpu = kvm_fpu()
        fpu.fcw = 0x37F
        fpu.mxcsr = 0x1F80
        try vcpu.setFPU(fpu)
        // LINT0 takes the legacy PIC's ExtINT, LINT1 the NMI, as on a PC.
        var lapic = try vcpu.localAPIC()
        lapic.setRegister(lvtLINT0, (lapic.register(lvtLINT0) & ~0x700) | (deliveryModeExtINT << 8))
        lapic.setRegister(lvtLINT1, (lapic.register(lvtLINT1) & ~0x700) | (deliveryModeNMI << 8))
        try vcpu.setLocalAPIC(lapic)
    }

    /// Points the boot vCPU at the trampoline: real mode, CS:IP = firmwareBase:0.
    /// Application processors keep KVM's reset state and wait for the guest's INIT/SIPI.
    public static func enterTrampoline(_ vcpu: VirtualCPU) throws(KVMError) {
        var sregs = try vcpu.specialRegisters()
        sregs.cs.selector = BootTrampoline.codeSegment
        sregs.cs.base = MemoryMap.firmwareBase
        try vcpu.setSpecialRegisters(sregs)
        var regs = kvm_regs()
        regs.rflags = 0x2
        regs.rip = 0
        try vcpu.setRegisters(regs)
    }
}

/// A vCPU's registers in the layout people read when a guest dies.
public enum RegisterDump {
    public static func format(_ vcpu: VirtualCPU) -> String {
        guard let r = try? vcpu.registers(), let s = try? vcpu.specialRegisters() else {
            return "vCPU \(vcpu.id): registers unavailable"
        }
        func hex(_ value: UInt64) -> String {
            let digits = String(value, radix: 16)
            return String(repeating: "0", count: max(0, 16 - digits.count)) + digits
        }
        return """
        vCPU \(vcpu.id) registers:
          rip=\(hex(r.rip)) rflags=\(hex(r.rflags)) rsp=\(hex(r.rsp)) rbp=\(hex(r.rbp))
          rax=\(hex(r.rax)) rbx=\(hex(r.rbx)) rcx=\(hex(r.rcx)) rdx=\(hex(r.rdx))
          rsi=\(hex(r.rsi)) rdi=\(hex(r.rdi)) r8=\(hex(r.r8)) r9=\(hex(r.r9))
          r10=\(hex(r.r10)) r11=\(hex(r.r11)) r12=\(hex(r.r12)) r13=\(hex(r.r13))
          r14=\(hex(r.r14)) r15=\(hex(r.r15))
          cs=\(String(s.cs.selector, radix: 16)) base=\(hex(s.cs.base)) l=\(s.cs.l) db=\(s.cs.db) dpl=\(s.cs.dpl)  ss=\(String(s.ss.selector, radix: 16)) ds=\(String(s.ds.selector, radix: 16))
          cr0=\(hex(s.cr0)) cr2=\(hex(s.cr2)) cr3=\(hex(s.cr3)) cr4=\(hex(s.cr4)) efer=\(hex(s.efer))
          gdt=\(hex(s.gdt.base))/\(s.gdt.limit) idt=\(hex(s.idt.base))/\(s.idt.limit) apic_base=\(hex(s.apic_base))
        """
    }
}
