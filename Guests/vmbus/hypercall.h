/*
 * Hypercalls through the hypercall page (x64 convention: RCX = control,
 * RDX = input GPA or fast input, R8 = output GPA; RAX = HV_STATUS).
 *
 * Hyper-V itself refuses hypercalls from CPL3 (vmcall at CPL3 raises #UD).
 * hv's page is different: its code is port I/O (`in eax, 0xE0` for the slow
 * path, where hv reads RCX/RDX/R8 and answers the status; `out 0xE4, eax`
 * for HvSignalEvent, which hits an in-kernel ioeventfd and never leaves the
 * kernel), so it works from CPL3 once ports 0xE0-0xE7 are open in the TSS
 * I/O-permission bitmap (io_allow_ports, at CPL0). That is how this client
 * posts messages and signals channels at CPL3, natively, instead of paying
 * for emulated CPL0 code on every call.
 */
#ifndef VMBUS_HYPERCALL_H
#define VMBUS_HYPERCALL_H
#include <stdint.h>

#define HV_HYPERCALL_PORT_FIRST 0xe0
#define HV_HYPERCALL_PORT_COUNT 8       /* 0xE0-0xE3 slow path, 0xE4-0xE7 fast signal */

#define HVCALL_POST_MESSAGE     0x005c
#define HVCALL_SIGNAL_EVENT     0x005d
#define HV_HYPERCALL_FAST_BIT   (1ULL << 16)

#define HV_STATUS_SUCCESS               0x00
#define HV_STATUS_INVALID_HYPERCALL_CODE 0x02
#define HV_STATUS_INVALID_PARAMETER     0x05
#define HV_STATUS_INSUFFICIENT_MEMORY   0x0b
#define HV_STATUS_INVALID_CONNECTION_ID 0x12
#define HV_STATUS_INSUFFICIENT_BUFFERS  0x13

/* The page hv fills with code; its GPA goes into the HYPERCALL MSR. */
extern uint8_t hv_hypercall_page[4096];

/* HvSignalEvent calls made so far (the benchmark reports them). */
extern uint64_t hv_signal_count;

/* Calls the page's first byte. Any CPL (CPL3 needs the ports open). */
static inline uint64_t hv_hypercall(uint64_t control, uint64_t input, uint64_t output)
{
	uint64_t status;
	register uint64_t r8 __asm__("r8") = output;

	/* Linux's hv_do_hypercall: RCX, RDX, R8-R11 may be clobbered. */
	__asm__ volatile("call *%[page]"
			 : "=a"(status), "+c"(control), "+d"(input), "+r"(r8)
			 : [page] "r"(hv_hypercall_page)
			 : "cc", "memory", "r9", "r10", "r11");
	return status;
}

/*
 * HvPostMessage (slow call, 256-byte input block). Retries while hv answers
 * INSUFFICIENT_BUFFERS/MEMORY (its queue is full), with backoff, 100 times
 * at most as Linux's vmbus_post_msg does; INVALID_CONNECTION_ID is retried
 * too unless `fail_on_invalid_connection` (INITIATE_CONTACT on id 4: there
 * it means "this host predates protocol 5.0"). Returns the final HV_STATUS.
 */
uint16_t hv_post_message(uint32_t connection_id, const void *payload, uint32_t size,
			 int fail_on_invalid_connection);

/* HvSignalEvent, fast form: RDX = connection id | flag number 0 << 32. */
static inline uint16_t hv_signal_event(uint32_t connection_id)
{
	hv_signal_count++;
	return (uint16_t)hv_hypercall(HVCALL_SIGNAL_EVENT | HV_HYPERCALL_FAST_BIT,
				      connection_id, 0);
}

#endif
