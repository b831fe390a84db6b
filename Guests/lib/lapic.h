/* xAPIC MMIO at 0xFEE00000 (identity mapped, uncached). CPL0 only. */
#ifndef GUEST_LAPIC_H
#define GUEST_LAPIC_H
#include <stdint.h>

#define LAPIC_BASE   0xfee00000UL
#define LAPIC_ID     0x020
#define LAPIC_TPR    0x080
#define LAPIC_EOI    0x0b0
#define LAPIC_SVR    0x0f0
#define LAPIC_LVT_LINT0 0x350
#define LVT_MASKED   0x00010000
#define LAPIC_ICR_LO 0x300
#define LAPIC_ICR_HI 0x310

#define ICR_INIT            0x00000500
#define ICR_STARTUP         0x00000600
#define ICR_LEVEL_ASSERT    0x00004000
#define ICR_PENDING         0x00001000
#define ICR_ALL_EXCL_SELF   0x000c0000

static inline uint32_t lapic_read(uint32_t reg)
{
	return *(volatile uint32_t *)(LAPIC_BASE + reg);
}

static inline void lapic_write(uint32_t reg, uint32_t v)
{
	*(volatile uint32_t *)(LAPIC_BASE + reg) = v;
}

static inline uint32_t lapic_id(void)
{
	return lapic_read(LAPIC_ID) >> 24;
}

/* End of interrupt for the in-service vector (and, for a level-triggered
 * IOAPIC pin, the IOAPIC's Remote IRR). */
static inline void lapic_eoi(void)
{
	lapic_write(LAPIC_EOI, 0);
}

void lapic_enable(void);
void lapic_broadcast_ipi(uint32_t icr_lo);

#endif
