/*
 * Host-side test of the stub's NetVSC driver (net/netvsc.c, unmodified)
 * against a fake NetVSP, built with plain gcc by `make -C Guests test`.
 *
 * The VMBus client calls the driver makes (connect, offers, open, GPADLs,
 * close, unload, signal, receive commit) are replaced here; the rings,
 * NVSP/RNDIS code and the driver are the real ones. The fake host plays hv:
 * it runs whenever the guest signals or commits a read (as hv's channel
 * thread would run concurrently), reads the guest's outbound ring, checks
 * every message against the layout Linux's hv_netvsc sends, answers as a
 * NetVSP does (COMP packets, RNDIS replies in receive-buffer sub-allocations
 * delivered with transfer-page packets) and records what it saw. Guest
 * memory is this process's memory: a PFN is an address >> 12.
 * Exits 1 on the first failed check, 0 when all pass.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../net/netvsc_proto.h"
#include "../net/nic.h"
#include "../net/proto.h"
#include "../vmbus/hyperv.h"
#include "../vmbus/protocol.h"
#include "../vmbus/ring.h"
#include "../vmbus/vmbus.h"

static unsigned checks;

#define TEST_NAME "netvsc-test"
#include "check.h"

/* ---- what the driver links against, replaced ---- */

uint32_t nic_timeout_ms = 2000;
uint32_t vmbus_timeout_ms = 2000;
uint64_t clock_tsc_hz = 1000000000ull;  /* timeouts only: a guess is fine */
struct hv_info hv_info;
struct vmbus_connection vmbus;
static int quiet_kprintf;

void kprintf(const char *fmt, ...)
{
	va_list ap;

	if (quiet_kprintf)
		return;
	va_start(ap, fmt);
	printf("  | ");
	vprintf(fmt, ap);
	va_end(ap);
}

static void host_step(void);

static struct {
	int connected, offers_requested, closed, unloaded;
	uint32_t next_gpadl;
	struct { void *mem; uint32_t bytes, handle; int torn_down; } gpadl[4];
	int ngpadl;
	uint64_t signals;
} vb;

int vmbus_connect(uint32_t vp_index)
{
	(void)vp_index;
	vb.connected = 1;
	return 0;
}

int vmbus_request_offers(void)
{
	static const uint8_t netvsc[16] = HV_NETVSC_GUID;

	vb.offers_requested = 1;
	memset(&vmbus.offers[0], 0, sizeof(vmbus.offers[0]));
	memcpy(vmbus.offers[0].if_type, netvsc, 16);
	vmbus.offers[0].child_relid = 7;
	vmbus.offers[0].connection_id = 0x2007;
	vmbus.offers[0].is_dedicated_interrupt = 1;
	vmbus.noffers = 1;
	return 0;
}

const struct vmbus_offer *vmbus_find_offer(const uint8_t class_guid[16])
{
	for (unsigned i = 0; i < vmbus.noffers; i++)
		if (memcmp(vmbus.offers[i].if_type, class_guid, 16) == 0)
			return &vmbus.offers[i];
	return 0;
}

int vmbus_gpadl_create(uint32_t relid, void *mem, uint32_t bytes, uint32_t *handle)
{
	CHECK_EQ(relid, 7);
	CHECK_EQ((uintptr_t)mem % 4096, 0);
	CHECK_EQ(bytes % 4096, 0);
	CHECK(vb.ngpadl < 4);
	vb.gpadl[vb.ngpadl].mem = mem;
	vb.gpadl[vb.ngpadl].bytes = bytes;
	vb.gpadl[vb.ngpadl].handle = *handle = VMBUS_FIRST_GPADL + vb.next_gpadl++;
	vb.gpadl[vb.ngpadl].torn_down = 0;
	vb.ngpadl++;
	return 0;
}

int vmbus_gpadl_teardown(uint32_t relid, uint32_t handle)
{
	CHECK_EQ(relid, 7);
	for (int i = 0; i < vb.ngpadl; i++)
		if (vb.gpadl[i].handle == handle) {
			CHECK(!vb.gpadl[i].torn_down);
			vb.gpadl[i].torn_down = 1;
			return 0;
		}
	CHECK(!"teardown of an unknown GPADL");
	return -1;
}

static struct ring host_rx;     /* the guest's outbound ring, read by the host */
static struct ring host_tx;     /* the guest's inbound ring, written by the host */

int vmbus_open(struct vmbus_channel *ch, const struct vmbus_offer *o, void *mem,
	       uint32_t send_bytes, uint32_t recv_bytes)
{
	uint32_t h;

	memset(ch, 0, sizeof(*ch));
	CHECK_EQ(send_bytes, 4096 + 128 * 4096);        /* Linux's default ring_size = 128 pages */
	CHECK_EQ(recv_bytes, 4096 + 128 * 4096);
	ch->offer = o;
	ch->ring_mem = mem;
	ch->send_bytes = send_bytes;
	ch->recv_bytes = recv_bytes;
	ring_init(&ch->out, mem, send_bytes);
	ring_init(&ch->in, (uint8_t *)mem + send_bytes, recv_bytes);
	vmbus_gpadl_create(o->child_relid, mem, send_bytes + recv_bytes, &h);
	ch->gpadl = h;
	ch->open = 1;
	/* The host's views of the same rings. */
	host_rx = ch->out;
	host_tx = ch->in;
	return 0;
}

