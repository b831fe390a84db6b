/*
 * Host-side unit test of the guest's VMBus ring, GPADL and IC code
 * (vmbus/ring.c, gpadl.c, ic.c), built with plain gcc by `make -C Guests
 * test`. The host side of each ring is played by this file: it reads and
 * writes the control page and the data area directly, byte by byte, so the
 * checks do not lean on the code under test. Exits 1 on the first failed
 * check (after printing it), 0 when all pass.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../vmbus/gpadl.h"
#include "../vmbus/ic.h"
#include "../vmbus/protocol.h"
#include "../vmbus/ring.h"

static unsigned checks;

#define TEST_NAME "ring-test"
#include "check.h"

/* A ring of `pages` data pages in its own page-aligned memory. */
static struct ring make_ring(unsigned pages)
{
	struct ring r;
	uint32_t bytes = (pages + 1) * 4096;
	void *mem = aligned_alloc(4096, bytes);

	memset(mem, 0xcc, bytes);       /* garbage the init must clear in the header */
	ring_init(&r, mem, bytes);
	return r;
}

static void free_ring(struct ring *r)
{
	free(r->ctl);
}

/* ---- what the other side (hv) sees or does, written independently ---- */

static uint8_t data_at(const struct ring *r, uint32_t off)
{
	return r->data[off % r->dsize];
}

static uint64_t u64_at(const struct ring *r, uint32_t off)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | data_at(r, off + i);
	return v;
}

static uint16_t u16_at(const struct ring *r, uint32_t off)
{
	return (uint16_t)(data_at(r, off) | data_at(r, off + 1) << 8);
}

static void put_at(struct ring *r, uint32_t off, const void *src, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		r->data[(off + i) % r->dsize] = ((const uint8_t *)src)[i];
}

/* hv consumes everything the guest published. */
static void host_drain(struct ring *r)
{
	r->ctl->read_index = r->ctl->write_index;
}

/*
 * hv writes one packet (inband, payload `len` bytes of `fill`) at its
 * write_index and publishes it. Returns the packet's total size.
 */
static uint32_t host_put(struct ring *r, uint64_t trans_id, uint32_t len, uint8_t fill)
{
	uint32_t start = r->ctl->write_index, padded = (len + 7) & ~7u;
	uint8_t desc[16] = { 6, 0, 2, 0 };
	uint16_t len8 = (uint16_t)((16 + padded) / 8);

	desc[4] = (uint8_t)len8;
	desc[5] = (uint8_t)(len8 >> 8);
	memcpy(desc + 8, &trans_id, 8);
	put_at(r, start, desc, 16);
	for (uint32_t i = 0; i < padded; i++)
		r->data[(start + 16 + i) % r->dsize] = i < len ? fill : 0;
	uint64_t trailer = (uint64_t)start << 32;
	put_at(r, start + 16 + padded, &trailer, 8);
	r->ctl->write_index = (start + 24 + padded) % r->dsize;
	return 24 + padded;
}

/* ---- outbound (guest writes) ---- */

static void test_init(void)
{
	struct ring r = make_ring(2);

	CHECK_EQ(r.dsize, 8192);
	CHECK_EQ(r.ctl->write_index, 0);
	CHECK_EQ(r.ctl->read_index, 0);
	CHECK_EQ(r.ctl->interrupt_mask, 0);
	CHECK_EQ(r.ctl->pending_send_sz, 0);
	CHECK_EQ(r.ctl->feature_bits, 1);       /* feat_pending_send_sz */
	CHECK_EQ(((uint8_t *)r.ctl)[100], 0);   /* the whole page zeroed */
	CHECK_EQ(((uint8_t *)r.ctl)[4095], 0);
	CHECK_EQ(ring_bytes_to_read(&r), 0);
	CHECK_EQ(ring_bytes_to_write(&r), 8192);
	CHECK_EQ(ring_packet_size(0), 24);
	CHECK_EQ(ring_packet_size(1), 32);
	CHECK_EQ(ring_packet_size(8), 32);
	CHECK_EQ(ring_packet_size(65536), 65560);
	free_ring(&r);
}

