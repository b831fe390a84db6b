/* VMBus ring buffers, guest side (see ring.h). */
#include "ring.h"
#include "protocol.h"

/*
 * x86 is TSO: the acquire/release fences below only stop the compiler from
 * reordering; the SEQ_CST ones are Linux's virt_mb() (mfence), needed where
 * a store must be visible before a later load (write_index before
 * interrupt_mask, read_index before pending_send_sz).
 */
#define load(p)         __atomic_load_n((p), __ATOMIC_RELAXED)
#define load_acquire(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define store(p, v)     __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define full_barrier()  __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define read_barrier()  __atomic_thread_fence(__ATOMIC_ACQUIRE)

void ring_init(struct ring *r, void *mem, uint32_t bytes)
{
	r->ctl = mem;
	r->data = (uint8_t *)mem + sizeof(struct hv_ring_control);
	r->dsize = bytes - (uint32_t)sizeof(struct hv_ring_control);
	__builtin_memset(r->ctl, 0, sizeof(*r->ctl));
	r->ctl->feature_bits = RING_FEAT_PENDING_SEND_SZ;
	r->priv_write = r->batch_start = r->priv_read = 0;
}

/* Bytes from `from` forward to `to` around the ring. */
static uint32_t distance(const struct ring *r, uint32_t from, uint32_t to)
{
	return to >= from ? to - from : r->dsize - from + to;
}

static int index_ok(const struct ring *r, uint32_t i)
{
	return i < r->dsize && (i & 7) == 0;
}

uint32_t ring_bytes_to_read(const struct ring *r)
{
	return distance(r, load(&r->ctl->read_index), load(&r->ctl->write_index));
}

uint32_t ring_bytes_to_write(const struct ring *r)
{
	return r->dsize - ring_bytes_to_read(r);
}

/* Copies into the data area at `off`, wrapping; returns the offset after. */
static uint32_t copy_in(struct ring *r, uint32_t off, const void *src, uint32_t n)
{
	uint32_t first = r->dsize - off < n ? r->dsize - off : n;

	__builtin_memcpy(r->data + off, src, first);
	__builtin_memcpy(r->data, (const uint8_t *)src + first, n - first);
	off += n;
	return off >= r->dsize ? off - r->dsize : off;
}

static void copy_out(const struct ring *r, uint32_t off, void *dst, uint32_t n)
{
	uint32_t first = r->dsize - off < n ? r->dsize - off : n;

	__builtin_memcpy(dst, r->data + off, first);
	__builtin_memcpy((uint8_t *)dst + first, r->data, n - first);
}

enum ring_status ring_write(struct ring *r, uint16_t type, uint16_t flags,
			    uint64_t trans_id, const void *payload, uint32_t len)
{
	return ring_write_hdr(r, type, flags, trans_id, payload, 0, payload, len);
}

int ring_commit_write(struct ring *r)
{
	uint32_t start = r->batch_start;

	if (r->priv_write == start)
		return 0;
	/* Every packet byte visible before the index that covers it. */
	full_barrier();
	store(&r->ctl->write_index, r->priv_write);
	r->batch_start = r->priv_write;

	/* hv_signal_on_write: write_index before interrupt_mask and read_index. */
	full_barrier();
	if (load(&r->ctl->interrupt_mask))
		return 0;
	read_barrier();
	/* Empty before the batch: hv may be idle and must be told. */
	return load(&r->ctl->read_index) == start;
}

/*
 * The next packet's descriptor, copied once (hv may rewrite the ring under us) and checked against what the ring
 * holds; fills p and the packet's length from the descriptor. RING_OK, RING_EMPTY or RING_CORRUPT.
 */
static enum ring_status next_packet(struct ring *r, struct ring_packet *p, uint32_t *len)
{
	/* Acquire: the packet bytes are read only after the index that covers them. */
	uint32_t write = load_acquire(&r->ctl->write_index);

	if (!index_ok(r, write))
		return RING_CORRUPT;
	uint32_t avail = distance(r, r->priv_read, write);
	if (avail == 0)
		return RING_EMPTY;
	if (avail < RING_DESC_SIZE + RING_TRAILER_SIZE)
		return RING_CORRUPT;

	struct vmpacket_descriptor d;
	copy_out(r, r->priv_read, &d, sizeof(d));
	uint32_t total = (uint32_t)d.len8 * 8, off = (uint32_t)d.offset8 * 8;
	if (d.offset8 < RING_DESC_SIZE / 8 || d.offset8 > d.len8 ||
	    total + RING_TRAILER_SIZE > avail)
		return RING_CORRUPT;

	p->type = d.type;
	p->flags = d.flags;
	p->trans_id = d.trans_id;
	p->len = total - off;
	p->header_len = off - RING_DESC_SIZE;
	*len = total;
	return RING_OK;
}

enum ring_status ring_read(struct ring *r, struct ring_packet *p, void *buf, uint32_t size)
{
	uint32_t len;
	enum ring_status s = next_packet(r, p, &len);

