/*
 * Ethernet, ARP, IPv4 and ICMP echo for the network workload (net.elf):
 * checksums, the replies a responder sends, and the benchmark frames.
 * Addresses are host-order u32 (A.B.C.D = A << 24 | ...); on the wire
 * everything is big-endian. Pure C: the host-side unit test links it too.
 */
#ifndef NET_PROTO_H
#define NET_PROTO_H
#include <stddef.h>
#include <stdint.h>

#define ETH_ALEN                6
#define ETH_HLEN                14
#define ETH_ZLEN                60      /* shortest frame without FCS */
#define ETH_FRAME_MAX           1514    /* longest frame without FCS (MTU 1500) */
#define ETHERTYPE_IPV4          0x0800
#define ETHERTYPE_ARP           0x0806
#define ETHERTYPE_BENCH         0x88b5  /* IEEE 802 local experimental ethertype 1 */

#define ARP_LEN                 28
#define IPV4_HLEN               20
#define IPPROTO_ICMP            1
#define ICMP_ECHO_REPLY         0
#define ICMP_ECHO_REQUEST       8
#define NET_REPLY_TTL           64

/* Benchmark frame: Ethernet header, then "HVNB", then the sequence number (LE u64). */
#define BENCH_MAGIC_OFF         ETH_HLEN
#define BENCH_SEQ_OFF           (ETH_HLEN + 4)
#define BENCH_MIN_SIZE          64
#define BENCH_MAX_SIZE          ETH_FRAME_MAX

static inline uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/*
 * The Internet checksum (RFC 1071) of len bytes: the ones'-complement of
 * the ones'-complement sum of the big-endian 16-bit words, an odd last byte
 * padded with zero. Store it with put_be16; over data that holds a correct
 * checksum it returns 0.
 */
uint16_t inet_checksum(const void *data, size_t len);

enum net_reply {
	NET_IGNORE = 0,         /* not for us, or not something we answer */
	NET_BAD,                /* for us but malformed (bad checksum, lengths): dropped */
	NET_ARP_REPLY,
	NET_ICMP_REPLY,
};

struct net_reply_info {
	uint8_t peer_mac[ETH_ALEN];
	uint32_t peer_ip;
	uint16_t icmp_id, icmp_seq;     /* echo only */
	uint32_t icmp_len;              /* ICMP message bytes (header + data) */
};

/*
 * A responder for my_ip/my_mac looks at one received frame (without FCS,
 * maybe padded): an ARP request for my_ip, or an ICMP echo request to
 * my_ip (addressed to my_mac or broadcast, valid IP header checksum, not a
 * fragment, valid ICMP checksum). For those it builds the reply into out
 * (room for ETH_FRAME_MAX bytes), padded to ETH_ZLEN, sets *out_len and
 * *info, and returns NET_ARP_REPLY or NET_ICMP_REPLY.
 */
enum net_reply net_respond(const uint8_t *frame, uint32_t len, const uint8_t my_mac[ETH_ALEN],
			   uint32_t my_ip, uint8_t *out, uint32_t *out_len,
			   struct net_reply_info *info);

/* A benchmark frame of `size` bytes (BENCH_MIN_SIZE..BENCH_MAX_SIZE) with sequence 0. */
void net_bench_frame(uint8_t *out, uint32_t size, const uint8_t dst[ETH_ALEN],
		     const uint8_t src[ETH_ALEN]);
static inline void net_bench_stamp(uint8_t *frame, uint64_t seq)
{
	for (int i = 0; i < 8; i++)
		frame[BENCH_SEQ_OFF + i] = (uint8_t)(seq >> (8 * i));
}
/* 1 and *seq when the frame is a benchmark frame. */
int net_bench_parse(const uint8_t *frame, uint32_t len, uint64_t *seq);

/* "A.B.C.D" -> host-order u32; 1 on success. */
int net_parse_ip(const char *s, uint32_t *ip);
/* "aa:bb:cc:dd:ee:ff" (or '-') -> 6 bytes; 1 on success. */
int net_parse_mac(const char *s, uint8_t mac[ETH_ALEN]);
/* "aa:bb:cc:dd:ee:ff" into out (18 bytes). */
void net_format_mac(char out[18], const uint8_t mac[ETH_ALEN]);
/* "A.B.C.D" into out (16 bytes). */
void net_format_ip(char out[16], uint32_t ip);
/* A MAC a NIC may own: not multicast/broadcast, not all zero. */
int net_mac_valid(const uint8_t mac[ETH_ALEN]);

#endif
