/* VMBus client, CPL3 (see vmbus.h). */
#include "vmbus.h"
#include "clock.h"
#include "gpadl.h"
#include "hypercall.h"
#include "synic.h"
#include "../lib/fmt.h"
#include "../lib/io.h"
#include "../lib/string.h"

struct vmbus_connection vmbus;
uint32_t vmbus_timeout_ms = 10000;
static uint32_t next_gpadl = VMBUS_FIRST_GPADL;

/*
 * INITIATE_CONTACT below 5.0 names an interrupt page (host->guest bits in
 * the first half, guest->host in the second) and, at every version, two
 * monitor pages. We use none of them (offers come with is_dedicated and
 * without monitor ids from hv), but like Linux we hand over real pages.
 */
static uint8_t int_page[HV_PAGE_SIZE] __attribute__((aligned(HV_PAGE_SIZE)));
static uint8_t monitor_pages[2][HV_PAGE_SIZE] __attribute__((aligned(HV_PAGE_SIZE)));

static const struct {
	uint8_t guid[16];
	const char *name;
} known_classes[] = {
	{ HV_HEARTBEAT_GUID, "heartbeat" },
	{ HV_SHUTDOWN_GUID, "shutdown" },
	{ HV_ECHO_GUID, "echo" },
	{ GUID_BYTES(0xf8615163, 0xdf3e, 0x46c5, 0x91, 0x3f, 0xf2, 0xd2, 0xf9, 0x65, 0xed, 0x0e), "netvsc" },
	{ GUID_BYTES(0xba6163d9, 0x04a1, 0x4d29, 0xb6, 0x05, 0x72, 0xe2, 0xff, 0xb1, 0xdc, 0x7f), "storvsc" },
	{ GUID_BYTES(0x9527e630, 0xd0ae, 0x497b, 0xad, 0xce, 0xe8, 0x0a, 0xb0, 0x17, 0x5c, 0xaf), "timesync" },
	{ GUID_BYTES(0xa9a0f4e7, 0x5a45, 0x4d96, 0xb8, 0x27, 0x8a, 0x84, 0x1e, 0x8c, 0x03, 0xe6), "kvp" },
};

const char *vmbus_class_name(const uint8_t class_guid[16])
{
	for (unsigned i = 0; i < sizeof(known_classes) / sizeof(known_classes[0]); i++)
		if (guid_equal(class_guid, known_classes[i].guid))
			return known_classes[i].name;
	return "unknown";
}

static const char *msg_name(uint32_t type)
{
	static const char *const names[] = {
		"INVALID", "OFFERCHANNEL", "RESCIND_CHANNELOFFER", "REQUESTOFFERS",
		"ALLOFFERS_DELIVERED", "OPENCHANNEL", "OPENCHANNEL_RESULT", "CLOSECHANNEL",
		"GPADL_HEADER", "GPADL_BODY", "GPADL_CREATED", "GPADL_TEARDOWN",
		"GPADL_TORNDOWN", "RELID_RELEASED", "INITIATE_CONTACT", "VERSION_RESPONSE",
		"UNLOAD", "UNLOADRESPONSE",
	};
	return type < sizeof(names) / sizeof(names[0]) ? names[type] : "message";
}

/* ---- control messages ---- */

static int post(const void *msg, uint32_t size)
{
	const struct vmbus_msg_header *h = msg;
	uint16_t status = hv_post_message(vmbus.msg_conn_id, msg, size, 0);

	if (status != HV_STATUS_SUCCESS) {
		kprintf("vmbus: HvPostMessage(%s) failed: status 0x%x\n", msg_name(h->msgtype),
			status);
		return -1;
	}
	return 0;
}

static void record_offer(const struct vmbus_offer_channel *o)
{
	if (vmbus.noffers == VMBUS_MAX_OFFERS) {
		kprintf("vmbus: more than %u offers; ignoring relid %u\n", VMBUS_MAX_OFFERS,
			o->child_relid);
		return;
	}
	struct vmbus_offer *r = &vmbus.offers[vmbus.noffers++];
	memcpy(r->if_type, o->if_type, 16);
	memcpy(r->if_instance, o->if_instance, 16);
	r->child_relid = o->child_relid;
	r->connection_id = o->connection_id;
	r->chn_flags = o->chn_flags;
	r->sub_channel_index = o->sub_channel_index;
	r->monitor_id = o->monitor_id;
	r->monitor_allocated = o->monitor_allocated & 1;
	r->is_dedicated_interrupt = o->is_dedicated_interrupt & 1;
	r->rescinded = 0;
}

