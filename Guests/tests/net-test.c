/*
 * Host-side unit test of net.elf's pure parts, built with plain gcc by
 * `make -C Guests test`: Internet checksums, ARP and ICMP echo replies,
 * benchmark frames, address parsing, NVSP and RNDIS messages, the e1000
 * descriptor layout and ring arithmetic, ACPI table walking (RSDP, XSDT and
 * RSDT, MCFG, FADT -> DSDT, _CBA, _CRS windows) and the ring additions
 * NetVSC uses (ring_write_hdr, ring_read_full). Expected values are written
 * out byte by byte or computed by independent code here. Exits 1 on the
 * first failed check, 0 when all pass.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../net/acpi.h"
#include "../net/e1000_regs.h"
#include "../net/netvsc_proto.h"
#include "../net/proto.h"
#include "../vmbus/protocol.h"
#include "../vmbus/ring.h"

static unsigned checks;

#define TEST_NAME "net-test"
#include "check.h"

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* An independent Internet checksum: 32-bit accumulation, folded at the end. */
static uint16_t ref_csum(const uint8_t *p, size_t n)
{
	uint32_t s = 0;

	for (size_t i = 0; i < n; i++)
		s += (i & 1) ? p[i] : (uint32_t)p[i] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* ---- checksums ---- */

static void test_checksum(void)
{
	/* RFC 1071 §3 example: the sum of these words is 0xddf2. */
	static const uint8_t rfc[] = { 0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7 };
	CHECK_EQ(inet_checksum(rfc, sizeof(rfc)), 0x220d);

	/* A well-known IPv4 header (checksum 0xb861 at bytes 10-11). */
	uint8_t ip[20] = { 0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
			   0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7 };
	CHECK_EQ(inet_checksum(ip, 20), 0xb861);
	ip[10] = 0xb8;
	ip[11] = 0x61;
	CHECK_EQ(inet_checksum(ip, 20), 0);

	/* Odd lengths pad with a zero byte; random data against the reference. */
	static const uint8_t odd[] = { 0x12, 0x34, 0x56 };
	CHECK_EQ(inet_checksum(odd, 3), (uint16_t)~(0x1234 + 0x5600));
	uint8_t buf[1501];
	srand(7);
	for (int round = 0; round < 50; round++) {
		size_t n = (size_t)(rand() % 1500) + 1;
		for (size_t i = 0; i < n; i++)
			buf[i] = (uint8_t)rand();
		CHECK_EQ(inet_checksum(buf, n), ref_csum(buf, n));
	}
	/* All ones stays 0 (not 0xffff folded wrongly). */
	memset(buf, 0xff, 64);
	CHECK_EQ(inet_checksum(buf, 64), 0);
}

/* ---- ARP ---- */

static const uint8_t my_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t peer_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 };
#define MY_IP   0x0a000002u     /* 10.0.0.2 */
#define PEER_IP 0x0a000001u     /* 10.0.0.1 */

static uint32_t arp_request(uint8_t *f, uint32_t target)
{
	memset(f, 0, 60);
	memset(f, 0xff, 6);
	memcpy(f + 6, peer_mac, 6);
	f[12] = 0x08; f[13] = 0x06;
	f[14] = 0; f[15] = 1;           /* Ethernet */
	f[16] = 0x08; f[17] = 0x00;     /* IPv4 */
	f[18] = 6; f[19] = 4;
	f[20] = 0; f[21] = 1;           /* request */
	memcpy(f + 22, peer_mac, 6);
	f[28] = 10; f[29] = 0; f[30] = 0; f[31] = 1;
	f[38] = (uint8_t)(target >> 24); f[39] = (uint8_t)(target >> 16);
	f[40] = (uint8_t)(target >> 8); f[41] = (uint8_t)target;
	return 60;
}

static void test_arp(void)
{
	uint8_t f[60], out[ETH_FRAME_MAX];
	uint32_t len;
	struct net_reply_info info;

	arp_request(f, MY_IP);
	memset(out, 0xee, sizeof(out));
	CHECK_EQ(net_respond(f, 60, my_mac, MY_IP, out, &len, &info), NET_ARP_REPLY);
	CHECK_EQ(len, 60);
	static const uint8_t want[42] = {
		0x02, 0x00, 0x00, 0x00, 0x00, 0x01,     /* to the asker */
		0x52, 0x54, 0x00, 0x12, 0x34, 0x56,     /* from us */
		0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02,
		0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 10, 0, 0, 2,        /* sender: us */
		0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 10, 0, 0, 1,        /* target: asker */
	};
	CHECK(memcmp(out, want, 42) == 0);
	for (int i = 42; i < 60; i++)
		CHECK_EQ(out[i], 0);            /* padding is zeros */
	CHECK_EQ(info.peer_ip, PEER_IP);
	CHECK(memcmp(info.peer_mac, peer_mac, 6) == 0);

	/* Someone else's address, a reply, a short frame: ignored. */
	arp_request(f, MY_IP + 1);
	CHECK_EQ(net_respond(f, 60, my_mac, MY_IP, out, &len, &info), NET_IGNORE);
	arp_request(f, MY_IP);
	f[21] = 2;
	CHECK_EQ(net_respond(f, 60, my_mac, MY_IP, out, &len, &info), NET_IGNORE);
	arp_request(f, MY_IP);
	CHECK_EQ(net_respond(f, 41, my_mac, MY_IP, out, &len, &info), NET_IGNORE);
	/* Non-Ethernet hardware type. */
	arp_request(f, MY_IP);
	f[15] = 6;
	CHECK_EQ(net_respond(f, 60, my_mac, MY_IP, out, &len, &info), NET_IGNORE);
}

/* ---- ICMP echo ---- */

