/*
 * net.elf: one network workload over either NIC, BSP only, polling at CPL3.
 *
 * CPL0 (prog_kernel_init, kept short: emulated on the PVM host): for
 * nic=netvsc the Hyper-V setup vmbus.elf does (hv_detect, hypercall page,
 * SynIC, ports 0xE0-0xE7); for nic=e1000 the TSC frequency from CPUID/MSRs
 * and ports 0xCF8-0xCFF (PCI mechanism #1) and, when no leaf gave the TSC
 * frequency, the PIT's ports for a calibration at CPL3. Both register a
 * system call that marks a 2 MiB page of the identity map uncached (for the
 * NIC's BAR and ECAM).
 *
 * Command line (decimal numbers; defaults in brackets):
 *   nic=e1000|netvsc [e1000]
 *   mode=responder ip=A.B.C.D [count=N]
 *       answer ARP requests for ip and ICMP echo requests to it; with count,
 *       stop after N echo replies, else run forever
 *   mode=tx size=S count=N [burst=B] [dst=aa:bb:cc:dd:ee:ff]
 *       send N frames of S bytes (64..1514, ethertype 0x88b5, "HVNB" + a
 *       little-endian u64 sequence number at byte 18), to dst [broadcast]
 *   mode=rx size=S count=N
 *       count received frames of exactly S bytes until N arrived
 *   burst=B [1]          doorbell (e1000 TDT write, NetVSC ring commit) every B frames
 *   timeout_ms=T [10000] bound on every wait for the device
 *   idle_ms=T            give up after T ms without traffic [rx: 60000; responder: never]
 *   promisc=1            receive every frame (RCTL.UPE|MPE; NDIS promiscuous filter)
 *   pci_mmio=0xADDR      where to place an unassigned BAR when ACPI names no window
 *
 * Output: "net: ..." progress lines, the driver's "e1000: ..."/"netvsc: ..."
 * lines, then once the NIC is ready
 *   net: mac=52:54:00:12:34:56 nic=e1000 link=up
 * and per mode
 *   responder: net: arp reply to A.B.C.D mac=M          (first 5)
 *              net: echo reply to A.B.C.D id=I seq=Q bytes=B   (first 5)
 *              net: replied pings=N arps=A              (every 1000 pings)
 *              net: responder done pings=N arps=A bad=X dropped=D   (with count)
 *   tx:        net-bench dir=tx nic=<nic> size=S count=N ns=T burst=B
 *   rx:        net-bench dir=rx nic=<nic> size=S count=N ns=T
 * followed (tx, rx) by "net: doorbells=K rx-frames=F rx-dropped=D other=O".
 * tx times from the first frame queued until the device finished the last;
 * rx from the first matching frame to the N-th.
 * Exit status: 0 done; 1 device failure or timeout; 2 bad command line, no
 * NIC or no usable hypervisor interface; 3 CPU exception (runtime).
 */
#include "boot/runtime.h"
#include "lib/fmt.h"
#include "lib/io.h"
#include "lib/string.h"
#include "net/e1000_regs.h"
#include "net/nic.h"
#include "net/pci.h"
#include "net/proto.h"
#include "net/tsc.h"
#include "vmbus/clock.h"
#include "vmbus/hypercall.h"
#include "vmbus/hyperv.h"
#include "vmbus/synic.h"
#include "vmbus/vmbus.h"

#define UCALL_NET_UNCACHE       4       /* synic.h owns 0 */
#define PRINT_FIRST             5
#define RESPONDER_QUEUE         64

uint32_t nic_timeout_ms = 10000;

static struct nic nic;
static char nic_name[16] = "e1000";
static const char *tsc_source;
static const char *cpl0_error;

static void __attribute__((noreturn)) fail(void)
{
	guest_exit(1);
}

static void __attribute__((noreturn)) usage(const char *why)
{
	kprintf("net: %s\n", why);
	kprintf("net: usage: nic=e1000|netvsc mode=responder ip=A.B.C.D [count=N] | "
		"mode=tx size=S count=N [burst=B] [dst=MAC] | mode=rx size=S count=N\n");
	guest_exit(2);
}

static int streq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

/* ---- CPL0 ---- */

/* System call: the 2 MiB page of the identity map holding `addr` becomes uncached (PCD|PWT). */
static uint64_t uncache_2m(uint64_t addr)
{
	uint64_t cr3;

	if (addr >= 0x100000000ull)
		return 1;
	__asm__ volatile("mov %%cr3, %0" : "=r"(cr3));
	uint64_t *pml4 = (uint64_t *)(uintptr_t)(cr3 & ~0xfffull);
	uint64_t *pdpt = (uint64_t *)(uintptr_t)(pml4[0] & 0x000ffffffffff000ull);
	uint64_t *pd = (uint64_t *)(uintptr_t)(pdpt[addr >> 30] & 0x000ffffffffff000ull);
	uint64_t *e = &pd[(addr >> 21) & 511];
	if (!(*e & 0x80))
		return 2;       /* not a 2 MiB page: leave it */
	*e |= 0x18;
	__asm__ volatile("invlpg (%0)" : : "r"(addr) : "memory");
	return 0;
}

