/*
 * NetVSC wire formats (Linux 6.1 drivers/net/hyperv/hyperv_net.h,
 * include/linux/rndis.h; shared/reference/vmbus-protocol.md §5): NVSP
 * messages (always sent as the 40-byte struct nvsp_message), the transfer-
 * page header of receive packets, the GPA-direct page-buffer header, and
 * RNDIS messages with their builders and a checked parser. Little-endian
 * (x86), packed. Pure C: the host-side unit test links it too.
 */
#ifndef NET_NETVSC_PROTO_H
#define NET_NETVSC_PROTO_H
#include <stddef.h>
#include <stdint.h>

/* {f8615163-df3e-46c5-913f-f2d2f965ed0e} */
#define HV_NETVSC_GUID GUID_BYTES(0xf8615163, 0xdf3e, 0x46c5, \
	0x91, 0x3f, 0xf2, 0xd2, 0xf9, 0x65, 0xed, 0x0e)

/* ---- NVSP ---- */
#define NVSP_PROTOCOL_VERSION_1         0x00000002u
#define NVSP_PROTOCOL_VERSION_2         0x00030002u
#define NVSP_PROTOCOL_VERSION_4         0x00040000u
#define NVSP_PROTOCOL_VERSION_5         0x00050000u
#define NVSP_PROTOCOL_VERSION_6         0x00060000u
#define NVSP_PROTOCOL_VERSION_61        0x00060001u

enum {
	NVSP_MSG_TYPE_INIT = 1,
	NVSP_MSG_TYPE_INIT_COMPLETE = 2,
	NVSP_MSG1_TYPE_SEND_NDIS_VER = 100,
	NVSP_MSG1_TYPE_SEND_RECV_BUF = 101,
	NVSP_MSG1_TYPE_SEND_RECV_BUF_COMPLETE = 102,
	NVSP_MSG1_TYPE_REVOKE_RECV_BUF = 103,
	NVSP_MSG1_TYPE_SEND_SEND_BUF = 104,
	NVSP_MSG1_TYPE_SEND_SEND_BUF_COMPLETE = 105,
	NVSP_MSG1_TYPE_REVOKE_SEND_BUF = 106,
	NVSP_MSG1_TYPE_SEND_RNDIS_PKT = 107,
	NVSP_MSG1_TYPE_SEND_RNDIS_PKT_COMPLETE = 108,
	NVSP_MSG2_TYPE_SEND_NDIS_CONFIG = 125,
	NVSP_MSG4_TYPE_SEND_VF_ASSOCIATION = 128,
	NVSP_MSG5_TYPE_SEND_INDIRECTION_TABLE = 134,
};

enum {
	NVSP_STAT_NONE = 0,
	NVSP_STAT_SUCCESS = 1,
	NVSP_STAT_FAIL = 2,
};

#define NVSP_MESSAGE_SIZE               40u     /* sizeof(struct nvsp_message) */
#define NETVSC_RECEIVE_BUFFER_ID        0xcafe
#define NETVSC_SEND_BUFFER_ID           0
#define NETVSC_INVALID_INDEX            0xffffffffu
#define NETVSC_MTU_MIN                  68u     /* ETH_MIN_MTU: smallest section Linux accepts */
#define NVSP_CHANNEL_DATA               0       /* RMC_DATA */
#define NVSP_CHANNEL_CONTROL            1       /* RMC_CONTROL */

/* nvsp_2_vsc_capability bits (SEND_NDIS_CONFIG) */
#define NVSP_CAP_VMQ                    (1ull << 0)
#define NVSP_CAP_CHIMNEY                (1ull << 1)
#define NVSP_CAP_SRIOV                  (1ull << 2)
#define NVSP_CAP_IEEE8021Q              (1ull << 3)
#define NVSP_CAP_CORRELATION_ID         (1ull << 4)
#define NVSP_CAP_TEAMING                (1ull << 5)
#define NVSP_CAP_VSUBNETID              (1ull << 6)
#define NVSP_CAP_RSC                    (1ull << 7)

