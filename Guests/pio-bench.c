/* pio-bench.elf: BSP only, N `outb` to port 0x502 at CPL3 (N from iterations=N). */
#include "boot/runtime.h"
#include "lib/fmt.h"

void prog_user_main(struct cpu *c)
{
	uint64_t n = 0;

	(void)c;
	cmdline_get_u64("iterations", &n);
	for (uint64_t i = 0; i < n; i++)
		/* port > 0xFF: must go through %dx */
		__asm__ volatile("outb %%al, %%dx" : : "a"(0), "d"(0x502));
	kprintf("pio-bench: %lu exits\n", (unsigned long)n);
	guest_exit(0);
}