int vmbus_close(struct vmbus_channel *ch)
{
	vb.closed = 1;
	ch->open = 0;
	return vmbus_gpadl_teardown(ch->offer->child_relid, ch->gpadl);
}

int vmbus_unload(void)
{
	vb.unloaded = 1;
	return 0;
}

void vmbus_signal(struct vmbus_channel *ch)
{
	(void)ch;
	vb.signals++;
	host_step();
}

void vmbus_recv_commit(struct vmbus_channel *ch)
{
	ring_commit_read(&ch->in);
	host_step();                    /* hv runs concurrently: let it catch up */
}

int synic_event_test_and_clear(unsigned relid)
{
	(void)relid;
	host_step();
	return 0;
}

/* ---- the fake NetVSP ---- */

#define SEND_SECTION    6144u
#define SUB_ALLOC       1728u
#define MAX_BACKLOG     4096

static const uint8_t host_mac[6] = { 0x00, 0x15, 0x5d, 0x01, 0x02, 0x03 };

struct hpkt {
	uint16_t type, flags;
	uint64_t tid;
	uint8_t hdr[64];
	uint32_t hdr_len;
	uint8_t payload[64];
	uint32_t len;
};

static struct {
	/* behaviour */
	uint32_t accept_version;
	int media_disconnected;         /* answer MEDIA_CONNECT_STATUS with 1, then indicate */
	int reply_before_completion;    /* RNDIS reply before the COMP of the request */
	uint32_t max_pkt, align_factor; /* INITIALIZE_CMPLT: max_pkt_per_msg, pkt_alignment_factor */
	/* state */
	uint8_t *recv_buf, *send_buf;
	uint32_t recv_size, send_size, recv_gpadl, send_gpadl;
	uint8_t suballoc_busy[16384];
	uint64_t suballoc_tid[16384];
	uint64_t next_tid;
	struct hpkt backlog[MAX_BACKLOG];
	uint32_t nbacklog;
	int stepping;
	/* observations */
	uint32_t versions_tried[8], nversions;
	uint32_t ndis_config_mtu;
	uint64_t ndis_config_caps;
	int ndis_config_seen, ndis_ver_seen;
	uint32_t ndis_major, ndis_minor;
	uint32_t rndis_seq[16], nrndis;         /* RNDIS message types, in order */
	uint32_t rndis_oids[16];
	uint32_t filter;
	uint32_t frames, frame_bytes;
	uint8_t last_frame[ETH_FRAME_MAX];
	uint32_t last_frame_len;
	uint64_t next_seq;                      /* bench frames must arrive in order */
	uint32_t batch[64], nbatch, data_in_step;
	/* SEND_RNDIS_PKT data packets: RNDIS messages and bytes of each (the first 256 after a reset) */
	uint32_t pkt_msgs[256], pkt_bytes[256], npkt;
	uint64_t data_pkts;
	uint32_t rx_completions, rx_completion_fail, rx_outstanding;
	int revoked_recv, revoked_send, halted;
} h;

static void host_queue(uint16_t type, uint16_t flags, uint64_t tid, const void *hdr,
		       uint32_t hdr_len, const void *payload, uint32_t len)
{
	CHECK(h.nbacklog < MAX_BACKLOG);
	struct hpkt *p = &h.backlog[h.nbacklog++];
	p->type = type;
	p->flags = flags;
	p->tid = tid;
	memcpy(p->hdr, hdr, hdr_len);
	p->hdr_len = hdr_len;
	memcpy(p->payload, payload, len);
	p->len = len;
}

static void host_flush(void)
{
	uint32_t done = 0;

	while (done < h.nbacklog) {
		struct hpkt *p = &h.backlog[done];
		enum ring_status s = p->hdr_len ?
			ring_write_hdr(&host_tx, p->type, p->flags, p->tid, p->hdr, p->hdr_len,
				       p->payload, p->len) :
			ring_write(&host_tx, p->type, p->flags, p->tid, p->payload, p->len);
		if (s == RING_FULL)
			break;
		CHECK_EQ(s, RING_OK);
		done++;
	}
	memmove(h.backlog, h.backlog + done, (h.nbacklog - done) * sizeof(h.backlog[0]));
	h.nbacklog -= done;
	ring_commit_write(&host_tx);    /* the guest polls; no signal needed */
}

/* An NVSP completion, padded to 40 bytes as hosts must (Linux's length checks). */
static void host_complete(uint64_t tid, const uint32_t *words, unsigned n)
{
	uint8_t msg[40];

	memset(msg, 0, sizeof(msg));
	memcpy(msg, words, 4 * n);
	host_queue(VM_PKT_COMP, 0, tid, 0, 0, msg, sizeof(msg));
}

