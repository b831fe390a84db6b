/*
 * Hyper-V detection and partition setup: CPUID leaves 0x40000000+, the
 * guest OS id, the hypercall page, the VP index, the frequency MSRs.
 * Everything here runs at CPL0 (prog_kernel_init): on this host CPUID at CPL3
 * reaches the outer hypervisor, not hv, and MSR accesses fault at CPL3.
 * The results are kept in `hv_info` for the CPL3 code.
 */
#ifndef VMBUS_HYPERV_H
#define VMBUS_HYPERV_H
#include <stdint.h>

#define HYPERV_CPUID_VENDOR_AND_MAX     0x40000000u
#define HYPERV_CPUID_INTERFACE          0x40000001u
#define HYPERV_CPUID_FEATURES           0x40000003u
#define HYPERV_CPUID_ENLIGHTENMENT_INFO 0x40000004u
#define HYPERV_CPUID_MIN                0x40000005u
#define HYPERV_INTERFACE_HV1            0x31237648u     /* "Hv#1" */

/* CPUID 0x40000003 EAX: partition privileges (low half). */
#define HV_MSR_TIME_REF_COUNT_AVAILABLE (1u << 1)
#define HV_MSR_SYNIC_AVAILABLE          (1u << 2)
#define HV_MSR_HYPERCALL_AVAILABLE      (1u << 5)
#define HV_MSR_VP_INDEX_AVAILABLE       (1u << 6)
#define HV_MSR_REFERENCE_TSC_AVAILABLE  (1u << 9)
#define HV_ACCESS_FREQUENCY_MSRS        (1u << 11)
/* CPUID 0x40000003 EDX */
#define HV_FEATURE_FREQUENCY_MSRS_AVAILABLE (1u << 8)

#define HV_X64_MSR_GUEST_OS_ID          0x40000000u
#define HV_X64_MSR_HYPERCALL            0x40000001u
#define HV_X64_MSR_VP_INDEX             0x40000002u
#define HV_X64_MSR_TIME_REF_COUNT       0x40000020u
#define HV_X64_MSR_REFERENCE_TSC        0x40000021u
#define HV_X64_MSR_TSC_FREQUENCY        0x40000022u
#define HV_X64_MSR_APIC_FREQUENCY       0x40000023u
#define HV_X64_MSR_SCONTROL             0x40000080u
#define HV_X64_MSR_SVERSION             0x40000081u
#define HV_X64_MSR_SIEFP                0x40000082u
#define HV_X64_MSR_SIMP                 0x40000083u
#define HV_X64_MSR_EOM                  0x40000084u
#define HV_X64_MSR_SINT0                0x40000090u

#define HV_HYPERCALL_ENABLE             0x1ULL

/*
 * Our guest OS id (TLFS open-source encoding): bit 63 = open source, OS type
 * (62:56) 0 = none of the listed ones, version (47:16) 1. hv only needs it
 * nonzero before HYPERCALL is written (Hyper-V and KVM ignore HYPERCALL
 * writes while it is 0).
 */
#define HV_GUEST_OS_ID_STUB             ((1ULL << 63) | (1ULL << 16))

struct hv_info {
	char vendor[13];                /* CPUID 0x40000000 EBX:ECX:EDX */
	uint32_t max_leaf;
	uint32_t interface;             /* CPUID 0x40000001 EAX */
	uint32_t privileges_low;        /* CPUID 0x40000003 EAX */
	uint32_t privileges_high;       /* CPUID 0x40000003 EBX */
	uint32_t features_edx;          /* CPUID 0x40000003 EDX */
	uint32_t hints;                 /* CPUID 0x40000004 EAX */
	uint64_t tsc_hz;
	uint64_t apic_hz;               /* 0 when not read */
	const char *tsc_source;         /* "msr" (0x40000022) or "cpuid" */
	uint32_t vp_index;
	uint64_t hypercall_msr;         /* as read back after enabling */
};
extern struct hv_info hv_info;

/*
 * CPL0. Fills hv_info from CPUID and the frequency MSRs, sets clock_tsc_hz.
 * Returns NULL on success, else what is missing (the caller prints it).
 */
const char *hv_detect(void);
/*
 * CPL0. Writes GUEST_OS_ID, points HYPERCALL at hv_hypercall_page (hv fills
 * it with code) and reads VP_INDEX. Returns NULL or what went wrong.
 */
const char *hv_enable_hypercalls(void);

/* CPL0 only. */
static inline uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((uint64_t)hi << 32) | lo;
}

static inline void wrmsr(uint32_t msr, uint64_t v)
{
	__asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32))
			 : "memory");
}

#endif