/* A message nobody waits for: a late offer, a rescind, or noise. */
static void unsolicited(const struct synic_message *m)
{
	const struct vmbus_msg_header *h = (const void *)m->payload;

	if (h->msgtype == CHANNELMSG_RESCIND_CHANNELOFFER) {
		const struct vmbus_rescind_offer *r = (const void *)m->payload;
		for (unsigned i = 0; i < vmbus.noffers; i++)
			if (vmbus.offers[i].child_relid == r->child_relid)
				vmbus.offers[i].rescinded = 1;
		kprintf("vmbus: host rescinded relid %u\n", r->child_relid);
	} else if (h->msgtype == CHANNELMSG_OFFERCHANNEL) {
		record_offer((const void *)m->payload);
	} else {
		kprintf("vmbus: ignoring unexpected %s (type %u)\n", msg_name(h->msgtype),
			h->msgtype);
	}
}

/* The next well-formed VMBus message, or -1 after vmbus_timeout_ms. */
static int next_message(struct synic_message *m, const char *waiting_for)
{
	uint64_t deadline = deadline_after_ms(vmbus_timeout_ms);

	for (;;) {
		if (synic_poll(m)) {
			const struct vmbus_msg_header *h = (const void *)m->payload;
			if (m->type != HVMSG_VMBUS) {
				kprintf("vmbus: ignoring SynIC message type 0x%x\n", m->type);
				continue;
			}
			/* Linux drops unknown types and short messages (vmbus_on_msg_dpc). */
			if (m->size < sizeof(*h) || h->msgtype >= CHANNELMSG_COUNT ||
			    m->size < vmbus_msg_min_size(h->msgtype)) {
				kprintf("vmbus: dropping malformed message (type %u, %u bytes)\n",
					m->size >= sizeof(*h) ? h->msgtype : 0, m->size);
				continue;
			}
			return 0;
		}
		if (deadline_passed(deadline)) {
			kprintf("vmbus: timed out after %u ms waiting for %s\n", vmbus_timeout_ms,
				waiting_for);
			return -1;
		}
		cpu_relax();
	}
}

/*
 * Waits for a message of `type` whose u32 at payload offset `key_offset`
 * equals `key` (key_offset 0: any). Others are handled as unsolicited.
 */
static int wait_message(uint32_t type, unsigned key_offset, uint32_t key,
			struct synic_message *m)
{
	for (;;) {
		if (next_message(m, msg_name(type)) < 0)
			return -1;
		const struct vmbus_msg_header *h = (const void *)m->payload;
		if (h->msgtype == type) {
			uint32_t k;
			memcpy(&k, (const uint8_t *)m->payload + key_offset, 4);
			if (!key_offset || k == key)
				return 0;
			kprintf("vmbus: ignoring %s for %u (waiting for %u)\n", msg_name(type), k, key);
			continue;
		}
		unsolicited(m);
	}
}

int vmbus_connect(uint32_t vp_index)
{
	/* Linux 6.1's vmbus_versions, newest first (5.0+ contact on id 4). */
	static const uint32_t versions[] = {
		VMBUS_VERSION_WIN10_V5_3, VMBUS_VERSION_WIN10_V5_2, VMBUS_VERSION_WIN10_V5_1,
		VMBUS_VERSION_WIN10_V5, VMBUS_VERSION_WIN10_V4_1, VMBUS_VERSION_WIN10,
		VMBUS_VERSION_WIN8_1, VMBUS_VERSION_WIN8,
	};
	struct synic_message m;

	vmbus.vp_index = vp_index;
	for (unsigned i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		uint32_t v = versions[i];
		struct vmbus_initiate_contact msg;
		uint32_t conn;

		memset(&msg, 0, sizeof(msg));
		msg.header.msgtype = CHANNELMSG_INITIATE_CONTACT;
		msg.version_requested = v;
		msg.target_vcpu = vp_index;
		if (v >= VMBUS_VERSION_WIN10_V5) {
			msg.msg_sint = VMBUS_MESSAGE_SINT;
			conn = VMBUS_MESSAGE_CONNECTION_ID_4;
		} else {
			msg.interrupt_page = (uint64_t)(uintptr_t)int_page;
			conn = VMBUS_MESSAGE_CONNECTION_ID;
		}
		msg.monitor_page1 = (uint64_t)(uintptr_t)monitor_pages[0];
		msg.monitor_page2 = (uint64_t)(uintptr_t)monitor_pages[1];

		uint16_t status = hv_post_message(conn, &msg, sizeof(msg), 1);
		if (status == HV_STATUS_INVALID_CONNECTION_ID)
			continue;       /* no port 4: a host older than 5.0 */
		if (status != HV_STATUS_SUCCESS) {
			kprintf("vmbus: INITIATE_CONTACT %u.%u on connection %u: status 0x%x\n",
				v >> 16, v & 0xffff, conn, status);
			continue;       /* Linux moves on to the next version too */
		}
		if (wait_message(CHANNELMSG_VERSION_RESPONSE, 0, 0, &m) < 0)
			return -1;
		const struct vmbus_version_response *r = (const void *)m.payload;
		if (!r->version_supported)
			continue;
		vmbus.version = v;
		vmbus.msg_conn_id = v >= VMBUS_VERSION_WIN10_V5 ? r->msg_conn_id
								 : VMBUS_MESSAGE_CONNECTION_ID;
		return 0;
	}
	kprintf("vmbus: host accepted none of the versions 5.3 to 2.4\n");
	return -1;
}