static void test_write_layout(void)
{
	struct ring r = make_ring(1);
	uint8_t payload[13];

	for (int i = 0; i < 13; i++)
		payload[i] = (uint8_t)(0xa0 + i);
	memset(r.data, 0xee, r.dsize);
	CHECK_EQ(ring_write(&r, VM_PKT_DATA_INBAND, 1, 0x1122334455667788ULL, payload, 13), RING_OK);
	/* Staged, not published. */
	CHECK_EQ(r.ctl->write_index, 0);
	/* Empty before, interrupt_mask 0: signal. */
	CHECK_EQ(ring_commit_write(&r), 1);
	CHECK_EQ(r.ctl->write_index, 16 + 16 + 8);
	CHECK_EQ(u16_at(&r, 0), VM_PKT_DATA_INBAND);
	CHECK_EQ(u16_at(&r, 2), 2);             /* offset8 */
	CHECK_EQ(u16_at(&r, 4), 4);             /* len8: 16 + 16 */
	CHECK_EQ(u16_at(&r, 6), 1);             /* flags */
	CHECK_EQ(u64_at(&r, 8), 0x1122334455667788ULL);
	for (int i = 0; i < 13; i++)
		CHECK_EQ(data_at(&r, 16 + i), 0xa0 + i);
	for (int i = 13; i < 16; i++)
		CHECK_EQ(data_at(&r, 16 + i), 0);       /* padding zeroed */
	CHECK_EQ(u64_at(&r, 32), 0);            /* trailer: start 0 << 32 */
	CHECK_EQ(data_at(&r, 40), 0xee);        /* nothing beyond */

	/* Second packet: the ring is not empty (hv has not read): no signal. */
	CHECK_EQ(ring_write(&r, VM_PKT_DATA_INBAND, 0, 2, payload, 8), RING_OK);
	CHECK_EQ(ring_commit_write(&r), 0);
	CHECK_EQ(r.ctl->write_index, 40 + 32);
	CHECK_EQ(u64_at(&r, 40 + 24), (uint64_t)40 << 32);   /* trailer = its start */
	CHECK_EQ(ring_bytes_to_read(&r), 72);

	/* hv drained, and is masked (still in its read loop): no signal. */
	host_drain(&r);
	r.ctl->interrupt_mask = 1;
	CHECK_EQ(ring_write(&r, VM_PKT_DATA_INBAND, 0, 3, payload, 8), RING_OK);
	CHECK_EQ(ring_commit_write(&r), 0);
	/* Unmasked and drained: signal again. */
	host_drain(&r);
	r.ctl->interrupt_mask = 0;
	CHECK_EQ(ring_write(&r, VM_PKT_DATA_INBAND, 0, 4, payload, 8), RING_OK);
	CHECK_EQ(ring_commit_write(&r), 1);
	/* Nothing staged: nothing to publish, no signal. */
	CHECK_EQ(ring_commit_write(&r), 0);
	free_ring(&r);
}

static void test_batch(void)
{
	struct ring r = make_ring(1);
	uint8_t payload[64] = { 0 };

	/* Three packets, one commit: one decision against the batch's start. */
	for (int i = 0; i < 3; i++)
		CHECK_EQ(ring_write(&r, VM_PKT_DATA_INBAND, 0, (uint64_t)i, payload, 64), RING_OK);
	CHECK_EQ(r.ctl->write_index, 0);
	CHECK_EQ(ring_commit_write(&r), 1);
	CHECK_EQ(r.ctl->write_index, 3 * 88);
	CHECK_EQ(u64_at(&r, 88 + 80), (uint64_t)88 << 32);
	CHECK_EQ(u64_at(&r, 176 + 80), (uint64_t)176 << 32);

	/* hv read only part of the previous batch: it is busy, no signal. */
	r.ctl->read_index = 88;
	CHECK_EQ(ring_write(&r, VM_PKT_DATA_INBAND, 0, 3, payload, 64), RING_OK);
	CHECK_EQ(ring_commit_write(&r), 0);
	free_ring(&r);
}

