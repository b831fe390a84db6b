#include "lapic.h"
#include "io.h"

void lapic_enable(void)
{
	lapic_write(LAPIC_SVR, 0x100 | 0xff);   /* software enable, spurious vector 0xFF */
}

/* Send to all-excluding-self and wait until the LAPIC has accepted it. */
void lapic_broadcast_ipi(uint32_t icr_lo)
{
	lapic_write(LAPIC_ICR_HI, 0);
	lapic_write(LAPIC_ICR_LO, ICR_ALL_EXCL_SELF | icr_lo);
	while (lapic_read(LAPIC_ICR_LO) & ICR_PENDING)
		cpu_relax();
}