int vmbus_request_offers(void)
{
	struct vmbus_msg_header req = { CHANNELMSG_REQUESTOFFERS, 0 };
	struct synic_message m;

	if (post(&req, sizeof(req)) < 0)
		return -1;
	for (;;) {
		if (next_message(&m, "OFFERCHANNEL or ALLOFFERS_DELIVERED") < 0)
			return -1;
		const struct vmbus_msg_header *h = (const void *)m.payload;
		if (h->msgtype == CHANNELMSG_ALLOFFERS_DELIVERED)
			return 0;
		unsolicited(&m);        /* records offers */
	}
}

const struct vmbus_offer *vmbus_find_offer(const uint8_t class_guid[16])
{
	for (unsigned i = 0; i < vmbus.noffers; i++)
		if (guid_equal(vmbus.offers[i].if_type, class_guid) &&
		    vmbus.offers[i].sub_channel_index == 0 && !vmbus.offers[i].rescinded)
			return &vmbus.offers[i];
	return 0;
}

int vmbus_unload(void)
{
	struct vmbus_msg_header req = { CHANNELMSG_UNLOAD, 0 };
	struct synic_message m;

	if (vmbus.version < VMBUS_VERSION_WIN8_1)
		return 0;
	if (post(&req, sizeof(req)) < 0)
		return -1;
	if (wait_message(CHANNELMSG_UNLOAD_RESPONSE, 0, 0, &m) < 0)
		return -1;
	vmbus.version = 0;
	return 0;
}

int vmbus_gpadl_create(uint32_t relid, void *mem, uint32_t bytes, uint32_t *handle)
{
	uint64_t msg[HV_MESSAGE_PAYLOAD_MAX / 8];
	uint32_t pages = bytes / HV_PAGE_SIZE, h = next_gpadl++;
	unsigned count = gpadl_message_count(pages);
	struct synic_message m;

	if (!count || bytes % HV_PAGE_SIZE || (uintptr_t)mem % HV_PAGE_SIZE) {
		kprintf("vmbus: cannot describe %u bytes at 0x%lx as a GPADL\n", bytes,
			(unsigned long)(uintptr_t)mem);
		return -1;
	}
	for (unsigned i = 0; i < count; i++) {
		uint32_t size = gpadl_build_message(msg, relid, h,
						    (uint64_t)(uintptr_t)mem >> HV_PAGE_SHIFT,
						    pages, i);
		if (post(msg, size) < 0)
			return -1;
	}
	if (wait_message(CHANNELMSG_GPADL_CREATED, offsetof(struct vmbus_gpadl_created, gpadl),
			 h, &m) < 0)
		return -1;
	const struct vmbus_gpadl_created *c = (const void *)m.payload;
	if (c->child_relid != relid || c->creation_status != 0) {
		kprintf("vmbus: GPADL 0x%x for relid %u: host answered relid %u status 0x%x\n",
			h, relid, c->child_relid, c->creation_status);
		return -1;
	}
	*handle = h;
	return 0;
}

int vmbus_gpadl_teardown(uint32_t relid, uint32_t handle)
{
	struct vmbus_gpadl_teardown msg;
	struct synic_message m;

	memset(&msg, 0, sizeof(msg));
	msg.header.msgtype = CHANNELMSG_GPADL_TEARDOWN;
	msg.child_relid = relid;
	msg.gpadl = handle;
	if (post(&msg, sizeof(msg)) < 0)
		return -1;
	return wait_message(CHANNELMSG_GPADL_TORNDOWN, offsetof(struct vmbus_gpadl_torndown, gpadl),
			    handle, &m);
}