struct nvsp_message {
	uint32_t msg_type;
	union {
		struct { uint32_t min_protocol_ver, max_protocol_ver; } __attribute__((packed)) init;
		struct { uint32_t negotiated_protocol_ver, max_mdl_chain_len, status; }
			__attribute__((packed)) init_complete;
		struct { uint32_t ndis_major_ver, ndis_minor_ver; } __attribute__((packed)) send_ndis_ver;
		struct { uint32_t gpadl_handle; uint16_t id; } __attribute__((packed)) send_recv_buf;
		struct {
			uint32_t status;
			uint32_t num_sections;
			struct {
				uint32_t offset, sub_alloc_size, num_sub_allocs, end_offset;
			} __attribute__((packed)) sections[1];
		} __attribute__((packed)) send_recv_buf_complete;
		struct { uint32_t gpadl_handle; uint16_t id; } __attribute__((packed)) send_send_buf;
		struct { uint32_t status, section_size; } __attribute__((packed)) send_send_buf_complete;
		struct { uint16_t id; } __attribute__((packed)) revoke_buf;
		struct {
			uint32_t channel_type;
			uint32_t send_buf_section_index;
			uint32_t send_buf_section_size;
		} __attribute__((packed)) send_rndis_pkt;
		struct { uint32_t status; } __attribute__((packed)) send_rndis_pkt_complete;
		struct { uint32_t mtu, reserved; uint64_t capability; } __attribute__((packed))
			send_ndis_config;
		uint8_t raw[NVSP_MESSAGE_SIZE - 4];
	};
} __attribute__((packed));
_Static_assert(sizeof(struct nvsp_message) == NVSP_MESSAGE_SIZE, "nvsp_message");
_Static_assert(offsetof(struct nvsp_message, send_recv_buf_complete.sections[0].end_offset) == 24,
	       "recv buf section");
_Static_assert(offsetof(struct nvsp_message, send_ndis_config.capability) == 12, "ndis config");

/* What Linux's completion length checks require of host messages (header + body). */
#define NVSP_INIT_COMPLETE_MIN          16u
#define NVSP_RECV_BUF_COMPLETE_MIN      28u
#define NVSP_SEND_BUF_COMPLETE_MIN      12u
#define NVSP_RNDIS_PKT_COMPLETE_MIN     8u
/* The guest's receive completion: header + status, as Linux's send_recv_completions. */
#define NVSP_RECV_COMPLETION_SIZE       8u

void nvsp_build_init(struct nvsp_message *m, uint32_t version);
/* MTU = payload + 14, as Linux (ndev->mtu + ETH_HLEN). */
void nvsp_build_ndis_config(struct nvsp_message *m, uint32_t mtu, uint64_t capability);
/* NDIS 6.30 above NVSP 4, else 6.1 (netvsc_connect_vsp). */
void nvsp_build_ndis_version(struct nvsp_message *m, uint32_t nvsp_version);
void nvsp_build_send_recv_buf(struct nvsp_message *m, uint32_t gpadl);
void nvsp_build_send_send_buf(struct nvsp_message *m, uint32_t gpadl);
void nvsp_build_rndis_pkt(struct nvsp_message *m, uint32_t channel_type, uint32_t section,
			  uint32_t size);
/* The capabilities Linux 6.1 announces for `version` (negotiate_nvsp_ver). */
uint64_t nvsp_linux_capabilities(uint32_t version);

/* ---- VMBus packet headers NetVSC uses ---- */

/* Between the descriptor and the payload of VM_PKT_DATA_USING_XFER_PAGES. */
struct vmtransfer_page_header {
	uint16_t xfer_pageset_id;
	uint8_t sender_owns_set;
	uint8_t reserved;
	uint32_t range_cnt;
	/* then range_cnt x { u32 byte_count, u32 byte_offset } */
} __attribute__((packed));

struct vmtransfer_page_range {
	uint32_t byte_count;
	uint32_t byte_offset;
} __attribute__((packed));

/* Between the descriptor and the payload of VM_PKT_DATA_USING_GPA_DIRECT (page-buffer form). */
struct vmbus_page_buffer_header {
	uint32_t reserved;
	uint32_t rangecount;
	/* then rangecount x struct hv_page_buffer */
} __attribute__((packed));

struct hv_page_buffer {
	uint32_t len;
	uint32_t offset;
	uint64_t pfn;
} __attribute__((packed));

_Static_assert(sizeof(struct vmtransfer_page_header) == 8, "xfer page header");
_Static_assert(sizeof(struct vmtransfer_page_range) == 8, "xfer page range");
_Static_assert(sizeof(struct hv_page_buffer) == 16, "hv_page_buffer");

/*
 * Checks a transfer-page packet as Linux's netvsc_receive does: `hdr` is
 * what follows the descriptor (header_len bytes), `payload` the NVSP
 * message (payload_len bytes). Returns the range count, or -1 with *why set
 * when the packet must be dropped without looking at the ranges.
 */
int nvsp_check_xfer(const void *hdr, uint32_t header_len, const void *payload,
		    uint32_t payload_len, const char **why);
/* Range i of a checked transfer-page packet. */
static inline struct vmtransfer_page_range nvsp_xfer_range(const void *hdr, uint32_t i)
{
	struct vmtransfer_page_range r;

	__builtin_memcpy(&r, (const uint8_t *)hdr + sizeof(struct vmtransfer_page_header) +
			 8 * i, sizeof(r));
	return r;
}