static void test_full(void)
{
	struct ring r = make_ring(1);           /* dsize 4096 */
	uint8_t payload[4096] = { 0 };

	/* A packet can never take the whole ring. */
	CHECK_EQ(ring_write(&r, VM_PKT_DATA_INBAND, 0, 0, payload, 4096 - 24), RING_TOO_BIG);
	CHECK_EQ(r.priv_write, 0);
	/* The largest that fits an empty ring: size = dsize - 8. */
	CHECK_EQ(ring_write(&r, VM_PKT_DATA_INBAND, 0, 0, payload, 4096 - 32), RING_OK);
	CHECK_EQ(r.priv_write, 4096 - 8);
	CHECK_EQ(ring_commit_write(&r), 1);
	/* 8 bytes free: even an empty packet (24) does not fit. */
	CHECK_EQ(ring_write(&r, VM_PKT_DATA_INBAND, 0, 1, payload, 0), RING_FULL);
	CHECK_EQ(r.priv_write, 4096 - 8);       /* unchanged */

	/* hv frees 24: free 32 is not > 32 for an 8-byte payload... */
	r.ctl->read_index = 24;
	CHECK_EQ(ring_write(&r, VM_PKT_DATA_INBAND, 0, 1, payload, 8), RING_FULL);
	/* ...but 32 > 24 for an empty one (the ring never fills up to the last byte). */
	CHECK_EQ(ring_write(&r, VM_PKT_DATA_INBAND, 0, 1, payload, 0), RING_OK);
	CHECK_EQ(r.priv_write, 16);             /* wrapped */
	/* Staged but unpublished bytes count: 8 free now. */
	CHECK_EQ(ring_write(&r, VM_PKT_DATA_INBAND, 0, 2, payload, 0), RING_FULL);
	/* Ring was not empty when this batch began: no signal. */
	CHECK_EQ(ring_commit_write(&r), 0);
	CHECK_EQ(ring_bytes_to_write(&r), 8);
	free_ring(&r);
}

static void test_write_wrap(void)
{
	struct ring r = make_ring(1);
	uint8_t payload[100];

	for (int i = 0; i < 100; i++)
		payload[i] = (uint8_t)i;
	/* Start 8 bytes before the end: the descriptor itself wraps. */
	r.ctl->read_index = r.ctl->write_index = r.priv_write = r.batch_start = 4088;
	CHECK_EQ(ring_write(&r, VM_PKT_DATA_INBAND, 0, 0xabcdef, payload, 100), RING_OK);
	CHECK_EQ(ring_commit_write(&r), 1);
	uint32_t size = 16 + 104 + 8;
	CHECK_EQ(r.ctl->write_index, (4088 + size) % 4096);
	CHECK_EQ(u16_at(&r, 4088), VM_PKT_DATA_INBAND);
	CHECK_EQ(u16_at(&r, 4088 + 4), (16 + 104) / 8);
	CHECK_EQ(u64_at(&r, 4088 + 8), 0xabcdef);       /* at 0..7 after the wrap */
	for (int i = 0; i < 100; i++)
		CHECK_EQ(data_at(&r, 4088 + 16 + i), i);
	CHECK_EQ(u64_at(&r, 4088 + 120), (uint64_t)4088 << 32);

	/* Only the trailer past the end: descriptor + payload end exactly at it. */
	struct ring t = make_ring(1);
	t.ctl->read_index = t.ctl->write_index = t.priv_write = t.batch_start = 4096 - 32;
	CHECK_EQ(ring_write(&t, VM_PKT_DATA_INBAND, 0, 7, payload, 16), RING_OK);
	CHECK_EQ(ring_commit_write(&t), 1);
	CHECK_EQ(t.ctl->write_index, 8);
	CHECK_EQ(u64_at(&t, 0), (uint64_t)(4096 - 32) << 32);
	CHECK_EQ(data_at(&t, 4096 - 32 + 16), 0);        /* payload at the end */
	free_ring(&t);
	free_ring(&r);
}

/* ---- inbound (guest reads) ---- */

static void test_read(void)
{
	struct ring r = make_ring(1);
	struct ring_packet p;
	uint8_t buf[4096];

	CHECK_EQ(ring_read(&r, &p, buf, sizeof(buf)), RING_EMPTY);
	CHECK_EQ(host_put(&r, 77, 20, 0x5a), 48);
	CHECK_EQ(host_put(&r, 78, 8, 0x6b), 32);
	CHECK_EQ(ring_read(&r, &p, buf, sizeof(buf)), RING_OK);
	CHECK_EQ(p.type, VM_PKT_DATA_INBAND);
	CHECK_EQ(p.trans_id, 77);
	CHECK_EQ(p.len, 24);                    /* padded, as Linux reports it */
	CHECK_EQ(p.header_len, 0);
	CHECK(buf[0] == 0x5a && buf[19] == 0x5a && buf[20] == 0);
	/* Private index moved, published one not yet. */
	CHECK_EQ(r.priv_read, 48);
	CHECK_EQ(r.ctl->read_index, 0);
	CHECK_EQ(ring_read(&r, &p, buf, 8), RING_OK);   /* exactly fits */
	CHECK_EQ(p.trans_id, 78);
	CHECK_EQ(ring_read(&r, &p, buf, sizeof(buf)), RING_EMPTY);
	/* No pending_send_sz: commit publishes, no signal. */
	CHECK_EQ(ring_commit_read(&r), 0);
	CHECK_EQ(r.ctl->read_index, 80);

	/* Too big for the buffer: nothing consumed, len says what is needed. */
	host_put(&r, 79, 64, 1);
	CHECK_EQ(ring_read(&r, &p, buf, 63), RING_TOO_BIG);
	CHECK_EQ(p.len, 64);
	CHECK_EQ(r.priv_read, 80);
	CHECK_EQ(ring_read(&r, &p, buf, 64), RING_OK);
	free_ring(&r);
}