/* Puts one RNDIS message into a free sub-allocation and indicates it. */
static void host_indicate(const void *rndis, uint32_t len, uint32_t channel)
{
	uint32_t n = h.recv_size / SUB_ALLOC, i;

	CHECK(len <= SUB_ALLOC);
	for (i = 0; i < n && h.suballoc_busy[i]; i++)
		;
	CHECK(i < n);
	memcpy(h.recv_buf + i * SUB_ALLOC, rndis, len);
	uint64_t tid = 0x5000 + h.next_tid++;
	h.suballoc_busy[i] = 1;
	h.suballoc_tid[i] = tid;
	h.rx_outstanding++;
	struct {
		struct vmtransfer_page_header x;
		struct vmtransfer_page_range r;
	} __attribute__((packed)) hdr = { { NETVSC_RECEIVE_BUFFER_ID, 0, 0, 1 }, { len, i * SUB_ALLOC } };
	uint32_t msg[10] = { NVSP_MSG1_TYPE_SEND_RNDIS_PKT, channel, NETVSC_INVALID_INDEX, 0 };
	host_queue(VM_PKT_DATA_USING_XFER_PAGES, VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED, tid,
		   &hdr, sizeof(hdr), msg, sizeof(msg));
}

static void host_rndis_control(const uint8_t *m, uint32_t len)
{
	uint32_t type, mlen, req;
	uint8_t reply[64];

	CHECK(len >= 12);
	memcpy(&type, m, 4);
	memcpy(&mlen, m + 4, 4);
	memcpy(&req, m + 8, 4);
	CHECK_EQ(mlen, len);
	CHECK(h.nrndis < 16);
	h.rndis_seq[h.nrndis] = type;
	memset(reply, 0, sizeof(reply));
	switch (type) {
	case RNDIS_MSG_INIT: {
		uint32_t w[13] = { RNDIS_MSG_INIT_C, 52, req, 0, 1, 0, 1, 0, h.max_pkt, 0xefffffff,
				   h.align_factor, 0, 0 };
		CHECK_EQ(len, 24);
		memcpy(reply, w, 52);
		host_indicate(reply, 52, NVSP_CHANNEL_CONTROL);
		break;
	}
	case RNDIS_MSG_QUERY: {
		uint32_t oid, blen, boff;
		memcpy(&oid, m + 12, 4);
		memcpy(&blen, m + 16, 4);
		memcpy(&boff, m + 20, 4);
		CHECK_EQ(len, 28);
		CHECK_EQ(blen, 0);
		CHECK_EQ(boff, 20);             /* sizeof(struct rndis_query_request) */
		h.rndis_oids[h.nrndis] = oid;
		uint32_t w[6] = { RNDIS_MSG_QUERY_C, 24, req, 0, 0, 16 };
		uint8_t data[8];
		uint32_t dlen = 4, v;
		if (oid == RNDIS_OID_802_3_PERMANENT_ADDRESS) {
			memcpy(data, host_mac, 6);
			dlen = 6;
		} else if (oid == RNDIS_OID_GEN_MAXIMUM_FRAME_SIZE) {
			v = 1500;
			memcpy(data, &v, 4);
		} else if (oid == RNDIS_OID_GEN_MEDIA_CONNECT_STATUS) {
			v = h.media_disconnected ? 1 : 0;
			memcpy(data, &v, 4);
		} else {
			w[3] = 0xc00000bb;      /* NOT_SUPPORTED */
			dlen = 0;
		}
		w[1] = 24 + dlen;
		w[4] = dlen;
		memcpy(reply, w, 24);
		memcpy(reply + 24, data, dlen);
		host_indicate(reply, 24 + dlen, NVSP_CHANNEL_CONTROL);
		break;
	}
	case RNDIS_MSG_SET: {
		uint32_t oid, blen, boff;
		memcpy(&oid, m + 12, 4);
		memcpy(&blen, m + 16, 4);
		memcpy(&boff, m + 20, 4);
		h.rndis_oids[h.nrndis] = oid;
		CHECK_EQ(boff, 20);
		CHECK_EQ(len, 28 + blen);
		if (oid == RNDIS_OID_GEN_CURRENT_PACKET_FILTER) {
			CHECK_EQ(blen, 4);
			memcpy(&h.filter, m + 28, 4);
		}
		uint32_t w[4] = { RNDIS_MSG_SET_C, 16, req, 0 };
		memcpy(reply, w, 16);
		host_indicate(reply, 16, NVSP_CHANNEL_CONTROL);
		if (h.media_disconnected) {     /* then the link comes up */
			uint32_t ind[5] = { RNDIS_MSG_INDICATE, 20, RNDIS_STATUS_MEDIA_CONNECT, 0, 0 };
			host_indicate(ind, 20, NVSP_CHANNEL_CONTROL);
		}
		break;
	}
	case RNDIS_MSG_HALT:
		CHECK_EQ(len, 12);
		h.halted = 1;
		break;
	default:
		CHECK(!"unexpected RNDIS control message");
	}
	h.nrndis++;
}

