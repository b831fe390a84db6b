/* GPADL_HEADER / GPADL_BODY messages (see gpadl.h). */
#include "gpadl.h"

unsigned gpadl_message_count(uint32_t pages)
{
	if (pages == 0 || pages > GPADL_MAX_PAGES)
		return 0;
	if (pages <= GPADL_HEADER_PFNS)
		return 1;
	return 1 + (pages - GPADL_HEADER_PFNS + GPADL_BODY_PFNS - 1) / GPADL_BODY_PFNS;
}

uint32_t gpadl_build_message(uint64_t out[HV_MESSAGE_PAYLOAD_MAX / 8], uint32_t relid,
			     uint32_t handle, uint64_t first_pfn, uint32_t pages,
			     unsigned index)
{
	unsigned count = gpadl_message_count(pages);

	if (index >= count)
		return 0;
	__builtin_memset(out, 0, HV_MESSAGE_PAYLOAD_MAX);

	if (index == 0) {
		struct vmbus_gpadl_header *h = (struct vmbus_gpadl_header *)out;
		uint32_t n = pages < GPADL_HEADER_PFNS ? pages : GPADL_HEADER_PFNS;

		h->header.msgtype = CHANNELMSG_GPADL_HEADER;
		h->child_relid = relid;
		h->gpadl = handle;
		h->rangecount = 1;
		/* All PFNs count, including those that follow in body messages. */
		h->range_buflen = (uint16_t)(sizeof(struct vmbus_gpa_range) + 8 * pages);
		h->range[0].byte_offset = 0;
		h->range[0].byte_count = pages * HV_PAGE_SIZE;
		for (uint32_t i = 0; i < n; i++)
			h->range[0].pfn[i] = first_pfn + i;
		return (uint32_t)(sizeof(*h) + sizeof(struct vmbus_gpa_range) + 8 * n);
	}

	struct vmbus_gpadl_body *b = (struct vmbus_gpadl_body *)out;
	uint32_t done = GPADL_HEADER_PFNS + (index - 1) * GPADL_BODY_PFNS;
	uint32_t n = pages - done < GPADL_BODY_PFNS ? pages - done : GPADL_BODY_PFNS;

	b->header.msgtype = CHANNELMSG_GPADL_BODY;
	b->msgnumber = 0;       /* as Linux (kzalloc); hosts do not check it */
	b->gpadl = handle;
	for (uint32_t i = 0; i < n; i++)
		b->pfn[i] = first_pfn + done + i;
	return (uint32_t)(sizeof(*b) + 8 * n);
}
