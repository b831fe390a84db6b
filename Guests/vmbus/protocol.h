/*
 * VMBus wire formats: SynIC message slot, channel-management messages,
 * ring-buffer packets, GUIDs. Little-endian, packed, as in Linux 6.1's
 * include/linux/hyperv.h and include/asm-generic/hyperv-tlfs.h (see
 * shared/reference/vmbus-protocol.md §2-§4). Pure declarations: this header
 * is also compiled into the host-side unit test.
 */
#ifndef VMBUS_PROTOCOL_H
#define VMBUS_PROTOCOL_H
#include <stddef.h>
#include <stdint.h>

#define HV_PAGE_SIZE            4096u
#define HV_PAGE_SHIFT           12

/* ---- SynIC message slot (struct hv_message): 16 slots of 256 bytes ---- */
#define HV_MESSAGE_SIZE         256u
#define HV_MESSAGE_PAYLOAD_MAX  240u    /* HV_MESSAGE_PAYLOAD_BYTE_COUNT */
#define HVMSG_NONE              0u
#define HVMSG_VMBUS             1u      /* the only message type VMBus uses */
#define HV_MSG_FLAG_PENDING     0x01u   /* message_flags.msg_pending */

struct hv_message_header {
	uint32_t message_type;
	uint8_t payload_size;
	uint8_t message_flags;
	uint8_t reserved[2];
	uint64_t sender;                /* port/originator: VMBus leaves it 0 */
} __attribute__((packed));

/* HvPostMessage input block (struct hv_input_post_message). */
struct hv_post_message_input {
	uint32_t connection_id;         /* bits 23:0 */
	uint32_t reserved;
	uint32_t message_type;          /* HVMSG_VMBUS */
	uint32_t payload_size;          /* <= 240 */
	uint8_t payload[HV_MESSAGE_PAYLOAD_MAX];
} __attribute__((packed));

/* ---- VMBus protocol versions (major << 16 | minor) ---- */
#define VMBUS_VERSION_WIN8      0x00020004u
#define VMBUS_VERSION_WIN8_1    0x00030000u
#define VMBUS_VERSION_WIN10     0x00040000u
#define VMBUS_VERSION_WIN10_V4_1 0x00040001u
#define VMBUS_VERSION_WIN10_V5  0x00050000u
#define VMBUS_VERSION_WIN10_V5_1 0x00050001u
#define VMBUS_VERSION_WIN10_V5_2 0x00050002u
#define VMBUS_VERSION_WIN10_V5_3 0x00050003u

#define VMBUS_MESSAGE_SINT      2
#define VMBUS_MESSAGE_CONNECTION_ID   1u        /* protocol < 5.0 */
#define VMBUS_MESSAGE_CONNECTION_ID_4 4u        /* INITIATE_CONTACT for >= 5.0 */

/* ---- channel-management messages (enum vmbus_channel_message_type) ---- */
enum {
	CHANNELMSG_INVALID = 0,
	CHANNELMSG_OFFERCHANNEL = 1,
	CHANNELMSG_RESCIND_CHANNELOFFER = 2,
	CHANNELMSG_REQUESTOFFERS = 3,
	CHANNELMSG_ALLOFFERS_DELIVERED = 4,
	CHANNELMSG_OPENCHANNEL = 5,
	CHANNELMSG_OPENCHANNEL_RESULT = 6,
	CHANNELMSG_CLOSECHANNEL = 7,
	CHANNELMSG_GPADL_HEADER = 8,
	CHANNELMSG_GPADL_BODY = 9,
	CHANNELMSG_GPADL_CREATED = 10,
	CHANNELMSG_GPADL_TEARDOWN = 11,
	CHANNELMSG_GPADL_TORNDOWN = 12,
	CHANNELMSG_RELID_RELEASED = 13,
	CHANNELMSG_INITIATE_CONTACT = 14,
	CHANNELMSG_VERSION_RESPONSE = 15,
	CHANNELMSG_UNLOAD = 16,
	CHANNELMSG_UNLOAD_RESPONSE = 17,
	CHANNELMSG_COUNT = 25,          /* 18..24: reserved channels, hv_sock, modify */
};

struct vmbus_msg_header {
	uint32_t msgtype;
	uint32_t padding;
} __attribute__((packed));