static void host_inband(const struct ring_packet *p, const uint8_t *msg)
{
	uint32_t type, w1, w2, w3;

	CHECK_EQ(p->len, NVSP_MESSAGE_SIZE);    /* Linux sends every NVSP message as 40 bytes */
	memcpy(&type, msg, 4);
	memcpy(&w1, msg + 4, 4);
	memcpy(&w2, msg + 8, 4);
	memcpy(&w3, msg + 12, 4);
	int wants_completion = p->flags & VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED;

	switch (type) {
	case NVSP_MSG_TYPE_INIT: {
		CHECK(wants_completion);
		CHECK_EQ(w1, w2);               /* min = max = the candidate */
		h.versions_tried[h.nversions++] = w1;
		uint32_t c[4] = { NVSP_MSG_TYPE_INIT_COMPLETE, 0, 0,
				  w1 == h.accept_version ? NVSP_STAT_SUCCESS : NVSP_STAT_FAIL };
		host_complete(p->trans_id, c, 4);
		break;
	}
	case NVSP_MSG2_TYPE_SEND_NDIS_CONFIG: {
		CHECK(!wants_completion);
		h.ndis_config_seen = 1;
		h.ndis_config_mtu = w1;
		CHECK_EQ(w2, 0);
		uint64_t cap;
		memcpy(&cap, msg + 12, 8);
		h.ndis_config_caps = cap;
		break;
	}
	case NVSP_MSG1_TYPE_SEND_NDIS_VER:
		CHECK(!wants_completion);
		CHECK(!h.ndis_ver_seen);
		h.ndis_ver_seen = 1;
		h.ndis_major = w1;
		h.ndis_minor = w2;
		break;
	case NVSP_MSG1_TYPE_SEND_RECV_BUF: {
		CHECK(wants_completion);
		CHECK(h.ndis_ver_seen);
		CHECK_EQ(w2 & 0xffff, NETVSC_RECEIVE_BUFFER_ID);
		for (int i = 0; i < vb.ngpadl; i++)
			if (vb.gpadl[i].handle == w1) {
				h.recv_buf = vb.gpadl[i].mem;
				h.recv_size = vb.gpadl[i].bytes;
			}
		CHECK(h.recv_buf);
		h.recv_gpadl = w1;
		uint32_t n = h.recv_size / SUB_ALLOC;
		uint32_t c[7] = { NVSP_MSG1_TYPE_SEND_RECV_BUF_COMPLETE, NVSP_STAT_SUCCESS, 1,
				  0, SUB_ALLOC, n, n * SUB_ALLOC };
		host_complete(p->trans_id, c, 7);
		break;
	}
	case NVSP_MSG1_TYPE_SEND_SEND_BUF: {
		CHECK(wants_completion);
		CHECK(h.recv_buf);
		CHECK_EQ(w2 & 0xffff, NETVSC_SEND_BUFFER_ID);
		for (int i = 0; i < vb.ngpadl; i++)
			if (vb.gpadl[i].handle == w1) {
				h.send_buf = vb.gpadl[i].mem;
				h.send_size = vb.gpadl[i].bytes;
			}
		CHECK(h.send_buf);
		h.send_gpadl = w1;
		uint32_t c[3] = { NVSP_MSG1_TYPE_SEND_SEND_BUF_COMPLETE, NVSP_STAT_SUCCESS,
				  SEND_SECTION };
		host_complete(p->trans_id, c, 3);
		break;
	}
	case NVSP_MSG1_TYPE_SEND_RNDIS_PKT: {
		/*
		 * Data in a send-buffer section: channel 0, index, size. The section
		 * holds 1..max_pkt PACKET_MSGs back to back (Linux's multi-send
		 * data); each but the last has its msg_len padded to the alignment
		 * with zeroes, and the messages fill exactly `size` bytes.
		 */
		CHECK(wants_completion);
		CHECK_EQ(w1, NVSP_CHANNEL_DATA);
		CHECK(w2 < h.send_size / SEND_SECTION);
		CHECK(w3 <= SEND_SECTION);
		const uint8_t *r = h.send_buf + (uint64_t)w2 * SEND_SECTION;
		uint32_t align = 1u << h.align_factor, pos = 0, msgs = 0;
		while (pos < w3) {
			struct rndis_parsed rp;
			const char *why;
			CHECK_EQ(rndis_parse(r + pos, w3 - pos, &rp, &why), 0);
			CHECK_EQ(rp.type, RNDIS_MSG_PACKET);
			CHECK(rp.data_len >= 14 && rp.data_len <= ETH_FRAME_MAX);
			CHECK_EQ(rp.data_offset, RNDIS_PACKET_SIZE);
			uint32_t pad = rp.len - RNDIS_PACKET_SIZE - rp.data_len;
			CHECK(pad < align);
			for (uint32_t i = 0; i < pad; i++)
				CHECK_EQ(r[pos + RNDIS_PACKET_SIZE + rp.data_len + i], 0);
			if (pos + rp.len < w3)
				CHECK_EQ(rp.len % align, 0);
			memcpy(h.last_frame, r + pos + rp.data_offset, rp.data_len);
			h.last_frame_len = rp.data_len;
			uint64_t seq;
			if (net_bench_parse(h.last_frame, rp.data_len, &seq)) {
				CHECK_EQ(seq, h.next_seq);
				h.next_seq++;
			}
			h.frames++;
			h.frame_bytes += rp.data_len;
			h.data_in_step++;
			msgs++;
			pos += rp.len;
		}
		CHECK_EQ(pos, w3);
		CHECK(msgs >= 1 && msgs <= (h.max_pkt ? h.max_pkt : 1));
		if (h.npkt < 256) {
			h.pkt_msgs[h.npkt] = msgs;
			h.pkt_bytes[h.npkt] = w3;
			h.npkt++;
		}
		h.data_pkts++;
		uint32_t c[2] = { NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE, NVSP_STAT_SUCCESS };
		host_complete(p->trans_id, c, 2);
		break;
	}
	case NVSP_MSG1_TYPE_REVOKE_RECV_BUF:
		CHECK_EQ(w1 & 0xffff, NETVSC_RECEIVE_BUFFER_ID);
		h.revoked_recv = 1;
		break;
	case NVSP_MSG1_TYPE_REVOKE_SEND_BUF:
		CHECK_EQ(w1 & 0xffff, NETVSC_SEND_BUFFER_ID);
		h.revoked_send = 1;
		break;
	default:
		CHECK(!"unexpected NVSP message");
	}
}

