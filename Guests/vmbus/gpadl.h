/*
 * GPADL messages (Linux 6.1 channel.c create_gpadl_header): a buffer of
 * guest pages is described by one GPA range (byte_offset 0, byte_count =
 * the whole buffer, one PFN per page), sent as a GPADL_HEADER carrying the
 * first 26 PFNs and as many GPADL_BODY messages as the rest needs, 28 PFNs
 * each, so that every message fits a 240-byte SynIC payload.
 * Pure C: the host-side unit test links it too.
 */
#ifndef VMBUS_GPADL_H
#define VMBUS_GPADL_H
#include <stdint.h>
#include "protocol.h"

#define GPADL_HEADER_PFNS ((HV_MESSAGE_PAYLOAD_MAX - sizeof(struct vmbus_gpadl_header) - \
			    sizeof(struct vmbus_gpa_range)) / 8)                        /* 26 */
#define GPADL_BODY_PFNS   ((HV_MESSAGE_PAYLOAD_MAX - sizeof(struct vmbus_gpadl_body)) / 8) /* 28 */
/* range_buflen is 16 bits: 8 + 8 * pages <= 65535. */
#define GPADL_MAX_PAGES   ((0xffff - sizeof(struct vmbus_gpa_range)) / 8)        /* 8190 */

/* Messages a GPADL of `pages` pages takes: 1 header + bodies; 0 if invalid. */
unsigned gpadl_message_count(uint32_t pages);

/*
 * Builds message `index` (0: GPADL_HEADER, then GPADL_BODY) of the GPADL
 * `handle` on channel `relid` for `pages` pages from `first_pfn` on
 * (contiguous, as this stub's identity-mapped static buffers are) into out.
 * Returns the message size in bytes, 0 for an index or size out of range.
 */
uint32_t gpadl_build_message(uint64_t out[HV_MESSAGE_PAYLOAD_MAX / 8], uint32_t relid,
			     uint32_t handle, uint64_t first_pfn, uint32_t pages,
			     unsigned index);

#endif