static uint32_t echo_request(uint8_t *f, uint32_t dst_ip, const uint8_t *dst_mac, uint32_t data_len,
			     uint16_t id, uint16_t seq)
{
	uint32_t icmp_len = 8 + data_len, tot = 20 + icmp_len;

	memset(f, 0, ETH_FRAME_MAX);
	memcpy(f, dst_mac, 6);
	memcpy(f + 6, peer_mac, 6);
	f[12] = 0x08; f[13] = 0x00;
	uint8_t *ip = f + 14, *ic = ip + 20;
	ip[0] = 0x45; ip[1] = 0;
	ip[2] = (uint8_t)(tot >> 8); ip[3] = (uint8_t)tot;
	ip[4] = 0xab; ip[5] = 0xcd;
	ip[6] = 0x40; ip[7] = 0;        /* DF */
	ip[8] = 64; ip[9] = 1;
	ip[12] = 10; ip[13] = 0; ip[14] = 0; ip[15] = 1;
	ip[16] = (uint8_t)(dst_ip >> 24); ip[17] = (uint8_t)(dst_ip >> 16);
	ip[18] = (uint8_t)(dst_ip >> 8); ip[19] = (uint8_t)dst_ip;
	uint16_t c = ref_csum(ip, 20);
	ip[10] = (uint8_t)(c >> 8); ip[11] = (uint8_t)c;
	ic[0] = 8; ic[1] = 0;
	ic[4] = (uint8_t)(id >> 8); ic[5] = (uint8_t)id;
	ic[6] = (uint8_t)(seq >> 8); ic[7] = (uint8_t)seq;
	for (uint32_t i = 0; i < data_len; i++)
		ic[8 + i] = (uint8_t)(i * 3 + 1);
	c = ref_csum(ic, icmp_len);
	ic[2] = (uint8_t)(c >> 8); ic[3] = (uint8_t)c;
	uint32_t len = 14 + tot;
	return len < 60 ? 60 : len;
}

static void check_echo_reply(const uint8_t *req, const uint8_t *out, uint32_t len,
			     uint32_t data_len)
{
	const uint8_t *ip = out + 14, *ic = ip + 20;
	uint32_t icmp_len = 8 + data_len;

	CHECK_EQ(len, 14 + 20 + icmp_len < 60 ? 60 : 14 + 20 + icmp_len);
	CHECK(memcmp(out, peer_mac, 6) == 0);
	CHECK(memcmp(out + 6, my_mac, 6) == 0);
	CHECK_EQ(be16(out + 12), 0x0800);
	CHECK_EQ(ip[0], 0x45);
	CHECK_EQ(be16(ip + 2), 20 + icmp_len);
	CHECK_EQ(be16(ip + 6) & 0x3fff, 0);
	CHECK_EQ(ip[8], 64);
	CHECK_EQ(ip[9], 1);
	CHECK_EQ(ref_csum(ip, 20), 0);                  /* valid IP checksum */
	CHECK(memcmp(ip + 12, req + 14 + 16, 4) == 0);  /* src = the request's dst */
	CHECK(memcmp(ip + 16, req + 14 + 12, 4) == 0);  /* dst = the request's src */
	CHECK_EQ(ic[0], 0);
	CHECK_EQ(ic[1], 0);
	CHECK_EQ(ref_csum(ic, icmp_len), 0);            /* valid ICMP checksum */
	CHECK(memcmp(ic + 4, req + 14 + 20 + 4, 4 + data_len) == 0);   /* id, seq, data */
}