static void host_gpa_direct(const struct ring_packet *p, const uint8_t *buf)
{
	struct vmbus_page_buffer_header ph;
	struct hv_page_buffer pb;
	uint32_t nvsp[4];

	/* Linux's page-buffer form: reserved, rangecount, then 16-byte ranges; payload NVSP. */
	CHECK(p->flags & VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED);
	memcpy(&ph, buf, sizeof(ph));
	CHECK_EQ(ph.rangecount, 1);
	CHECK_EQ(p->header_len, 8 + 16 * ph.rangecount);
	CHECK_EQ(p->len, NVSP_MESSAGE_SIZE);
	memcpy(&pb, buf + 8, sizeof(pb));
	memcpy(nvsp, buf + p->header_len, 16);
	CHECK_EQ(nvsp[0], NVSP_MSG1_TYPE_SEND_RNDIS_PKT);
	CHECK_EQ(nvsp[1], NVSP_CHANNEL_CONTROL);
	CHECK_EQ(nvsp[2], NETVSC_INVALID_INDEX);
	CHECK_EQ(nvsp[3], 0);
	CHECK(pb.offset + pb.len <= 4096);
	const uint8_t *m = (const uint8_t *)(uintptr_t)(pb.pfn << 12) + pb.offset;
	uint32_t c[2] = { NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE, NVSP_STAT_SUCCESS };
	if (!h.reply_before_completion)
		host_complete(p->trans_id, c, 2);
	host_rndis_control(m, pb.len);
	if (h.reply_before_completion)
		host_complete(p->trans_id, c, 2);
}

static void host_guest_completion(const struct ring_packet *p, const uint8_t *msg)
{
	uint32_t w[2];

	CHECK_EQ(p->len, NVSP_RECV_COMPLETION_SIZE);    /* Linux: header + status */
	memcpy(w, msg, 8);
	CHECK_EQ(w[0], NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE);
	h.rx_completions++;
	if (w[1] != NVSP_STAT_SUCCESS)
		h.rx_completion_fail++;
	for (uint32_t i = 0; i < 16384; i++)
		if (h.suballoc_busy[i] && h.suballoc_tid[i] == p->trans_id) {
			h.suballoc_busy[i] = 0;
			h.rx_outstanding--;
			return;
		}
	CHECK(!"completion for an unknown transfer-page packet");
}

static void host_step(void)
{
	uint8_t buf[256];
	struct ring_packet p;
	enum ring_status s;

	if (h.stepping)
		return;
	h.stepping = 1;
	h.data_in_step = 0;
	while ((s = ring_read_full(&host_rx, &p, buf, sizeof(buf))) == RING_OK) {
		const uint8_t *payload = buf + p.header_len;
		switch (p.type) {
		case VM_PKT_DATA_INBAND:
			CHECK_EQ(p.header_len, 0);
			host_inband(&p, payload);
			break;
		case VM_PKT_DATA_USING_GPA_DIRECT:
			host_gpa_direct(&p, buf);
			break;
		case VM_PKT_COMP:
			host_guest_completion(&p, payload);
			break;
		default:
			CHECK(!"unexpected packet type from the guest");
		}
	}
	CHECK_EQ(s, RING_EMPTY);
	ring_commit_read(&host_rx);
	if (h.data_in_step && h.nbatch < 64)
		h.batch[h.nbatch++] = h.data_in_step;
	host_flush();
	h.stepping = 0;
}

static void host_reset(void)
{
	memset(&h, 0, sizeof(h));
	memset(&vb, 0, sizeof(vb));
	h.accept_version = NVSP_PROTOCOL_VERSION_5;
	h.max_pkt = 8;                  /* what hv (and Linux's default) says */
	h.align_factor = 3;
}

/* ---- the tests ---- */

static struct nic nic;
static uint8_t rx_frames[8][ETH_FRAME_MAX];
static uint32_t rx_lens[8], nrx;

static void capture(void *ctx, const uint8_t *frame, uint32_t len)
{
	(void)ctx;
	if (nrx < 8) {
		memcpy(rx_frames[nrx], frame, len);
		rx_lens[nrx] = len;
	}
	nrx++;
}

