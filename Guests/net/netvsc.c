/*
 * NetVSC at CPL3 over the stub's VMBus client, polled, following Linux
 * 6.1's hv_netvsc (netvsc.c, rndis_filter.c) step by step so that hv's
 * NetVSP sees the same sequence and wire layout:
 *
 *   open the channel (128-page rings each way, as Linux's ring_size)
 *   NVSP INIT with 6.1, 6.0, 5, 4, 2, 1 (min = max = the candidate) until
 *     INIT_COMPLETE says SUCCESS; SEND_NDIS_CONFIG (v2+: MTU 1514,
 *     capabilities); SEND_NDIS_VER (6.30 above NVSP 4, else 6.1)
 *   receive buffer (16 MiB) GPADL + SEND_RECV_BUF (id 0xCAFE) -> COMPLETE
 *   send buffer (170 x 6144 B rounded to pages) GPADL + SEND_SEND_BUF -> COMPLETE
 *   RNDIS INITIALIZE, QUERY MAXIMUM_FRAME_SIZE, QUERY 802_3_PERMANENT_ADDRESS,
 *     QUERY MEDIA_CONNECT_STATUS, SET CURRENT_PACKET_FILTER (directed |
 *     all-multicast | broadcast), each an RNDIS message in one guest page
 *     sent GPA-direct (page-buffer form) in SEND_RNDIS_PKT channel 1, its
 *     reply arriving in the receive buffer
 *
 * Data: TX batches as Linux's netvsc_send with its multi-send data (msd):
 * each frame goes behind a 44-byte PACKET_MSG header into the open
 * send-buffer section, after the messages already there; while more frames
 * of the burst follow (Linux's xmit_more) its msg_len is padded to the
 * alignment RNDIS INITIALIZE_CMPLT gave (netvsc_copy_to_send_buf). The
 * section goes out as one SEND_RNDIS_PKT (channel 0, section index, bytes
 * used) inband with completion requested when the burst ends, when it holds
 * max_pkt_per_msg messages, or when another full-size frame would not fit
 * (Linux: msd_len + pktlen + pkt_align < section size). The ring is
 * committed (and hv signalled if the ring was empty, interrupt_mask clear)
 * once per `burst` frames; a section is reused when hv's
 * SEND_RNDIS_PKT_COMPLETE for it comes back.
 *
 * RX: VM_PKT_DATA_USING_XFER_PAGES ranges in the receive buffer, one
 * RNDIS message each; every such packet is completed with an 8-byte
 * SEND_RNDIS_PKT_COMPLETE in a VM_PKT_COMP, batched per poll as Linux's
 * send_recv_completions. The inbound ring's interrupt_mask stays set: we poll.
 *
 * Differences from Linux, all on the guest's side of the protocol: no
 * offload or RSS OIDs (not needed for plain frames), SEND_NDIS_CONFIG
 * leaves out the SR-IOV and RSC capabilities (the stub has no VF and does
 * not reassemble RSC), and frames never go GPA-direct (the send section
 * must hold a whole frame). A section is closed as soon as it is full rather
 * than when the next frame finds it full, and "full" is judged for a
 * full-size frame (tx_buf hands out room before the length is known), so a
 * short frame after a long one may start a new section where Linux would
 * still have batched it.
 */
#include "nic.h"
#include "netvsc_proto.h"
#include "proto.h"
#include "../lib/fmt.h"
#include "../lib/io.h"
#include "../lib/string.h"
#include "../vmbus/clock.h"
#include "../vmbus/hyperv.h"
#include "../vmbus/protocol.h"
#include "../vmbus/synic.h"
#include "../vmbus/vmbus.h"

#define NV_RING_BYTES           (HV_PAGE_SIZE + 128 * HV_PAGE_SIZE)
#define NV_RECV_BUF_SIZE        (16u << 20)             /* NETVSC_RECEIVE_BUFFER_DEFAULT */
#define NV_SEND_BUF_SIZE        (((1048576u / 6144u) * 6144u + 4095u) & ~4095u) /* 1044480 */
#define NV_MAX_SECTIONS         (NV_SEND_BUF_SIZE / NETVSC_MTU_MIN)
#define NV_COMP_MAX             16384u
#define NV_PKT_MAX              16384u                  /* one inbound packet after its descriptor */
#define NV_MTU                  1500u

#define TID_INIT                0x1000ull
#define TID_CTRL                (1ull << 62)
#define TID_DATA                (1ull << 63)
#define VMBUS_RQST_ID_NO_RESPONSE (~0ull - 2)           /* Linux: U64_MAX - 2 */