static void test_read_wrap(void)
{
	struct ring r = make_ring(1);
	struct ring_packet p;
	uint8_t buf[4096];

	/* Every position of the wrap: descriptor, payload and trailer in turn. */
	for (uint32_t start = 4096 - 200; start < 4096; start += 8) {
		r.ctl->read_index = r.ctl->write_index = r.priv_read = start;
		host_put(&r, start, 150, (uint8_t)start);
		CHECK_EQ(ring_read(&r, &p, buf, sizeof(buf)), RING_OK);
		CHECK_EQ(p.trans_id, start);
		CHECK_EQ(p.len, 152);
		for (int i = 0; i < 150; i++)
			CHECK_EQ(buf[i], (uint8_t)start);
		CHECK_EQ(r.priv_read, (start + 176) % 4096);
		CHECK_EQ(ring_read(&r, &p, buf, sizeof(buf)), RING_EMPTY);
	}
	free_ring(&r);
}

/* In place: the payload's offset, read with ring_peek across the wrap. */
static void test_read_in_place(void)
{
	struct ring r = make_ring(1);
	struct ring_packet p;
	uint32_t offset;
	uint8_t buf[152];

	for (uint32_t start = 4096 - 200; start < 4096; start += 8) {
		r.ctl->read_index = r.ctl->write_index = r.priv_read = start;
		CHECK_EQ(ring_read_in_place(&r, &p, &offset), RING_EMPTY);
		host_put(&r, start, 150, (uint8_t)start);
		CHECK_EQ(ring_read_in_place(&r, &p, &offset), RING_OK);
		CHECK_EQ(p.trans_id, start);
		CHECK_EQ(p.len, 152);
		CHECK_EQ(offset, (start + 16) % 4096);
		ring_peek(&r, offset, buf, p.len);
		for (int i = 0; i < 150; i++)
			CHECK_EQ(buf[i], (uint8_t)start);
		CHECK_EQ(buf[150], 0);                 /* padding */
		CHECK_EQ(r.priv_read, (start + 176) % 4096);
		/* Consumed, but hv gets the space only on commit. */
		CHECK_EQ(r.ctl->read_index, start);
		CHECK_EQ(ring_read_in_place(&r, &p, &offset), RING_EMPTY);
		ring_commit_read(&r);
		CHECK_EQ(r.ctl->read_index, (start + 176) % 4096);
	}
	/* A descriptor past the published data is corrupt, as for ring_read. */
	r.ctl->read_index = r.priv_read = 0;
	r.ctl->write_index = 8;
	CHECK_EQ(ring_read_in_place(&r, &p, &offset), RING_CORRUPT);
	free_ring(&r);
}

