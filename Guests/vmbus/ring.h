/*
 * VMBus ring buffers, guest side (Linux 6.1 drivers/hv/ring_buffer.c).
 *
 * A ring is a 4 KiB control page followed by a data area of packets; each
 * packet is a 16-byte vmpacket_descriptor, the payload padded to 8 bytes,
 * and an 8-byte trailer holding the packet's start offset in its upper half.
 * The guest writes its outbound ring (hv reads it) and reads its inbound
 * ring (hv writes it). Nothing is double-mapped here: copies that cross the
 * end of the data area are split in two.
 *
 * Signalling, decided here and carried out by the caller (HvSignalEvent):
 *  - after writing: signal only if the ring was empty before the write (or
 *    before the batch) and the reader's interrupt_mask is 0;
 *  - after reading: signal only if the writer asked (pending_send_sz != 0,
 *    feat_pending_send_sz set) and this read took the free space from "not
 *    enough" (<= pending_send_sz) to "enough" (> pending_send_sz), as
 *    Linux's hv_pkt_iter_close.
 *
 * Pure C with no guest dependencies: the host-side unit test links it too.
 */
#ifndef VMBUS_RING_H
#define VMBUS_RING_H
#include <stddef.h>
#include <stdint.h>

/* struct hv_ring_buffer: the control page. */
struct hv_ring_control {
	uint32_t write_index;           /* byte offset into the data area */
	uint32_t read_index;
	uint32_t interrupt_mask;        /* set by the reader: "do not signal me" */
	uint32_t pending_send_sz;       /* set by the writer: "signal me at this much free" */
	uint32_t reserved1[12];
	uint32_t feature_bits;          /* bit 0: feat_pending_send_sz */
	uint8_t reserved2[4028];
};
_Static_assert(sizeof(struct hv_ring_control) == 4096, "hv_ring_buffer header");
_Static_assert(offsetof(struct hv_ring_control, feature_bits) == 64, "feature_bits");

#define RING_FEAT_PENDING_SEND_SZ 1u
#define RING_TRAILER_SIZE       8u
#define RING_DESC_SIZE          16u

enum ring_status {
	RING_OK = 0,
	RING_EMPTY,             /* read: nothing to read */
	RING_FULL,              /* write: does not fit now (the ring is unchanged) */
	RING_TOO_BIG,           /* write: can never fit; read: exceeds the buffer (not consumed) */
	RING_CORRUPT,           /* an index hv wrote, or a descriptor, is out of bounds */
};

struct ring {
	struct hv_ring_control *ctl;
	uint8_t *data;
	uint32_t dsize;                 /* data area bytes, a multiple of 8 */
	/* Outbound: the next packet goes at priv_write; write_index is published
	 * on commit, and batch_start is the write_index the batch began at. */
	uint32_t priv_write;
	uint32_t batch_start;
	/* Inbound: the next packet starts at priv_read; read_index is published
	 * on commit. */
	uint32_t priv_read;
};

/* One packet read from a ring: its descriptor and where its payload went. */
struct ring_packet {
	uint16_t type;
	uint16_t flags;
	uint64_t trans_id;
	uint32_t len;                   /* payload bytes copied (len8 * 8 - offset8 * 8) */
	uint32_t header_len;            /* bytes between descriptor and payload (skipped) */
};

/*
 * Lays a ring over `mem` (page-aligned, `bytes` = control page + data area,
 * data a multiple of 4096): zeroes the control page and sets
 * feat_pending_send_sz, as Linux's hv_ringbuffer_init does on both rings.
 */
void ring_init(struct ring *r, void *mem, uint32_t bytes);

/* Published indices (as the other side sees them). */
uint32_t ring_bytes_to_read(const struct ring *r);
uint32_t ring_bytes_to_write(const struct ring *r);

/* Bytes a packet with `payload_len` bytes of payload takes, trailer included. */
static inline uint32_t ring_packet_size(uint32_t payload_len)
{
	return RING_DESC_SIZE + ((payload_len + 7) & ~7u) + RING_TRAILER_SIZE;
}

/*
 * Outbound: stages one packet (descriptor, payload, zero padding, trailer)
 * after the packets already staged; hv sees it on ring_commit_write. It must
 * leave the ring strictly not full (free > size), or it would look empty.
 */
enum ring_status ring_write(struct ring *r, uint16_t type, uint16_t flags,
			    uint64_t trans_id, const void *payload, uint32_t len);
/*
 * Outbound: publishes write_index and returns 1 when hv must be signalled
 * (the ring was empty when the batch began and hv's interrupt_mask is 0).
 */
int ring_commit_write(struct ring *r);

/*
 * Inbound: copies the next packet's payload to buf (at most `size` bytes)
 * and advances the private read index; hv sees the space on
 * ring_commit_read. RING_EMPTY when there is nothing, RING_TOO_BIG (nothing
 * consumed, p->len says how much is needed), RING_CORRUPT for a bad index or
 * descriptor.
 */
enum ring_status ring_read(struct ring *r, struct ring_packet *p, void *buf, uint32_t size);
/*
 * Inbound: publishes read_index and returns 1 when hv must be signalled
 * (pending_send_sz transition, see above).
 */
int ring_commit_read(struct ring *r);

/*
 * Outbound, for packets with a type-specific header between the descriptor
 * and the payload (GPA-direct page buffers, transfer pages): as ring_write,
 * with `hdr` (hdr_len bytes, a multiple of 8) after the descriptor and
 * offset8 = (16 + hdr_len) / 8, as Linux's vmbus_sendpacket_pagebuffer.
 */
enum ring_status ring_write_hdr(struct ring *r, uint16_t type, uint16_t flags,
				uint64_t trans_id, const void *hdr, uint32_t hdr_len,
				const void *payload, uint32_t len);
/*
 * Inbound: as ring_read, but copies everything after the 16-byte
 * descriptor, the type-specific header included, to buf; the payload starts
 * at buf + p->header_len and is p->len bytes long. RING_TOO_BIG when
 * header and payload exceed `size` (nothing consumed).
 */
enum ring_status ring_read_full(struct ring *r, struct ring_packet *p, void *buf,
				uint32_t size);

/*
 * Inbound, in place (Linux's hv_pkt_iter_first/next): the next packet's
 * descriptor and the data-area offset of its p->len payload bytes, which
 * may wrap at the end of the area (read them with ring_peek). The packet is
 * consumed as by ring_read, so the caller must be done with its bytes before
 * ring_commit_read gives the space back to hv. Same statuses as ring_read,
 * RING_TOO_BIG aside.
 */
enum ring_status ring_read_in_place(struct ring *r, struct ring_packet *p, uint32_t *payload_offset);
/* Copies n bytes from `offset` in the data area, wrapping at its end. */
void ring_peek(const struct ring *r, uint32_t offset, void *buf, uint32_t n);

/* Inbound: the reader's interrupt_mask, with the full barrier after it. */
void ring_set_interrupt_mask(struct ring *r, uint32_t mask);

#endif
