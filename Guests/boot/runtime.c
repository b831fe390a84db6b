/* Shared CPL0 runtime: IDT, per-CPU TSS, cmdline, SMP bring-up, CPL3 drop. */
#include <stddef.h>
#include "runtime.h"
#include "../lib/io.h"
#include "../lib/fmt.h"
#include "../lib/lapic.h"
#include "../lib/string.h"
#include "../lib/uart.h"

#define EXIT_PORT 0x501

/* ---- start info (struct hvm_start_info) ---- */
struct hvm_start_info {
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
	uint32_t memmap_entries, reserved;
};
#define HVM_START_MAGIC 0x336ec578

uint32_t start_info_paddr;              /* stored by entry.S from EBX */
static char cmdline[512];

/* ---- TSS with an I/O permission bitmap ---- */
#define IOMAP_PORTS 0x1000              /* ports >= this are denied by the limit (0xCF8-0xCFF: PCI) */
struct tss {
	uint32_t reserved0;
	uint64_t rsp[3];
	uint64_t reserved1;
	uint64_t ist[7];
	uint64_t reserved2;
	uint16_t reserved3;
	uint16_t iomap_base;
	uint8_t iomap[IOMAP_PORTS / 8 + 1];     /* +1: CPU reads 2 bytes; must end in 0xFF */
} __attribute__((packed, aligned(16)));

_Static_assert(offsetof(struct tss, iomap) == 104, "TSS layout");

struct idt_entry {
	uint16_t off0, sel;
	uint8_t ist, type;
	uint16_t off1;
	uint32_t off2, reserved;
} __attribute__((packed));

struct exc_frame {
	uint64_t vector, error, rip, cs, rflags, rsp, ss;
};

extern uint64_t gdt_tss[];
extern uint8_t kstacks[];
extern const uint64_t isr_table[32];
extern void isr_spurious(void);
extern void ucall_entry(void);
extern const char irq_stubs[];
extern const char ap_tramp_start[], ap_tramp_end[];
extern void enter_user(void (*entry)(struct cpu *), struct cpu *arg, uint64_t rsp)
	__attribute__((noreturn));

struct cpu cpus[MAX_CPUS];
unsigned ncpus = 1;
static struct tss tss[MAX_CPUS];
static struct idt_entry idt[256];
static uint8_t ustacks[MAX_CPUS][USTACK_SIZE] __attribute__((aligned(16)));
static volatile unsigned cpus_online;   /* APs that finished CPL0 setup */
static volatile unsigned smp_go;        /* set once indices are assigned */
static irq_handler_t irq_handlers[256];
static ucall_handler_t ucall_handlers[UCALL_MAX];

/* Ports CPL3 may use beyond the defaults; applied to every TSS, now and later. */
#define IO_RANGES 8
static struct {
	uint16_t first, count;
} io_ranges[IO_RANGES];
static unsigned io_nranges;

void guest_exit(uint8_t status)
{
	outb(EXIT_PORT, status);
	for (;;)
		cpu_relax();
}

__attribute__((weak)) void prog_kernel_init(void)
{
}

void exception_handler(struct exc_frame *f)
{
	kprintf("exception %lu err=0x%lx rip=0x%lx cs=0x%lx rsp=0x%lx\n",
		(unsigned long)f->vector, (unsigned long)f->error,
		(unsigned long)f->rip, (unsigned long)f->cs, (unsigned long)f->rsp);
	guest_exit(3);
}

static void set_gate(unsigned vec, uint64_t handler)
{
	struct idt_entry *e = &idt[vec];
	e->off0 = (uint16_t)handler;
	e->sel = KCODE64;
	e->ist = 0;
	e->type = 0x8e;                 /* present, DPL0, 64-bit interrupt gate */
	e->off1 = (uint16_t)(handler >> 16);
	e->off2 = (uint32_t)(handler >> 32);
	e->reserved = 0;
}

/* Called by irq_common (entry.S) with the vector its stub pushed. */
void irq_dispatch(uint64_t vector)
{
	irq_handler_t h = irq_handlers[vector & 0xff];

	if (h)                  /* always set: only registered vectors have a gate */
		h((unsigned)(vector & 0xff));
}

int irq_set_handler(unsigned vector, irq_handler_t handler)
{
	if (vector < 32 || vector >= 0xff || !handler)
		return 0;
	irq_handlers[vector] = handler;
	set_gate(vector, (uint64_t)(irq_stubs + (vector - 32) * IRQ_STUB_SIZE));
	return 1;
}

/* Called by ucall_entry (entry.S) with the caller's RAX = nr, RDI = arg. */
uint64_t ucall_dispatch(uint64_t nr, uint64_t arg)
{
	ucall_handler_t h = nr < UCALL_MAX ? ucall_handlers[nr] : NULL;

	return h ? h(arg) : UCALL_ENOSYS;
}

