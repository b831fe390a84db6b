/*
 * echo.elf: the interrupt path end to end, BSP only, all at CPL0.
 * UART receive interrupt -> IOAPIC pin 4 -> MSI -> local APIC -> vector 0x24
 * -> uart_irq() -> EOI. Echoes each input line as "echo: <line>"; 'q' exits 0.
 * Command line: irq=edge (default) or irq=level, the pin's trigger mode.
 */
#include "boot/runtime.h"
#include "lib/fmt.h"
#include "lib/io.h"
#include "lib/ioapic.h"
#include "lib/lapic.h"
#include "lib/uart.h"

#define ECHO_VECTOR 0x24
#define UART_PIN    4               /* COM1's ISA IRQ, IOAPIC pin 4 */

#define COM1        0x3f8
#define RBR         (COM1 + 0)
#define IER         (COM1 + 1)
#define MCR         (COM1 + 4)
#define LSR         (COM1 + 5)
#define IER_RDA     0x01            /* received data available */
#define MCR_DTR_RTS_OUT2 0x0b       /* OUT2 gates the IRQ line on a PC */
#define LSR_DR      0x01

#define PIC1_DATA   0x21
#define PIC2_DATA   0xa1

/*
 * Filled by the handler, emptied by the main loop. Both run with IF=0 (the
 * loop opens interrupts only inside `sti; hlt`), so volatile plus the asm
 * memory clobber is all the ordering needed. The loop sleeps only with the
 * ring empty, so one drain must fit: hv's UART buffers up to 4 KiB of input,
 * plus what uart_init kept aside.
 */
static volatile unsigned char ring[8192];
static volatile unsigned ring_head, ring_tail;  /* free-running; size is a power of 2 */
static volatile unsigned long irq_count, ring_dropped;

static void ring_put(unsigned char b)
{
	if (ring_head - ring_tail < sizeof(ring))
		ring[ring_head++ % sizeof(ring)] = b;
	else
		ring_dropped++;
}

/* Read every byte the UART holds: RBR empty is what lowers its IRQ line. */
static void uart_drain(void)
{
	while (inb(LSR) & LSR_DR)
		ring_put(inb(RBR));
}

static void uart_irq(unsigned vector)
{
	(void)vector;
	irq_count++;
	/*
	 * Drain fully before the EOI: for a level pin the VMM re-delivers at
	 * EOI while the line is still high; for an edge pin, the line must fall
	 * so the next byte makes a new edge.
	 */
	uart_drain();
	lapic_eoi();
}

static int streq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

static void setup_interrupts(int level)
{
	uint32_t apic_id = lapic_id();

	irq_set_handler(ECHO_VECTOR, uart_irq);

	/*
	 * Only the IOAPIC path may deliver IRQ 4. QEMU also wires it to an
	 * 8259 whose output reaches LINT0 as ExtINT (virtual wire mode); an
	 * unprogrammed 8259 would hand us vector 4, an exception.
	 */
	outb(PIC1_DATA, 0xff);
	outb(PIC2_DATA, 0xff);
	lapic_enable();
	lapic_write(LAPIC_LVT_LINT0, LVT_MASKED);
	lapic_write(LAPIC_TPR, 0);      /* accept every priority class */

	/* Route before the UART can raise the line, so no edge is missed. */
	ioapic_route(UART_PIN, ECHO_VECTOR, apic_id, level);

	outb(IER, IER_RDA);
	outb(MCR, MCR_DTR_RTS_OUT2);
	/*
	 * Input from before boot (saved by uart_init), then bytes that came
	 * before IER was set: take them now. Their interrupt, if one was
	 * raised, then finds the UART empty, which is harmless.
	 */
	unsigned char early[64];
	size_t n;
	while ((n = uart_take_early_input(early, sizeof(early))))
		for (size_t i = 0; i < n; i++)
			ring_put(early[i]);
	uart_drain();
}

void prog_kernel_init(void)
{
	char mode[8] = "edge";
	int level = 0;
	char line[128];
	unsigned len = 0;

	cmdline_get_str("irq", mode, sizeof(mode));
	if (streq(mode, "level")) {
		level = 1;
	} else if (!streq(mode, "edge")) {
		kprintf("echo: irq=%s: want edge or level\n", mode);
		guest_exit(2);
	}

	setup_interrupts(level);
	kprintf("echo: ready (%s)\n", level ? "level" : "edge");

	for (;;) {
		/* sti's one-instruction shadow: an interrupt pending now wakes hlt. */
		while (ring_tail == ring_head)
			__asm__ volatile("sti; hlt; cli" ::: "memory");
		unsigned char b = ring[ring_tail++ % sizeof(ring)];

		if (b == 'q') {
			if (ring_dropped)
				kprintf("echo: %lu bytes dropped\n", ring_dropped);
			kprintf("echo: bye after %lu interrupts\n", irq_count);
			guest_exit(0);
		}
		if (b == '\r')
			continue;
		if (b == '\n' || len == sizeof(line) - 1) {
			line[len] = '\0';
			kprintf("echo: %s\n", line);
			len = 0;
			if (b == '\n')
				continue;
		}
		line[len++] = (char)b;
	}
}

void prog_user_main(struct cpu *c)
{
	(void)c;                /* never reached: prog_kernel_init exits */
	guest_exit(1);
}
