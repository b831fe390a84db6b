/* TSC frequency (see tsc.h). */
#include "tsc.h"
#include "../boot/runtime.h"
#include "../lib/io.h"
#include "../vmbus/clock.h"
#include "../vmbus/hyperv.h"

#define PIT_HZ          1193182u
#define PIT_CH0         0x40
#define PIT_MODE        0x43

const char *tsc_detect_cpl0(void)
{
	uint32_t a, b, c, d, max;

	cpuid(1, 0, &a, &b, &c, &d);
	if (c & (1u << 31)) {                   /* a hypervisor: its leaves first */
		uint32_t hmax;
		cpuid(HYPERV_CPUID_VENDOR_AND_MAX, 0, &hmax, &b, &c, &d);
		int hyperv = b == 0x7263694d && c == 0x666f736f && d == 0x76482074; /* "Microsoft Hv" */
		if (hyperv && hmax >= HYPERV_CPUID_FEATURES) {
			uint32_t priv, feat;
			cpuid(HYPERV_CPUID_FEATURES, 0, &priv, &b, &c, &feat);
			/* The MSR #GPs unless granted: read it only with the privilege. */
			if ((priv & HV_ACCESS_FREQUENCY_MSRS) &&
			    (feat & HV_FEATURE_FREQUENCY_MSRS_AVAILABLE)) {
				clock_tsc_hz = rdmsr(HV_X64_MSR_TSC_FREQUENCY);
				if (clock_tsc_hz)
					return "hyperv-msr";
			}
		}
		if (!hyperv && hmax >= 0x40000010 && hmax < 0x40010000) {
			cpuid(0x40000010, 0, &a, &b, &c, &d);   /* EAX: TSC kHz */
			if (a) {
				clock_tsc_hz = (uint64_t)a * 1000;
				return "cpuid-40000010";
			}
		}
	}
	cpuid(0, 0, &max, &b, &c, &d);
	if (max >= 0x15) {
		cpuid(0x15, 0, &a, &b, &c, &d);
		if (a && b && c) {
			clock_tsc_hz = (uint64_t)c * b / a;
			return "cpuid-15";
		}
	}
	if (max >= 0x16) {
		cpuid(0x16, 0, &a, &b, &c, &d);
		if (a & 0xffff) {
			clock_tsc_hz = (uint64_t)(a & 0xffff) * 1000000;
			return "cpuid-16";
		}
	}
	return 0;
}

int tsc_allow_pit_ports(void)
{
	return io_allow_ports(PIT_CH0, 4);
}

/* Channel 0's current count, latched (mode/command 0x00 = latch channel 0). */
static uint16_t pit_count(void)
{
	outb(PIT_MODE, 0x00);
	uint8_t lo = inb(PIT_CH0);
	return (uint16_t)(lo | inb(PIT_CH0) << 8);
}

/*
 * Channel 0 in mode 2 (rate generator) from 0xFFFF, counting down at
 * 1.193182 MHz and reloading; the TSC is read against the latched count
 * over PIT_TICKS ticks (~42 ms). Channel 0 rather than Linux's channel 2:
 * channel 2's gate is port 0x61, which QEMU's microvm does not have. The
 * IRQ 0 this raises is never taken (IF = 0).
 */
uint64_t tsc_calibrate_pit(void)
{
	const uint32_t want = 50000;
	uint32_t elapsed = 0;

	outb(PIT_MODE, 0x34);           /* channel 0, lobyte/hibyte, mode 2, binary */
	outb(PIT_CH0, 0xff);
	outb(PIT_CH0, 0xff);
	uint16_t prev = pit_count(), first = prev;
	/* Wait for the count to move at all (it reads 0xFFFF with no PIT). */
	for (unsigned long spins = 0; prev == first; spins++) {
		if (spins > 1000000ul)
			return 0;
		prev = pit_count();
	}
	uint64_t t0 = rdtsc();
	for (unsigned long spins = 0; elapsed < want; spins++) {
		uint16_t now = pit_count();
		/* Down-counter with reload at 1: a rise means it wrapped. */
		elapsed += now <= prev ? (uint32_t)(prev - now) : (uint32_t)prev + (0xffffu - now);
		prev = now;
		if (spins > 100000000ul || rdtsc() - t0 > (1ull << 36))
			return 0;
	}
	return muldiv64(rdtsc() - t0, PIT_HZ, elapsed);
}