static void test_read_corrupt(void)
{
	struct ring r = make_ring(1);
	struct ring_packet p;
	uint8_t buf[4096];

	/* write_index out of the data area, or not 8-aligned. */
	r.ctl->write_index = 4096;
	CHECK_EQ(ring_read(&r, &p, buf, sizeof(buf)), RING_CORRUPT);
	r.ctl->write_index = 12;
	CHECK_EQ(ring_read(&r, &p, buf, sizeof(buf)), RING_CORRUPT);
	/* Less than a descriptor and trailer. */
	r.ctl->write_index = 16;
	CHECK_EQ(ring_read(&r, &p, buf, sizeof(buf)), RING_CORRUPT);

	/* A packet whose len8 reaches past write_index. */
	r.ctl->write_index = 0;
	host_put(&r, 1, 32, 0);
	r.data[4] = 20;                         /* len8 = 20: 160 + 8 > 56 */
	CHECK_EQ(ring_read(&r, &p, buf, sizeof(buf)), RING_CORRUPT);
	/* offset8 below the descriptor, or past len8. */
	r.data[4] = 6;
	r.data[2] = 1;
	CHECK_EQ(ring_read(&r, &p, buf, sizeof(buf)), RING_CORRUPT);
	r.data[2] = 7;
	CHECK_EQ(ring_read(&r, &p, buf, sizeof(buf)), RING_CORRUPT);
	/* A type-specific header (offset8 3): skipped, not returned. */
	r.data[2] = 3;
	CHECK_EQ(ring_read(&r, &p, buf, sizeof(buf)), RING_OK);
	CHECK_EQ(p.header_len, 8);
	CHECK_EQ(p.len, 24);
	CHECK_EQ(r.priv_read, 56);
	/* Bad write_index on the outbound side: hv's read_index checked too. */
	struct ring w = make_ring(1);
	w.ctl->read_index = 4100;
	CHECK_EQ(ring_write(&w, VM_PKT_DATA_INBAND, 0, 0, buf, 8), RING_CORRUPT);
	free_ring(&w);
	free_ring(&r);
}

/*
 * hv_pkt_iter_close: signal only on the move from "not enough free"
 * (<= pending_send_sz) to "enough" (> pending_send_sz).
 */
static void test_read_signal(void)
{
	struct ring r = make_ring(1);           /* dsize 4096 */
	struct ring_packet p;
	uint8_t buf[4096];

	/* hv filled the ring with 1000-byte packets (1024 each) and wants 1024 free. */
	for (int i = 0; i < 3; i++)
		host_put(&r, (uint64_t)i, 1000, 9);     /* 3072 used, 1024 free */
	r.ctl->pending_send_sz = 1024;

	/* Before 1024 (not > 1024: blocked), after 2048: signal. */
	CHECK_EQ(ring_read(&r, &p, buf, sizeof(buf)), RING_OK);
	CHECK_EQ(ring_commit_read(&r), 1);
	CHECK_EQ(r.ctl->read_index, 1024);
	/* Already enough before (2048 > 1024): no second signal. */
	CHECK_EQ(ring_read(&r, &p, buf, sizeof(buf)), RING_OK);
	CHECK_EQ(ring_commit_read(&r), 0);

	/* Not enough after: hv wants more than this read frees. */
	struct ring q = make_ring(1);
	for (int i = 0; i < 3; i++)
		host_put(&q, (uint64_t)i, 1000, 9);     /* 1024 free */
	q.ctl->pending_send_sz = 3000;
	CHECK_EQ(ring_read(&q, &p, buf, sizeof(buf)), RING_OK);
	CHECK_EQ(ring_commit_read(&q), 0);      /* 2048 <= 3000 */
	CHECK_EQ(ring_read(&q, &p, buf, sizeof(buf)), RING_OK);
	CHECK_EQ(ring_commit_read(&q), 1);      /* 3072 > 3000, and 2048 was not */

	/* Exactly pending after the read is still "not enough". */
	struct ring e = make_ring(1);
	for (int i = 0; i < 3; i++)
		host_put(&e, (uint64_t)i, 1000, 9);
	e.ctl->pending_send_sz = 2048;
	CHECK_EQ(ring_read(&e, &p, buf, sizeof(buf)), RING_OK);
	CHECK_EQ(ring_commit_read(&e), 0);      /* 2048, not > 2048 */
	CHECK_EQ(ring_read(&e, &p, buf, sizeof(buf)), RING_OK);
	CHECK_EQ(ring_commit_read(&e), 1);      /* before 2048 (= pending), after 3072 */

	/* Batch: two packets, one commit, one signal. */
	struct ring b = make_ring(1);
	for (int i = 0; i < 3; i++)
		host_put(&b, (uint64_t)i, 1000, 9);
	b.ctl->pending_send_sz = 1500;
	CHECK_EQ(ring_read(&b, &p, buf, sizeof(buf)), RING_OK);
	CHECK_EQ(ring_read(&b, &p, buf, sizeof(buf)), RING_OK);
	CHECK_EQ(ring_commit_read(&b), 1);      /* 1024 -> 3072 crosses 1500 */

	/* pending_send_sz 0, or no feature bit: never. */
	struct ring z = make_ring(1);
	for (int i = 0; i < 3; i++)
		host_put(&z, (uint64_t)i, 1000, 9);
	CHECK_EQ(ring_read(&z, &p, buf, sizeof(buf)), RING_OK);
	CHECK_EQ(ring_commit_read(&z), 0);
	z.ctl->pending_send_sz = 1024;
	z.ctl->feature_bits = 0;
	CHECK_EQ(ring_read(&z, &p, buf, sizeof(buf)), RING_OK);
	CHECK_EQ(ring_commit_read(&z), 0);
	/* Nothing read since the last commit: nothing to say. */
	z.ctl->feature_bits = 1;
	CHECK_EQ(ring_commit_read(&z), 0);

	/* hv wrote more while we read: "before" wraps huge, so no signal (as Linux). */
	struct ring m = make_ring(1);
	for (int i = 0; i < 3; i++)
		host_put(&m, (uint64_t)i, 1000, 9);
	m.ctl->pending_send_sz = 1024;
	CHECK_EQ(ring_read(&m, &p, buf, sizeof(buf)), RING_OK);
	host_put(&m, 3, 1000, 9);               /* refills what we read, unpublished read */
	CHECK_EQ(ring_commit_read(&m), 0);

	free_ring(&m);
	free_ring(&z);
	free_ring(&b);
	free_ring(&e);
	free_ring(&q);
	free_ring(&r);
}

