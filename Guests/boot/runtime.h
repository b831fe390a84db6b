/*
 * Interface between the shared boot runtime and a guest program.
 *
 * The runtime boots the BSP, calls prog_kernel_init() at CPL0 (optional,
 * weak), then drops every running CPU to CPL3 and calls prog_user_main().
 */
#ifndef GUEST_RUNTIME_H
#define GUEST_RUNTIME_H
#include <stddef.h>
#include <stdint.h>
#include "config.h"

struct cpu {
	unsigned slot;          /* arrival order: stack/TSS/GDT slot */
	unsigned index;         /* rank by APIC ID, BSP first */
	unsigned apic_id;
};

/* Provided by the program. */
void prog_kernel_init(void);                    /* CPL0, BSP only; optional */
void prog_user_main(struct cpu *c) __attribute__((noreturn));  /* CPL3, every CPU */

/* Provided by the runtime. */
extern struct cpu cpus[MAX_CPUS];
extern unsigned ncpus;                          /* CPUs running prog_user_main */

/* Value of "key=N" (decimal) on the PVH command line; 1 if found. Any CPL. */
int cmdline_get_u64(const char *key, uint64_t *out);
/* First "key=value" on the command line, copied NUL-terminated (truncated to
 * size - 1); 1 if found. Any CPL. */
int cmdline_get_str(const char *key, char *out, size_t size);
/* CPU count from CPUID (leaf 0xB, else leaf 1 when HTT). CPL0. */
unsigned cpu_count_cpuid(void);
/* Start APs (INIT-SIPI-SIPI broadcast) and wait for n-1 of them. CPL0.
 * Returns how many CPUs (BSP included) checked in; on success they run. */
unsigned smp_start(unsigned n);
/*
 * Device interrupts (vectors 32..254). The handler runs at CPL0 with IF=0 on
 * the CPU's kernel stack and must do its own EOI (the runtime does not know
 * where the interrupt came from). Returns 0 for a vector out of range. CPL0.
 */
typedef void (*irq_handler_t)(unsigned vector);
int irq_set_handler(unsigned vector, irq_handler_t handler);
/* Write status to the exit port. Any CPL. */
void guest_exit(uint8_t status) __attribute__((noreturn));

#endif
