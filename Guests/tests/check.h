/*
 * The host-side tests' checks: count every check, and on the first failure print where and what (with both
 * values for CHECK_EQ) prefixed by the test's name, and exit 1. Each test defines TEST_NAME and `checks`.
 */
#ifndef GUEST_TESTS_CHECK_H
#define GUEST_TESTS_CHECK_H
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond) do {                                                        \
	checks++;                                                               \
	if (!(cond)) {                                                          \
		fprintf(stderr, TEST_NAME ": %s:%d: check failed: %s\n", __FILE__, \
			__LINE__, #cond);                                       \
		exit(1);                                                        \
	}                                                                       \
} while (0)

#define CHECK_EQ(a, b) do {                                                     \
	unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b); \
	checks++;                                                               \
	if (a_ != b_) {                                                         \
		fprintf(stderr, TEST_NAME ": %s:%d: %s == %llu (0x%llx), want %s == %llu (0x%llx)\n", \
			__FILE__, __LINE__, #a, a_, a_, #b, b_, b_);            \
		exit(1);                                                        \
	}                                                                       \
} while (0)

#endif