static uint8_t ring_mem[2 * NV_RING_BYTES] __attribute__((aligned(HV_PAGE_SIZE)));
static uint8_t recv_buf[NV_RECV_BUF_SIZE] __attribute__((aligned(HV_PAGE_SIZE)));
static uint8_t send_buf[NV_SEND_BUF_SIZE] __attribute__((aligned(HV_PAGE_SIZE)));
static uint8_t ctrl_msg[HV_PAGE_SIZE] __attribute__((aligned(HV_PAGE_SIZE)));
static uint8_t ctrl_resp[HV_PAGE_SIZE] __attribute__((aligned(8)));
static uint8_t pkt[NV_PKT_MAX] __attribute__((aligned(8)));
static uint32_t free_sections[NV_MAX_SECTIONS];
static uint8_t section_busy[NV_MAX_SECTIONS];
static struct {
	uint64_t tid;
	uint32_t status;
} comps[NV_COMP_MAX];

static struct {
	struct nic *nic;
	struct vmbus_channel ch;
	uint32_t nvsp_version;
	uint32_t recv_gpadl, send_gpadl;
	uint32_t recv_section_size, recv_section_cnt;
	uint32_t send_section_size, send_section_cnt;
	uint32_t nfree;
	/* Linux's msd: the open section, the bytes and messages queued in it */
	uint32_t cur_section;           /* NETVSC_INVALID_INDEX when none is open */
	uint32_t cur_len, cur_count;
	uint32_t in_flight;             /* data sections open or not completed by hv */
	uint32_t queued;                /* frames queued since the last commit */
	/* NVSP request/completion during init */
	uint64_t want_tid;
	int got;
	uint32_t resp_len;
	struct nvsp_message resp;
	uint64_t next_tid;
	/* RNDIS control */
	uint32_t next_req_id, want_req_id;
	int ctrl_got, ctrl_sent;
	uint32_t ctrl_resp_len;
	/* receive completions not yet written to the ring */
	uint32_t comp_head, comp_tail, comp_cap;
	uint64_t tx_errors, complaints;
	uint32_t max_pkt_per_msg, pkt_align;
} nv;

/* A few messages about the host's packets, then silence (a bad host must not flood the UART). */
static int complain(void)
{
	return nv.complaints++ < 10;
}

/* ---- outbound ---- */

static void commit(void)
{
	if (ring_commit_write(&nv.ch.out)) {
		vmbus_signal(&nv.ch);
		nv.nic->doorbells++;
	}
	nv.queued = 0;
}

static int nv_process(void);

/* Writes one packet, waiting (and draining the inbound ring) while the ring is full. */
static int write_packet(uint16_t type, uint16_t flags, uint64_t tid, const void *hdr,
			uint32_t hdr_len, const void *payload, uint32_t len, const char *what)
{
	uint64_t deadline = 0;

	for (;;) {
		enum ring_status s = hdr_len ?
			ring_write_hdr(&nv.ch.out, type, flags, tid, hdr, hdr_len, payload, len) :
			ring_write(&nv.ch.out, type, flags, tid, payload, len);
		if (s == RING_OK)
			return 0;
		if (s != RING_FULL) {
			kprintf("netvsc: outbound ring: %s writing %s\n",
				s == RING_TOO_BIG ? "packet too big" : "corrupt", what);
			return -1;
		}
		commit();
		if (!deadline)
			deadline = deadline_after_ms(nic_timeout_ms);
		if (nv_process() < 0)
			return -1;
		if (deadline_passed(deadline)) {
			kprintf("netvsc: outbound ring full for %u ms writing %s (hv reads "
				"index %u, we write %u)\n", nic_timeout_ms, what,
				nv.ch.out.ctl->read_index, nv.ch.out.priv_write);
			return -1;
		}
		cpu_relax();
	}
}

/* ---- inbound ---- */

static void queue_completion(uint64_t tid, uint32_t status)
{
	uint32_t next = (nv.comp_tail + 1) % nv.comp_cap;

	if (next == nv.comp_head) {
		if (complain())
			kprintf("netvsc: receive completion queue full; dropping tid 0x%lx\n",
				(unsigned long)tid);
		return;
	}
	comps[nv.comp_tail].tid = tid;
	comps[nv.comp_tail].status = status;
	nv.comp_tail = next;
}

