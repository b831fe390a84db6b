/*
 * vmbus.elf: the guest side of VMBus against hv's Hyper-V interface, BSP only.
 *
 * CPL0 (prog_kernel_init, emulated and slow on the PVM host, so kept short):
 * Hyper-V detection by CPUID, the guest OS id, the hypercall page, the SynIC
 * MSRs, ports 0xE0-0xE7 for the hypercall page at CPL3, and the EOM system
 * call. CPL3 (native): everything else, by polling (IF stays 0).
 *
 * Command line:
 *   mode=hello [heartbeats=N] [timeout_ms=T]   (default; N defaults to 3)
 *     print what was detected, connect, list the offers, open the heartbeat
 *     channel, answer the negotiate and N heartbeats, close, tear down the
 *     GPADL, unload, print "vmbus: done", exit 0.
 *   mode=bench size=S count=N [ring=KiB] [timeout_ms=T]
 *     (under `hv bench vmbus`) send N inband packets of S bytes (64..65536)
 *     to the echo device, pipelined, read and check every echo, then print
 *       vmbus-bench size=S count=N ns=T signals=K
 *       memcpy size=65536 bytes-per-second=B
 *     and exit 0. ring = each ring's data area in KiB (default 1024).
 * Exit status: 0 done; 1 protocol failure or timeout; 2 no usable Hyper-V
 * interface or bad command line; 3 CPU exception (runtime).
 */
#include "boot/runtime.h"
#include "lib/fmt.h"
#include "lib/io.h"
#include "lib/string.h"
#include "vmbus/clock.h"
#include "vmbus/hypercall.h"
#include "vmbus/hyperv.h"
#include "vmbus/ic.h"
#include "vmbus/synic.h"
#include "vmbus/vmbus.h"

#define HEARTBEAT_RING_BYTES    (4 * HV_PAGE_SIZE)      /* Linux HV_UTIL_RING_*_SIZE */
#define BENCH_MAX_RING_KIB      4096u
#define BENCH_DEFAULT_RING_KIB  1024u
#define BENCH_MAX_SIZE          65536u
#define BENCH_MIN_SIZE          64u
#define MEMCPY_SIZE             65536u

/* Both rings of one channel: control page + data, twice. Identity-mapped, so GPA = VA. */
static uint8_t ring_pool[2 * (HV_PAGE_SIZE + BENCH_MAX_RING_KIB * 1024)]
	__attribute__((aligned(HV_PAGE_SIZE)));
/* Bench payloads and memcpy buffers; the IC buffer is a page, as hv_util's. */
static uint8_t send_buf[BENCH_MAX_SIZE] __attribute__((aligned(64)));
static uint8_t ic_buf[HV_PAGE_SIZE] __attribute__((aligned(8)));

static struct vmbus_channel channel;

static void __attribute__((noreturn)) fail(void)
{
	guest_exit(1);
}

static int streq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

/* ---- CPL0 ---- */

void prog_kernel_init(void)
{
	const char *err = hv_detect();

	if (!err)
		err = hv_enable_hypercalls();
	if (!err)
		err = synic_enable();
	if (!err && !io_allow_ports(HV_HYPERCALL_PORT_FIRST, HV_HYPERCALL_PORT_COUNT))
		err = "cannot open ports 0xE0-0xE7 to CPL3";
	if (err) {
		kprintf("vmbus: %s%s%s%s\n", err, hv_info.vendor[0] ? " (vendor \"" : "",
			hv_info.vendor, hv_info.vendor[0] ? "\")" : "");
		guest_exit(2);
	}
}

/* ---- mode=hello ---- */

static void print_detection(void)
{
	kprintf("vmbus: hyperv vendor=\"%s\" max-leaf=0x%x privileges=0x%x privileges-high=0x%x "
		"features-edx=0x%x hints=0x%x\n",
		hv_info.vendor, hv_info.max_leaf, hv_info.privileges_low, hv_info.privileges_high,
		hv_info.features_edx, hv_info.hints);
	kprintf("vmbus: tsc-hz=%lu source=%s apic-hz=%lu vp-index=%u\n",
		(unsigned long)hv_info.tsc_hz, hv_info.tsc_source, (unsigned long)hv_info.apic_hz,
		hv_info.vp_index);
	kprintf("vmbus: synic simp=0x%lx siefp=0x%lx sint2-vector=0x%x hypercall-page=0x%lx\n",
		(unsigned long)(uintptr_t)synic_message_page,
		(unsigned long)(uintptr_t)synic_event_page, SYNIC_VMBUS_VECTOR,
		(unsigned long)(uintptr_t)hv_hypercall_page);
}

