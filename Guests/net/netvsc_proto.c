/* NVSP and RNDIS messages (see netvsc_proto.h). */
#include "netvsc_proto.h"

static void zero(void *p, uint32_t n)
{
	__builtin_memset(p, 0, n);
}

static void put32(void *buf, uint32_t off, uint32_t v)
{
	__builtin_memcpy((uint8_t *)buf + off, &v, 4);
}

static uint32_t get32(const void *buf, uint32_t off)
{
	uint32_t v;

	__builtin_memcpy(&v, (const uint8_t *)buf + off, 4);
	return v;
}

/* ---- NVSP ---- */

void nvsp_build_init(struct nvsp_message *m, uint32_t version)
{
	zero(m, sizeof(*m));
	m->msg_type = NVSP_MSG_TYPE_INIT;
	m->init.min_protocol_ver = version;
	m->init.max_protocol_ver = version;
}

void nvsp_build_ndis_config(struct nvsp_message *m, uint32_t mtu, uint64_t capability)
{
	zero(m, sizeof(*m));
	m->msg_type = NVSP_MSG2_TYPE_SEND_NDIS_CONFIG;
	m->send_ndis_config.mtu = mtu;
	m->send_ndis_config.capability = capability;
}

void nvsp_build_ndis_version(struct nvsp_message *m, uint32_t nvsp_version)
{
	uint32_t ndis = nvsp_version <= NVSP_PROTOCOL_VERSION_4 ? 0x00060001u : 0x0006001eu;

	zero(m, sizeof(*m));
	m->msg_type = NVSP_MSG1_TYPE_SEND_NDIS_VER;
	m->send_ndis_ver.ndis_major_ver = ndis >> 16;
	m->send_ndis_ver.ndis_minor_ver = ndis & 0xffff;
}

void nvsp_build_send_recv_buf(struct nvsp_message *m, uint32_t gpadl)
{
	zero(m, sizeof(*m));
	m->msg_type = NVSP_MSG1_TYPE_SEND_RECV_BUF;
	m->send_recv_buf.gpadl_handle = gpadl;
	m->send_recv_buf.id = NETVSC_RECEIVE_BUFFER_ID;
}

void nvsp_build_send_send_buf(struct nvsp_message *m, uint32_t gpadl)
{
	zero(m, sizeof(*m));
	m->msg_type = NVSP_MSG1_TYPE_SEND_SEND_BUF;
	m->send_send_buf.gpadl_handle = gpadl;
	m->send_send_buf.id = NETVSC_SEND_BUFFER_ID;
}

void nvsp_build_rndis_pkt(struct nvsp_message *m, uint32_t channel_type, uint32_t section,
			  uint32_t size)
{
	zero(m, sizeof(*m));
	m->msg_type = NVSP_MSG1_TYPE_SEND_RNDIS_PKT;
	m->send_rndis_pkt.channel_type = channel_type;
	m->send_rndis_pkt.send_buf_section_index = section;
	m->send_rndis_pkt.send_buf_section_size = section == NETVSC_INVALID_INDEX ? 0 : size;
}

uint64_t nvsp_linux_capabilities(uint32_t version)
{
	uint64_t cap = NVSP_CAP_IEEE8021Q;

	if (version >= NVSP_PROTOCOL_VERSION_5)
		cap |= NVSP_CAP_SRIOV | NVSP_CAP_TEAMING;
	if (version >= NVSP_PROTOCOL_VERSION_61)
		cap |= NVSP_CAP_RSC;
	return cap;
}

int nvsp_check_xfer(const void *hdr, uint32_t header_len, const void *payload,
		    uint32_t payload_len, const char **why)
{
	struct vmtransfer_page_header h;

	if (payload_len < 4) {
		*why = "NVSP message shorter than its header";
		return -1;
	}
	if (get32(payload, 0) != NVSP_MSG1_TYPE_SEND_RNDIS_PKT) {
		*why = "transfer-page packet that is not SEND_RNDIS_PKT";
		return -1;
	}
	/* Linux: (offset8 << 3) >= sizeof(vmtransfer_page_packet_header) = 16 + 8 + 8. */
	if (header_len < sizeof(h) + sizeof(struct vmtransfer_page_range)) {
		*why = "transfer-page header too short";
		return -1;
	}
	__builtin_memcpy(&h, hdr, sizeof(h));
	if (h.xfer_pageset_id != NETVSC_RECEIVE_BUFFER_ID) {
		*why = "transfer page set id is not 0xcafe";
		return -1;
	}
	if ((uint64_t)sizeof(h) + 8ull * h.range_cnt > header_len) {
		*why = "range count beyond the transfer-page header";
		return -1;
	}
	return (int)h.range_cnt;
}

/* ---- RNDIS ---- */

uint32_t rndis_build_init(void *buf, uint32_t req_id)
{
	zero(buf, RNDIS_INIT_SIZE);
	put32(buf, 0, RNDIS_MSG_INIT);
	put32(buf, 4, RNDIS_INIT_SIZE);
	put32(buf, 8, req_id);
	put32(buf, 12, RNDIS_MAJOR_VERSION);
	put32(buf, 16, RNDIS_MINOR_VERSION);
	put32(buf, 20, RNDIS_MAX_XFER_SIZE);
	return RNDIS_INIT_SIZE;
}

uint32_t rndis_build_query(void *buf, uint32_t req_id, uint32_t oid)
{
	zero(buf, RNDIS_QUERY_SIZE);
	put32(buf, 0, RNDIS_MSG_QUERY);
	put32(buf, 4, RNDIS_QUERY_SIZE);
	put32(buf, 8, req_id);
	put32(buf, 12, oid);
	put32(buf, 16, 0);                      /* info_buflen */
	put32(buf, 20, RNDIS_QUERY_SIZE - RNDIS_HEADER_SIZE);   /* info_buf_offset = 20 */
	put32(buf, 24, 0);                      /* dev_vc_handle */
	return RNDIS_QUERY_SIZE;
}