/* Linux's send_recv_completions: as many as fit now; the rest on the next poll. */
static void flush_completions(void)
{
	int wrote = 0;

	while (nv.comp_head != nv.comp_tail) {
		uint32_t msg[2] = { NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE,
				    comps[nv.comp_head].status };
		enum ring_status s = ring_write(&nv.ch.out, VM_PKT_COMP, 0, comps[nv.comp_head].tid,
						msg, NVSP_RECV_COMPLETION_SIZE);
		if (s != RING_OK)
			break;
		nv.comp_head = (nv.comp_head + 1) % nv.comp_cap;
		wrote = 1;
	}
	if (wrote)
		commit();
}

static void free_section(uint32_t s)
{
	section_busy[s] = 0;
	free_sections[nv.nfree++] = s;
	nv.in_flight--;
}

static void handle_completion(uint64_t tid, const uint8_t *msg, uint32_t len)
{
	uint32_t type;

	if (len < 4) {
		if (complain())
			kprintf("netvsc: completion 0x%lx with a %u-byte NVSP message\n",
				(unsigned long)tid, len);
		return;
	}
	memcpy(&type, msg, 4);
	if (type == NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE) {
		uint32_t status = NVSP_STAT_NONE;
		if (len >= NVSP_RNDIS_PKT_COMPLETE_MIN)
			memcpy(&status, msg + 4, 4);
		if (status != NVSP_STAT_SUCCESS) {
			nv.tx_errors++;
			if (complain())
				kprintf("netvsc: hv completed send 0x%lx with status %u\n",
					(unsigned long)tid, status);
		}
		if (tid & TID_DATA) {
			uint32_t s = (uint32_t)tid;
			if (s < nv.send_section_cnt && section_busy[s]) {
				free_section(s);
				return;
			}
		} else if ((tid & TID_CTRL) && (uint32_t)tid == nv.want_req_id) {
			nv.ctrl_sent = 1;
			return;
		}
		if (complain())
			kprintf("netvsc: completion for unknown send 0x%lx\n", (unsigned long)tid);
		return;
	}
	if (tid == nv.want_tid && !nv.got) {
		memset(&nv.resp, 0, sizeof(nv.resp));
		memcpy(&nv.resp, msg, len < sizeof(nv.resp) ? len : sizeof(nv.resp));
		nv.resp_len = len;
		nv.got = 1;
		return;
	}
	if (complain())
		kprintf("netvsc: unexpected completion type %u tid 0x%lx\n", type, (unsigned long)tid);
}

static void handle_rndis(const uint8_t *msg, uint32_t len, uint32_t *status)
{
	struct rndis_parsed m;
	const char *why;

	if (rndis_parse(msg, len, &m, &why) < 0) {
		*status = NVSP_STAT_FAIL;
		if (complain())
			kprintf("netvsc: dropping RNDIS message: %s\n", why);
		return;
	}
	switch (m.type) {
	case RNDIS_MSG_PACKET:
		nv.nic->rx_frames++;
		if (nv.nic->rx)
			nv.nic->rx(nv.nic->rx_ctx, msg + m.data_offset, m.data_len);
		return;
	case RNDIS_MSG_INIT_C:
	case RNDIS_MSG_QUERY_C:
	case RNDIS_MSG_SET_C:
		if (m.req_id == nv.want_req_id && !nv.ctrl_got && m.len <= sizeof(ctrl_resp)) {
			memcpy(ctrl_resp, msg, m.len);
			nv.ctrl_resp_len = m.len;
			nv.ctrl_got = 1;
		} else if (complain()) {
			kprintf("netvsc: RNDIS completion 0x%x for request %u (waiting for %u)\n",
				m.type, m.req_id, nv.want_req_id);
		}
		return;
	case RNDIS_MSG_INDICATE:
		if (m.status == RNDIS_STATUS_MEDIA_CONNECT || m.status == RNDIS_STATUS_MEDIA_DISCONNECT) {
			int up = m.status == RNDIS_STATUS_MEDIA_CONNECT;
			if (up != nv.nic->link_up)
				kprintf("netvsc: link %s (RNDIS indication)\n", up ? "up" : "down");
			nv.nic->link_up = up;
		} else if (complain()) {
			kprintf("netvsc: RNDIS status indication 0x%x\n", m.status);
		}
		return;
	default:
		if (complain())
			kprintf("netvsc: unhandled RNDIS message type 0x%x (%u bytes)\n", m.type, m.len);
	}
}

