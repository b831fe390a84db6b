/* 16550 at 0x3F8, output only. */
#include "uart.h"
#include "io.h"

#define COM1     0x3f8
#define THR      (COM1 + 0)
#define IER      (COM1 + 1)
#define DLL      (COM1 + 0)
#define DLM      (COM1 + 1)
#define FCR      (COM1 + 2)
#define LCR      (COM1 + 3)
#define MCR      (COM1 + 4)
#define LSR      (COM1 + 5)
#define LSR_THRE 0x20
#define FIFO_LEN 16

void uart_init(void)
{
	outb(IER, 0x00);        /* no interrupts */
	outb(LCR, 0x80);        /* DLAB */
	outb(DLL, 0x01);        /* 115200 baud */
	outb(DLM, 0x00);
	outb(LCR, 0x03);        /* 8N1 */
	outb(FCR, 0x07);        /* FIFO on, both cleared */
	outb(MCR, 0x03);        /* DTR | RTS */
}

/*
 * Every port access is a VM exit, so poll THRE once and then fill the whole
 * FIFO instead of polling per byte.
 */
void uart_write(const char *s, size_t n)
{
	while (n) {
		while (!(inb(LSR) & LSR_THRE))
			cpu_relax();
		size_t chunk = n < FIFO_LEN ? n : FIFO_LEN;
		for (size_t i = 0; i < chunk; i++)
			outb(THR, (unsigned char)s[i]);
		s += chunk;
		n -= chunk;
	}
}