uint32_t rndis_build_set(void *buf, uint32_t req_id, uint32_t oid, const void *data,
			 uint32_t len)
{
	zero(buf, RNDIS_SET_SIZE);
	put32(buf, 0, RNDIS_MSG_SET);
	put32(buf, 4, RNDIS_SET_SIZE + len);
	put32(buf, 8, req_id);
	put32(buf, 12, oid);
	put32(buf, 16, len);
	put32(buf, 20, RNDIS_SET_SIZE - RNDIS_HEADER_SIZE);
	put32(buf, 24, 0);
	__builtin_memcpy((uint8_t *)buf + RNDIS_SET_SIZE, data, len);
	return RNDIS_SET_SIZE + len;
}

uint32_t rndis_build_packet(void *buf, uint32_t frame_len)
{
	/*
	 * Field by field, straight into the section: building struct
	 * rndis_packet on the stack and copying it stalled on store forwarding,
	 * a third of the stub's cost per 64-byte frame.
	 */
	put32(buf, 0, RNDIS_MSG_PACKET);
	put32(buf, 4, RNDIS_PACKET_SIZE + frame_len);
	put32(buf, RNDIS_HEADER_SIZE + offsetof(struct rndis_packet, data_offset), RNDIS_PACKET_BODY);
	put32(buf, RNDIS_HEADER_SIZE + offsetof(struct rndis_packet, data_len), frame_len);
	put32(buf, RNDIS_HEADER_SIZE + offsetof(struct rndis_packet, oob_data_offset), 0);
	put32(buf, RNDIS_HEADER_SIZE + offsetof(struct rndis_packet, oob_data_len), 0);
	put32(buf, RNDIS_HEADER_SIZE + offsetof(struct rndis_packet, num_oob_data_elements), 0);
	put32(buf, RNDIS_HEADER_SIZE + offsetof(struct rndis_packet, per_pkt_info_offset),
	      RNDIS_PACKET_BODY);
	put32(buf, RNDIS_HEADER_SIZE + offsetof(struct rndis_packet, per_pkt_info_len), 0);
	put32(buf, RNDIS_HEADER_SIZE + offsetof(struct rndis_packet, vc_handle), 0);
	put32(buf, RNDIS_HEADER_SIZE + offsetof(struct rndis_packet, reserved), 0);
	return RNDIS_PACKET_SIZE;
}

int rndis_parse(const void *msg, uint32_t len, struct rndis_parsed *out, const char **why)
{
	zero(out, sizeof(*out));
	if (len < RNDIS_HEADER_SIZE) {
		*why = "RNDIS message shorter than its header";
		return -1;
	}
	out->type = get32(msg, 0);
	out->len = get32(msg, 4);
	if (out->len < RNDIS_HEADER_SIZE || out->len > len) {
		*why = "RNDIS msg_len outside the receive range";
		return -1;
	}
	uint32_t body = out->len - RNDIS_HEADER_SIZE;

	switch (out->type) {
	case RNDIS_MSG_PACKET: {
		struct rndis_packet p;
		if (body < sizeof(p)) {
			*why = "PACKET_MSG shorter than struct rndis_packet";
			return -1;
		}
		__builtin_memcpy(&p, (const uint8_t *)msg + RNDIS_HEADER_SIZE, sizeof(p));
		if (p.data_offset >= body || p.data_len > body - p.data_offset) {
			*why = "PACKET_MSG data outside the message";
			return -1;
		}
		out->data_offset = RNDIS_HEADER_SIZE + p.data_offset;
		out->data_len = p.data_len;
		return 0;
	}
	case RNDIS_MSG_INIT_C:
		if (body < 44) {
			*why = "INIT_CMPLT too short";
			return -1;
		}
		out->req_id = get32(msg, 8);
		out->status = get32(msg, 12);
		out->major = get32(msg, 16);
		out->minor = get32(msg, 20);
		out->max_pkt_per_msg = get32(msg, 32);
		out->max_xfer_size = get32(msg, 36);
		out->pkt_alignment_factor = get32(msg, 40);
		return 0;
	case RNDIS_MSG_QUERY_C: {
		if (body < 16) {
			*why = "QUERY_CMPLT too short";
			return -1;
		}
		out->req_id = get32(msg, 8);
		out->status = get32(msg, 12);
		uint32_t blen = get32(msg, 16), boff = get32(msg, 20);
		/* rndis_filter_query_device: offset >= 16, inside the body, length fits. */
		if (blen && (boff < 16 || boff > body || blen > body - boff)) {
			*why = "QUERY_CMPLT information buffer outside the message";
			return -1;
		}
		out->data_offset = RNDIS_HEADER_SIZE + boff;
		out->data_len = blen;
		return 0;
	}
	case RNDIS_MSG_SET_C:
	case RNDIS_MSG_KEEPALIVE_C:
		if (body < 8) {
			*why = "completion too short";
			return -1;
		}
		out->req_id = get32(msg, 8);
		out->status = get32(msg, 12);
		return 0;
	case RNDIS_MSG_INDICATE:
		if (body < 4) {
			*why = "INDICATE_STATUS too short";
			return -1;
		}
		out->status = get32(msg, 8);
		return 0;
	case RNDIS_MSG_KEEPALIVE:
		if (body < 4) {
			*why = "KEEPALIVE too short";
			return -1;
		}
		out->req_id = get32(msg, 8);
		return 0;
	default:
		return 0;               /* the caller reports unknown types */
	}
}