static void test_open(void)
{
	host_reset();
	memset(&nic, 0, sizeof(nic));
	nic.burst = 1;
	CHECK_EQ(netvsc_open(&nic, 0), 0);
	CHECK(vb.connected && vb.offers_requested);
	/* Linux's order: 6.1, 6.0, 5 (accepted here). */
	CHECK_EQ(h.nversions, 3);
	CHECK_EQ(h.versions_tried[0], 0x00060001);
	CHECK_EQ(h.versions_tried[1], 0x00060000);
	CHECK_EQ(h.versions_tried[2], 0x00050000);
	CHECK(h.ndis_config_seen);
	CHECK_EQ(h.ndis_config_mtu, 1514);
	CHECK_EQ(h.ndis_config_caps, NVSP_CAP_IEEE8021Q | NVSP_CAP_TEAMING);
	CHECK_EQ(h.ndis_major, 6);
	CHECK_EQ(h.ndis_minor, 30);
	/* GPADLs: ring, receive buffer (16 MiB), send buffer (170 x 6144 -> 255 pages). */
	CHECK_EQ(vb.ngpadl, 3);
	CHECK_EQ(h.recv_size, 16u << 20);
	CHECK_EQ(h.send_size, 1044480);
	/* RNDIS: INITIALIZE, the three queries, the packet filter. */
	CHECK_EQ(h.nrndis, 5);
	CHECK_EQ(h.rndis_seq[0], RNDIS_MSG_INIT);
	CHECK_EQ(h.rndis_seq[1], RNDIS_MSG_QUERY);
	CHECK_EQ(h.rndis_oids[1], RNDIS_OID_GEN_MAXIMUM_FRAME_SIZE);
	CHECK_EQ(h.rndis_oids[2], RNDIS_OID_802_3_PERMANENT_ADDRESS);
	CHECK_EQ(h.rndis_oids[3], RNDIS_OID_GEN_MEDIA_CONNECT_STATUS);
	CHECK_EQ(h.rndis_seq[4], RNDIS_MSG_SET);
	CHECK_EQ(h.rndis_oids[4], RNDIS_OID_GEN_CURRENT_PACKET_FILTER);
	CHECK_EQ(h.filter, NDIS_PACKET_TYPE_DIRECTED | NDIS_PACKET_TYPE_ALL_MULTICAST |
		 NDIS_PACKET_TYPE_BROADCAST);
	CHECK(memcmp(nic.mac, host_mac, 6) == 0);
	CHECK(nic.link_up);
	CHECK_EQ(strcmp(nic.name, "netvsc"), 0);
	/* Every RNDIS reply was completed back to the host. */
	CHECK_EQ(h.rx_outstanding, 0);
	CHECK_EQ(h.rx_completions, 5);
	CHECK_EQ(h.rx_completion_fail, 0);
}

static void test_tx_batches(void)
{
	uint8_t frame[ETH_FRAME_MAX];
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

	/* burst=4: the host sees 10 frames as 4 + 4 + 2, one signal per commit, each
	 * burst in one section (one SEND_RNDIS_PKT); 144-byte messages need no padding. */
	nic.burst = 4;
	h.nbatch = 0;
	h.npkt = 0;
	h.next_seq = 0;
	uint64_t signals0 = vb.signals, frames0 = h.frames;
	net_bench_frame(frame, 100, bcast, nic.mac);
	for (uint64_t seq = 0; seq < 10; seq++) {
		uint8_t *b = nic.tx_buf();
		CHECK(b);
		memcpy(b, frame, 100);
		net_bench_stamp(b, seq);
		CHECK_EQ(nic.tx_queue(100), 0);
	}
	CHECK_EQ(nic.tx_drain(), 0);
	CHECK_EQ(h.frames - frames0, 10);
	CHECK_EQ(h.next_seq, 10);
	CHECK_EQ(h.nbatch, 3);
	CHECK_EQ(h.batch[0], 4);
	CHECK_EQ(h.batch[1], 4);
	CHECK_EQ(h.batch[2], 2);
	CHECK_EQ(vb.signals - signals0, 3);
	CHECK_EQ(h.npkt, 3);
	CHECK_EQ(h.pkt_msgs[0], 4);
	CHECK_EQ(h.pkt_msgs[1], 4);
	CHECK_EQ(h.pkt_msgs[2], 2);
	CHECK_EQ(h.pkt_bytes[0], 4 * 144);
	CHECK_EQ(h.pkt_bytes[2], 2 * 144);
	CHECK_EQ(h.last_frame_len, 100);
	memcpy(frame + 18, h.last_frame + 18, 8);       /* the sequence number differs */
	CHECK(memcmp(h.last_frame, frame, 100) == 0);

	/* Many more frames than send sections (170): sections are recycled on completion.
	 * burst=1: no frame follows in the burst, so each goes alone, unpadded. */
	nic.burst = 1;
	h.next_seq = 0;
	h.npkt = 0;
	frames0 = h.frames;
	net_bench_frame(frame, ETH_FRAME_MAX, bcast, nic.mac);
	for (uint64_t seq = 0; seq < 2000; seq++) {
		uint8_t *b = nic.tx_buf();
		CHECK(b);
		memcpy(b, frame, ETH_FRAME_MAX);
		net_bench_stamp(b, seq);
		CHECK_EQ(nic.tx_queue(ETH_FRAME_MAX), 0);
	}
	CHECK_EQ(nic.tx_drain(), 0);
	CHECK_EQ(h.frames - frames0, 2000);
	CHECK_EQ(h.next_seq, 2000);
	CHECK_EQ(h.npkt, 256);
	for (uint32_t i = 0; i < h.npkt; i++) {
		CHECK_EQ(h.pkt_msgs[i], 1);
		CHECK_EQ(h.pkt_bytes[i], RNDIS_PACKET_SIZE + ETH_FRAME_MAX);
	}
}

