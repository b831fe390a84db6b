#ifndef GUEST_UART_H
#define GUEST_UART_H
#include <stddef.h>

void uart_init(void);                          /* CPL0 */
void uart_write(const char *s, size_t n);      /* any CPL (ports in the TSS bitmap) */
/* Moves out up to size bytes of the input uart_init found waiting (it would
 * otherwise be lost to the FIFO reset); returns how many. Any CPL. */
size_t uart_take_early_input(unsigned char *buf, size_t size);

#endif
