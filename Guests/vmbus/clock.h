/*
 * Time from the TSC, at any CPL (CR4.TSD is clear). The frequency comes from
 * hv's TSC_FREQUENCY MSR, read once at CPL0 (hv_detect); everything that
 * waits for hv is bounded by a deadline from here rather than by a loop
 * count, because a loop iteration costs ~10 ns natively and ~1 us emulated.
 */
#ifndef VMBUS_CLOCK_H
#define VMBUS_CLOCK_H
#include <stdint.h>
#include "../lib/io.h"

extern uint64_t clock_tsc_hz;   /* 0 until hv_detect has run */

/* a * b / c without overflow (the quotient saturates at 2^64 - 1); c > 0. */
static inline uint64_t muldiv64(uint64_t a, uint64_t b, uint64_t c)
{
	unsigned __int128 p = (unsigned __int128)a * b;
	uint64_t hi = (uint64_t)(p >> 64), lo = (uint64_t)p, q, r;

	if (hi >= c)
		return ~0ULL;
	/* One divq: no libgcc (__udivti3) in the freestanding image. */
	__asm__("divq %4" : "=a"(q), "=d"(r) : "a"(lo), "d"(hi), "rm"(c));
	(void)r;
	return q;
}

static inline uint64_t clock_ticks_to_ns(uint64_t ticks)
{
	return muldiv64(ticks, 1000000000ULL, clock_tsc_hz);
}

static inline uint64_t clock_ms_to_ticks(uint64_t ms)
{
	return muldiv64(ms, clock_tsc_hz, 1000);
}

/* A TSC value `ms` milliseconds from now. */
static inline uint64_t deadline_after_ms(uint64_t ms)
{
	return rdtsc() + clock_ms_to_ticks(ms);
}

static inline int deadline_passed(uint64_t deadline)
{
	return (int64_t)(rdtsc() - deadline) >= 0;
}

static inline void clock_delay_us(uint64_t us)
{
	uint64_t end = rdtsc() + muldiv64(us, clock_tsc_hz, 1000000);

	while ((int64_t)(rdtsc() - end) < 0)
		cpu_relax();
}

#endif
