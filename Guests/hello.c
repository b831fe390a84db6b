/* hello.elf: one line per vCPU, printed from CPL3 in APIC-ID order. */
#include "boot/runtime.h"
#include "lib/fmt.h"
#include "lib/io.h"

static volatile unsigned turn;

void prog_kernel_init(void)
{
	uint64_t n;

	if (!cmdline_get_u64("cpus", &n) || n == 0)
		n = cpu_count_cpuid();
	if (n > MAX_CPUS)
		n = MAX_CPUS;
	unsigned k = smp_start((unsigned)n);
	if (k != n) {
		kprintf("hello: only %u of %u CPUs started\n", k, (unsigned)n);
		guest_exit(2);
	}
}

void prog_user_main(struct cpu *c)
{
	while (__atomic_load_n(&turn, __ATOMIC_ACQUIRE) != c->index)
		cpu_relax();
	kprintf("hello from vCPU %u (APIC ID %u) at CPL%u\n", c->index, c->apic_id,
		current_cpl());
	if (c->index == ncpus - 1)
		guest_exit(0);
	__atomic_store_n(&turn, c->index + 1, __ATOMIC_RELEASE);
	for (;;)
		cpu_relax();
}