void prog_kernel_init(void)
{
	cmdline_get_str("nic", nic_name, sizeof(nic_name));
	ucall_set_handler(UCALL_NET_UNCACHE, uncache_2m);
	if (streq(nic_name, "netvsc")) {
		const char *err = hv_detect();
		if (!err)
			err = hv_enable_hypercalls();
		if (!err)
			err = synic_enable();
		if (!err && !io_allow_ports(HV_HYPERCALL_PORT_FIRST, HV_HYPERCALL_PORT_COUNT))
			err = "cannot open ports 0xE0-0xE7 to CPL3";
		cpl0_error = err;
		tsc_source = hv_info.tsc_source;
		return;
	}
	tsc_source = tsc_detect_cpl0();
	if (!tsc_source && !tsc_allow_pit_ports())
		cpl0_error = "cannot open the PIT ports to CPL3";
	if (!io_allow_ports(PCI_CONF1_ADDR, PCI_CONF1_PORTS))
		cpl0_error = "cannot open ports 0xCF8-0xCFF to CPL3";
}

/* ---- helpers ---- */

static int cmdline_hex(const char *key, uint64_t *out)
{
	char s[24];
	uint64_t v = 0;
	const char *p = s;

	if (!cmdline_get_str(key, s, sizeof(s)))
		return 0;
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
		p += 2;
	if (!*p)
		return -1;
	for (; *p; p++) {
		int d = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 :
			*p >= 'A' && *p <= 'F' ? *p - 'A' + 10 : -1;
		if (d < 0 || v >> 60)
			return -1;
		v = v << 4 | (uint64_t)d;
	}
	*out = v;
	return 1;
}

static void uncache(uint64_t base, uint64_t size)
{
	for (uint64_t a = base & ~0x1fffffull; a < base + size; a += 0x200000)
		ucall(UCALL_NET_UNCACHE, a);
}

static int open_e1000(int promisc)
{
	static const uint16_t ids[] = { E1000_DEV_82540EM, 0x100f, 0x100c };
	struct pci_dev dev;
	uint64_t window = 0;

	if (cmdline_hex("pci_mmio", &window) < 0)
		usage("pci_mmio: want a hex address");
	if (pci_init(window) < 0)
		return -2;
	if (pci_ecam_base())
		uncache(pci_ecam_base(), 1);
	int r = pci_find_and_enable(E1000_VENDOR_INTEL, ids, 3, &dev);
	if (r < 0)
		return r;
	kprintf("net: e1000 %x:%x at bus %u dev %u fn %u bar0=0x%lx size=0x%lx%s\n", dev.vendor,
		dev.device, dev.bus, dev.dev, dev.fn, (unsigned long)dev.bar0,
		(unsigned long)dev.bar0_size, dev.bar0_assigned_here ? " (assigned here)" : "");
	if (dev.bar0 + dev.bar0_size > 0x100000000ull) {
		kprintf("net: BAR 0 lies beyond the stub's 4 GiB identity map\n");
		return -1;
	}
	uncache(dev.bar0, dev.bar0_size);
	return e1000_open(&nic, dev.bar0, promisc);
}

/* ---- mode=responder ---- */

static struct {
	uint32_t ip;
	uint8_t q[RESPONDER_QUEUE][ETH_FRAME_MAX];
	uint32_t qlen[RESPONDER_QUEUE];
	uint32_t head, tail;
	uint64_t pings, arps, bad, dropped, last_progress;
} resp;

static void responder_rx(void *ctx, const uint8_t *frame, uint32_t len)
{
	struct net_reply_info info;
	uint32_t next = (resp.tail + 1) % RESPONDER_QUEUE, out_len = 0;
	char ip[16], mac[18];

	(void)ctx;
	if (next == resp.head) {
		resp.dropped++;
		return;
	}
	enum net_reply r = net_respond(frame, len, nic.mac, resp.ip, resp.q[resp.tail], &out_len,
				       &info);
	switch (r) {
	case NET_ARP_REPLY:
		if (++resp.arps <= PRINT_FIRST) {
			net_format_ip(ip, info.peer_ip);
			net_format_mac(mac, info.peer_mac);
			kprintf("net: arp reply to %s mac=%s\n", ip, mac);
		}
		break;
	case NET_ICMP_REPLY:
		if (++resp.pings <= PRINT_FIRST) {
			net_format_ip(ip, info.peer_ip);
			kprintf("net: echo reply to %s id=%u seq=%u bytes=%u\n", ip, info.icmp_id,
				info.icmp_seq, info.icmp_len);
		}
		break;
	case NET_BAD:
		resp.bad++;
		return;
	default:
		return;
	}
	resp.qlen[resp.tail] = out_len;
	resp.tail = next;
}

