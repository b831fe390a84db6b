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
/* The PVH start info's rsdp_paddr as the loader left it (0: none given). Any CPL. */
uint64_t boot_rsdp_paddr(void);
/* Write status to the exit port. Any CPL. */
void guest_exit(uint8_t status) __attribute__((noreturn));

/*
 * Let CPL3 use ports [first, first + count) on every CPU, those running now
 * and those started later, through the TSS I/O-permission bitmap (the PVM
 * host ignores RFLAGS.IOPL). Returns 0 for a range beyond the bitmap (ports
 * >= 0x1000) or when the table of ranges (8) is full. CPL0.
 */
int io_allow_ports(unsigned first, unsigned count);

/*
 * System call for the few CPL0-only operations a CPL3 driver needs (an MSR
 * write such as SynIC end-of-message), nothing general: the program
 * registers one handler per call number at CPL0; ucall() from CPL3 runs it
 * at CPL0 (IF=0, on the CPU's kernel stack) and returns its value; an
 * unregistered number returns UCALL_ENOSYS. The gate is the #UD vector: a
 * CPL3 `ud1 %eax,%eax` is a call, any other #UD stays fatal. On the PVM host
 * a DPL3 `int n` gate is no use (`int n` at CPL3 raises #UD whatever the
 * vector) and SYSCALL reaches LSTAR still at CPL3, but exceptions do reach
 * CPL0. The handler runs emulated there (~1 us per instruction): keep it a
 * few lines.
 */
#define UCALL_MAX       8
#define UCALL_ENOSYS    (~0ULL)
typedef uint64_t (*ucall_handler_t)(uint64_t arg);
/* Returns 0 for a number >= UCALL_MAX or a NULL handler. CPL0. */
int ucall_set_handler(unsigned nr, ucall_handler_t handler);

/* CPL3: RAX = call number, RDI = argument, RAX = result; nothing else changes. */
static inline uint64_t ucall(unsigned nr, uint64_t arg)
{
	uint64_t ret;
	__asm__ volatile(".byte 0x0f, 0xb9, 0xc0"      /* ud1 %eax, %eax */
			 : "=a"(ret) : "a"((uint64_t)nr), "D"(arg) : "memory");
	return ret;
}

#endif
