/* Hyper-V detection and hypercall-page setup, CPL0 (see hyperv.h). */
#include "hyperv.h"
#include "clock.h"
#include "hypercall.h"
#include "../lib/io.h"

struct hv_info hv_info;
uint64_t clock_tsc_hz;

static void put_reg(char *dst, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		dst[i] = (char)(v >> (8 * i));
}

/* Fallback when hv grants no frequency MSRs: CPUID 0x15 (crystal), then 0x16. */
static uint64_t tsc_hz_from_cpuid(void)
{
	uint32_t a, b, c, d, max;

	cpuid(0, 0, &max, &b, &c, &d);
	if (max >= 0x15) {
		cpuid(0x15, 0, &a, &b, &c, &d);
		if (a && b && c)
			return (uint64_t)c * b / a;
	}
	if (max >= 0x16) {
		cpuid(0x16, 0, &a, &b, &c, &d);
		if (a & 0xffff)
			return (uint64_t)(a & 0xffff) * 1000000;
	}
	return 0;
}

const char *hv_detect(void)
{
	uint32_t a, b, c, d;

	cpuid(1, 0, &a, &b, &c, &d);
	if (!(c & (1u << 31)))
		return "no hypervisor (CPUID.1:ECX bit 31 clear)";

	cpuid(HYPERV_CPUID_VENDOR_AND_MAX, 0, &a, &b, &c, &d);
	hv_info.max_leaf = a;
	put_reg(hv_info.vendor, b);
	put_reg(hv_info.vendor + 4, c);
	put_reg(hv_info.vendor + 8, d);
	hv_info.vendor[12] = '\0';
	if (b != 0x7263694d || c != 0x666f736f || d != 0x76482074)    /* "Microsoft Hv" */
		return "hypervisor is not Hyper-V (CPUID 0x40000000)";
	if (a < HYPERV_CPUID_MIN)
		return "CPUID 0x40000000: max leaf below 0x40000005";

	cpuid(HYPERV_CPUID_INTERFACE, 0, &a, &b, &c, &d);
	hv_info.interface = a;
	if (a != HYPERV_INTERFACE_HV1)
		return "CPUID 0x40000001: interface is not \"Hv#1\"";

	cpuid(HYPERV_CPUID_FEATURES, 0, &a, &b, &c, &d);
	hv_info.privileges_low = a;
	hv_info.privileges_high = b;
	hv_info.features_edx = d;
	cpuid(HYPERV_CPUID_ENLIGHTENMENT_INFO, 0, &a, &b, &c, &d);
	hv_info.hints = a;

	if (!(hv_info.privileges_low & HV_MSR_HYPERCALL_AVAILABLE))
		return "no hypercall MSRs (CPUID 0x40000003 EAX bit 5)";
	if (!(hv_info.privileges_low & HV_MSR_VP_INDEX_AVAILABLE))
		return "no VP index MSR (CPUID 0x40000003 EAX bit 6)";
	if (!(hv_info.privileges_low & HV_MSR_SYNIC_AVAILABLE))
		return "no SynIC MSRs (CPUID 0x40000003 EAX bit 2)";

	/* The MSRs #GP unless granted: read them only with the privilege. */
	if ((hv_info.privileges_low & HV_ACCESS_FREQUENCY_MSRS) &&
	    (hv_info.features_edx & HV_FEATURE_FREQUENCY_MSRS_AVAILABLE)) {
		hv_info.tsc_hz = rdmsr(HV_X64_MSR_TSC_FREQUENCY);
		hv_info.apic_hz = rdmsr(HV_X64_MSR_APIC_FREQUENCY);
		hv_info.tsc_source = "msr";
	}
	if (!hv_info.tsc_hz) {
		hv_info.tsc_hz = tsc_hz_from_cpuid();
		hv_info.tsc_source = "cpuid";
	}
	if (!hv_info.tsc_hz)
		return "no TSC frequency (no frequency MSRs, CPUID 0x15/0x16 empty)";
	clock_tsc_hz = hv_info.tsc_hz;
	return 0;
}

const char *hv_enable_hypercalls(void)
{
	/* Hyper-V ignores HYPERCALL writes until the guest OS id is set. */
	wrmsr(HV_X64_MSR_GUEST_OS_ID, HV_GUEST_OS_ID_STUB);

	uint64_t v = rdmsr(HV_X64_MSR_HYPERCALL);
	v = (v & 0xffe) | (uint64_t)(uintptr_t)hv_hypercall_page | HV_HYPERCALL_ENABLE;
	wrmsr(HV_X64_MSR_HYPERCALL, v);
	hv_info.hypercall_msr = rdmsr(HV_X64_MSR_HYPERCALL);
	if (!(hv_info.hypercall_msr & HV_HYPERCALL_ENABLE))
		return "HYPERCALL MSR did not keep the enable bit";
	/* hv writes its code into the page on the MSR write; zeros are no code. */
	if (!hv_hypercall_page[0] && !hv_hypercall_page[1])
		return "hv left the hypercall page empty";

	hv_info.vp_index = (uint32_t)rdmsr(HV_X64_MSR_VP_INDEX);
	return 0;
}