struct vmbus_initiate_contact {
	struct vmbus_msg_header header;
	uint32_t version_requested;
	uint32_t target_vcpu;           /* VP index that receives host messages */
	union {
		uint64_t interrupt_page;        /* < 5.0 */
		struct {
			uint8_t msg_sint;       /* >= 5.0: VMBUS_MESSAGE_SINT */
			uint8_t msg_vtl;
			uint8_t reserved[6];
		};
	};
	uint64_t monitor_page1;
	uint64_t monitor_page2;
} __attribute__((packed));

struct vmbus_version_response {
	struct vmbus_msg_header header;
	uint8_t version_supported;
	uint8_t connection_state;
	uint16_t padding;
	uint32_t msg_conn_id;           /* >= 5.0: the id for every later message */
} __attribute__((packed));

struct vmbus_offer_channel {
	struct vmbus_msg_header header;
	uint8_t if_type[16];            /* device class */
	uint8_t if_instance[16];
	uint64_t reserved1, reserved2;
	uint16_t chn_flags;
	uint16_t mmio_megabytes;
	uint8_t user_def[120];
	uint16_t sub_channel_index;
	uint16_t reserved3;
	uint32_t child_relid;
	uint8_t monitor_id;
	uint8_t monitor_allocated;      /* bit 0 */
	uint16_t is_dedicated_interrupt;        /* bit 0 */
	uint32_t connection_id;         /* the guest signals the host with this */
} __attribute__((packed));

struct vmbus_rescind_offer {
	struct vmbus_msg_header header;
	uint32_t child_relid;
} __attribute__((packed));

struct vmbus_open_channel {
	struct vmbus_msg_header header;
	uint32_t child_relid;
	uint32_t openid;                /* Linux: child_relid */
	uint32_t ringbuffer_gpadl;
	uint32_t target_vp;
	uint32_t downstream_page_offset;        /* host->guest ring, in pages */
	uint8_t userdata[120];
} __attribute__((packed));

struct vmbus_open_result {
	struct vmbus_msg_header header;
	uint32_t child_relid;
	uint32_t openid;
	uint32_t status;                /* 0 = success */
} __attribute__((packed));

struct vmbus_close_channel {
	struct vmbus_msg_header header;
	uint32_t child_relid;
} __attribute__((packed));

struct vmbus_gpa_range {
	uint32_t byte_count;
	uint32_t byte_offset;
	uint64_t pfn[];
} __attribute__((packed));

struct vmbus_gpadl_header {
	struct vmbus_msg_header header;
	uint32_t child_relid;
	uint32_t gpadl;
	uint16_t range_buflen;          /* bytes of all ranges, header + bodies */
	uint16_t rangecount;
	struct vmbus_gpa_range range[];
} __attribute__((packed));

struct vmbus_gpadl_body {
	struct vmbus_msg_header header;
	uint32_t msgnumber;
	uint32_t gpadl;
	uint64_t pfn[];
} __attribute__((packed));

struct vmbus_gpadl_created {
	struct vmbus_msg_header header;
	uint32_t child_relid;
	uint32_t gpadl;
	uint32_t creation_status;       /* 0 = success */
} __attribute__((packed));

struct vmbus_gpadl_teardown {
	struct vmbus_msg_header header;
	uint32_t child_relid;
	uint32_t gpadl;
} __attribute__((packed));

struct vmbus_gpadl_torndown {
	struct vmbus_msg_header header;
	uint32_t gpadl;
} __attribute__((packed));

_Static_assert(sizeof(struct hv_message_header) == 16, "hv_message_header");
_Static_assert(sizeof(struct hv_post_message_input) == 256, "hv_input_post_message");
_Static_assert(sizeof(struct vmbus_initiate_contact) == 40, "initiate_contact");
_Static_assert(sizeof(struct vmbus_version_response) == 16, "version_response");
_Static_assert(sizeof(struct vmbus_offer_channel) == 196, "offer_channel");
_Static_assert(offsetof(struct vmbus_offer_channel, child_relid) == 184, "offer relid");
_Static_assert(sizeof(struct vmbus_open_channel) == 148, "open_channel");
_Static_assert(sizeof(struct vmbus_open_result) == 20, "open_result");
_Static_assert(sizeof(struct vmbus_close_channel) == 12, "close_channel");
_Static_assert(sizeof(struct vmbus_gpadl_header) == 20, "gpadl_header");
_Static_assert(sizeof(struct vmbus_gpadl_body) == 16, "gpadl_body");
_Static_assert(sizeof(struct vmbus_gpadl_created) == 20, "gpadl_created");
_Static_assert(sizeof(struct vmbus_gpadl_teardown) == 16, "gpadl_teardown");
_Static_assert(sizeof(struct vmbus_gpadl_torndown) == 12, "gpadl_torndown");