static void handle_xfer(const struct ring_packet *p)
{
	const char *why;
	const uint8_t *payload = pkt + p->header_len;
	int n = nvsp_check_xfer(pkt, p->header_len, payload, p->len, &why);
	uint32_t status = NVSP_STAT_SUCCESS;

	if (n < 0) {            /* Linux drops these without a completion */
		if (complain())
			kprintf("netvsc: dropping transfer-page packet 0x%lx: %s\n",
				(unsigned long)p->trans_id, why);
		return;
	}
	for (int i = 0; i < n; i++) {
		struct vmtransfer_page_range r = nvsp_xfer_range(pkt, (uint32_t)i);
		if (r.byte_offset > NV_RECV_BUF_SIZE || r.byte_count > NV_RECV_BUF_SIZE - r.byte_offset) {
			status = NVSP_STAT_FAIL;
			if (complain())
				kprintf("netvsc: receive range %u+%u outside the buffer\n",
					r.byte_offset, r.byte_count);
			continue;
		}
		handle_rndis(recv_buf + r.byte_offset, r.byte_count, &status);
	}
	queue_completion(p->trans_id, status);
}

/* Everything hv sent so far; returns frames delivered or -1 (corrupt ring). */
static int nv_process(void)
{
	uint64_t before = nv.nic->rx_frames;

	for (int budget = 256; budget > 0; budget--) {
		struct ring_packet p;
		enum ring_status s = ring_read_full(&nv.ch.in, &p, pkt, sizeof(pkt));
		if (s == RING_EMPTY)
			break;
		if (s != RING_OK) {
			kprintf("netvsc: inbound ring: %s\n", s == RING_TOO_BIG ?
				"packet larger than 16 KiB" : "corrupt index or descriptor");
			return -1;
		}
		switch (p.type) {
		case VM_PKT_COMP:
			handle_completion(p.trans_id, pkt + p.header_len, p.len);
			break;
		case VM_PKT_DATA_USING_XFER_PAGES:
			handle_xfer(&p);
			break;
		case VM_PKT_DATA_INBAND:        /* VF association, send table: nothing to do */
			break;
		default:
			if (complain())
				kprintf("netvsc: unhandled packet type %u tid 0x%lx\n", p.type,
					(unsigned long)p.trans_id);
		}
	}
	flush_completions();
	vmbus_recv_commit(&nv.ch);
	return (int)(nv.nic->rx_frames - before);
}

static int wait_flag(const int *flag, const char *what)
{
	uint64_t deadline = deadline_after_ms(nic_timeout_ms);

	while (!*flag) {
		if (nv_process() < 0)
			return -1;
		if (*flag)
			break;
		if (synic_event_test_and_clear(nv.ch.offer->child_relid))
			nv.ch.events++;
		if (deadline_passed(deadline)) {
			kprintf("netvsc: timed out after %u ms waiting for %s\n", nic_timeout_ms, what);
			return -1;
		}
		cpu_relax();
	}
	return 0;
}

/* ---- NVSP requests ---- */

static int nvsp_send(const struct nvsp_message *m, const char *what)
{
	if (write_packet(VM_PKT_DATA_INBAND, 0, VMBUS_RQST_ID_NO_RESPONSE, 0, 0, m,
			 sizeof(*m), what) < 0)
		return -1;
	commit();
	return 0;
}

static int nvsp_request(const struct nvsp_message *m, uint32_t min_len, const char *what)
{
	nv.want_tid = nv.next_tid++;
	nv.got = 0;
	if (write_packet(VM_PKT_DATA_INBAND, VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
			 nv.want_tid, 0, 0, m, sizeof(*m), what) < 0)
		return -1;
	commit();
	if (wait_flag(&nv.got, what) < 0)
		return -1;
	if (nv.resp_len < min_len) {
		kprintf("netvsc: %s: completion of %u bytes, Linux needs %u\n", what, nv.resp_len,
			min_len);
		return -1;
	}
	return 0;
}

static int negotiate(void)
{
	static const uint32_t versions[] = {
		NVSP_PROTOCOL_VERSION_61, NVSP_PROTOCOL_VERSION_6, NVSP_PROTOCOL_VERSION_5,
		NVSP_PROTOCOL_VERSION_4, NVSP_PROTOCOL_VERSION_2, NVSP_PROTOCOL_VERSION_1,
	};
	struct nvsp_message m;

	for (unsigned i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		nvsp_build_init(&m, versions[i]);
		if (nvsp_request(&m, NVSP_INIT_COMPLETE_MIN, "NVSP INIT_COMPLETE") < 0)
			return -1;
		if (nv.resp.msg_type == NVSP_MSG_TYPE_INIT_COMPLETE &&
		    nv.resp.init_complete.status == NVSP_STAT_SUCCESS) {
			nv.nvsp_version = versions[i];
			break;
		}
	}
	if (!nv.nvsp_version) {
		kprintf("netvsc: hv accepted no NVSP version (6.1 down to 1)\n");
		return -1;
	}
	if (nv.nvsp_version > NVSP_PROTOCOL_VERSION_1) {
		uint64_t cap = nvsp_linux_capabilities(nv.nvsp_version) &
			       ~(NVSP_CAP_SRIOV | NVSP_CAP_RSC);
		nvsp_build_ndis_config(&m, NV_MTU + ETH_HLEN, cap);
		if (nvsp_send(&m, "SEND_NDIS_CONFIG") < 0)
			return -1;
	}
	nvsp_build_ndis_version(&m, nv.nvsp_version);
	return nvsp_send(&m, "SEND_NDIS_VER");
}