static void test_icmp(void)
{
	uint8_t f[ETH_FRAME_MAX], out[ETH_FRAME_MAX];
	uint32_t len, n;
	struct net_reply_info info;
	static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t other[6] = { 0x02, 0, 0, 0, 0, 9 };

	/* ping's usual 56 data bytes. */
	n = echo_request(f, MY_IP, my_mac, 56, 0x1234, 7);
	CHECK_EQ(net_respond(f, n, my_mac, MY_IP, out, &len, &info), NET_ICMP_REPLY);
	check_echo_reply(f, out, len, 56);
	CHECK_EQ(info.icmp_id, 0x1234);
	CHECK_EQ(info.icmp_seq, 7);
	CHECK_EQ(info.icmp_len, 64);
	CHECK_EQ(info.peer_ip, PEER_IP);

	/* No data: padded to 60; Ethernet padding after the IP datagram is not echoed. */
	n = echo_request(f, MY_IP, my_mac, 0, 1, 2);
	CHECK_EQ(n, 60);
	CHECK_EQ(net_respond(f, n, my_mac, MY_IP, out, &len, &info), NET_ICMP_REPLY);
	check_echo_reply(f, out, len, 0);
	for (uint32_t i = 14 + 28; i < 60; i++)
		CHECK_EQ(out[i], 0);

	/* The largest echo that fits a 1514-byte frame; odd data lengths. */
	for (uint32_t d = 1472; d >= 1460; d--) {
		n = echo_request(f, MY_IP, my_mac, d, 9, (uint16_t)d);
		CHECK_EQ(net_respond(f, n, my_mac, MY_IP, out, &len, &info), NET_ICMP_REPLY);
		check_echo_reply(f, out, len, d);
	}

	/* Broadcast destination MAC is answered; another host's MAC is not. */
	n = echo_request(f, MY_IP, bcast, 8, 1, 1);
	CHECK_EQ(net_respond(f, n, my_mac, MY_IP, out, &len, &info), NET_ICMP_REPLY);
	n = echo_request(f, MY_IP, other, 8, 1, 1);
	CHECK_EQ(net_respond(f, n, my_mac, MY_IP, out, &len, &info), NET_IGNORE);
	/* Another IP address. */
	n = echo_request(f, MY_IP + 5, my_mac, 8, 1, 1);
	CHECK_EQ(net_respond(f, n, my_mac, MY_IP, out, &len, &info), NET_IGNORE);

	/* Broken IP checksum, broken ICMP checksum, fragment, truncated: dropped as bad. */
	n = echo_request(f, MY_IP, my_mac, 8, 1, 1);
	f[14 + 10] ^= 1;
	CHECK_EQ(net_respond(f, n, my_mac, MY_IP, out, &len, &info), NET_BAD);
	n = echo_request(f, MY_IP, my_mac, 8, 1, 1);
	f[14 + 20 + 9] ^= 0x40;
	CHECK_EQ(net_respond(f, n, my_mac, MY_IP, out, &len, &info), NET_BAD);
	n = echo_request(f, MY_IP, my_mac, 8, 1, 1);
	f[14 + 6] = 0x20;       /* MF, and fix the checksum */
	f[14 + 10] = f[14 + 11] = 0;
	uint16_t c = ref_csum(f + 14, 20);
	f[14 + 10] = (uint8_t)(c >> 8); f[14 + 11] = (uint8_t)c;
	CHECK_EQ(net_respond(f, n, my_mac, MY_IP, out, &len, &info), NET_BAD);
	n = echo_request(f, MY_IP, my_mac, 100, 1, 1);
	CHECK_EQ(net_respond(f, n - 10, my_mac, MY_IP, out, &len, &info), NET_BAD);

	/* An echo reply or another ICMP type is not answered. */
	n = echo_request(f, MY_IP, my_mac, 8, 1, 1);
	f[14 + 20] = 0;
	CHECK_EQ(net_respond(f, n, my_mac, MY_IP, out, &len, &info), NET_IGNORE);

	/* IP options: the request's header is 24 bytes, the reply's a plain 20. */
	n = echo_request(f, MY_IP, my_mac, 16, 3, 4);
	uint8_t g[ETH_FRAME_MAX];
	memset(g, 0, sizeof(g));
	memcpy(g, f, 14 + 20);
	memcpy(g + 14 + 24, f + 14 + 20, 24);
	g[14] = 0x46;
	g[14 + 20] = 1; g[14 + 21] = 1; g[14 + 22] = 1; g[14 + 23] = 0;        /* NOP NOP NOP EOL */
	uint32_t tot = 24 + 24;
	g[14 + 2] = (uint8_t)(tot >> 8); g[14 + 3] = (uint8_t)tot;
	g[14 + 10] = g[14 + 11] = 0;
	c = ref_csum(g + 14, 24);
	g[14 + 10] = (uint8_t)(c >> 8); g[14 + 11] = (uint8_t)c;
	CHECK_EQ(net_respond(g, 14 + tot, my_mac, MY_IP, out, &len, &info), NET_ICMP_REPLY);
	CHECK_EQ(out[14], 0x45);
	CHECK_EQ(be16(out + 16), 20 + 24);
	CHECK_EQ(ref_csum(out + 14, 20), 0);
	CHECK_EQ(ref_csum(out + 34, 24), 0);
	CHECK(memcmp(out + 34 + 4, f + 34 + 4, 20) == 0);
}

/* ---- benchmark frames, parsing ---- */

