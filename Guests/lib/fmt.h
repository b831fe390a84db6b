#ifndef GUEST_FMT_H
#define GUEST_FMT_H
#include <stdarg.h>
#include <stddef.h>

/* Supports %s %c %d %u %x with optional l/ll, and %%. */
int kvsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int ksnprintf(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Formats into a stack buffer and writes it to the UART in one go. */
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