static void __attribute__((noreturn)) run_responder(void)
{
	char s[20];
	uint64_t count = 0, idle_ms = 0, sent_pings = 0;

	if (!cmdline_get_str("ip", s, sizeof(s)) || !net_parse_ip(s, &resp.ip))
		usage("mode=responder needs ip=A.B.C.D");
	cmdline_get_u64("count", &count);
	cmdline_get_u64("idle_ms", &idle_ms);
	net_format_ip(s, resp.ip);
	kprintf("net: responder ip=%s count=%lu\n", s, (unsigned long)count);
	nic.rx = responder_rx;

	uint64_t last = rdtsc();
	for (;;) {
		if (nic.poll() < 0)
			fail();
		int sent = 0;
		while (resp.head != resp.tail) {
			uint8_t *buf = nic.tx_buf();
			if (!buf)
				fail();
			memcpy(buf, resp.q[resp.head], resp.qlen[resp.head]);
			if (nic.tx_queue(resp.qlen[resp.head]) < 0)
				fail();
			resp.head = (resp.head + 1) % RESPONDER_QUEUE;
			sent = 1;
		}
		if (sent) {
			nic.tx_flush();
			last = rdtsc();
		}
		if (resp.pings / 1000 != sent_pings / 1000)
			kprintf("net: replied pings=%lu arps=%lu\n", (unsigned long)resp.pings,
				(unsigned long)resp.arps);
		sent_pings = resp.pings;
		if (count && resp.pings >= count) {
			if (nic.tx_drain() < 0)
				fail();
			kprintf("net: responder done pings=%lu arps=%lu bad=%lu dropped=%lu\n",
				(unsigned long)resp.pings, (unsigned long)resp.arps,
				(unsigned long)resp.bad,
				(unsigned long)(resp.dropped + nic.rx_dropped));
			if (nic.close() < 0)
				fail();
			guest_exit(0);
		}
		if (idle_ms && rdtsc() - last > clock_ms_to_ticks(idle_ms)) {
			kprintf("net: responder: no traffic for %lu ms (pings=%lu arps=%lu)\n",
				(unsigned long)idle_ms, (unsigned long)resp.pings,
				(unsigned long)resp.arps);
			fail();
		}
		cpu_relax();
	}
}

/* ---- mode=tx ---- */

static uint8_t bench_template[ETH_FRAME_MAX];

static void get_size_count(uint64_t *size, uint64_t *count)
{
	if (!cmdline_get_u64("size", size) || *size < BENCH_MIN_SIZE || *size > BENCH_MAX_SIZE)
		usage("want size=64..1514");
	if (!cmdline_get_u64("count", count) || *count == 0)
		usage("want count=N (N >= 1)");
}

static void print_stats(uint64_t other)
{
	kprintf("net: doorbells=%lu rx-frames=%lu rx-dropped=%lu other=%lu\n",
		(unsigned long)nic.doorbells, (unsigned long)nic.rx_frames,
		(unsigned long)nic.rx_dropped, (unsigned long)other);
}

static void __attribute__((noreturn)) run_tx(void)
{
	static const uint8_t broadcast[ETH_ALEN] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	uint8_t dst[ETH_ALEN];
	uint64_t size, count;
	char s[24];

	get_size_count(&size, &count);
	memcpy(dst, broadcast, ETH_ALEN);
	if (cmdline_get_str("dst", s, sizeof(s)) && !net_parse_mac(s, dst))
		usage("dst: want aa:bb:cc:dd:ee:ff");
	net_bench_frame(bench_template, (uint32_t)size, dst, nic.mac);

	uint64_t t0 = rdtsc();
	for (uint64_t seq = 0; seq < count; seq++) {
		uint8_t *buf = nic.tx_buf();
		if (!buf) {
			kprintf("net-bench: stopped after %lu of %lu frames\n", (unsigned long)seq,
				(unsigned long)count);
			fail();
		}
		memcpy(buf, bench_template, size);
		net_bench_stamp(buf, seq);
		if (nic.tx_queue((uint32_t)size) < 0)
			fail();
	}
	if (nic.tx_drain() < 0)
		fail();
	uint64_t ticks = rdtsc() - t0;
	kprintf("net-bench dir=tx nic=%s size=%lu count=%lu ns=%lu burst=%u\n", nic.name,
		(unsigned long)size, (unsigned long)count, (unsigned long)clock_ticks_to_ns(ticks),
		nic.burst);
	print_stats(0);
	if (nic.close() < 0)
		fail();
	guest_exit(0);
}

