/*
 * VMBus client, CPL3 (Linux 6.1 drivers/hv/connection.c, channel_mgmt.c,
 * channel.c): version negotiation, offers, GPADLs, open/close, unload, and
 * sending/receiving packets on a channel's rings.
 *
 * Control messages go out with HvPostMessage and come back in SINT2's
 * message slot, which is polled; every wait for hv is bounded by
 * vmbus_timeout_ms (TSC-based) and fails with a message rather than hang.
 * Functions print what went wrong ("vmbus: ...") and return -1 on failure.
 */
#ifndef VMBUS_VMBUS_H
#define VMBUS_VMBUS_H
#include <stdint.h>
#include "protocol.h"
#include "ring.h"

#define VMBUS_MAX_OFFERS        32
#define VMBUS_FIRST_GPADL       0xe1e10u        /* Linux's first handle */

struct vmbus_offer {
	uint8_t if_type[16];            /* device class */
	uint8_t if_instance[16];
	uint32_t child_relid;
	uint32_t connection_id;         /* HvSignalEvent target */
	uint16_t chn_flags;
	uint16_t sub_channel_index;
	uint8_t monitor_id;
	uint8_t monitor_allocated;
	uint8_t is_dedicated_interrupt;
	uint8_t rescinded;
};

struct vmbus_channel {
	const struct vmbus_offer *offer;
	struct ring out;                /* guest -> host, pages [0, send) */
	struct ring in;                 /* host -> guest, pages [send, send + recv) */
	void *ring_mem;
	uint32_t send_bytes, recv_bytes;
	uint32_t gpadl;                 /* 0 while none */
	int open;
	uint64_t signals;               /* HvSignalEvent calls for this channel */
	uint64_t events;                /* SIEF flags hv set for it (seen while polling) */
};

struct vmbus_connection {
	uint32_t version;               /* negotiated, major << 16 | minor; 0 = none */
	uint32_t msg_conn_id;           /* connection id for every message after contact */
	uint32_t vp_index;              /* ours: INITIATE_CONTACT.target_vcpu, OPEN target_vp */
	unsigned noffers;
	struct vmbus_offer offers[VMBUS_MAX_OFFERS];
};

extern struct vmbus_connection vmbus;
extern uint32_t vmbus_timeout_ms;      /* per wait for hv; default 10000 */

/* INITIATE_CONTACT, newest version first (5.3..5.0 on id 4, 4.1..2.4 on id 1). */
int vmbus_connect(uint32_t vp_index);
/* REQUESTOFFERS; collects OFFERCHANNEL until ALLOFFERS_DELIVERED. */
int vmbus_request_offers(void);
/* The first offer of this class (primary channel), or NULL. */
const struct vmbus_offer *vmbus_find_offer(const uint8_t class_guid[16]);
/* UNLOAD -> UNLOADRESPONSE (skipped below protocol 3.0, as Linux does). */
int vmbus_unload(void);

/* GPADL_HEADER/BODY -> GPADL_CREATED for `bytes` (whole pages) at mem. */
int vmbus_gpadl_create(uint32_t relid, void *mem, uint32_t bytes, uint32_t *handle);
/* GPADL_TEARDOWN -> GPADL_TORNDOWN. */
int vmbus_gpadl_teardown(uint32_t relid, uint32_t handle);

/*
 * Rings over mem (page-aligned): send_bytes then recv_bytes, each a control
 * page plus whole data pages; one GPADL for both; OPENCHANNEL ->
 * OPENCHANNEL_RESULT.
 */
int vmbus_open(struct vmbus_channel *ch, const struct vmbus_offer *o, void *mem,
	       uint32_t send_bytes, uint32_t recv_bytes);
/* CLOSECHANNEL, then the ring GPADL's teardown. */
int vmbus_close(struct vmbus_channel *ch);

/* HvSignalEvent on the channel's connection id. */
void vmbus_signal(struct vmbus_channel *ch);
/* One inband packet, committed and signalled per the ring rules; RING_* status. */
enum ring_status vmbus_send_inband(struct vmbus_channel *ch, uint64_t trans_id,
				   const void *buf, uint32_t len);
/*
 * The next packet, consumed and committed (signalling hv if it waits for
 * the space), waiting up to vmbus_timeout_ms. RING_OK, or RING_EMPTY on
 * timeout (after printing `what`), or the ring error.
 */
enum ring_status vmbus_recv_wait(struct vmbus_channel *ch, struct ring_packet *p,
				 void *buf, uint32_t size, const char *what);
/* Publishes the inbound read index after ring_read batches; signals if due. */
void vmbus_recv_commit(struct vmbus_channel *ch);

/* "heartbeat", "shutdown", "echo", ... for a known class, else "unknown". */
const char *vmbus_class_name(const uint8_t class_guid[16]);

#endif