/* ---- RNDIS ---- */
#define RNDIS_MSG_PACKET                0x00000001u
#define RNDIS_MSG_INIT                  0x00000002u
#define RNDIS_MSG_HALT                  0x00000003u
#define RNDIS_MSG_QUERY                 0x00000004u
#define RNDIS_MSG_SET                   0x00000005u
#define RNDIS_MSG_RESET                 0x00000006u
#define RNDIS_MSG_INDICATE              0x00000007u
#define RNDIS_MSG_KEEPALIVE             0x00000008u
#define RNDIS_MSG_INIT_C                0x80000002u
#define RNDIS_MSG_QUERY_C               0x80000004u
#define RNDIS_MSG_SET_C                 0x80000005u
#define RNDIS_MSG_RESET_C               0x80000006u
#define RNDIS_MSG_KEEPALIVE_C           0x80000008u

#define RNDIS_MAJOR_VERSION             1u
#define RNDIS_MINOR_VERSION             0u
#define RNDIS_MAX_XFER_SIZE             0x4000u /* what Linux asks for */

#define RNDIS_STATUS_SUCCESS            0x00000000u
#define RNDIS_STATUS_MEDIA_CONNECT      0x4001000bu
#define RNDIS_STATUS_MEDIA_DISCONNECT   0x4001000cu

#define RNDIS_OID_GEN_MAXIMUM_FRAME_SIZE        0x00010106u
#define RNDIS_OID_GEN_LINK_SPEED                0x00010107u
#define RNDIS_OID_GEN_CURRENT_PACKET_FILTER     0x0001010eu
#define RNDIS_OID_GEN_MEDIA_CONNECT_STATUS      0x00010114u
#define RNDIS_OID_802_3_PERMANENT_ADDRESS       0x01010101u

#define NDIS_PACKET_TYPE_DIRECTED       0x00000001u
#define NDIS_PACKET_TYPE_MULTICAST      0x00000002u
#define NDIS_PACKET_TYPE_ALL_MULTICAST  0x00000004u
#define NDIS_PACKET_TYPE_BROADCAST      0x00000008u
#define NDIS_PACKET_TYPE_PROMISCUOUS    0x00000020u

#define RNDIS_HEADER_SIZE               8u      /* ndis_msg_type + msg_len */
#define RNDIS_INIT_SIZE                 24u
#define RNDIS_QUERY_SIZE                28u     /* + info buffer */
#define RNDIS_SET_SIZE                  28u     /* + info buffer */
#define RNDIS_PACKET_SIZE               44u     /* header + struct rndis_packet */
#define RNDIS_PACKET_BODY               36u     /* sizeof(struct rndis_packet) */

/* struct rndis_packet, after the 8-byte header; offsets relative to its start. */
struct rndis_packet {
	uint32_t data_offset;
	uint32_t data_len;
	uint32_t oob_data_offset;
	uint32_t oob_data_len;
	uint32_t num_oob_data_elements;
	uint32_t per_pkt_info_offset;
	uint32_t per_pkt_info_len;
	uint32_t vc_handle;
	uint32_t reserved;
} __attribute__((packed));
_Static_assert(sizeof(struct rndis_packet) == RNDIS_PACKET_BODY, "rndis_packet");

uint32_t rndis_build_init(void *buf, uint32_t req_id);
uint32_t rndis_build_query(void *buf, uint32_t req_id, uint32_t oid);
uint32_t rndis_build_set(void *buf, uint32_t req_id, uint32_t oid, const void *data,
			 uint32_t len);
/*
 * The PACKET_MSG header for a frame of frame_len bytes that follows it
 * directly, laid out as Linux's netvsc_xmit with one queue and no offload:
 * no per-packet info (offset 36, length 0), data at offset 36. Returns
 * RNDIS_PACKET_SIZE; msg_len = RNDIS_PACKET_SIZE + frame_len.
 */
uint32_t rndis_build_packet(void *buf, uint32_t frame_len);

/* One parsed RNDIS message (from the receive buffer). */
struct rndis_parsed {
	uint32_t type;
	uint32_t len;                   /* msg_len */
	uint32_t req_id;                /* completions */
	uint32_t status;                /* completions, INDICATE */
	/* PACKET_MSG: the frame. QUERY_C: the information buffer. */
	uint32_t data_offset;           /* from the message start */
	uint32_t data_len;
	/* INIT_C */
	uint32_t major, minor, max_pkt_per_msg, max_xfer_size, pkt_alignment_factor;
};

/*
 * Checks one RNDIS message of `len` bytes (a receive-buffer range) the way
 * Linux's rndis_filter_receive and its helpers do, and fills *out. Returns
 * 0, or -1 with *why for a message to drop (too short, msg_len beyond the
 * range, data or information buffer outside the message).
 */
int rndis_parse(const void *msg, uint32_t len, struct rndis_parsed *out, const char **why);

#endif
