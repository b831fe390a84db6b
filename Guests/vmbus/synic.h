/*
 * The synthetic interrupt controller, guest side: the message page (SIMP),
 * the event-flags page (SIEFP) and SINT2, the SINT VMBus uses.
 *
 * Set up at CPL0 (MSR writes); used at CPL3. The stub runs at CPL3 with
 * IF=0, so it never takes SINT2's interrupt: it polls the message slot and
 * the event flags instead (the interrupt hv injects stays pending in the
 * LAPIC, or is dropped while the LAPIC is software-disabled; both are
 * harmless). The one CPL0-only step a CPL3 reader needs, EOM, goes through
 * the runtime's system-call gate.
 */
#ifndef VMBUS_SYNIC_H
#define VMBUS_SYNIC_H
#include <stdint.h>
#include "protocol.h"

/* Linux's HYPERVISOR_CALLBACK_VECTOR; never delivered here (IF=0), see above. */
#define SYNIC_VMBUS_VECTOR      0xf3
#define HV_SINT_MASKED          (1ULL << 16)
#define HV_SINT_AUTO_EOI        (1ULL << 17)
#define HV_SINT_POLLING         (1ULL << 18)
#define HV_SYNIC_ENABLE         0x1ULL

#define UCALL_SYNIC_EOM         0       /* ucall number: wrmsr(EOM, 0) */

struct synic_message {
	uint32_t type;                  /* HVMSG_VMBUS for VMBus */
	uint32_t size;                  /* payload bytes, <= 240 */
	uint64_t payload[HV_MESSAGE_PAYLOAD_MAX / 8];   /* 8-aligned for the casts */
};

extern uint8_t synic_message_page[HV_PAGE_SIZE];
extern uint8_t synic_event_page[HV_PAGE_SIZE];
extern uint64_t synic_eom_count;

/*
 * CPL0: SIMP and SIEFP at our pages, SINT2 = SYNIC_VMBUS_VECTOR unmasked
 * without auto-EOI, SCONTROL enabled (read-modify-write, as Linux's
 * hv_synic_enable_regs), plus the EOM system call and a harmless handler for
 * the vector. Returns NULL or what went wrong.
 */
const char *synic_enable(void);

/*
 * CPL3: takes the message in SINT2's slot, if there is one: copies it out,
 * frees the slot (message_type = 0 with a full barrier), then writes EOM if
 * hv flagged MessagePending meanwhile, so hv delivers its next message.
 * Returns 1 with *m filled, 0 when the slot is empty.
 */
int synic_poll(struct synic_message *m);

/* CPL3: test and clear event flag `relid` in SINT2's event slot. */
int synic_event_test_and_clear(unsigned relid);

#endif