static void print_offers(void)
{
	char type[37], instance[37];

	for (unsigned i = 0; i < vmbus.noffers; i++) {
		const struct vmbus_offer *o = &vmbus.offers[i];
		guid_format(type, o->if_type);
		guid_format(instance, o->if_instance);
		kprintf("vmbus: offer relid=%u conn-id=%u class=%s instance=%s name=%s\n",
			o->child_relid, o->connection_id, type, instance,
			vmbus_class_name(o->if_type));
	}
	kprintf("vmbus: offers=%u\n", vmbus.noffers);
}

static int connect_and_list(int verbose)
{
	if (vmbus_connect(hv_info.vp_index) < 0)
		return -1;
	if (verbose)
		kprintf("vmbus: version=%u.%u msg-conn-id=%u\n", vmbus.version >> 16,
			vmbus.version & 0xffff, vmbus.msg_conn_id);
	if (vmbus_request_offers() < 0)
		return -1;
	if (verbose)
		print_offers();
	return 0;
}

/* Answers heartbeat-channel requests until `heartbeats` heartbeats are answered. */
static int serve_heartbeats(struct vmbus_channel *ch, uint64_t heartbeats)
{
	uint64_t answered = 0;

	while (answered < heartbeats) {
		struct ring_packet p;
		struct ic_outcome out;
		enum ring_status s = vmbus_recv_wait(ch, &p, ic_buf, sizeof(ic_buf),
						     answered ? "a heartbeat" : "the IC negotiate");
		if (s == RING_EMPTY)
			return -1;
		if (s != RING_OK) {
			kprintf("vmbus: heartbeat ring: %s\n",
				s == RING_TOO_BIG ? "packet larger than a page" : "corrupt");
			return -1;
		}
		if (p.type != VM_PKT_DATA_INBAND) {
			kprintf("vmbus: heartbeat: ignoring packet type %u\n", p.type);
			continue;
		}
		enum ic_result r = ic_heartbeat_respond(ic_buf, p.len, &out);
		if (r == IC_DROP) {
			kprintf("vmbus: heartbeat: dropping a %u-byte packet (too short)\n", p.len);
			continue;
		}
		if (vmbus_send_inband(ch, p.trans_id, ic_buf, p.len) != RING_OK) {
			kprintf("vmbus: heartbeat: no room for the response\n");
			return -1;
		}
		switch (r) {
		case IC_NEGOTIATED:
			kprintf("vmbus: heartbeat negotiate framework=%u.%u service=%u.%u\n",
				out.framework_version >> 16, out.framework_version & 0xffff,
				out.service_version >> 16, out.service_version & 0xffff);
			break;
		case IC_NEGOTIATE_FAILED:
			kprintf("vmbus: heartbeat negotiate: no common version\n");
			return -1;
		case IC_HEARTBEAT:
			kprintf("vmbus: heartbeat seq=%lu\n", (unsigned long)out.seq_num);
			answered++;
			break;
		default:
			kprintf("vmbus: heartbeat: answered unknown IC message type %u with "
				"HV_E_FAIL\n", out.msgtype);
		}
	}
	return 0;
}

static void __attribute__((noreturn)) run_hello(void)
{
	static const uint8_t heartbeat[16] = HV_HEARTBEAT_GUID;
	uint64_t heartbeats = 3;

	cmdline_get_u64("heartbeats", &heartbeats);
	print_detection();
	if (connect_and_list(1) < 0)
		fail();

	const struct vmbus_offer *o = vmbus_find_offer(heartbeat);
	if (!o) {
		kprintf("vmbus: hv offered no heartbeat channel\n");
		fail();
	}
	if (vmbus_open(&channel, o, ring_pool, HEARTBEAT_RING_BYTES, HEARTBEAT_RING_BYTES) < 0)
		fail();
	kprintf("vmbus: heartbeat open relid=%u gpadl=0x%x\n", o->child_relid, channel.gpadl);
	if (serve_heartbeats(&channel, heartbeats) < 0)
		fail();
	uint32_t gpadl = channel.gpadl;
	if (vmbus_close(&channel) < 0)
		fail();
	kprintf("vmbus: heartbeat closed gpadl=0x%x torn-down signals=%lu events=%lu\n", gpadl,
		(unsigned long)channel.signals, (unsigned long)channel.events);
	if (vmbus_unload() < 0)
		fail();
	kprintf("vmbus: unloaded\n");
	kprintf("vmbus: done\n");
	guest_exit(0);
}