/* Smallest payload of each host->guest message Linux accepts (it drops shorter). */
static inline uint32_t vmbus_msg_min_size(uint32_t msgtype)
{
	switch (msgtype) {
	case CHANNELMSG_OFFERCHANNEL:           return sizeof(struct vmbus_offer_channel);
	case CHANNELMSG_RESCIND_CHANNELOFFER:   return sizeof(struct vmbus_rescind_offer);
	case CHANNELMSG_OPENCHANNEL_RESULT:     return sizeof(struct vmbus_open_result);
	case CHANNELMSG_GPADL_CREATED:          return sizeof(struct vmbus_gpadl_created);
	case CHANNELMSG_GPADL_TORNDOWN:         return sizeof(struct vmbus_gpadl_torndown);
	case CHANNELMSG_VERSION_RESPONSE:       return sizeof(struct vmbus_version_response);
	default:                                return sizeof(struct vmbus_msg_header);
	}
}

/* ---- ring-buffer packets (struct vmpacket_descriptor) ---- */
enum {
	VM_PKT_DATA_INBAND = 0x6,
	VM_PKT_DATA_USING_XFER_PAGES = 0x7,
	VM_PKT_DATA_USING_GPA_DIRECT = 0x9,
	VM_PKT_COMP = 0xb,
};
#define VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED 1

struct vmpacket_descriptor {
	uint16_t type;
	uint16_t offset8;               /* payload offset, 8-byte units (>= 2) */
	uint16_t len8;                  /* whole packet, 8-byte units; no trailer */
	uint16_t flags;
	uint64_t trans_id;
} __attribute__((packed));
_Static_assert(sizeof(struct vmpacket_descriptor) == 16, "vmpacket_descriptor");

/* ---- GUIDs: the wire form (first three fields little-endian) ---- */
#define GUID_BYTES(a, b, c, d0, d1, d2, d3, d4, d5, d6, d7) {                  \
	(uint8_t)(a), (uint8_t)((a) >> 8), (uint8_t)((a) >> 16), (uint8_t)((a) >> 24), \
	(uint8_t)(b), (uint8_t)((b) >> 8), (uint8_t)(c), (uint8_t)((c) >> 8),  \
	d0, d1, d2, d3, d4, d5, d6, d7 }

/* {57164f39-9115-4e78-ab55-382f3bd5422d} */
#define HV_HEARTBEAT_GUID GUID_BYTES(0x57164f39, 0x9115, 0x4e78, \
	0xab, 0x55, 0x38, 0x2f, 0x3b, 0xd5, 0x42, 0x2d)
/* {0e0b6031-5213-4934-818b-38d90ced39db} */
#define HV_SHUTDOWN_GUID GUID_BYTES(0x0e0b6031, 0x5213, 0x4934, \
	0x81, 0x8b, 0x38, 0xd9, 0x0c, 0xed, 0x39, 0xdb)
/* {3f1bd8a4-9b6a-4b44-8c8b-68766563686f}: hv's echo device (`hv bench vmbus`) */
#define HV_ECHO_GUID GUID_BYTES(0x3f1bd8a4, 0x9b6a, 0x4b44, \
	0x8c, 0x8b, 0x68, 0x76, 0x65, 0x63, 0x68, 0x6f)

/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (as Linux's %pUl): out needs 37 bytes. */
static inline void guid_format(char out[37], const uint8_t g[16])
{
	static const char hex[] = "0123456789abcdef";
	/* Byte order of each printed group: the first three are little-endian. */
	static const uint8_t order[16] = { 3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15 };
	unsigned o = 0;

	for (unsigned i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[g[order[i]] >> 4];
		out[o++] = hex[g[order[i]] & 15];
	}
	out[o] = '\0';
}

static inline int guid_equal(const uint8_t a[16], const uint8_t b[16])
{
	for (unsigned i = 0; i < 16; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

#endif
