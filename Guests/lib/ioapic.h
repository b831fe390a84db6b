/* IOAPIC at 0xFEC00000 (identity mapped, uncached): indirect through
 * IOREGSEL/IOWIN. CPL0 only. */
#ifndef GUEST_IOAPIC_H
#define GUEST_IOAPIC_H
#include <stdint.h>

#define IOAPIC_BASE     0xfec00000UL
#define IOAPIC_REGSEL   0x00
#define IOAPIC_WIN      0x10
#define IOAPIC_REDTBL(pin) (0x10 + 2 * (pin))  /* low dword; high is +1 */

/* Redirection entry, low dword. Delivery mode fixed (0), physical
 * destination (bit 11 = 0) and active high (bit 13 = 0) are the zero values. */
#define IOAPIC_LEVEL    0x00008000      /* trigger mode: level */
#define IOAPIC_MASKED   0x00010000
/* High dword: physical destination APIC ID in bits 24-31 (entry bits 56-63). */
#define IOAPIC_DEST(apic_id) ((uint32_t)(apic_id) << 24)

static inline void ioapic_write(uint32_t reg, uint32_t v)
{
	*(volatile uint32_t *)(IOAPIC_BASE + IOAPIC_REGSEL) = reg;
	*(volatile uint32_t *)(IOAPIC_BASE + IOAPIC_WIN) = v;
}

static inline uint32_t ioapic_read(uint32_t reg)
{
	*(volatile uint32_t *)(IOAPIC_BASE + IOAPIC_REGSEL) = reg;
	return *(volatile uint32_t *)(IOAPIC_BASE + IOAPIC_WIN);
}

/*
 * Route `pin` to `vector` on the CPU with `apic_id`, unmasked. The high
 * dword goes first: the low one unmasks, and the entry must not fire with a
 * stale destination in between.
 */
static inline void ioapic_route(unsigned pin, uint8_t vector, uint32_t apic_id, int level)
{
	ioapic_write(IOAPIC_REDTBL(pin) + 1, IOAPIC_DEST(apic_id));
	ioapic_write(IOAPIC_REDTBL(pin), vector | (level ? IOAPIC_LEVEL : 0));
}

#endif