int ucall_set_handler(unsigned nr, ucall_handler_t handler)
{
	if (nr >= UCALL_MAX || !handler)
		return 0;
	ucall_handlers[nr] = handler;
	return 1;
}

static void load_idt(void)
{
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) p = { sizeof(idt) - 1, (uint64_t)idt };
	__asm__ volatile("lidt %0" : : "m"(p));
}

static void allow_port(struct tss *t, unsigned port)
{
	t->iomap[port / 8] &= (uint8_t)~(1u << (port % 8));
}

static void allow_ports(struct tss *t, unsigned first, unsigned count)
{
	for (unsigned p = first; p < first + count; p++)
		allow_port(t, p);
}

int io_allow_ports(unsigned first, unsigned count)
{
	if (count == 0 || first >= IOMAP_PORTS || count > IOMAP_PORTS - first ||
	    io_nranges == IO_RANGES)
		return 0;
	io_ranges[io_nranges].first = (uint16_t)first;
	io_ranges[io_nranges].count = (uint16_t)count;
	io_nranges++;
	/* TSSs already loaded (iomap_base set); setup_tss applies it to the rest. */
	for (unsigned s = 0; s < MAX_CPUS; s++)
		if (tss[s].iomap_base)
			allow_ports(&tss[s], first, count);
	return 1;
}

/*
 * The host (PVM) ignores RFLAGS.IOPL, so CPL3 port access works only through
 * the bitmap: UART 0x3F8-0x3FF, exit port 0x501, benchmark port 0x502, and
 * whatever the program added with io_allow_ports.
 */
static void setup_tss(unsigned slot)
{
	struct tss *t = &tss[slot];
	uint64_t base = (uint64_t)t, limit = sizeof(*t) - 1;

	memset(t, 0, sizeof(*t));
	t->rsp[0] = (uint64_t)(kstacks + (slot + 1) * KSTACK_SIZE);
	t->iomap_base = offsetof(struct tss, iomap);
	memset(t->iomap, 0xff, sizeof(t->iomap));
	for (unsigned p = 0x3f8; p <= 0x3ff; p++)
		allow_port(t, p);
	allow_port(t, 0x501);
	allow_port(t, 0x502);
	for (unsigned i = 0; i < io_nranges; i++)
		allow_ports(t, io_ranges[i].first, io_ranges[i].count);

	/* 16-byte available 64-bit TSS descriptor (type 9, present). */
	gdt_tss[2 * slot] = (limit & 0xffff) | ((base & 0xffffff) << 16) |
			    (0x89ULL << 40) | (((limit >> 16) & 0xf) << 48) |
			    (((base >> 24) & 0xff) << 56);
	gdt_tss[2 * slot + 1] = base >> 32;
	__asm__ volatile("ltr %w0" : : "r"((uint16_t)TSS_SEL(slot)));
}

static void cpu_setup(unsigned slot)
{
	cpus[slot].slot = slot;
	cpus[slot].apic_id = lapic_id();
	load_idt();
	setup_tss(slot);
}

/* ---- start info: RSDP ---- */
static uint64_t rsdp_paddr;

static void save_rsdp(void)
{
	const struct hvm_start_info *si = (const void *)(uint64_t)start_info_paddr;

	if (si && si->magic == HVM_START_MAGIC)
		rsdp_paddr = si->rsdp_paddr;
}

uint64_t boot_rsdp_paddr(void)
{
	return rsdp_paddr;
}

/* ---- command line ---- */
static void copy_cmdline(void)
{
	const struct hvm_start_info *si = (const void *)(uint64_t)start_info_paddr;
	if (!si || si->magic != HVM_START_MAGIC || !si->cmdline_paddr)
		return;
	const char *s = (const char *)si->cmdline_paddr;
	size_t i;
	for (i = 0; i < sizeof(cmdline) - 1 && s[i]; i++)
		cmdline[i] = s[i];
	cmdline[i] = '\0';
}

/*
 * Next "key=value" token at or after *pos: returns the value and its length,
 * and leaves *pos after the token; NULL when there is none.
 */
static const char *cmdline_next(const char **pos, const char *key, size_t *len)
{
	size_t klen = strlen(key);
	const char *p = *pos;

	while (*p) {
		while (*p == ' ')
			p++;
		const char *tok = p;
		while (*p && *p != ' ')
			p++;
		size_t i = 0;
		while (i < klen && tok + i < p && tok[i] == key[i])
			i++;
		if (i == klen && tok + klen < p && tok[klen] == '=') {
			*pos = p;
			*len = (size_t)(p - (tok + klen + 1));
			return tok + klen + 1;
		}
	}
	*pos = p;
	return NULL;
}