/* Interrupt mask helper, and a write/read round trip through one memory. */
static void test_round_trip(void)
{
	struct ring w = make_ring(3), rd;
	struct ring_packet p;
	static uint8_t out[5000], in[5000];
	uint64_t seq_in = 0;

	rd = w;                                 /* the reader's view of the same ring */
	ring_set_interrupt_mask(&rd, 1);
	CHECK_EQ(w.ctl->interrupt_mask, 1);
	ring_set_interrupt_mask(&rd, 0);
	for (uint32_t i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i * 13);
	/* Many sizes so the wrap point moves through every field. */
	for (uint64_t seq = 0; seq < 2000; seq++) {
		uint32_t len = (uint32_t)(seq * 37 % 4999) + 1;
		while (ring_write(&w, VM_PKT_DATA_INBAND, 0, seq, out, len) == RING_FULL) {
			ring_commit_write(&w);
			while (ring_read(&rd, &p, in, sizeof(in)) == RING_OK) {
				uint32_t want = (uint32_t)(seq_in * 37 % 4999) + 1;
				CHECK_EQ(p.trans_id, seq_in);
				CHECK_EQ(p.len, (want + 7) & ~7u);
				CHECK(memcmp(in, out, want) == 0);
				seq_in++;
			}
			ring_commit_read(&rd);
		}
		ring_commit_write(&w);
	}
	while (ring_read(&rd, &p, in, sizeof(in)) == RING_OK)
		seq_in++;
	CHECK_EQ(seq_in, 2000);
	free_ring(&w);
}

/* ---- GPADL messages ---- */