static int setup_buffers(void)
{
	struct nvsp_message m;
	uint32_t relid = nv.ch.offer->child_relid;

	if (vmbus_gpadl_create(relid, recv_buf, NV_RECV_BUF_SIZE, &nv.recv_gpadl) < 0)
		return -1;
	nvsp_build_send_recv_buf(&m, nv.recv_gpadl);
	if (nvsp_request(&m, NVSP_RECV_BUF_COMPLETE_MIN, "SEND_RECV_BUF_COMPLETE") < 0)
		return -1;
	if (nv.resp.msg_type != NVSP_MSG1_TYPE_SEND_RECV_BUF_COMPLETE ||
	    nv.resp.send_recv_buf_complete.status != NVSP_STAT_SUCCESS) {
		kprintf("netvsc: receive buffer refused: message %u status %u\n", nv.resp.msg_type,
			nv.resp.send_recv_buf_complete.status);
		return -1;
	}
	uint32_t sections = nv.resp.send_recv_buf_complete.num_sections;
	uint32_t offset = nv.resp.send_recv_buf_complete.sections[0].offset;
	nv.recv_section_size = nv.resp.send_recv_buf_complete.sections[0].sub_alloc_size;
	nv.recv_section_cnt = nv.resp.send_recv_buf_complete.sections[0].num_sub_allocs;
	if (sections != 1 || offset != 0 || nv.recv_section_size < NETVSC_MTU_MIN ||
	    (uint64_t)nv.recv_section_size * nv.recv_section_cnt > NV_RECV_BUF_SIZE) {
		kprintf("netvsc: receive buffer layout Linux rejects: %u sections, offset %u, "
			"%u x %u bytes in %u\n", sections, offset, nv.recv_section_cnt,
			nv.recv_section_size, NV_RECV_BUF_SIZE);
		return -1;
	}
	nv.comp_cap = nv.recv_section_cnt + 1 < NV_COMP_MAX ? nv.recv_section_cnt + 1 : NV_COMP_MAX;
	if (nv.comp_cap < 2)
		nv.comp_cap = 2;

	if (vmbus_gpadl_create(relid, send_buf, NV_SEND_BUF_SIZE, &nv.send_gpadl) < 0)
		return -1;
	nvsp_build_send_send_buf(&m, nv.send_gpadl);
	if (nvsp_request(&m, NVSP_SEND_BUF_COMPLETE_MIN, "SEND_SEND_BUF_COMPLETE") < 0)
		return -1;
	if (nv.resp.msg_type != NVSP_MSG1_TYPE_SEND_SEND_BUF_COMPLETE ||
	    nv.resp.send_send_buf_complete.status != NVSP_STAT_SUCCESS) {
		kprintf("netvsc: send buffer refused: message %u status %u\n", nv.resp.msg_type,
			nv.resp.send_send_buf_complete.status);
		return -1;
	}
	nv.send_section_size = nv.resp.send_send_buf_complete.section_size;
	if (nv.send_section_size < NETVSC_MTU_MIN) {
		kprintf("netvsc: send section size %u below %u\n", nv.send_section_size,
			NETVSC_MTU_MIN);
		return -1;
	}
	if (nv.send_section_size < RNDIS_PACKET_SIZE + ETH_FRAME_MAX) {
		kprintf("netvsc: send section size %u cannot hold a %u-byte frame behind its RNDIS "
			"header (the stub never sends frames GPA-direct)\n", nv.send_section_size,
			ETH_FRAME_MAX);
		return -1;
	}
	nv.send_section_cnt = NV_SEND_BUF_SIZE / nv.send_section_size;
	nv.nfree = 0;
	for (uint32_t s = nv.send_section_cnt; s-- > 0;) {
		section_busy[s] = 0;
		free_sections[nv.nfree++] = s;
	}
	nv.cur_section = NETVSC_INVALID_INDEX;
	return 0;
}