static void test_bench_and_parse(void)
{
	uint8_t f[ETH_FRAME_MAX];
	uint64_t seq;
	static const uint8_t dst[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

	net_bench_frame(f, 64, dst, my_mac);
	CHECK(memcmp(f, dst, 6) == 0 && memcmp(f + 6, my_mac, 6) == 0);
	CHECK_EQ(be16(f + 12), 0x88b5);
	CHECK(memcmp(f + 14, "HVNB", 4) == 0);
	net_bench_stamp(f, 0x0102030405060708ull);
	CHECK_EQ(f[18], 0x08);
	CHECK_EQ(f[25], 0x01);
	CHECK(net_bench_parse(f, 64, &seq));
	CHECK_EQ(seq, 0x0102030405060708ull);
	f[15] = 'X';
	CHECK(!net_bench_parse(f, 64, &seq));

	uint32_t ip;
	CHECK(net_parse_ip("10.0.2.15", &ip) && ip == 0x0a00020f);
	CHECK(net_parse_ip("255.255.255.255", &ip) && ip == 0xffffffff);
	CHECK(!net_parse_ip("256.0.0.1", &ip));
	CHECK(!net_parse_ip("1.2.3", &ip));
	CHECK(!net_parse_ip("1.2.3.4.5", &ip));
	CHECK(!net_parse_ip("1..3.4", &ip));
	CHECK(!net_parse_ip("0001.2.3.4", &ip));
	char s[18];
	net_format_ip(s, 0x0a00020f);
	CHECK(strcmp(s, "10.0.2.15") == 0);
	net_format_ip(s, 0xc0a80064);
	CHECK(strcmp(s, "192.168.0.100") == 0);

	uint8_t mac[6];
	CHECK(net_parse_mac("52:54:00:AB:cd:0f", mac));
	CHECK(mac[0] == 0x52 && mac[3] == 0xab && mac[4] == 0xcd && mac[5] == 0x0f);
	CHECK(net_parse_mac("02-00-00-00-00-01", mac) && mac[5] == 1);
	CHECK(!net_parse_mac("52:54:00:ab:cd", mac));
	CHECK(!net_parse_mac("52:54:00:ab:cd:0g", mac));
	CHECK(!net_parse_mac("52:54:00:ab:cd:0f:", mac));
	net_format_mac(s, my_mac);
	CHECK(strcmp(s, "52:54:00:12:34:56") == 0);
	CHECK(net_mac_valid(my_mac));
	static const uint8_t zero[6], mcast[6] = { 1, 0, 0x5e, 0, 0, 1 };
	CHECK(!net_mac_valid(zero));
	CHECK(!net_mac_valid(mcast));
}

/* ---- NVSP ---- */

static void test_nvsp(void)
{
	struct nvsp_message m;
	const uint8_t *b = (const uint8_t *)&m;

	memset(&m, 0xcc, sizeof(m));
	nvsp_build_init(&m, NVSP_PROTOCOL_VERSION_61);
	CHECK_EQ(le32(b), 1);
	CHECK_EQ(le32(b + 4), 0x00060001);
	CHECK_EQ(le32(b + 8), 0x00060001);
	for (int i = 12; i < 40; i++)
		CHECK_EQ(b[i], 0);

	nvsp_build_ndis_config(&m, 1514, nvsp_linux_capabilities(NVSP_PROTOCOL_VERSION_61));
	CHECK_EQ(le32(b), 125);
	CHECK_EQ(le32(b + 4), 1514);
	CHECK_EQ(le32(b + 8), 0);
	/* ieee8021q (bit 3), sriov (2), teaming (5), rsc (7), as Linux sets them for 6.1. */
	CHECK_EQ(le32(b + 12), 0x8 | 0x4 | 0x20 | 0x80);
	CHECK_EQ(nvsp_linux_capabilities(NVSP_PROTOCOL_VERSION_4), 0x8);
	CHECK_EQ(nvsp_linux_capabilities(NVSP_PROTOCOL_VERSION_5), 0x2c);

	nvsp_build_ndis_version(&m, NVSP_PROTOCOL_VERSION_5);
	CHECK_EQ(le32(b), 100);
	CHECK_EQ(le32(b + 4), 6);
	CHECK_EQ(le32(b + 8), 30);
	nvsp_build_ndis_version(&m, NVSP_PROTOCOL_VERSION_4);
	CHECK_EQ(le32(b + 8), 1);

	nvsp_build_send_recv_buf(&m, 0xe1e11);
	CHECK_EQ(le32(b), 101);
	CHECK_EQ(le32(b + 4), 0xe1e11);
	CHECK_EQ(b[8] | b[9] << 8, 0xcafe);
	nvsp_build_send_send_buf(&m, 0xe1e12);
	CHECK_EQ(le32(b), 104);
	CHECK_EQ(le32(b + 4), 0xe1e12);
	CHECK_EQ(b[8] | b[9] << 8, 0);

	nvsp_build_rndis_pkt(&m, NVSP_CHANNEL_DATA, 17, 1558);
	CHECK_EQ(le32(b), 107);
	CHECK_EQ(le32(b + 4), 0);
	CHECK_EQ(le32(b + 8), 17);
	CHECK_EQ(le32(b + 12), 1558);
	nvsp_build_rndis_pkt(&m, NVSP_CHANNEL_CONTROL, NETVSC_INVALID_INDEX, 99);
	CHECK_EQ(le32(b + 4), 1);
	CHECK_EQ(le32(b + 8), 0xffffffff);
	CHECK_EQ(le32(b + 12), 0);

	/* Receive-buffer completion layout (offsets from the message start). */
	memset(&m, 0, sizeof(m));
	uint8_t raw[40] = { 102, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
			    0xc0, 6, 0, 0, 0x10, 0, 0, 0, 0, 0xc0, 0, 0 };
	memcpy(&m, raw, 40);
	CHECK_EQ(m.send_recv_buf_complete.status, 1);
	CHECK_EQ(m.send_recv_buf_complete.num_sections, 1);
	CHECK_EQ(m.send_recv_buf_complete.sections[0].sub_alloc_size, 1728);
	CHECK_EQ(m.send_recv_buf_complete.sections[0].num_sub_allocs, 16);
	CHECK_EQ(m.send_recv_buf_complete.sections[0].end_offset, 0xc000);

	/* Transfer-page header checks (Linux's netvsc_receive). */
	uint8_t hdr[8 + 16] = { 0xfe, 0xca, 0, 0, 2, 0, 0, 0,
				60, 0, 0, 0, 0, 0, 0, 0,  100, 0, 0, 0, 0xc0, 6, 0, 0 };
	uint32_t nv[4] = { 107, 0, 0xffffffff, 0 };
	const char *why;
	CHECK_EQ(nvsp_check_xfer(hdr, sizeof(hdr), nv, 16, &why), 2);
	struct vmtransfer_page_range r = nvsp_xfer_range(hdr, 1);
	CHECK_EQ(r.byte_count, 100);
	CHECK_EQ(r.byte_offset, 1728);
	hdr[4] = 3;     /* three ranges do not fit 24 header bytes */
	CHECK_EQ(nvsp_check_xfer(hdr, sizeof(hdr), nv, 16, &why), -1);
	hdr[4] = 2;
	hdr[0] = 0xff;  /* not 0xCAFE */
	CHECK_EQ(nvsp_check_xfer(hdr, sizeof(hdr), nv, 16, &why), -1);
	hdr[0] = 0xfe;
	nv[0] = 108;    /* not SEND_RNDIS_PKT */
	CHECK_EQ(nvsp_check_xfer(hdr, sizeof(hdr), nv, 16, &why), -1);
	nv[0] = 107;
	CHECK_EQ(nvsp_check_xfer(hdr, 8, nv, 16, &why), -1);   /* no room for a range */
}

/* ---- RNDIS ---- */

static void test_rndis(void)
{
	uint8_t b[256];
	struct rndis_parsed p;
	const char *why;

	memset(b, 0xcc, sizeof(b));
	CHECK_EQ(rndis_build_init(b, 1), 24);
	static const uint8_t init[24] = { 2, 0, 0, 0, 24, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0,
					  0, 0, 0, 0, 0, 0x40, 0, 0 };
	CHECK(memcmp(b, init, 24) == 0);

	CHECK_EQ(rndis_build_query(b, 3, RNDIS_OID_802_3_PERMANENT_ADDRESS), 28);
	static const uint8_t query[28] = { 4, 0, 0, 0, 28, 0, 0, 0, 3, 0, 0, 0,
					   0x01, 0x01, 0x01, 0x01, 0, 0, 0, 0, 20, 0, 0, 0,
					   0, 0, 0, 0 };
	CHECK(memcmp(b, query, 28) == 0);

	uint32_t filter = 0xd;
	CHECK_EQ(rndis_build_set(b, 5, RNDIS_OID_GEN_CURRENT_PACKET_FILTER, &filter, 4), 32);
	static const uint8_t set[32] = { 5, 0, 0, 0, 32, 0, 0, 0, 5, 0, 0, 0,
					 0x0e, 0x01, 0x01, 0x00, 4, 0, 0, 0, 20, 0, 0, 0,
					 0, 0, 0, 0, 0x0d, 0, 0, 0 };
	CHECK(memcmp(b, set, 32) == 0);

	/* PACKET_MSG as Linux's netvsc_xmit (one queue, no offload): 44-byte header. */
	memset(b, 0xcc, sizeof(b));
	CHECK_EQ(rndis_build_packet(b, 100), 44);
	CHECK_EQ(le32(b), 1);
	CHECK_EQ(le32(b + 4), 144);
	CHECK_EQ(le32(b + 8), 36);      /* data_offset */
	CHECK_EQ(le32(b + 12), 100);    /* data_len */
	CHECK_EQ(le32(b + 16), 0);
	CHECK_EQ(le32(b + 20), 0);
	CHECK_EQ(le32(b + 24), 0);
	CHECK_EQ(le32(b + 28), 36);     /* per_pkt_info_offset */
	CHECK_EQ(le32(b + 32), 0);      /* per_pkt_info_len */
	CHECK_EQ(le32(b + 36), 0);
	CHECK_EQ(le32(b + 40), 0);
	/* ... and it parses back to the frame right after the header. */
	for (int i = 0; i < 100; i++)
		b[44 + i] = (uint8_t)i;
	CHECK_EQ(rndis_parse(b, 144, &p, &why), 0);
	CHECK_EQ(p.type, RNDIS_MSG_PACKET);
	CHECK_EQ(p.data_offset, 44);
	CHECK_EQ(p.data_len, 100);
	/* A host's PACKET_MSG with a per-packet-info record in front of the data. */
	uint8_t rx[200];
	memset(rx, 0, sizeof(rx));
	uint32_t w[] = { 1, 44 + 20 + 60, 36 + 20, 60, 0, 0, 0, 36, 20, 0, 0 };
	memcpy(rx, w, sizeof(w));
	CHECK_EQ(rndis_parse(rx, 124, &p, &why), 0);
	CHECK_EQ(p.data_offset, 64);
	CHECK_EQ(p.data_len, 60);
	CHECK_EQ(rndis_parse(rx, 123, &p, &why), -1);   /* msg_len beyond the range */
	w[3] = 61;                                      /* data beyond msg_len */
	memcpy(rx, w, sizeof(w));
	CHECK_EQ(rndis_parse(rx, 124, &p, &why), -1);
	w[3] = 60;
	w[2] = 200;                                     /* data offset beyond */
	memcpy(rx, w, sizeof(w));
	CHECK_EQ(rndis_parse(rx, 124, &p, &why), -1);
	CHECK_EQ(rndis_parse(rx, 7, &p, &why), -1);

	/* INITIALIZE_CMPLT as the reference lays it out. */
	uint32_t ic[13] = { 0x80000002, 52, 1, 0, 1, 0, 1, 0, 8, 0xefffffff, 3, 0, 0 };
	CHECK_EQ(rndis_parse(ic, 52, &p, &why), 0);
	CHECK_EQ(p.req_id, 1);
	CHECK_EQ(p.status, 0);
	CHECK_EQ(p.max_pkt_per_msg, 8);
	CHECK_EQ(p.max_xfer_size, 0xefffffff);
	CHECK_EQ(p.pkt_alignment_factor, 3);
	ic[1] = 48;
	CHECK_EQ(rndis_parse(ic, 52, &p, &why), -1);

	/* QUERY_CMPLT with a MAC: info buffer at offset 16 from byte 8. */
	uint8_t qc[32] = { 4, 0, 0, 0x80, 30, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0,
			   16, 0, 0, 0, 0x00, 0x15, 0x5d, 1, 2, 3 };
	CHECK_EQ(rndis_parse(qc, 32, &p, &why), 0);
	CHECK_EQ(p.type, RNDIS_MSG_QUERY_C);
	CHECK_EQ(p.req_id, 3);
	CHECK_EQ(p.data_offset, 24);
	CHECK_EQ(p.data_len, 6);
	CHECK_EQ(qc[p.data_offset + 2], 0x5d);
	qc[20] = 12;                    /* offset below 16 (Linux rejects) */
	CHECK_EQ(rndis_parse(qc, 32, &p, &why), -1);
	qc[20] = 17;                    /* 17 + 6 > 22 */
	CHECK_EQ(rndis_parse(qc, 32, &p, &why), -1);
	/* Not supported, empty: parses (the driver checks the status). */
	uint32_t ns[6] = { 0x80000004, 24, 4, 0xc00000bb, 0, 16 };
	CHECK_EQ(rndis_parse(ns, 24, &p, &why), 0);
	CHECK_EQ(p.status, 0xc00000bb);
	CHECK_EQ(p.data_len, 0);

	uint32_t sc[4] = { 0x80000005, 16, 5, 0 };
	CHECK_EQ(rndis_parse(sc, 16, &p, &why), 0);
	CHECK_EQ(p.req_id, 5);
	uint32_t ind[5] = { 7, 20, RNDIS_STATUS_MEDIA_CONNECT, 0, 0 };
	CHECK_EQ(rndis_parse(ind, 20, &p, &why), 0);
	CHECK_EQ(p.status, RNDIS_STATUS_MEDIA_CONNECT);
}

/* ---- e1000 ---- */

static void test_e1000(void)
{
	struct e1000_tx_desc d;
	uint8_t raw[16];

	memset(&d, 0xaa, sizeof(d));
	e1000_tx_desc_fill(&d, 0x0000000123456780ull, 1514);
	memcpy(raw, &d, 16);
	static const uint8_t want[16] = { 0x80, 0x67, 0x45, 0x23, 0x01, 0, 0, 0,
					  0xea, 0x05,   /* length 1514 */
					  0x00,         /* CSO */
					  0x0b,         /* CMD: EOP | IFCS | RS */
					  0x00,         /* STA */
					  0x00, 0x00, 0x00 };
	CHECK(memcmp(raw, want, 16) == 0);
	/* In the dword view Linux uses: lower = length | cmd << 24 = 0x0B0005EA. */
	CHECK_EQ(le32(raw + 8), 0x0b0005ea);

	struct e1000_rx_desc r;
	memset(&r, 0, sizeof(r));
	uint8_t rraw[16] = { 0, 0x10, 0, 0, 0, 0, 0, 0, 0x44, 0x00, 0, 0, 0x03, 0x00, 0, 0 };
	memcpy(&r, rraw, 16);
	CHECK_EQ(r.length, 68);
	CHECK_EQ(r.status, E1000_RXD_STAT_DD | E1000_RXD_STAT_EOP);
	CHECK_EQ(r.buffer_addr, 0x1000);

	CHECK_EQ(e1000_ring_free(0, 0, 256), 255);
	CHECK_EQ(e1000_ring_free(10, 9, 256), 0);
	CHECK_EQ(e1000_ring_used(250, 5, 256), 11);
	CHECK_EQ(e1000_rdt_for(0, 256), 255);
	CHECK_EQ(e1000_rdt_for(17, 256), 16);

	uint32_t ral, rah;
	uint8_t mac[6];
	e1000_mac_to_ra(my_mac, &ral, &rah);
	CHECK_EQ(ral, 0x12005452);
	CHECK_EQ(rah, 0x80005634);
	e1000_ra_to_mac(ral, rah, mac);
	CHECK(memcmp(mac, my_mac, 6) == 0);

	/* Register offsets Linux's e1000_hw.h uses. */
	CHECK_EQ(E1000_TDT, 0x3818);
	CHECK_EQ(E1000_RDT, 0x2818);
	CHECK_EQ(E1000_RAL0, 0x5400);
	CHECK_EQ(E1000_TCTL_EN | E1000_TCTL_PSP | E1000_TCTL_RTLC |
		 (E1000_COLLISION_THRESHOLD << E1000_CT_SHIFT) |
		 (E1000_COLLISION_DISTANCE << E1000_COLD_SHIFT), 0x0103f0fa);
}

/* ---- ACPI ---- */

/* A fake physical memory for the table walk; addresses are offsets into it. */
static uint8_t phys[0x20000];

static const void *map_fake(uint64_t addr, uint32_t len)
{
	if (addr == 0 || addr > sizeof(phys) || len > sizeof(phys) - addr)
		return 0;
	return phys + addr;
}

static void sdt(uint32_t at, const char *sig, const void *body, uint32_t body_len)
{
	struct acpi_sdt_header h;

	memset(&h, 0, sizeof(h));
	memcpy(h.signature, sig, 4);
	h.length = (uint32_t)sizeof(h) + body_len;
	h.revision = 1;
	memcpy(phys + at, &h, sizeof(h));
	memcpy(phys + at + sizeof(h), body, body_len);
	uint8_t s = 0;
	for (uint32_t i = 0; i < h.length; i++)
		s = (uint8_t)(s + phys[at + i]);
	phys[at + 9] = (uint8_t)(0 - s);
}

static void rsdp(uint32_t at, int rev, uint32_t rsdt, uint64_t xsdt)
{
	struct acpi_rsdp r;

	memset(&r, 0, sizeof(r));
	memcpy(r.signature, "RSD PTR ", 8);
	r.revision = (uint8_t)rev;
	r.rsdt_address = rsdt;
	r.length = sizeof(r);
	r.xsdt_address = xsdt;
	uint8_t s = 0;
	for (int i = 0; i < 20; i++)
		s = (uint8_t)(s + ((uint8_t *)&r)[i]);
	r.checksum = (uint8_t)(0 - s);
	s = 0;
	for (unsigned i = 0; i < sizeof(r); i++)
		s = (uint8_t)(s + ((uint8_t *)&r)[i]);
	r.extended_checksum = (uint8_t)(0 - s);
	memcpy(phys + at, &r, sizeof(r));
}

static void test_acpi(void)
{
	/* DSDT: a DWordMemory window, a QWordMemory window, a WordBusNumber 0-15, _CBA method. */
	static const uint8_t aml[] = {
		0x10, 0x40, 0x05, '_', 'S', 'B', '_',                   /* scope (not parsed) */
		0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0f, 0x00, 0x00, 0x00,
		0x10, 0x00,                                             /* WordBusNumber 0-15 */
		0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0, 0, 0, 0,
		0x00, 0x00, 0x00, 0xc0,  0xff, 0xff, 0xff, 0xdf,  0, 0, 0, 0,  0x00, 0x00, 0x00, 0x20,
		0x87, 0x17, 0x00, 0x01, 0x0c, 0x03, 0, 0, 0, 0,         /* an I/O window: skipped */
		0x00, 0x10, 0, 0,  0xff, 0x1f, 0, 0,  0, 0, 0, 0,  0x00, 0x10, 0, 0,
		0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0, 0, 0, 0,         /* inconsistent length: skipped */
		0x00, 0x00, 0x00, 0xa0,  0xff, 0xff, 0xff, 0xa0,  0, 0, 0, 0,  0x00, 0x10, 0, 0,
		0x8a, 0x2b, 0x00, 0x00, 0x0c, 0x01, 0, 0, 0, 0, 0, 0, 0, 0,
		0, 0, 0, 0, 0x80, 0, 0, 0,  0xff, 0xff, 0xff, 0xff, 0x80, 0, 0, 0,
		0, 0, 0, 0, 0, 0, 0, 0,  0, 0, 0, 0, 0x01, 0, 0, 0,
		0x14, 0x0c, '_', 'C', 'B', 'A', 0x00, 0xa4, 0x0c, 0x00, 0x00, 0x00, 0xe0,
	};
	struct acpi_window w[8];
	uint64_t cba = 0;
	uint8_t first = 9, last = 9;

	CHECK_EQ(acpi_scan_mem_windows(aml, sizeof(aml), w, 8), 2);
	CHECK_EQ(w[0].base, 0xc0000000);
	CHECK_EQ(w[0].size, 0x20000000);
	CHECK_EQ(w[1].base, 0x8000000000ull);
	CHECK_EQ(w[1].size, 0x100000000ull);
	CHECK(acpi_find_cba(aml, sizeof(aml), &cba));
	CHECK_EQ(cba, 0xe0000000);
	CHECK(acpi_find_bus_range(aml, sizeof(aml), &first, &last));
	CHECK_EQ(first, 0);
	CHECK_EQ(last, 15);
	static const uint8_t named[] = { 0x08, '_', 'C', 'B', 'A', 0x0e,
					 0, 0, 0, 0xb0, 0, 0, 0, 0 };
	CHECK(acpi_find_cba(named, sizeof(named), &cba) && cba == 0xb0000000);
	static const uint8_t none[] = { 0x08, '_', 'C', 'R', 'S', 0x0c, 1, 2, 3, 4 };
	CHECK(!acpi_find_cba(none, sizeof(none), &cba));

	/* Tables: XSDT -> FACP (X_DSDT) + MCFG at 64-bit pointers; RSDT the 32-bit way. */
	memset(phys, 0, sizeof(phys));
	sdt(0x3000, "DSDT", aml, sizeof(aml));
	uint8_t fadt[244 - 36];
	memset(fadt, 0, sizeof(fadt));
	uint64_t x_dsdt = 0x3000;
	memcpy(fadt + ACPI_FADT_X_DSDT_OFFSET - 36, &x_dsdt, 8);
	sdt(0x2000, "FACP", fadt, sizeof(fadt));
	uint8_t mcfg[8 + 16 + 16];
	memset(mcfg, 0, sizeof(mcfg));
	struct acpi_mcfg_entry e1 = { 0xd0000000, 1, 0, 7, 0 }, e0 = { 0xe0000000, 0, 0, 0, 0 };
	memcpy(mcfg + 8, &e1, 16);      /* segment 1 first: skipped */
	memcpy(mcfg + 24, &e0, 16);
	sdt(0x2400, "MCFG", mcfg, sizeof(mcfg));
	uint64_t xptr[3] = { 0x2800, 0x2000, 0x2400 };  /* 0x2800: an empty slot (bad table) */
	sdt(0x1000, "XSDT", xptr, sizeof(xptr));
	rsdp(0x40, 2, 0, 0x1000);

	CHECK(acpi_rsdp_valid(phys + 0x40));
	CHECK(acpi_rsdp_scan(phys, 0x100) == (const void *)(phys + 0x40));
	const struct acpi_rsdp *r = (const void *)(phys + 0x40);
	const struct acpi_sdt_header *t = acpi_find_table(r, "MCFG", map_fake);
	CHECK(t == (const void *)(phys + 0x2400));
	struct acpi_mcfg_entry got;
	CHECK(acpi_mcfg_segment0(t, &got));
	CHECK_EQ(got.base, 0xe0000000);
	CHECK_EQ(got.end_bus, 0);
	const struct acpi_sdt_header *d = acpi_find_dsdt(r, map_fake);
	CHECK(d == (const void *)(phys + 0x3000));
	CHECK(!acpi_find_table(r, "HPET", map_fake));

	/* A corrupted MCFG checksum makes it invisible. */
	phys[0x2400 + 40] ^= 1;
	CHECK(!acpi_find_table(r, "MCFG", map_fake));
	phys[0x2400 + 40] ^= 1;

	/* Revision 0: the RSDT with 32-bit pointers; FADT with only the 32-bit DSDT. */
	uint8_t fadt1[116 - 36];
	memset(fadt1, 0, sizeof(fadt1));
	uint32_t dsdt32 = 0x3000;
	memcpy(fadt1 + ACPI_FADT_DSDT_OFFSET - 36, &dsdt32, 4);
	sdt(0x2600, "FACP", fadt1, sizeof(fadt1));
	uint32_t rptr[2] = { 0x2400, 0x2600 };
	sdt(0x1800, "RSDT", rptr, sizeof(rptr));
	rsdp(0x80, 0, 0x1800, 0);
	r = (const void *)(phys + 0x80);
	CHECK(acpi_rsdp_valid(r));
	CHECK(acpi_find_table(r, "MCFG", map_fake) == (const void *)(phys + 0x2400));
	CHECK(acpi_find_dsdt(r, map_fake) == (const void *)(phys + 0x3000));

	/* A bad RSDP checksum, and the scan skips unaligned or wrong signatures. */
	phys[0x80 + 8] ^= 1;
	CHECK(!acpi_rsdp_valid(phys + 0x80));
	memset(phys, 0, 0x100);
	CHECK(!acpi_rsdp_scan(phys, 0x100));
}

/* ---- ring additions ---- */

static struct ring make_ring(unsigned pages)
{
	struct ring r;
	uint32_t bytes = (pages + 1) * 4096;
	void *mem = aligned_alloc(4096, bytes);

	memset(mem, 0xcc, bytes);
	ring_init(&r, mem, bytes);
	return r;
}

static void test_ring_ext(void)
{
	struct ring r = make_ring(1);
	uint8_t nvsp[40];
	struct {
		uint32_t reserved, rangecount;
		uint32_t len, offset;
		uint64_t pfn;
	} __attribute__((packed)) pb = { 0, 1, 28, 0x10, 0x12345 };

	for (int i = 0; i < 40; i++)
		nvsp[i] = (uint8_t)(0x40 + i);
	/* Linux's vmbus_sendpacket_pagebuffer: offset8 = (16 + 24) / 8 = 5, len8 = (40 + 40) / 8. */
	CHECK_EQ(ring_write_hdr(&r, VM_PKT_DATA_USING_GPA_DIRECT, 1, 0x77, &pb, 24, nvsp, 40), RING_OK);
	const uint8_t *d = r.data;
	CHECK_EQ(d[0] | d[1] << 8, 9);
	CHECK_EQ(d[2] | d[3] << 8, 5);
	CHECK_EQ(d[4] | d[5] << 8, 10);
	CHECK_EQ(d[6] | d[7] << 8, 1);
	CHECK_EQ(le32(d + 8), 0x77);
	CHECK(memcmp(d + 16, &pb, 24) == 0);
	CHECK(memcmp(d + 40, nvsp, 40) == 0);
	CHECK_EQ(le32(d + 80), 0);              /* trailer: start offset 0 << 32 */
	CHECK_EQ(le32(d + 84), 0);
	CHECK_EQ(r.priv_write, 88);
	CHECK_EQ(ring_write_hdr(&r, 9, 1, 1, &pb, 20, nvsp, 40), RING_TOO_BIG);   /* header not 8-aligned */
	CHECK_EQ(ring_commit_write(&r), 1);     /* was empty, interrupt_mask clear */

	/* Read it back whole as the host would: header then payload, unpadded length. */
	struct ring rd = r;                     /* same memory, reader view */
	rd.priv_read = 0;
	uint8_t buf[128];
	struct ring_packet p;
	CHECK_EQ(ring_read_full(&rd, &p, buf, sizeof(buf)), RING_OK);
	CHECK_EQ(p.type, 9);
	CHECK_EQ(p.header_len, 24);
	CHECK_EQ(p.len, 40);
	CHECK_EQ(p.trans_id, 0x77);
	CHECK(memcmp(buf, &pb, 24) == 0 && memcmp(buf + 24, nvsp, 40) == 0);
	CHECK_EQ(rd.priv_read, 88);
	CHECK_EQ(ring_read_full(&rd, &p, buf, sizeof(buf)), RING_EMPTY);

	/* Too small a buffer: nothing consumed. */
	rd.priv_read = 0;
	CHECK_EQ(ring_read_full(&rd, &p, buf, 63), RING_TOO_BIG);
	CHECK_EQ(rd.priv_read, 0);

	/* Wrap-around: a transfer-page packet that straddles the end of the data area. */
	struct ring w = make_ring(1);
	w.priv_write = w.batch_start = w.ctl->read_index = w.ctl->write_index = 4096 - 48;
	w.priv_read = 4096 - 48;
	uint8_t xh[16] = { 0xfe, 0xca, 0, 0, 1, 0, 0, 0, 60, 0, 0, 0, 0x80, 0, 0, 0 };
	uint32_t msg[4] = { 107, 0, 0xffffffff, 0 };
	CHECK_EQ(ring_write_hdr(&w, VM_PKT_DATA_USING_XFER_PAGES, 1, 0xabc, xh, 16, msg, 16), RING_OK);
	CHECK_EQ(w.priv_write, (4096 - 48 + 16 + 16 + 16 + 8) % 4096);
	ring_commit_write(&w);
	CHECK_EQ(ring_read_full(&w, &p, buf, sizeof(buf)), RING_OK);
	CHECK_EQ(p.type, VM_PKT_DATA_USING_XFER_PAGES);
	CHECK_EQ(p.header_len, 16);
	CHECK_EQ(p.len, 16);
	CHECK(memcmp(buf, xh, 16) == 0 && memcmp(buf + 16, msg, 16) == 0);
	CHECK_EQ(w.priv_read, w.priv_write);

	/* A corrupt descriptor (offset8 beyond len8) is refused. */
	struct ring c = make_ring(1);
	CHECK_EQ(ring_write(&c, 6, 0, 1, nvsp, 8), RING_OK);
	ring_commit_write(&c);
	c.data[2] = 9;                          /* offset8 9 > len8 3 */
	CHECK_EQ(ring_read_full(&c, &p, buf, sizeof(buf)), RING_CORRUPT);

	free(r.ctl);
	free(w.ctl);
	free(c.ctl);
}

int main(void)
{
	test_checksum();
	test_arp();
	test_icmp();
	test_bench_and_parse();
	test_nvsp();
	test_rndis();
	test_e1000();
	test_acpi();
	test_ring_ext();
	printf("net-test: %u checks passed\n", checks);
	return 0;
}