	if (s != RING_OK)
		return s;
	if (p->len > size)
		return RING_TOO_BIG;
	copy_out(r, (r->priv_read + len - p->len) % r->dsize, buf, p->len);
	r->priv_read = (r->priv_read + len + RING_TRAILER_SIZE) % r->dsize;
	return RING_OK;
}

enum ring_status ring_read_in_place(struct ring *r, struct ring_packet *p, uint32_t *payload_offset)
{
	uint32_t len;
	enum ring_status s = next_packet(r, p, &len);

	if (s != RING_OK)
		return s;
	*payload_offset = (r->priv_read + len - p->len) % r->dsize;
	r->priv_read = (r->priv_read + len + RING_TRAILER_SIZE) % r->dsize;
	return RING_OK;
}

void ring_peek(const struct ring *r, uint32_t offset, void *buf, uint32_t n)
{
	copy_out(r, offset % r->dsize, buf, n);
}

enum ring_status ring_write_hdr(struct ring *r, uint16_t type, uint16_t flags,
				uint64_t trans_id, const void *hdr, uint32_t hdr_len,
				const void *payload, uint32_t len)
{
	static const uint8_t zeros[8];
	uint32_t padded = (len + 7) & ~7u;
	uint32_t body = hdr_len + padded;
	uint32_t size = RING_DESC_SIZE + body + RING_TRAILER_SIZE;

	/* len8 is 16 bits; and free space never exceeds dsize, which must stay > size. */
	if (hdr_len % 8 || hdr_len > 0xffff * 8 - RING_DESC_SIZE ||
	    len > 0xffff * 8 || (RING_DESC_SIZE + body) / 8 > 0xffff || size >= r->dsize)
		return RING_TOO_BIG;

	uint32_t read = load_acquire(&r->ctl->read_index);
	if (!index_ok(r, read))
		return RING_CORRUPT;
	/* Strictly greater: a ring filled to the last byte would read as empty. */
	if (r->dsize - distance(r, read, r->priv_write) <= size)
		return RING_FULL;

	struct vmpacket_descriptor d = {
		.type = type,
		.offset8 = (uint16_t)((RING_DESC_SIZE + hdr_len) / 8),
		.len8 = (uint16_t)((RING_DESC_SIZE + body) / 8),
		.flags = flags,
		.trans_id = trans_id,
	};
	uint32_t start = r->priv_write;
	uint32_t off = copy_in(r, start, &d, sizeof(d));
	off = copy_in(r, off, hdr, hdr_len);
	off = copy_in(r, off, payload, len);
	off = copy_in(r, off, zeros, padded - len);
	/* Trailer: this packet's start offset in the upper half (hv_get_ring_bufferindices). */
	uint64_t trailer = (uint64_t)start << 32;
	r->priv_write = copy_in(r, off, &trailer, sizeof(trailer));
	return RING_OK;
}

enum ring_status ring_read_full(struct ring *r, struct ring_packet *p, void *buf,
				uint32_t size)
{
	uint32_t len;
	enum ring_status s = next_packet(r, p, &len);

	if (s != RING_OK)
		return s;
	if (len - RING_DESC_SIZE > size)
		return RING_TOO_BIG;
	copy_out(r, (r->priv_read + RING_DESC_SIZE) % r->dsize, buf, len - RING_DESC_SIZE);
	r->priv_read = (r->priv_read + len + RING_TRAILER_SIZE) % r->dsize;
	return RING_OK;
}

int ring_commit_read(struct ring *r)
{
	uint32_t start = load(&r->ctl->read_index);

	if (r->priv_read == start)
		return 0;
	/* Release: every read of the packets done before hv may reuse the space. */
	__atomic_store_n(&r->ctl->read_index, r->priv_read, __ATOMIC_RELEASE);

	/* A writer without the feature polls a full ring; it expects no signal. */
	if (!(load(&r->ctl->feature_bits) & RING_FEAT_PENDING_SEND_SZ))
		return 0;
	/* read_index visible before pending_send_sz is sampled, or a wakeup is lost. */
	full_barrier();
	uint32_t pending = load(&r->ctl->pending_send_sz);
	if (!pending)
		return 0;
	read_barrier();
	uint32_t free_now = r->dsize - distance(r, r->priv_read, load(&r->ctl->write_index));
	uint32_t bytes_read = distance(r, start, r->priv_read);
	/*
	 * Signal only on the transition from "not enough" to "enough" (an
	 * exactly full ring counts as not enough). u32 wrap-around as in Linux:
	 * if hv wrote more meanwhile, "before" is huge, i.e. it was not blocked.
	 */
	if (free_now - bytes_read > pending)
		return 0;
	if (free_now <= pending)
		return 0;
	return 1;
}

void ring_set_interrupt_mask(struct ring *r, uint32_t mask)
{
	store(&r->ctl->interrupt_mask, mask);
	full_barrier();
}
