/* Ethernet, ARP, IPv4, ICMP echo (see proto.h). */
#include "proto.h"

static const uint8_t broadcast[ETH_ALEN] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static int mac_eq(const uint8_t *a, const uint8_t *b)
{
	for (int i = 0; i < ETH_ALEN; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

static void copy(uint8_t *dst, const uint8_t *src, uint32_t n)
{
	__builtin_memcpy(dst, src, n);
}

uint16_t inet_checksum(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t sum = 0;

	for (; len >= 2; p += 2, len -= 2)
		sum += (uint32_t)(p[0] << 8 | p[1]);
	if (len)
		sum += (uint32_t)p[0] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static uint32_t pad(uint8_t *out, uint32_t len)
{
	if (len < ETH_ZLEN) {
		__builtin_memset(out + len, 0, ETH_ZLEN - len);
		len = ETH_ZLEN;
	}
	return len;
}

static enum net_reply arp(const uint8_t *frame, uint32_t len, const uint8_t *my_mac,
			  uint32_t my_ip, uint8_t *out, uint32_t *out_len,
			  struct net_reply_info *info)
{
	const uint8_t *a = frame + ETH_HLEN;

	if (len < ETH_HLEN + ARP_LEN)
		return NET_IGNORE;
	/* Ethernet/IPv4 request for our address; anything else is not ours to answer. */
	if (get_be16(a) != 1 || get_be16(a + 2) != ETHERTYPE_IPV4 || a[4] != ETH_ALEN ||
	    a[5] != 4 || get_be16(a + 6) != 1 || get_be32(a + 24) != my_ip)
		return NET_IGNORE;

	const uint8_t *sha = a + 8;
	uint32_t spa = get_be32(a + 14);
	uint8_t *r = out + ETH_HLEN;

	copy(out, sha, ETH_ALEN);
	copy(out + 6, my_mac, ETH_ALEN);
	put_be16(out + 12, ETHERTYPE_ARP);
	put_be16(r, 1);
	put_be16(r + 2, ETHERTYPE_IPV4);
	r[4] = ETH_ALEN;
	r[5] = 4;
	put_be16(r + 6, 2);                     /* reply */
	copy(r + 8, my_mac, ETH_ALEN);
	put_be32(r + 14, my_ip);
	copy(r + 18, sha, ETH_ALEN);
	put_be32(r + 24, spa);
	*out_len = pad(out, ETH_HLEN + ARP_LEN);
	copy(info->peer_mac, sha, ETH_ALEN);
	info->peer_ip = spa;
	info->icmp_id = info->icmp_seq = 0;
	info->icmp_len = 0;
	return NET_ARP_REPLY;
}

static enum net_reply icmp(const uint8_t *frame, uint32_t len, const uint8_t *my_mac,
			   uint32_t my_ip, uint8_t *out, uint32_t *out_len,
			   struct net_reply_info *info)
{
	const uint8_t *ip = frame + ETH_HLEN;

	if (len < ETH_HLEN + IPV4_HLEN || (ip[0] >> 4) != 4)
		return NET_IGNORE;
	uint32_t ihl = (uint32_t)(ip[0] & 0xf) * 4, tot = get_be16(ip + 2);
	if (get_be32(ip + 16) != my_ip || ip[9] != IPPROTO_ICMP)
		return NET_IGNORE;
	if (!mac_eq(frame, my_mac) && !mac_eq(frame, broadcast))
		return NET_IGNORE;
	/* From here on it is ours: anything wrong is a bad packet. */
	if (ihl < IPV4_HLEN || tot < ihl + 8 || tot > len - ETH_HLEN)
		return NET_BAD;
	if (inet_checksum(ip, ihl) != 0)
		return NET_BAD;
	if (get_be16(ip + 6) & 0x3fff)          /* MF or a fragment offset */
		return NET_BAD;
	const uint8_t *ic = ip + ihl;
	uint32_t icmp_len = tot - ihl;
	if (ic[0] != ICMP_ECHO_REQUEST)
		return NET_IGNORE;
	if (ic[1] != 0 || inet_checksum(ic, icmp_len) != 0)
		return NET_BAD;
	if (ETH_HLEN + IPV4_HLEN + icmp_len > ETH_FRAME_MAX)
		return NET_BAD;

	uint32_t peer = get_be32(ip + 12);
	uint8_t *rip = out + ETH_HLEN, *ric = rip + IPV4_HLEN;

	copy(out, frame + 6, ETH_ALEN);
	copy(out + 6, my_mac, ETH_ALEN);
	put_be16(out + 12, ETHERTYPE_IPV4);
	/* A fresh 20-byte header: options are not echoed (as Linux does for echo). */
	rip[0] = 0x45;
	rip[1] = ip[1];
	put_be16(rip + 2, (uint16_t)(IPV4_HLEN + icmp_len));
	put_be16(rip + 4, get_be16(ip + 4));
	put_be16(rip + 6, 0);
	rip[8] = NET_REPLY_TTL;
	rip[9] = IPPROTO_ICMP;
	put_be16(rip + 10, 0);
	put_be32(rip + 12, my_ip);
	put_be32(rip + 16, peer);
	put_be16(rip + 10, inet_checksum(rip, IPV4_HLEN));
	copy(ric, ic, icmp_len);
	ric[0] = ICMP_ECHO_REPLY;
	ric[1] = 0;
	put_be16(ric + 2, 0);
	put_be16(ric + 2, inet_checksum(ric, icmp_len));
	*out_len = pad(out, ETH_HLEN + IPV4_HLEN + icmp_len);

	copy(info->peer_mac, frame + 6, ETH_ALEN);
	info->peer_ip = peer;
	info->icmp_id = get_be16(ic + 4);
	info->icmp_seq = get_be16(ic + 6);
	info->icmp_len = icmp_len;
	return NET_ICMP_REPLY;
}

enum net_reply net_respond(const uint8_t *frame, uint32_t len, const uint8_t my_mac[ETH_ALEN],
			   uint32_t my_ip, uint8_t *out, uint32_t *out_len,
			   struct net_reply_info *info)
{
	if (len < ETH_HLEN || len > ETH_FRAME_MAX)
		return NET_IGNORE;
	switch (get_be16(frame + 12)) {
	case ETHERTYPE_ARP:
		return arp(frame, len, my_mac, my_ip, out, out_len, info);
	case ETHERTYPE_IPV4:
		return icmp(frame, len, my_mac, my_ip, out, out_len, info);
	default:
		return NET_IGNORE;
	}
}

void net_bench_frame(uint8_t *out, uint32_t size, const uint8_t dst[ETH_ALEN],
		     const uint8_t src[ETH_ALEN])
{
	copy(out, dst, ETH_ALEN);
	copy(out + 6, src, ETH_ALEN);
	put_be16(out + 12, ETHERTYPE_BENCH);
	out[BENCH_MAGIC_OFF] = 'H';
	out[BENCH_MAGIC_OFF + 1] = 'V';
	out[BENCH_MAGIC_OFF + 2] = 'N';
	out[BENCH_MAGIC_OFF + 3] = 'B';
	for (uint32_t i = BENCH_SEQ_OFF + 8; i < size; i++)
		out[i] = (uint8_t)i;
	net_bench_stamp(out, 0);
}

int net_bench_parse(const uint8_t *frame, uint32_t len, uint64_t *seq)
{
	if (len < BENCH_SEQ_OFF + 8 || get_be16(frame + 12) != ETHERTYPE_BENCH ||
	    frame[BENCH_MAGIC_OFF] != 'H' || frame[BENCH_MAGIC_OFF + 1] != 'V' ||
	    frame[BENCH_MAGIC_OFF + 2] != 'N' || frame[BENCH_MAGIC_OFF + 3] != 'B')
		return 0;
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | frame[BENCH_SEQ_OFF + i];
	*seq = v;
	return 1;
}

int net_parse_ip(const char *s, uint32_t *ip)
{
	uint32_t v = 0;

	for (int part = 0; part < 4; part++) {
		uint32_t n = 0;
		int digits = 0;
		while (*s >= '0' && *s <= '9') {
			n = n * 10 + (uint32_t)(*s++ - '0');
			if (++digits > 3 || n > 255)
				return 0;
		}
		if (!digits)
			return 0;
		v = v << 8 | n;
		if (part < 3 && *s++ != '.')
			return 0;
	}
	if (*s)
		return 0;
	*ip = v;
	return 1;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int net_parse_mac(const char *s, uint8_t mac[ETH_ALEN])
{
	for (int i = 0; i < ETH_ALEN; i++) {
		int hi = hexval(s[0]), lo = hi < 0 ? -1 : hexval(s[1]);
		if (hi < 0 || lo < 0)
			return 0;
		mac[i] = (uint8_t)(hi << 4 | lo);
		s += 2;
		if (i < ETH_ALEN - 1 && *s != ':' && *s != '-')
			return 0;
		if (i < ETH_ALEN - 1)
			s++;
	}
	return *s == '\0';
}

void net_format_mac(char out[18], const uint8_t mac[ETH_ALEN])
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < ETH_ALEN; i++) {
		out[3 * i] = hex[mac[i] >> 4];
		out[3 * i + 1] = hex[mac[i] & 15];
		out[3 * i + 2] = i < ETH_ALEN - 1 ? ':' : '\0';
	}
}

void net_format_ip(char out[16], uint32_t ip)
{
	int o = 0;

	for (int part = 3; part >= 0; part--) {
		unsigned n = (ip >> (8 * part)) & 0xff;
		if (n >= 100)
			out[o++] = (char)('0' + n / 100);
		if (n >= 10)
			out[o++] = (char)('0' + n / 10 % 10);
		out[o++] = (char)('0' + n % 10);
		if (part)
			out[o++] = '.';
	}
	out[o] = '\0';
}

int net_mac_valid(const uint8_t mac[ETH_ALEN])
{
	int zero = 1;

	for (int i = 0; i < ETH_ALEN; i++)
		if (mac[i])
			zero = 0;
	return !zero && !(mac[0] & 1);
}