/* Sends `count` bench frames of `size` bytes at nic.burst without draining. */
static void send_frames(uint32_t size, uint32_t count)
{
	uint8_t frame[ETH_FRAME_MAX];
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

	uint64_t seq0 = h.next_seq;     /* the host counts on as it sees frames */

	net_bench_frame(frame, size, bcast, nic.mac);
	for (uint32_t i = 0; i < count; i++) {
		uint8_t *b = nic.tx_buf();
		CHECK(b);
		memcpy(b, frame, size);
		net_bench_stamp(b, seq0 + i);
		CHECK_EQ(nic.tx_queue(size), 0);
	}
}

/* Linux's multi-send data: up to max_pkt_per_msg (8) messages per section, as room allows. */
static void test_tx_multisend(void)
{
	uint64_t signals0, frames0, pkts0;

	/* 64-byte frames, burst 32: four sections of 8 per burst, one signal per burst; the
	 * 108-byte messages are padded to 112 except the burst's last. */
	nic.burst = 32;
	h.next_seq = 0;
	h.npkt = 0;
	h.nbatch = 0;
	signals0 = vb.signals;
	frames0 = h.frames;
	send_frames(64, 64);
	CHECK_EQ(nic.tx_drain(), 0);
	CHECK_EQ(h.frames - frames0, 64);
	CHECK_EQ(h.next_seq, 64);
	CHECK_EQ(vb.signals - signals0, 2);
	CHECK_EQ(h.nbatch, 2);
	CHECK_EQ(h.batch[0], 32);
	CHECK_EQ(h.batch[1], 32);
	CHECK_EQ(h.npkt, 8);
	for (uint32_t i = 0; i < 8; i++) {
		CHECK_EQ(h.pkt_msgs[i], 8);
		CHECK_EQ(h.pkt_bytes[i], i % 4 == 3 ? 7 * 112 + 108 : 8 * 112);
	}

	/* Full-size frames: three fit a 6144-byte section (a fourth would not: 3 x 1560 + 1558). */
	h.next_seq = 0;
	h.npkt = 0;
	frames0 = h.frames;
	send_frames(ETH_FRAME_MAX, 32);
	CHECK_EQ(nic.tx_drain(), 0);
	CHECK_EQ(h.frames - frames0, 32);
	CHECK_EQ(h.next_seq, 32);
	CHECK_EQ(h.npkt, 11);
	for (uint32_t i = 0; i < 10; i++) {
		CHECK_EQ(h.pkt_msgs[i], 3);
		CHECK_EQ(h.pkt_bytes[i], 3 * 1560);
	}
	CHECK_EQ(h.pkt_msgs[10], 2);
	CHECK_EQ(h.pkt_bytes[10], 1560 + 1558);
	CHECK_EQ(h.last_frame_len, ETH_FRAME_MAX);

	/* A burst cut short by tx_flush (the responder's pattern): what is queued goes out in one
	 * section, every message padded (more was expected). */
	h.next_seq = 0;
	h.npkt = 0;
	send_frames(61, 5);
	CHECK_EQ(h.npkt, 0);                    /* nothing is visible before the doorbell */
	CHECK_EQ(nic.tx_flush(), 0);
	CHECK_EQ(h.npkt, 1);
	CHECK_EQ(h.pkt_msgs[0], 5);
	CHECK_EQ(h.pkt_bytes[0], 5 * 112);

	/* Odd sizes at burst 4: 145-byte messages padded to 152, the last one not. */
	nic.burst = 4;
	h.npkt = 0;
	pkts0 = h.data_pkts;
	send_frames(101, 8);
	CHECK_EQ(nic.tx_drain(), 0);
	CHECK_EQ(h.data_pkts - pkts0, 2);
	CHECK_EQ(h.pkt_msgs[0], 4);
	CHECK_EQ(h.pkt_bytes[0], 3 * 152 + 145);
	CHECK_EQ(h.pkt_bytes[1], 3 * 152 + 145);
	CHECK_EQ(h.next_seq, 13);
	nic.burst = 1;
}

