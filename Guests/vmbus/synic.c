/* SynIC message and event pages for SINT2 (see synic.h). */
#include "synic.h"
#include "hyperv.h"
#include "../boot/runtime.h"
#include "../lib/lapic.h"
#include "../lib/string.h"

uint8_t synic_message_page[HV_PAGE_SIZE] __attribute__((aligned(HV_PAGE_SIZE)));
uint8_t synic_event_page[HV_PAGE_SIZE] __attribute__((aligned(HV_PAGE_SIZE)));
uint64_t synic_eom_count;

#define SINT2_SLOT (synic_message_page + VMBUS_MESSAGE_SINT * HV_MESSAGE_SIZE)
#define SINT2_EVENTS ((uint32_t *)(synic_event_page + VMBUS_MESSAGE_SINT * HV_MESSAGE_SIZE))

/* CPL0, reached from CPL3 through the system-call gate. */
static uint64_t synic_eom(uint64_t arg)
{
	(void)arg;
	wrmsr(HV_X64_MSR_EOM, 0);
	return 0;
}

/* Only if something ever opens interrupts: acknowledge and move on. */
static void synic_irq(unsigned vector)
{
	(void)vector;
	lapic_eoi();
}

static void enable_overlay(uint32_t msr, const void *page)
{
	uint64_t v = rdmsr(msr);

	v = (v & 0xffe) | (uint64_t)(uintptr_t)page | HV_SYNIC_ENABLE;
	wrmsr(msr, v);
}

const char *synic_enable(void)
{
	/* hv owns the pages while enabled; start from empty slots regardless. */
	memset(synic_message_page, 0, sizeof(synic_message_page));
	memset(synic_event_page, 0, sizeof(synic_event_page));

	if (!ucall_set_handler(UCALL_SYNIC_EOM, synic_eom))
		return "cannot register the EOM system call";
	irq_set_handler(SYNIC_VMBUS_VECTOR, synic_irq);

	enable_overlay(HV_X64_MSR_SIMP, synic_message_page);
	enable_overlay(HV_X64_MSR_SIEFP, synic_event_page);
	if (!(rdmsr(HV_X64_MSR_SIMP) & HV_SYNIC_ENABLE) ||
	    !(rdmsr(HV_X64_MSR_SIEFP) & HV_SYNIC_ENABLE))
		return "SIMP/SIEFP did not keep the enable bit";

	/* Hyper-V's DEPRECATING_AEOI hint, and no LAPIC EOI here anyway: auto_eoi = 0. */
	uint64_t sint = rdmsr(HV_X64_MSR_SINT0 + VMBUS_MESSAGE_SINT);
	sint &= ~(0xffULL | HV_SINT_MASKED | HV_SINT_AUTO_EOI | HV_SINT_POLLING);
	wrmsr(HV_X64_MSR_SINT0 + VMBUS_MESSAGE_SINT, sint | SYNIC_VMBUS_VECTOR);

	wrmsr(HV_X64_MSR_SCONTROL, rdmsr(HV_X64_MSR_SCONTROL) | HV_SYNIC_ENABLE);
	if (!(rdmsr(HV_X64_MSR_SCONTROL) & HV_SYNIC_ENABLE))
		return "SCONTROL did not keep the enable bit";
	return 0;
}

int synic_poll(struct synic_message *m)
{
	uint32_t *type = (uint32_t *)SINT2_SLOT;
	volatile uint8_t *slot = SINT2_SLOT;
	uint32_t t = __atomic_load_n(type, __ATOMIC_ACQUIRE);

	if (t == HVMSG_NONE)
		return 0;
	/* hv wrote the payload before message_type; the acquire above orders us after. */
	uint32_t size = slot[4];
	if (size > HV_MESSAGE_PAYLOAD_MAX)
		size = HV_MESSAGE_PAYLOAD_MAX;
	m->type = t;
	m->size = size;
	memcpy(m->payload, (const void *)(slot + sizeof(struct hv_message_header)), size);

	/*
	 * Free the slot, then look at MessagePending (Linux vmbus_signal_eom):
	 * the locked cmpxchg is the full barrier that orders the two, so a flag
	 * hv sets after our copy is still seen and answered with EOM.
	 */
	uint32_t expected = t;
	if (!__atomic_compare_exchange_n(type, &expected, HVMSG_NONE, 0,
					 __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		return 1;       /* hv replaced it already; cannot happen while it is full */
	if (slot[5] & HV_MSG_FLAG_PENDING) {
		synic_eom_count++;
		ucall(UCALL_SYNIC_EOM, 0);
	}
	return 1;
}

int synic_event_test_and_clear(unsigned relid)
{
	uint32_t *word = &SINT2_EVENTS[(relid / 32) % (HV_MESSAGE_SIZE / 4)];
	uint32_t bit = 1u << (relid % 32);

	if (!(__atomic_load_n(word, __ATOMIC_RELAXED) & bit))
		return 0;
	return (__atomic_fetch_and(word, ~bit, __ATOMIC_SEQ_CST) & bit) != 0;
}