int vmbus_open(struct vmbus_channel *ch, const struct vmbus_offer *o, void *mem,
	       uint32_t send_bytes, uint32_t recv_bytes)
{
	struct vmbus_open_channel msg;
	struct synic_message m;

	memset(ch, 0, sizeof(*ch));
	if (send_bytes % HV_PAGE_SIZE || recv_bytes % HV_PAGE_SIZE ||
	    send_bytes < 2 * HV_PAGE_SIZE || recv_bytes < 2 * HV_PAGE_SIZE) {
		kprintf("vmbus: ring sizes %u/%u: want a control page plus data pages\n",
			send_bytes, recv_bytes);
		return -1;
	}
	ch->offer = o;
	ch->ring_mem = mem;
	ch->send_bytes = send_bytes;
	ch->recv_bytes = recv_bytes;
	/* Both control pages zeroed, with feat_pending_send_sz, before hv sees them. */
	ring_init(&ch->out, mem, send_bytes);
	ring_init(&ch->in, (uint8_t *)mem + send_bytes, recv_bytes);

	if (vmbus_gpadl_create(o->child_relid, mem, send_bytes + recv_bytes, &ch->gpadl) < 0)
		return -1;

	memset(&msg, 0, sizeof(msg));
	msg.header.msgtype = CHANNELMSG_OPENCHANNEL;
	msg.child_relid = o->child_relid;
	msg.openid = o->child_relid;
	msg.ringbuffer_gpadl = ch->gpadl;
	msg.target_vp = vmbus.vp_index;
	msg.downstream_page_offset = send_bytes / HV_PAGE_SIZE;
	if (post(&msg, sizeof(msg)) < 0)
		return -1;
	if (wait_message(CHANNELMSG_OPENCHANNEL_RESULT,
			 offsetof(struct vmbus_open_result, child_relid), o->child_relid, &m) < 0)
		return -1;
	const struct vmbus_open_result *r = (const void *)m.payload;
	if (r->status != 0) {
		kprintf("vmbus: OPENCHANNEL relid %u refused: status 0x%x\n", o->child_relid,
			r->status);
		return -1;
	}
	ch->open = 1;
	return 0;
}

int vmbus_close(struct vmbus_channel *ch)
{
	struct vmbus_close_channel msg;

	memset(&msg, 0, sizeof(msg));
	msg.header.msgtype = CHANNELMSG_CLOSECHANNEL;
	msg.child_relid = ch->offer->child_relid;
	if (post(&msg, sizeof(msg)) < 0)        /* no answer: teardown says when hv let go */
		return -1;
	ch->open = 0;
	if (vmbus_gpadl_teardown(ch->offer->child_relid, ch->gpadl) < 0)
		return -1;
	ch->gpadl = 0;
	return 0;
}

/* ---- data path ---- */

void vmbus_signal(struct vmbus_channel *ch)
{
	/* Without a dedicated interrupt the host also looks at the shared page. */
	if (!ch->offer->is_dedicated_interrupt) {
		uint32_t relid = ch->offer->child_relid;
		uint32_t *send_bits = (uint32_t *)(int_page + HV_PAGE_SIZE / 2);
		__atomic_fetch_or(&send_bits[(relid / 32) % (HV_PAGE_SIZE / 8)], 1u << (relid % 32),
				  __ATOMIC_SEQ_CST);
	}
	ch->signals++;
	hv_signal_event(ch->offer->connection_id);
}

enum ring_status vmbus_send_inband(struct vmbus_channel *ch, uint64_t trans_id,
				   const void *buf, uint32_t len)
{
	enum ring_status s = ring_write(&ch->out, VM_PKT_DATA_INBAND, 0, trans_id, buf, len);

	if (s == RING_OK && ring_commit_write(&ch->out))
		vmbus_signal(ch);
	return s;
}

void vmbus_recv_commit(struct vmbus_channel *ch)
{
	if (ring_commit_read(&ch->in))
		vmbus_signal(ch);
}

enum ring_status vmbus_recv_wait(struct vmbus_channel *ch, struct ring_packet *p,
				 void *buf, uint32_t size, const char *what)
{
	uint64_t deadline = deadline_after_ms(vmbus_timeout_ms);

	for (;;) {
		enum ring_status s = ring_read(&ch->in, p, buf, size);
		if (s == RING_OK)
			vmbus_recv_commit(ch);
		if (s != RING_EMPTY)
			return s;
		/* We poll the ring; the event flag only tells us hv signalled. */
		if (synic_event_test_and_clear(ch->offer->child_relid))
			ch->events++;
		if (deadline_passed(deadline)) {
			kprintf("vmbus: timed out after %u ms waiting for %s on relid %u\n",
				vmbus_timeout_ms, what, ch->offer->child_relid);
			return RING_EMPTY;
		}
		cpu_relax();
	}
}
