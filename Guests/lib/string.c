/* gcc may emit calls to memcpy/memset even when freestanding. */
#include "string.h"

/*
 * One `rep` string instruction each: on the PVM host CPL0 code is emulated one
 * instruction at a time (~1-4 us each), and a byte loop over a TSS cost
 * milliseconds of boot time, while a single rep movsb/stosb is one emulation.
 */
void *memcpy(void *dst, const void *src, size_t n)
{
	void *d = dst;
	__asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
	return dst;
}

void *memset(void *dst, int c, size_t n)
{
	void *d = dst;
	__asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
	return dst;
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}