int cmdline_get_u64(const char *key, uint64_t *out)
{
	const char *pos = cmdline, *d;
	size_t len;

	while ((d = cmdline_next(&pos, key, &len))) {
		const char *end = d + len;
		uint64_t v = 0;
		if (d == end)
			continue;
		for (; d < end && *d >= '0' && *d <= '9'; d++)
			v = v * 10 + (uint64_t)(*d - '0');
		if (d != end)
			continue;       /* not a plain decimal number */
		*out = v;
		return 1;
	}
	return 0;
}

int cmdline_get_str(const char *key, char *out, size_t size)
{
	const char *pos = cmdline;
	size_t len;
	const char *v = cmdline_next(&pos, key, &len);

	if (!v || !size)
		return 0;
	if (len > size - 1)
		len = size - 1;
	memcpy(out, v, len);
	out[len] = '\0';
	return 1;
}

/* ---- SMP ---- */
unsigned cpu_count_cpuid(void)
{
	uint32_t a, b, c, d;

	cpuid(0, 0, &a, &b, &c, &d);
	if (a >= 0xb) {
		cpuid(0xb, 1, &a, &b, &c, &d);  /* core level: logical CPUs per package */
		if (b & 0xffff)
			return b & 0xffff;
	}
	cpuid(1, 0, &a, &b, &c, &d);
	if (d & (1u << 28))                     /* HTT: EBX[23:16] is valid */
		return ((b >> 16) & 0xff) ? (b >> 16) & 0xff : 1;
	return 1;
}

/* CPL0 is emulated on the PVM host (~1 us/instruction): keep these short. */
static void delay(unsigned long n)
{
	for (volatile unsigned long i = 0; i < n; i++)
		cpu_relax();
}

unsigned smp_start(unsigned n)
{
	if (n > MAX_CPUS)
		n = MAX_CPUS;
	ncpus = n;
	if (n < 2)
		return 1;

	memcpy((void *)AP_TRAMPOLINE, ap_tramp_start,
	       (size_t)(ap_tramp_end - ap_tramp_start));
	lapic_enable();
	lapic_broadcast_ipi(ICR_INIT | ICR_LEVEL_ASSERT);
	delay(10000);
	lapic_broadcast_ipi(ICR_STARTUP | (AP_TRAMPOLINE >> 12));
	delay(2000);
	lapic_broadcast_ipi(ICR_STARTUP | (AP_TRAMPOLINE >> 12));

	/*
	 * Wait for the APs with a generous bound. An iteration count alone is
	 * no good: on the PVM host one CPL0 iteration costs ~4 us (emulated),
	 * elsewhere ~10 ns. So bound by TSC (2^34 cycles: ~7 s at 2.6 GHz),
	 * with an iteration cap in case the TSC does not move.
	 */
	uint64_t t0 = rdtsc();
	for (unsigned long spin = 0; spin < 200000000UL; spin++) {
		if (__atomic_load_n(&cpus_online, __ATOMIC_ACQUIRE) >= n - 1)
			break;
		if (rdtsc() - t0 > (1ULL << 34))
			break;
		cpu_relax();
	}
	unsigned k = __atomic_load_n(&cpus_online, __ATOMIC_ACQUIRE) + 1;
	if (k < n)
		return k;

	/* index = rank by APIC ID among APs, after the BSP (index 0). */
	for (unsigned s = 1; s < n; s++) {
		unsigned idx = 1;
		for (unsigned o = 1; o < n; o++)
			if (cpus[o].apic_id < cpus[s].apic_id)
				idx++;
		cpus[s].index = idx;
	}
	__atomic_store_n(&smp_go, 1, __ATOMIC_RELEASE);
	return n;
}

/* ---- CPL3 entry ---- */
static void __attribute__((noreturn)) user_start(struct cpu *c)
{
	if (c->slot != 0)       /* APs: wait for the BSP to assign indices */
		while (!__atomic_load_n(&smp_go, __ATOMIC_ACQUIRE))
			cpu_relax();
	prog_user_main(c);
}

static void __attribute__((noreturn)) drop_to_user(unsigned slot)
{
	/* -8: entry sees the stack as if called (ABI alignment). */
	enter_user(user_start, &cpus[slot], (uint64_t)(ustacks[slot] + USTACK_SIZE - 8));
}

void kmain(void)
{
	uart_init();
	for (unsigned v = 0; v < 32; v++)
		set_gate(v, isr_table[v]);
	set_gate(6, (uint64_t)ucall_entry);    /* #UD: system calls, else fatal */
	set_gate(0xff, (uint64_t)isr_spurious);
	copy_cmdline();
	save_rsdp();
	cpu_setup(0);
	cpus[0].index = 0;
	prog_kernel_init();
	drop_to_user(0);
}

void ap_main(unsigned slot)
{
	/* Started but not wanted (e.g. cpus=N below the real count): park. */
	if (slot >= ncpus)
		for (;;)
			__asm__ volatile("cli; hlt");
	cpu_setup(slot);
	__atomic_fetch_add(&cpus_online, 1, __ATOMIC_RELEASE);
	drop_to_user(slot);
}