/* Wire fields at any alignment (the PFNs of a GPADL_HEADER sit at offset 28). */
static uint64_t rd64(const void *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static uint32_t rd32(const void *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint16_t rd16(const void *p) { uint16_t v; memcpy(&v, p, 2); return v; }

static void test_gpadl(void)
{
	uint64_t msg[30];

	CHECK_EQ(GPADL_HEADER_PFNS, 26);
	CHECK_EQ(GPADL_BODY_PFNS, 28);
	CHECK_EQ(gpadl_message_count(0), 0);
	CHECK_EQ(gpadl_message_count(1), 1);
	CHECK_EQ(gpadl_message_count(26), 1);
	CHECK_EQ(gpadl_message_count(27), 2);
	CHECK_EQ(gpadl_message_count(54), 2);
	CHECK_EQ(gpadl_message_count(55), 3);
	CHECK_EQ(gpadl_message_count(8190), 1 + (8190 - 26 + 27) / 28);
	CHECK_EQ(gpadl_message_count(8191), 0);

	/* 8 pages (two 16 KiB rings): everything in the header. */
	uint32_t size = gpadl_build_message(msg, 5, 0xe1e10, 0x300, 8, 0);
	const uint8_t *b = (const uint8_t *)msg;
	CHECK_EQ(size, 20 + 8 + 64);
	CHECK_EQ(rd32(b + 0), CHANNELMSG_GPADL_HEADER);
	CHECK_EQ(rd32(b + 8), 5);
	CHECK_EQ(rd32(b + 12), 0xe1e10);
	CHECK_EQ(rd16(b + 16), 8 + 64);          /* range_buflen */
	CHECK_EQ(rd16(b + 18), 1);               /* rangecount */
	CHECK_EQ(rd32(b + 20), 8 * 4096);        /* byte_count */
	CHECK_EQ(rd32(b + 24), 0);               /* byte_offset */
	for (int i = 0; i < 8; i++)
		CHECK_EQ(rd64(b + 28 + 8 * i), 0x300 + (uint64_t)i);
	CHECK_EQ(gpadl_build_message(msg, 5, 0xe1e10, 0x300, 8, 1), 0);

	/* 100 pages: header 26, bodies 28 + 28 + 18. */
	CHECK_EQ(gpadl_message_count(100), 4);
	size = gpadl_build_message(msg, 9, 0xe1e11, 0x1000, 100, 0);
	CHECK_EQ(size, 20 + 8 + 26 * 8);        /* 236: a 27th PFN would not fit */
	CHECK_EQ(rd16(b + 16), 8 + 800);
	CHECK_EQ(rd32(b + 20), 100 * 4096);
	CHECK_EQ(rd64(b + 28 + 8 * 25), 0x1000 + 25);
	uint64_t next = 0x1000 + 26;
	uint32_t want_sizes[] = { 240, 240, 16 + 18 * 8 };
	for (unsigned m = 1; m < 4; m++) {
		size = gpadl_build_message(msg, 9, 0xe1e11, 0x1000, 100, m);
		CHECK_EQ(size, want_sizes[m - 1]);
		CHECK_EQ(rd32(b + 0), CHANNELMSG_GPADL_BODY);
		CHECK_EQ(rd32(b + 12), 0xe1e11);
		for (uint32_t i = 0; i < (size - 16) / 8; i++)
			CHECK_EQ(rd64(b + 16 + 8 * i), next++);
	}
	CHECK_EQ(next, 0x1000 + 100);
}

/* ---- IC (heartbeat) ---- */

static uint32_t ic_request(uint8_t *buf, uint16_t type, const void *body, uint32_t body_len)
{
	struct icmsg_hdr h;

	memset(buf, 0, 4096);
	memset(&h, 0, sizeof(h));
	h.icverframe.major = 3;
	h.icmsgtype = type;
	h.icvermsg.major = 3;
	h.icmsgsize = (uint16_t)body_len;
	h.icflags = ICMSGHDRFLAG_TRANSACTION | ICMSGHDRFLAG_REQUEST;
	memcpy(buf + sizeof(struct vmbuspipe_hdr), &h, sizeof(h));
	memcpy(buf + ICMSG_HDR, body, body_len);
	return (uint32_t)(ICMSG_HDR + body_len + 7) & ~7u;
}

static void test_ic(void)
{
	uint8_t buf[4096];
	struct ic_outcome out;
	const struct icmsg_hdr *h = (const void *)(buf + sizeof(struct vmbuspipe_hdr));
	const struct icmsg_negotiate *n = (const void *)(buf + ICMSG_HDR);

	/* Host offers frameworks 1.0, 3.0 and heartbeat 1.0, 3.0, 4.0: we pick 3.0/3.0. */
	struct {
		struct icmsg_negotiate n;
		struct ic_version v[5];
	} __attribute__((packed)) neg = { { 2, 3, 0 }, { { 1, 0 }, { 3, 0 }, { 1, 0 }, { 3, 0 }, { 4, 0 } } };
	uint32_t len = ic_request(buf, ICMSGTYPE_NEGOTIATE, &neg, sizeof(neg));
	CHECK_EQ(ic_heartbeat_respond(buf, len, &out), IC_NEGOTIATED);
	CHECK_EQ(out.framework_version, 0x30000);
	CHECK_EQ(out.service_version, 0x30000);
	CHECK_EQ(h->icflags, ICMSGHDRFLAG_TRANSACTION | ICMSGHDRFLAG_RESPONSE);
	CHECK_EQ(h->icmsgsize, 0x10);
	CHECK_EQ(h->status, 0);
	CHECK_EQ(n->icframe_vercnt, 1);
	CHECK_EQ(n->icmsg_vercnt, 1);
	CHECK(n->icversion_data[0].major == 3 && n->icversion_data[0].minor == 0);
	CHECK(n->icversion_data[1].major == 3 && n->icversion_data[1].minor == 0);

	/* Only 1.0 heartbeat on offer: picked from our list's second entry. */
	struct {
		struct icmsg_negotiate n;
		struct ic_version v[2];
	} __attribute__((packed)) old = { { 1, 1, 0 }, { { 1, 0 }, { 1, 0 } } };
	len = ic_request(buf, ICMSGTYPE_NEGOTIATE, &old, sizeof(old));
	CHECK_EQ(ic_heartbeat_respond(buf, len, &out), IC_NEGOTIATED);
	CHECK_EQ(out.framework_version, 0x10000);
	CHECK_EQ(out.service_version, 0x10000);

	/* Nothing in common: counts 0, still answered. */
	struct {
		struct icmsg_negotiate n;
		struct ic_version v[2];
	} __attribute__((packed)) none = { { 1, 1, 0 }, { { 3, 0 }, { 7, 0 } } };
	len = ic_request(buf, ICMSGTYPE_NEGOTIATE, &none, sizeof(none));
	CHECK_EQ(ic_heartbeat_respond(buf, len, &out), IC_NEGOTIATE_FAILED);
	CHECK_EQ(n->icframe_vercnt, 0);
	CHECK_EQ(n->icmsg_vercnt, 0);
	CHECK_EQ(h->icflags, ICMSGHDRFLAG_TRANSACTION | ICMSGHDRFLAG_RESPONSE);

	/* Counts that claim more versions than were received: refused. */
	struct icmsg_negotiate lie = { 50, 50, 0 };
	len = ic_request(buf, ICMSGTYPE_NEGOTIATE, &lie, sizeof(lie));
	CHECK_EQ(ic_heartbeat_respond(buf, len, &out), IC_NEGOTIATE_FAILED);

	/* Heartbeat: seq_num + 1, same length back. */
	struct heartbeat_msg_data hb = { 41, { 0 } };
	len = ic_request(buf, ICMSGTYPE_HEARTBEAT, &hb, sizeof(hb));
	CHECK_EQ(ic_heartbeat_respond(buf, len, &out), IC_HEARTBEAT);
	CHECK_EQ(out.seq_num, 41);
	CHECK_EQ(rd64(buf + ICMSG_HDR), 42);
	CHECK_EQ(h->icflags, ICMSGHDRFLAG_TRANSACTION | ICMSGHDRFLAG_RESPONSE);
	/* Only seq_num present (reserved words left out) is enough. */
	CHECK_EQ(ic_heartbeat_respond(buf, ICMSG_HDR + 8, &out), IC_HEARTBEAT);
	CHECK_EQ(out.seq_num, 42);
	/* Shorter: dropped, unanswered. */
	CHECK_EQ(ic_heartbeat_respond(buf, ICMSG_HDR + 4, &out), IC_DROP);
	CHECK_EQ(ic_heartbeat_respond(buf, ICMSG_HDR - 1, &out), IC_DROP);

	/* Any other type: HV_E_FAIL. */
	len = ic_request(buf, ICMSGTYPE_SHUTDOWN, &hb, sizeof(hb));
	CHECK_EQ(ic_heartbeat_respond(buf, len, &out), IC_UNKNOWN);
	CHECK_EQ(h->status, HV_E_FAIL);
	CHECK_EQ(h->icflags, ICMSGHDRFLAG_TRANSACTION | ICMSGHDRFLAG_RESPONSE);
}

/* ---- GUID text form ---- */

static void test_guid(void)
{
	static const uint8_t hb[16] = HV_HEARTBEAT_GUID;
	char s[37];

	guid_format(s, hb);
	CHECK(strcmp(s, "57164f39-9115-4e78-ab55-382f3bd5422d") == 0);
	CHECK_EQ(hb[0], 0x39);                  /* wire order: little-endian first field */
	CHECK_EQ(hb[8], 0xab);
}

int main(void)
{
	test_init();
	test_write_layout();
	test_batch();
	test_full();
	test_write_wrap();
	test_read();
	test_read_wrap();
	test_read_in_place();
	test_read_corrupt();
	test_read_signal();
	test_round_trip();
	test_gpadl();
	test_ic();
	test_guid();
	printf("ring-test: %u checks passed\n", checks);
	return 0;
}