/* ---- RNDIS control ---- */

/* Sends ctrl_msg (len bytes) as Linux's rndis_filter_send_request and waits for its reply. */
static int rndis_request(uint32_t len, uint32_t want_type, const char *what)
{
	struct nvsp_message m;
	struct {
		struct vmbus_page_buffer_header h;
		struct hv_page_buffer pb;
	} __attribute__((packed)) hdr = {
		.h = { .reserved = 0, .rangecount = 1 },
		.pb = { .len = len, .offset = 0,
			.pfn = (uint64_t)(uintptr_t)ctrl_msg >> HV_PAGE_SHIFT },
	};
	_Static_assert(sizeof(hdr) == 24, "page buffer header");

	nv.want_req_id = nv.next_req_id - 1;    /* the id the builder just used */
	nv.ctrl_got = nv.ctrl_sent = 0;
	nvsp_build_rndis_pkt(&m, NVSP_CHANNEL_CONTROL, NETVSC_INVALID_INDEX, 0);
	if (write_packet(VM_PKT_DATA_USING_GPA_DIRECT, VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
			 TID_CTRL | nv.want_req_id, &hdr, sizeof(hdr), &m, sizeof(m), what) < 0)
		return -1;
	commit();
	if (wait_flag(&nv.ctrl_sent, what) < 0 || (want_type && wait_flag(&nv.ctrl_got, what) < 0))
		return -1;
	if (!want_type)
		return 0;
	uint32_t type;
	memcpy(&type, ctrl_resp, 4);
	if (type != want_type) {
		kprintf("netvsc: %s: reply type 0x%x, want 0x%x\n", what, type, want_type);
		return -1;
	}
	return 0;
}

static uint32_t req_id(void)
{
	return nv.next_req_id++;
}

/* QUERY oid; on success *out points at the information buffer. */
static int rndis_query(uint32_t oid, const char *what, const uint8_t **out, uint32_t *len)
{
	struct rndis_parsed r;
	const char *why;

	uint32_t n = rndis_build_query(ctrl_msg, req_id(), oid);
	if (rndis_request(n, RNDIS_MSG_QUERY_C, what) < 0)
		return -1;
	if (rndis_parse(ctrl_resp, nv.ctrl_resp_len, &r, &why) < 0) {
		kprintf("netvsc: %s: %s\n", what, why);
		return -1;
	}
	if (r.status != RNDIS_STATUS_SUCCESS) {
		kprintf("netvsc: %s: status 0x%x\n", what, r.status);
		return -1;
	}
	*out = ctrl_resp + r.data_offset;
	*len = r.data_len;
	return 0;
}

static int rndis_init(int promisc)
{
	struct rndis_parsed r;
	const char *why;
	const uint8_t *info;
	uint32_t len, v;

	uint32_t n = rndis_build_init(ctrl_msg, req_id());
	if (rndis_request(n, RNDIS_MSG_INIT_C, "RNDIS INITIALIZE") < 0)
		return -1;
	if (rndis_parse(ctrl_resp, nv.ctrl_resp_len, &r, &why) < 0 ||
	    r.status != RNDIS_STATUS_SUCCESS) {
		kprintf("netvsc: RNDIS INITIALIZE failed: %s\n",
			r.status != RNDIS_STATUS_SUCCESS ? "status not SUCCESS" : why);
		return -1;
	}
	/* rndis_filter_init_device: max_pkt and pkt_align come from the host (a
	 * host that says 0 messages gets one per section; an absurd alignment
	 * falls back to Linux's default of 8). */
	nv.max_pkt_per_msg = r.max_pkt_per_msg ? r.max_pkt_per_msg : 1;
	nv.pkt_align = r.pkt_alignment_factor < 12 ? 1u << r.pkt_alignment_factor : 8;

	if (rndis_query(RNDIS_OID_GEN_MAXIMUM_FRAME_SIZE, "QUERY MAXIMUM_FRAME_SIZE", &info,
			&len) < 0)
		return -1;
	if (len == 4) {
		memcpy(&v, info, 4);
		if (v < NV_MTU)
			kprintf("netvsc: hv's maximum frame size is %u (below %u)\n", v, NV_MTU);
	}
	if (rndis_query(RNDIS_OID_802_3_PERMANENT_ADDRESS, "QUERY 802_3_PERMANENT_ADDRESS", &info,
			&len) < 0)
		return -1;
	if (len != ETH_ALEN || !net_mac_valid(info)) {
		kprintf("netvsc: permanent address: %u bytes%s\n", len,
			len == ETH_ALEN ? ", not a unicast MAC" : ", want 6");
		return -1;
	}
	memcpy(nv.nic->mac, info, ETH_ALEN);
	if (rndis_query(RNDIS_OID_GEN_MEDIA_CONNECT_STATUS, "QUERY MEDIA_CONNECT_STATUS", &info,
			&len) < 0)
		return -1;
	if (len == 4) {
		memcpy(&v, info, 4);
		nv.nic->link_up = v == 0;       /* NdisMediaStateConnected */
	}

	uint32_t filter = promisc ? NDIS_PACKET_TYPE_PROMISCUOUS :
		NDIS_PACKET_TYPE_BROADCAST | NDIS_PACKET_TYPE_ALL_MULTICAST | NDIS_PACKET_TYPE_DIRECTED;
	n = rndis_build_set(ctrl_msg, req_id(), RNDIS_OID_GEN_CURRENT_PACKET_FILTER, &filter, 4);
	if (rndis_request(n, RNDIS_MSG_SET_C, "SET CURRENT_PACKET_FILTER") < 0)
		return -1;
	if (rndis_parse(ctrl_resp, nv.ctrl_resp_len, &r, &why) < 0 ||
	    r.status != RNDIS_STATUS_SUCCESS) {
		kprintf("netvsc: SET CURRENT_PACKET_FILTER refused (status 0x%x)\n", r.status);
		return -1;
	}
	if (!nv.nic->link_up) {
		kprintf("netvsc: media disconnected; waiting for a connect indication\n");
		if (wait_flag(&nv.nic->link_up, "RNDIS MEDIA_CONNECT") < 0)
			return -1;
	}
	return 0;
}

