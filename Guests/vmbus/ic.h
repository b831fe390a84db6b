/*
 * Integration components (heartbeat, shutdown, ...), guest side, as Linux
 * 6.1's drivers/hv/hv_util.c answers them. Every IC message is an inband
 * packet: vmbuspipe_hdr, icmsg_hdr, then the message. The host opens with
 * ICMSGTYPE_NEGOTIATE (framework and service versions it offers); the guest
 * picks one of each (vmbus_prep_negotiate_resp). The guest answers each
 * request in place, in the same buffer and length, with icflags =
 * TRANSACTION | RESPONSE, as an inband packet echoing the request id.
 * Pure C: the host-side unit test links it too.
 */
#ifndef VMBUS_IC_H
#define VMBUS_IC_H
#include <stdint.h>

#define ICMSGTYPE_NEGOTIATE     0
#define ICMSGTYPE_HEARTBEAT     1
#define ICMSGTYPE_SHUTDOWN      3

#define ICMSGHDRFLAG_TRANSACTION 1
#define ICMSGHDRFLAG_REQUEST    2
#define ICMSGHDRFLAG_RESPONSE   4

#define HV_E_FAIL               0x80004005u
#define IC_VERSION_NEGOTIATION_MAX_VER_COUNT 100

#define IC_VERSION(major, minor) ((uint32_t)(major) << 16 | (minor))
/* Linux's fw_versions (UTIL_FW_VERSION, UTIL_WS2K8_FW_VERSION) and hb_versions. */
#define IC_FW_VERSIONS          { IC_VERSION(3, 0), IC_VERSION(1, 0) }
#define IC_HEARTBEAT_VERSIONS   { IC_VERSION(3, 0), IC_VERSION(1, 0) }

struct vmbuspipe_hdr {
	uint32_t flags;
	uint32_t msgsize;
} __attribute__((packed));

struct ic_version {
	uint16_t major;
	uint16_t minor;
} __attribute__((packed));

struct icmsg_hdr {
	struct ic_version icverframe;
	uint16_t icmsgtype;
	struct ic_version icvermsg;
	uint16_t icmsgsize;
	uint32_t status;
	uint8_t ictransaction_id;
	uint8_t icflags;
	uint8_t reserved[2];
} __attribute__((packed));

struct icmsg_negotiate {
	uint16_t icframe_vercnt;
	uint16_t icmsg_vercnt;
	uint32_t reserved;
	struct ic_version icversion_data[];     /* framework versions, then service */
} __attribute__((packed));

struct heartbeat_msg_data {
	uint64_t seq_num;
	uint32_t reserved[8];
} __attribute__((packed));

#define ICMSG_HDR (sizeof(struct vmbuspipe_hdr) + sizeof(struct icmsg_hdr))  /* 28 */
#define ICMSG_NEGOTIATE_PKT_SIZE(nframe, nmsg) \
	(ICMSG_HDR + sizeof(struct icmsg_negotiate) + ((nframe) + (nmsg)) * sizeof(struct ic_version))
/* Room the negotiate response writes (two versions) whatever the request's size. */
#define IC_BUFFER_MIN (ICMSG_HDR + sizeof(struct icmsg_negotiate) + 2 * sizeof(struct ic_version))

_Static_assert(sizeof(struct icmsg_hdr) == 20, "icmsg_hdr");
_Static_assert(sizeof(struct icmsg_negotiate) == 8, "icmsg_negotiate");
_Static_assert(sizeof(struct heartbeat_msg_data) == 40, "heartbeat_msg_data");

enum ic_result {
	IC_DROP,                /* too short to answer: Linux drops it, so do we */
	IC_NEGOTIATED,          /* negotiate answered with a version pair */
	IC_NEGOTIATE_FAILED,    /* negotiate answered with no common version */
	IC_HEARTBEAT,           /* heartbeat answered with seq_num + 1 */
	IC_UNKNOWN,             /* answered with status HV_E_FAIL */
};

struct ic_outcome {
	uint16_t msgtype;
	uint32_t framework_version;     /* IC_NEGOTIATED: major << 16 | minor */
	uint32_t service_version;
	uint64_t seq_num;               /* IC_HEARTBEAT: the request's */
};

/*
 * vmbus_prep_negotiate_resp: picks our first framework and service version
 * the host also lists, and rewrites the negotiate message in buf (len bytes
 * received, capacity >= IC_BUFFER_MIN) into the answer. Returns 1 when both
 * were found.
 */
int ic_prep_negotiate_resp(uint8_t *buf, uint32_t len,
			   const uint32_t *fw, unsigned nfw, const uint32_t *srv, unsigned nsrv,
			   uint32_t *nego_fw, uint32_t *nego_srv);

/*
 * heartbeat_onchannelcallback for one request: turns the request in buf
 * (len bytes, capacity >= IC_BUFFER_MIN) into the response, in place. Unless
 * the result is IC_DROP, send `len` bytes of buf back inband with the
 * request's transaction id.
 */
enum ic_result ic_heartbeat_respond(uint8_t *buf, uint32_t len, struct ic_outcome *out);

#endif