/* ---- mode=bench ---- */

/* Sequence number at both ends of each message: a torn copy shows. */
static void stamp(uint8_t *buf, uint32_t size, uint64_t seq)
{
	uint64_t tail = ~seq;

	memcpy(buf, &seq, 8);
	memcpy(buf + size - 8, &tail, 8);
}

/* Reads the echo in place, as Linux's drivers do: its sequence numbers at both ends. */
static int check_echo(const struct ring *in, const struct ring_packet *p, uint32_t offset,
		      uint32_t size, uint64_t seq)
{
	uint64_t head = 0, tail = 0;

	if (p->len >= 16) {
		ring_peek(in, offset, &head, 8);
		ring_peek(in, offset + size - 8, &tail, 8);
	}
	if (p->type == VM_PKT_DATA_INBAND && p->len == ((size + 7) & ~7u) &&
	    p->trans_id == seq && head == seq && tail == ~seq)
		return 0;
	kprintf("vmbus-bench: echo %lu is wrong: type %u, %u bytes, transaction id %lu, "
		"sequence %lu/%lu\n", (unsigned long)seq, p->type, p->len,
		(unsigned long)p->trans_id, (unsigned long)head, (unsigned long)~tail);
	return -1;
}

/*
 * Pipelined echo: write while the outbound ring has room (each packet
 * committed on its own, signalling only when the ring was empty, as
 * Linux's vmbus_sendpacket), read whatever came back (one commit per batch,
 * signalling hv only if it waits for that much room, as hv_pkt_iter_close).
 */
static int bench_echo(struct vmbus_channel *ch, uint32_t size, uint64_t count,
		      uint64_t *ticks, uint64_t *signals)
{
	uint64_t sent = 0, received = 0, signals0 = hv_signal_count;
	uint64_t idle_limit = clock_ms_to_ticks(vmbus_timeout_ms);

	for (uint32_t i = 0; i < size; i++)
		send_buf[i] = (uint8_t)(i * 7 + 1);
	/* We poll the inbound ring all along: hv need not interrupt us. */
	ring_set_interrupt_mask(&ch->in, 1);

	/* Write at most 1/16 of the ring between reads, as hv reads at most that much between commits: the
	 * echoes then come back while the rest is in flight, instead of both sides taking turns at full rings. */
	uint32_t burst_limit = ch->out.dsize / 16;

	uint64_t t0 = rdtsc(), last_progress = t0;
	while (received < count) {
		int progress = 0;
		uint32_t burst = 0;

		while (sent < count && burst < burst_limit) {
			stamp(send_buf, size, sent);
			enum ring_status s = ring_write(&ch->out, VM_PKT_DATA_INBAND, 0, sent,
							send_buf, size);
			if (s == RING_FULL)
				break;
			if (s != RING_OK) {
				kprintf("vmbus-bench: outbound ring: %s\n",
					s == RING_TOO_BIG ? "message too big" : "corrupt");
				return -1;
			}
			if (ring_commit_write(&ch->out))
				vmbus_signal(ch);
			sent++;
			burst += ring_packet_size(size);
			progress = 1;
		}

		struct ring_packet p;
		enum ring_status s;
		uint32_t offset;
		while ((s = ring_read_in_place(&ch->in, &p, &offset)) == RING_OK) {
			if (check_echo(&ch->in, &p, offset, size, received) < 0)
				return -1;
			received++;
			progress = 1;
		}
		if (s != RING_EMPTY) {
			kprintf("vmbus-bench: inbound ring: %s\n",
				"corrupt");
			return -1;
		}
		vmbus_recv_commit(ch);

		uint64_t now = rdtsc();
		if (progress) {
			last_progress = now;
		} else if (now - last_progress > idle_limit) {
			kprintf("vmbus-bench: no progress for %u ms: sent %lu, echoed %lu of %lu\n",
				vmbus_timeout_ms, (unsigned long)sent, (unsigned long)received,
				(unsigned long)count);
			return -1;
		} else {
			cpu_relax();
		}
	}
	*ticks = rdtsc() - t0;
	*signals = hv_signal_count - signals0;
	ring_set_interrupt_mask(&ch->in, 0);
	return 0;
}

