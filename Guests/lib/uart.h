#ifndef GUEST_UART_H
#define GUEST_UART_H
#include <stddef.h>

void uart_init(void);                          /* CPL0 */
void uart_write(const char *s, size_t n);      /* any CPL (ports in the TSS bitmap) */

#endif
