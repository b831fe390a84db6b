import CKVM
import Testing
@testable import KVM

/// The CKVM_* constants must equal the kernel's _IOC encoding: direction << 30 | size << 16 | 0xAE << 8 | nr.
/// Computed here independently from the struct sizes Swift sees, so a wrong shim or a struct
/// that imported with another size both fail.
@Suite struct RequestNumberTests {
    static let none: UInt = 0, write: UInt = 1, read: UInt = 2

    func ioc(_ direction: UInt, _ number: UInt, _ size: Int) -> UInt {
        (direction << 30) | (UInt(size) << 16) | (0xAE << 8) | number
    }

    @Test func systemRequests() {
        #expect(CKVM_GET_API_VERSION == 0xAE00)
        #expect(CKVM_CREATE_VM == 0xAE01)
        #expect(CKVM_CHECK_EXTENSION == 0xAE03)
        #expect(CKVM_GET_VCPU_MMAP_SIZE == 0xAE04)
        #expect(CKVM_GET_SUPPORTED_CPUID == ioc(Self.read | Self.write, 0x05, MemoryLayout<kvm_cpuid2>.size))
    }

    @Test func vmRequests() {
        #expect(CKVM_CREATE_VCPU == 0xAE41)
        #expect(CKVM_SET_USER_MEMORY_REGION == ioc(Self.write, 0x46, MemoryLayout<kvm_userspace_memory_region>.size))
        #expect(CKVM_SET_USER_MEMORY_REGION == 0x4020_AE46)
        #expect(CKVM_SET_TSS_ADDR == 0xAE47)
        #expect(CKVM_SET_IDENTITY_MAP_ADDR == ioc(Self.write, 0x48, 8))
        #expect(CKVM_ENABLE_CAP == ioc(Self.write, 0xA3, MemoryLayout<kvm_enable_cap>.size))
        #expect(CKVM_SIGNAL_MSI == ioc(Self.write, 0xA5, MemoryLayout<kvm_msi>.size))
        #expect(CKVM_SET_GSI_ROUTING == ioc(Self.write, 0x6A, MemoryLayout<kvm_irq_routing>.size))
        #expect(CKVM_IOEVENTFD == ioc(Self.write, 0x79, MemoryLayout<kvm_ioeventfd>.size))
        #expect(CKVM_X86_SET_MSR_FILTER == ioc(Self.write, 0xC6, MemoryLayout<kvm_msr_filter>.size))
    }

    @Test func vcpuRequests() {
        #expect(CKVM_RUN == 0xAE80)
        #expect(CKVM_GET_REGS == ioc(Self.read, 0x81, MemoryLayout<kvm_regs>.size))
        #expect(CKVM_SET_REGS == ioc(Self.write, 0x82, MemoryLayout<kvm_regs>.size))
        #expect(CKVM_GET_SREGS == ioc(Self.read, 0x83, MemoryLayout<kvm_sregs>.size))
        #expect(CKVM_SET_SREGS == ioc(Self.write, 0x84, MemoryLayout<kvm_sregs>.size))
        #expect(CKVM_GET_MSRS == ioc(Self.read | Self.write, 0x88, MemoryLayout<kvm_msrs>.size))
        #expect(CKVM_SET_MSRS == ioc(Self.write, 0x89, MemoryLayout<kvm_msrs>.size))
        #expect(CKVM_SET_FPU == ioc(Self.write, 0x8D, MemoryLayout<kvm_fpu>.size))
        #expect(CKVM_GET_LAPIC == ioc(Self.read, 0x8E, MemoryLayout<kvm_lapic_state>.size))
        #expect(CKVM_SET_LAPIC == ioc(Self.write, 0x8F, MemoryLayout<kvm_lapic_state>.size))
        #expect(CKVM_SET_CPUID2 == ioc(Self.write, 0x90, MemoryLayout<kvm_cpuid2>.size))
        #expect(CKVM_GET_TSC_KHZ == 0xAEA3)
    }

    /// Sizes from the x86-64 ABI of linux/kvm.h; a mismatch means the import went wrong.
    @Test func structureSizes() {
        #expect(MemoryLayout<kvm_regs>.size == 144)
        #expect(MemoryLayout<kvm_sregs>.size == 312)
        #expect(MemoryLayout<kvm_fpu>.size == 416)
        #expect(MemoryLayout<kvm_lapic_state>.size == 1024)
        #expect(MemoryLayout<kvm_cpuid_entry2>.size == 40)
        #expect(MemoryLayout<kvm_msr_entry>.size == 16)
        #expect(MemoryLayout<kvm_irq_routing_entry>.size == 48)
        #expect(MemoryLayout<kvm_ioeventfd>.size == 64)
        #expect(MemoryLayout<kvm_msr_filter>.size == 4 + 16 * 24 + 4)
        #expect(ckvm_cpuid2_size(2) == 8 + 2 * 40)
    }
}