/* Guest memcpy bandwidth at CPL3, for scale: 64 KiB copies for >= 20 ms. */
static uint64_t memcpy_bytes_per_second(void)
{
	static uint8_t src[MEMCPY_SIZE] __attribute__((aligned(HV_PAGE_SIZE)));
	static uint8_t dst[MEMCPY_SIZE] __attribute__((aligned(HV_PAGE_SIZE)));
	uint64_t min_ticks = clock_ms_to_ticks(20), copies = 0, t0, t;

	memset(src, 0x5a, sizeof(src));
	memcpy(dst, src, sizeof(dst));          /* warm both */
	t0 = rdtsc();
	do {
		for (int i = 0; i < 64; i++)
			memcpy(dst, src, sizeof(dst));
		copies += 64;
		t = rdtsc() - t0;
	} while (t < min_ticks);
	return muldiv64(copies * MEMCPY_SIZE, clock_tsc_hz, t ? t : 1);
}

static void __attribute__((noreturn)) run_bench(void)
{
	static const uint8_t echo[16] = HV_ECHO_GUID;
	uint64_t size = 4096, count = 10000, ring_kib = BENCH_DEFAULT_RING_KIB;
	uint64_t ticks, signals;

	cmdline_get_u64("size", &size);
	cmdline_get_u64("count", &count);
	cmdline_get_u64("ring", &ring_kib);
	if (size < BENCH_MIN_SIZE || size > BENCH_MAX_SIZE || count == 0) {
		kprintf("vmbus-bench: want size=%u..%u and count>=1\n", BENCH_MIN_SIZE,
			BENCH_MAX_SIZE);
		guest_exit(2);
	}
	uint32_t data = (uint32_t)ring_kib * 1024;
	if (ring_kib == 0 || ring_kib > BENCH_MAX_RING_KIB || ring_kib % 4 ||
	    ring_packet_size((uint32_t)size) >= data) {
		kprintf("vmbus-bench: ring=%lu: want a multiple of 4 up to %u KiB that holds a "
			"%lu-byte message\n", (unsigned long)ring_kib, BENCH_MAX_RING_KIB,
			(unsigned long)size);
		guest_exit(2);
	}

	if (connect_and_list(0) < 0)
		fail();
	const struct vmbus_offer *o = vmbus_find_offer(echo);
	if (!o) {
		kprintf("vmbus-bench: hv offered no echo device (it does under `hv bench vmbus`)\n");
		fail();
	}
	uint32_t ring_bytes = HV_PAGE_SIZE + data;
	if (vmbus_open(&channel, o, ring_pool, ring_bytes, ring_bytes) < 0)
		fail();
	if (bench_echo(&channel, (uint32_t)size, count, &ticks, &signals) < 0)
		fail();
	kprintf("vmbus-bench size=%lu count=%lu ns=%lu signals=%lu\n", (unsigned long)size,
		(unsigned long)count, (unsigned long)clock_ticks_to_ns(ticks),
		(unsigned long)signals);
	kprintf("memcpy size=%u bytes-per-second=%lu\n", MEMCPY_SIZE,
		(unsigned long)memcpy_bytes_per_second());
	if (vmbus_close(&channel) < 0 || vmbus_unload() < 0)
		fail();
	guest_exit(0);
}

void prog_user_main(struct cpu *c)
{
	char mode[16] = "hello";
	uint64_t timeout_ms;

	(void)c;
	cmdline_get_str("mode", mode, sizeof(mode));
	if (cmdline_get_u64("timeout_ms", &timeout_ms) && timeout_ms > 0)
		vmbus_timeout_ms = (uint32_t)(timeout_ms > 3600000 ? 3600000 : timeout_ms);
	if (streq(mode, "hello"))
		run_hello();
	if (streq(mode, "bench"))
		run_bench();
	kprintf("vmbus: mode=%s: want hello or bench\n", mode);
	guest_exit(2);
}