/* ---- mode=rx ---- */

static struct {
	uint32_t size;
	uint64_t want, got, other, t_first, t_last;
} rxb;

static void rx_bench_rx(void *ctx, const uint8_t *frame, uint32_t len)
{
	(void)ctx;
	(void)frame;
	if (len != rxb.size || rxb.got >= rxb.want) {
		rxb.other++;
		return;
	}
	uint64_t now = rdtsc();
	if (rxb.got++ == 0)
		rxb.t_first = now;
	rxb.t_last = now;
}

static void __attribute__((noreturn)) run_rx(void)
{
	uint64_t size, count, idle_ms = 60000;

	get_size_count(&size, &count);
	cmdline_get_u64("idle_ms", &idle_ms);
	rxb.size = (uint32_t)size;
	rxb.want = count;
	nic.rx = rx_bench_rx;
	kprintf("net: waiting for %lu frames of %lu bytes\n", (unsigned long)count,
		(unsigned long)size);

	uint64_t last = rdtsc(), seen = 0;
	while (rxb.got < rxb.want) {
		if (nic.poll() < 0)
			fail();
		uint64_t now = rdtsc();
		if (rxb.got + rxb.other != seen) {
			seen = rxb.got + rxb.other;
			last = now;
		} else if (idle_ms && now - last > clock_ms_to_ticks(idle_ms)) {
			kprintf("net-bench: no frame for %lu ms: %lu of %lu frames of %lu bytes "
				"(%lu others)\n", (unsigned long)idle_ms, (unsigned long)rxb.got,
				(unsigned long)count, (unsigned long)size, (unsigned long)rxb.other);
			fail();
		} else {
			cpu_relax();
		}
	}
	kprintf("net-bench dir=rx nic=%s size=%lu count=%lu ns=%lu\n", nic.name,
		(unsigned long)size, (unsigned long)count,
		(unsigned long)clock_ticks_to_ns(rxb.t_last - rxb.t_first));
	print_stats(rxb.other);
	if (nic.close() < 0)
		fail();
	guest_exit(0);
}

void prog_user_main(struct cpu *c)
{
	char mode[16] = "", mac[18];
	uint64_t v, promisc = 0;

	(void)c;
	if (cpl0_error) {
		kprintf("net: %s%s%s%s\n", cpl0_error, hv_info.vendor[0] ? " (vendor \"" : "",
			hv_info.vendor, hv_info.vendor[0] ? "\")" : "");
		guest_exit(2);
	}
	if (!streq(nic_name, "e1000") && !streq(nic_name, "netvsc"))
		usage("nic: want e1000 or netvsc");
	if (!cmdline_get_str("mode", mode, sizeof(mode)) ||
	    (!streq(mode, "responder") && !streq(mode, "tx") && !streq(mode, "rx")))
		usage("want mode=responder, tx or rx");
	if (cmdline_get_u64("timeout_ms", &v) && v > 0)
		nic_timeout_ms = (uint32_t)(v > 3600000 ? 3600000 : v);
	vmbus_timeout_ms = nic_timeout_ms;
	nic.burst = 1;
	if (cmdline_get_u64("burst", &v)) {
		if (v == 0 || v > 4096)
			usage("burst: want 1..4096");
		nic.burst = (uint32_t)v;
	}
	cmdline_get_u64("promisc", &promisc);

	if (!clock_tsc_hz) {
		clock_tsc_hz = tsc_calibrate_pit();
		tsc_source = "pit";
		if (!clock_tsc_hz) {
			kprintf("net: no TSC frequency: no Hyper-V frequency MSR, no CPUID "
				"0x15/0x16/0x40000010, and no PIT to calibrate against\n");
			guest_exit(2);
		}
	}
	kprintf("net: nic=%s mode=%s tsc-hz=%lu source=%s\n", nic_name, mode,
		(unsigned long)clock_tsc_hz, tsc_source);

	int r = streq(nic_name, "netvsc") ? netvsc_open(&nic, (int)promisc) :
					    open_e1000((int)promisc);
	if (r == -2)
		guest_exit(2);
	if (r < 0)
		fail();
	net_format_mac(mac, nic.mac);
	kprintf("net: mac=%s nic=%s link=%s\n", mac, nic.name, nic.link_up ? "up" : "down");

	if (streq(mode, "responder"))
		run_responder();
	if (streq(mode, "tx"))
		run_tx();
	run_rx();
}