static void test_rx(void)
{
	uint8_t m[200];
	const char *why;
	struct rndis_parsed rp;

	/* A host PACKET_MSG with a hash per-packet-info record before the frame. */
	memset(m, 0, sizeof(m));
	uint32_t w[9] = { RNDIS_MSG_PACKET, 44 + 16 + 60, 36 + 16, 60, 0, 0, 0, 36, 16 };
	memcpy(m, w, sizeof(w));
	uint32_t ppi[4] = { 16, 8 /* NBL_HASH_VALUE */, 12, 0xdeadbeef };
	memcpy(m + 44, ppi, 16);
	for (int i = 0; i < 60; i++)
		m[60 + i] = (uint8_t)(0x80 + i);
	CHECK_EQ(rndis_parse(m, 120, &rp, &why), 0);
	nrx = 0;
	nic.rx = capture;
	host_indicate(m, 120, NVSP_CHANNEL_DATA);
	host_indicate(m, 120, NVSP_CHANNEL_DATA);
	host_flush();
	uint32_t comps0 = h.rx_completions;
	CHECK_EQ(nic.poll(), 2);
	CHECK_EQ(nrx, 2);
	CHECK_EQ(rx_lens[0], 60);
	CHECK(memcmp(rx_frames[0], m + 60, 60) == 0);
	CHECK_EQ(h.rx_completions - comps0, 2);
	CHECK_EQ(h.rx_outstanding, 0);

	/* A range outside the receive buffer: completed with FAIL, nothing delivered. */
	struct {
		struct vmtransfer_page_header x;
		struct vmtransfer_page_range r;
	} __attribute__((packed)) hdr = { { NETVSC_RECEIVE_BUFFER_ID, 0, 0, 1 },
					  { 100, (16u << 20) - 50 } };
	uint32_t msg[10] = { NVSP_MSG1_TYPE_SEND_RNDIS_PKT, 0, NETVSC_INVALID_INDEX, 0 };
	quiet_kprintf = 1;
	h.suballoc_busy[9000] = 1;
	h.suballoc_tid[9000] = 0x7777;
	h.rx_outstanding++;
	host_queue(VM_PKT_DATA_USING_XFER_PAGES, 1, 0x7777, &hdr, sizeof(hdr), msg, sizeof(msg));
	/* A wrong transfer page set id: Linux drops it without a completion. */
	hdr.x.xfer_pageset_id = 0x1234;
	hdr.r.byte_offset = 0;
	host_queue(VM_PKT_DATA_USING_XFER_PAGES, 1, 0x8888, &hdr, sizeof(hdr), msg, sizeof(msg));
	host_flush();
	nrx = 0;
	uint32_t fails0 = h.rx_completion_fail;
	comps0 = h.rx_completions;
	CHECK_EQ(nic.poll(), 0);
	quiet_kprintf = 0;
	CHECK_EQ(nrx, 0);
	CHECK_EQ(h.rx_completions - comps0, 1);
	CHECK_EQ(h.rx_completion_fail - fails0, 1);
	CHECK_EQ(h.rx_outstanding, 0);
	nic.rx = 0;
}

static void test_close(void)
{
	CHECK_EQ(nic.close(), 0);
	CHECK(h.halted);
	CHECK(h.revoked_recv && h.revoked_send);
	CHECK(vb.closed && vb.unloaded);
	for (int i = 0; i < vb.ngpadl; i++)
		CHECK(vb.gpadl[i].torn_down);
}

/* Second host: only NVSP 2, media disconnected until an indication, replies before completions. */
static void test_old_host_link_down(void)
{
	host_reset();
	h.accept_version = NVSP_PROTOCOL_VERSION_2;
	h.media_disconnected = 1;
	h.reply_before_completion = 1;
	h.max_pkt = 0;                  /* no batching: one message per section */
	h.align_factor = 0;             /* no padding */
	memset(&nic, 0, sizeof(nic));
	nic.burst = 1;
	CHECK_EQ(netvsc_open(&nic, 1), 0);
	CHECK_EQ(h.nversions, 5);
	CHECK_EQ(h.versions_tried[4], 0x00030002);
	CHECK_EQ(h.ndis_config_caps, NVSP_CAP_IEEE8021Q);
	CHECK_EQ(h.ndis_minor, 1);                      /* NDIS 6.1 at NVSP <= 4 */
	CHECK_EQ(h.filter, NDIS_PACKET_TYPE_PROMISCUOUS);
	CHECK(nic.link_up);
	CHECK_EQ(h.rx_outstanding, 0);
	nic.burst = 8;
	h.npkt = 0;
	send_frames(61, 8);
	CHECK_EQ(nic.tx_drain(), 0);
	CHECK_EQ(h.npkt, 8);
	for (uint32_t i = 0; i < 8; i++) {
		CHECK_EQ(h.pkt_msgs[i], 1);
		CHECK_EQ(h.pkt_bytes[i], RNDIS_PACKET_SIZE + 61);
	}
	CHECK_EQ(nic.close(), 0);
}

/* A host that refuses every version: open fails with a message, not a hang. */
static void test_no_version(void)
{
	host_reset();
	h.accept_version = 0x12345;
	memset(&nic, 0, sizeof(nic));
	nic.burst = 1;
	quiet_kprintf = 1;
	CHECK_EQ(netvsc_open(&nic, 0), -1);
	quiet_kprintf = 0;
	CHECK_EQ(h.nversions, 6);
	CHECK_EQ(h.versions_tried[5], NVSP_PROTOCOL_VERSION_1);
}

int main(void)
{
	test_open();
	test_tx_batches();
	test_tx_multisend();
	test_rx();
	test_close();
	test_old_host_link_down();
	test_no_version();
	printf("netvsc-test: %u checks passed\n", checks);
	return 0;
}