/* ---- data path ---- */

/* Sends the open section as one SEND_RNDIS_PKT (Linux's netvsc_send_pkt for msd). */
static int send_section(void)
{
	struct nvsp_message m;
	uint32_t s = nv.cur_section;

	nvsp_build_rndis_pkt(&m, NVSP_CHANNEL_DATA, s, nv.cur_len);
	nv.cur_section = NETVSC_INVALID_INDEX;
	nv.cur_len = nv.cur_count = 0;
	return write_packet(VM_PKT_DATA_INBAND, VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED,
			    TID_DATA | s, 0, 0, &m, sizeof(m), "SEND_RNDIS_PKT");
}

static int nv_tx_flush(void)
{
	int r = nv.cur_count ? send_section() : 0;

	commit();
	return r;
}

static uint8_t *nv_tx_buf(void)
{
	if (nv.cur_section == NETVSC_INVALID_INDEX) {
		if (!nv.nfree) {
			uint64_t deadline = deadline_after_ms(nic_timeout_ms);
			commit();
			while (!nv.nfree) {
				if (nv_process() < 0)
					return 0;
				if (deadline_passed(deadline)) {
					kprintf("netvsc: all %u send sections busy for %u ms (hv "
						"completed none)\n", nv.send_section_cnt,
						nic_timeout_ms);
					return 0;
				}
				cpu_relax();
			}
		}
		nv.cur_section = free_sections[--nv.nfree];
		nv.cur_len = nv.cur_count = 0;
		section_busy[nv.cur_section] = 1;
		nv.in_flight++;
	}
	/* An open section always has room for a full-size frame (nv_tx_queue closes it otherwise). */
	return send_buf + (uint64_t)nv.cur_section * nv.send_section_size + nv.cur_len +
	       RNDIS_PACKET_SIZE;
}

static int nv_tx_queue(uint32_t len)
{
	if (nv.cur_section == NETVSC_INVALID_INDEX || len < ETH_HLEN || len > ETH_FRAME_MAX) {
		kprintf("netvsc: tx_queue(%u) without a buffer or out of range\n", len);
		return -1;
	}
	uint8_t *msg = send_buf + (uint64_t)nv.cur_section * nv.send_section_size + nv.cur_len;
	uint32_t msg_len = RNDIS_PACKET_SIZE + len;
	int more = ++nv.queued < nv.nic->burst;         /* Linux's xmit_more */

	rndis_build_packet(msg, len);
	if (more) {
		/* netvsc_copy_to_send_buf: pad to pkt_align, inside msg_len, zeroed. */
		uint32_t pad = -msg_len & (nv.pkt_align - 1);
		if (pad) {
			for (uint32_t i = 0; i < pad; i++)      /* a few bytes: no rep stosb */
				msg[msg_len + i] = 0;
			msg_len += pad;
			__builtin_memcpy(msg + 4, &msg_len, 4);
		}
	}
	nv.cur_len += msg_len;
	nv.cur_count++;
	if (!more || nv.cur_count >= nv.max_pkt_per_msg ||
	    nv.cur_len + RNDIS_PACKET_SIZE + ETH_FRAME_MAX + nv.pkt_align >= nv.send_section_size) {
		if (send_section() < 0)
			return -1;
	}
	if (!more)
		commit();
	return 0;
}

