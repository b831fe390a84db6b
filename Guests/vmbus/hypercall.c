/* HvPostMessage with retries; the hypercall page itself (see hypercall.h). */
#include "hypercall.h"
#include "clock.h"
#include "protocol.h"
#include "../lib/string.h"

uint8_t hv_hypercall_page[4096] __attribute__((aligned(4096)));
uint64_t hv_signal_count;

/* 8-byte aligned and never crossing a page: aligned to its own size. */
static struct hv_post_message_input post_input __attribute__((aligned(256)));

uint16_t hv_post_message(uint32_t connection_id, const void *payload, uint32_t size,
			 int fail_on_invalid_connection)
{
	uint64_t delay_us = 1;
	uint16_t status = HV_STATUS_INVALID_PARAMETER;

	if (size > HV_MESSAGE_PAYLOAD_MAX)
		return HV_STATUS_INVALID_PARAMETER;
	post_input.connection_id = connection_id & 0xffffff;
	post_input.reserved = 0;
	post_input.message_type = HVMSG_VMBUS;
	post_input.payload_size = size;
	memcpy(post_input.payload, payload, size);

	for (int tries = 0; tries < 100; tries++) {
		status = (uint16_t)hv_hypercall(HVCALL_POST_MESSAGE,
						(uint64_t)(uintptr_t)&post_input, 0);
		switch (status) {
		case HV_STATUS_SUCCESS:
			return status;
		case HV_STATUS_INVALID_CONNECTION_ID:
			if (fail_on_invalid_connection)
				return status;
			break;
		case HV_STATUS_INSUFFICIENT_BUFFERS:
		case HV_STATUS_INSUFFICIENT_MEMORY:
			break;
		default:
			return status;
		}
		/* hv's queue is full: give it time, doubling up to 1 ms as Linux does. */
		clock_delay_us(delay_us);
		if (delay_us < 1000)
			delay_us *= 2;
	}
	return status;
}
