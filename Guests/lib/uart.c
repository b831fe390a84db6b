/* 16550 at 0x3F8: output, plus the input that arrived before uart_init. */
#include "uart.h"
#include "io.h"

#define COM1     0x3f8
#define THR      (COM1 + 0)
#define IER      (COM1 + 1)
#define RBR      (COM1 + 0)
#define DLL      (COM1 + 0)
#define DLM      (COM1 + 1)
#define FCR      (COM1 + 2)
#define LCR      (COM1 + 3)
#define MCR      (COM1 + 4)
#define LSR      (COM1 + 5)
#define LSR_DR   0x01
#define LSR_THRE 0x20
#define FIFO_LEN 16

static unsigned char early_rx[64];      /* QEMU holds 1 byte before FIFO mode */
static size_t early_rx_len;

void uart_init(void)
{
	outb(IER, 0x00);        /* no interrupts */
	/*
	 * Host input may already wait in RBR (piped stdin is there before we
	 * boot). Enabling the FIFO resets it on QEMU, so keep it aside first.
	 * LSR 0xFF: no UART there.
	 */
	outb(LCR, 0x03);        /* DLAB off: port 0 is RBR */
	for (uint8_t lsr; early_rx_len < sizeof(early_rx) &&
	     (lsr = inb(LSR)) != 0xff && (lsr & LSR_DR);)
		early_rx[early_rx_len++] = inb(RBR);
	outb(LCR, 0x80);        /* DLAB */
	outb(DLL, 0x01);        /* 115200 baud */
	outb(DLM, 0x00);
	outb(LCR, 0x03);        /* 8N1 */
	outb(FCR, 0x05);        /* FIFO on, transmit side cleared; input kept */
	outb(MCR, 0x03);        /* DTR | RTS */
}

size_t uart_take_early_input(unsigned char *buf, size_t size)
{
	size_t n = early_rx_len < size ? early_rx_len : size;

	for (size_t i = 0; i < n; i++)
		buf[i] = early_rx[i];
	for (size_t i = n; i < early_rx_len; i++)
		early_rx[i - n] = early_rx[i];
	early_rx_len -= n;
	return n;
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