static int nv_tx_drain(void)
{
	uint64_t deadline = deadline_after_ms(nic_timeout_ms);

	if (nv_tx_flush() < 0)
		return -1;
	/* A section tx_buf handed out for a frame never queued stays ours. */
	uint32_t pending = nv.cur_section != NETVSC_INVALID_INDEX;
	while (nv.in_flight > pending) {
		if (nv_process() < 0)
			return -1;
		if (deadline_passed(deadline)) {
			kprintf("netvsc: %u sends not completed after %u ms\n", nv.in_flight - pending,
				nic_timeout_ms);
			return -1;
		}
		cpu_relax();
	}
	return nv.tx_errors ? -1 : 0;
}

static int nv_poll(void)
{
	return nv_process();
}

static int nv_close(void)
{
	struct nvsp_message m;
	uint32_t relid = nv.ch.offer->child_relid;

	if (nv_tx_drain() < 0)
		return -1;
	/* rndis_filter_halt_device: HALT (no reply, only the send completion). */
	uint32_t id = req_id();
	uint32_t halt[3] = { RNDIS_MSG_HALT, 12, id };
	memcpy(ctrl_msg, halt, sizeof(halt));
	if (rndis_request(sizeof(halt), 0, "RNDIS HALT") < 0)
		return -1;
	/* netvsc_device_remove: revoke both buffers, close, then tear the GPADLs down. */
	memset(&m, 0, sizeof(m));
	m.msg_type = NVSP_MSG1_TYPE_REVOKE_RECV_BUF;
	m.revoke_buf.id = NETVSC_RECEIVE_BUFFER_ID;
	if (nvsp_send(&m, "REVOKE_RECV_BUF") < 0)
		return -1;
	memset(&m, 0, sizeof(m));
	m.msg_type = NVSP_MSG1_TYPE_REVOKE_SEND_BUF;
	m.revoke_buf.id = NETVSC_SEND_BUFFER_ID;
	if (nvsp_send(&m, "REVOKE_SEND_BUF") < 0)
		return -1;
	flush_completions();
	if (vmbus_close(&nv.ch) < 0 || vmbus_gpadl_teardown(relid, nv.recv_gpadl) < 0 ||
	    vmbus_gpadl_teardown(relid, nv.send_gpadl) < 0 || vmbus_unload() < 0)
		return -1;
	return 0;
}

int netvsc_open(struct nic *nic, int promisc)
{
	static const uint8_t netvsc_class[16] = HV_NETVSC_GUID;

	memset(&nv, 0, sizeof(nv));
	nv.nic = nic;
	nv.next_tid = TID_INIT;
	nv.next_req_id = 1;             /* Linux: atomic_inc_return from 0 */
	nv.comp_cap = 2;
	nic->name = "netvsc";
	nic->poll = nv_poll;
	nic->tx_buf = nv_tx_buf;
	nic->tx_queue = nv_tx_queue;
	nic->tx_flush = nv_tx_flush;
	nic->tx_drain = nv_tx_drain;
	nic->close = nv_close;

	if (vmbus_connect(hv_info.vp_index) < 0 || vmbus_request_offers() < 0)
		return -1;
	const struct vmbus_offer *o = vmbus_find_offer(netvsc_class);
	if (!o) {
		kprintf("netvsc: hv offered no synthetic NIC (class f8615163-df3e-46c5-913f-"
			"f2d2f965ed0e) among %u offers\n", vmbus.noffers);
		return -2;
	}
	if (vmbus_open(&nv.ch, o, ring_mem, NV_RING_BYTES, NV_RING_BYTES) < 0)
		return -1;
	/* We poll the inbound ring: hv need not interrupt us. */
	ring_set_interrupt_mask(&nv.ch.in, 1);
	if (negotiate() < 0 || setup_buffers() < 0 || rndis_init(promisc) < 0)
		return -1;
	kprintf("netvsc: relid=%u nvsp=0x%x recv=%ux%u send=%ux%u max-pkt=%u align=%u\n",
		o->child_relid, nv.nvsp_version, nv.recv_section_cnt, nv.recv_section_size,
		nv.send_section_cnt, nv.send_section_size, nv.max_pkt_per_msg, nv.pkt_align);
	return 0;
}
