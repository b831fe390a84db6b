/*
 * e1000 (82540EM) at CPL3 on its memory BAR, polled (shared/reference/
 * e1000.md §11, following Linux's e1000_main.c where it matters): reset,
 * MAC from RAL/RAH or the EEPROM through EERD, legacy TX and RX rings in
 * static memory (identity-mapped: guest-physical = virtual), no interrupts
 * (IMC = all, IMS never written). TX rings the TDT doorbell once per
 * `burst` frames, like Linux with xmit_more; RX returns descriptors with
 * one RDT write per 16 (Linux's E1000_RX_BUFFER_WRITE) and at the end of a
 * poll. Like Linux it leaves RCTL.SECRC clear and drops the 4 FCS bytes the
 * device counts in the descriptor length.
 */
#include "nic.h"
#include "e1000_regs.h"
#include "proto.h"
#include "../lib/fmt.h"
#include "../lib/io.h"
#include "../lib/string.h"
#include "../vmbus/clock.h"

#define TX_DESCS        256             /* 4 KiB of descriptors: TDLEN a multiple of 128 */
#define RX_DESCS        256
#define BUF_SIZE        2048            /* RCTL.BSIZE 2048 */
#define RX_BUFFER_WRITE 16

static struct e1000_tx_desc tx_ring[TX_DESCS] __attribute__((aligned(4096)));
static struct e1000_rx_desc rx_ring[RX_DESCS] __attribute__((aligned(4096)));
static uint8_t tx_bufs[TX_DESCS][BUF_SIZE] __attribute__((aligned(4096)));
static uint8_t rx_bufs[RX_DESCS][BUF_SIZE] __attribute__((aligned(4096)));

static struct {
	struct nic *nic;
	volatile uint8_t *mmio;
	uint32_t tx_tail;               /* next descriptor we fill */
	uint32_t tx_hw_tail;            /* last TDT written */
	uint32_t tx_clean;              /* oldest descriptor not known done */
	uint32_t tx_queued;             /* filled since the last doorbell */
	uint32_t rx_next;               /* next descriptor to look at */
	uint32_t rx_unreturned;         /* taken since the last RDT write */
	int rx_discarding;              /* inside a frame that spans descriptors */
} e;

#define barrier() __asm__ volatile("" ::: "memory")

static uint32_t rd(uint32_t reg)
{
	return *(volatile uint32_t *)(e.mmio + reg);
}

static void wr(uint32_t reg, uint32_t v)
{
	*(volatile uint32_t *)(e.mmio + reg) = v;
}

/* Waits until (reg & mask) == want, up to ms; 0 when it got there. */
static int wait_reg(uint32_t reg, uint32_t mask, uint32_t want, uint64_t ms)
{
	uint64_t deadline = deadline_after_ms(ms);

	for (;;) {
		if ((rd(reg) & mask) == want)
			return 0;
		if (deadline_passed(deadline))
			return -1;
		cpu_relax();
	}
}

/* EEPROM word through EERD (Linux uses Microwire on the 82540; QEMU and hv answer both). */
static int eeprom_read(uint32_t word, uint16_t *out)
{
	wr(E1000_EERD, (word << E1000_EERD_ADDR_SHIFT) | E1000_EERD_START);
	if (wait_reg(E1000_EERD, E1000_EERD_DONE, E1000_EERD_DONE, 10) < 0)
		return -1;
	*out = (uint16_t)(rd(E1000_EERD) >> E1000_EERD_DATA_SHIFT);
	return 0;
}

static int read_mac(uint8_t mac[6], const char **source)
{
	uint32_t ral = rd(E1000_RAL0), rah = rd(E1000_RAH0);

	e1000_ra_to_mac(ral, rah, mac);
	if ((rah & E1000_RAH_AV) && net_mac_valid(mac)) {
		*source = "ral";
		return 0;
	}
	for (uint32_t i = 0; i < 3; i++) {
		uint16_t w;
		if (eeprom_read(i, &w) < 0) {
			kprintf("e1000: EEPROM word %u: EERD never reported done\n", i);
			return -1;
		}
		mac[2 * i] = (uint8_t)w;
		mac[2 * i + 1] = (uint8_t)(w >> 8);
	}
	if (!net_mac_valid(mac)) {
		char s[18];
		net_format_mac(s, mac);
		kprintf("e1000: no valid MAC in RAL/RAH or the EEPROM (read %s)\n", s);
		return -1;
	}
	*source = "eeprom";
	return 0;
}

/* ---- transmit ---- */

static void tx_reclaim(void)
{
	while (e.tx_clean != e.tx_hw_tail) {
		volatile struct e1000_tx_desc *d = &tx_ring[e.tx_clean];
		if (!(d->status & E1000_TXD_STAT_DD))
			break;
		e.tx_clean = (e.tx_clean + 1) % TX_DESCS;
	}
}

static int e1000_tx_flush(void)
{
	if (e.tx_hw_tail != e.tx_tail) {
		barrier();              /* descriptors before the doorbell (x86: stores stay ordered) */
		wr(E1000_TDT, e.tx_tail);
		e.tx_hw_tail = e.tx_tail;
		e.nic->doorbells++;
	}
	e.tx_queued = 0;
	return 0;
}

static uint8_t *e1000_tx_buf(void)
{
	tx_reclaim();
	if (e1000_ring_free(e.tx_clean, e.tx_tail, TX_DESCS) == 0) {
		uint64_t deadline = deadline_after_ms(nic_timeout_ms);
		e1000_tx_flush();
		while (tx_reclaim(), e1000_ring_free(e.tx_clean, e.tx_tail, TX_DESCS) == 0) {
			if (deadline_passed(deadline)) {
				kprintf("e1000: transmit ring full for %u ms: TDH=%u TDT=%u, "
					"descriptor %u not done\n", nic_timeout_ms, rd(E1000_TDH),
					rd(E1000_TDT), e.tx_clean);
				return 0;
			}
			cpu_relax();
		}
	}
	return tx_bufs[e.tx_tail];
}

static int e1000_tx_queue(uint32_t len)
{
	if (len < ETH_HLEN || len > ETH_FRAME_MAX) {
		kprintf("e1000: refusing a %u-byte frame\n", len);
		return -1;
	}
	e1000_tx_desc_fill(&tx_ring[e.tx_tail], (uint64_t)(uintptr_t)tx_bufs[e.tx_tail],
			   (uint16_t)len);
	e.tx_tail = (e.tx_tail + 1) % TX_DESCS;
	if (++e.tx_queued >= e.nic->burst)
		e1000_tx_flush();
	return 0;
}

static int e1000_tx_drain(void)
{
	uint64_t deadline = deadline_after_ms(nic_timeout_ms);

	e1000_tx_flush();
	while (tx_reclaim(), e.tx_clean != e.tx_tail) {
		if (deadline_passed(deadline)) {
			kprintf("e1000: transmit not done after %u ms: TDH=%u TDT=%u, descriptor "
				"%u not done\n", nic_timeout_ms, rd(E1000_TDH), rd(E1000_TDT),
				e.tx_clean);
			return -1;
		}
		cpu_relax();
	}
	return 0;
}

/* ---- receive ---- */

static void rx_return(void)
{
	if (e.rx_unreturned) {
		barrier();              /* cleared status before the device may reuse them */
		wr(E1000_RDT, e1000_rdt_for(e.rx_next, RX_DESCS));
		e.rx_unreturned = 0;
	}
}

static int e1000_poll(void)
{
	int delivered = 0;

	for (int budget = 64; budget > 0; budget--) {
		volatile struct e1000_rx_desc *d = &rx_ring[e.rx_next];
		uint8_t status = d->status;
		if (!(status & E1000_RXD_STAT_DD))
			break;
		barrier();              /* the rest of the descriptor after DD (x86: loads ordered) */
		uint32_t len = d->length;
		uint8_t errors = d->errors;
		if (!(status & E1000_RXD_STAT_EOP)) {
			e.rx_discarding = 1;            /* frame larger than a buffer: drop it all */
			e.nic->rx_dropped++;
		} else if (e.rx_discarding) {
			e.rx_discarding = 0;
		} else if ((errors & E1000_RXD_ERR_FRAME_ERR_MASK) || len <= E1000_FCS_LEN) {
			e.nic->rx_dropped++;
		} else {
			e.nic->rx_frames++;
			delivered++;
			if (e.nic->rx)
				e.nic->rx(e.nic->rx_ctx, rx_bufs[e.rx_next], len - E1000_FCS_LEN);
		}
		d->status = 0;
		e.rx_next = (e.rx_next + 1) % RX_DESCS;
		if (++e.rx_unreturned >= RX_BUFFER_WRITE)
			rx_return();
	}
	rx_return();
	return delivered;
}

static int e1000_close(void)
{
	wr(E1000_RCTL, 0);
	wr(E1000_TCTL, E1000_TCTL_PSP);
	return 0;
}

int e1000_open(struct nic *nic, uint64_t bar0, int promisc)
{
	const char *mac_source;

	e.nic = nic;
	e.mmio = (volatile uint8_t *)(uintptr_t)bar0;
	nic->name = "e1000";
	nic->poll = e1000_poll;
	nic->tx_buf = e1000_tx_buf;
	nic->tx_queue = e1000_tx_queue;
	nic->tx_flush = e1000_tx_flush;
	nic->tx_drain = e1000_tx_drain;
	nic->close = e1000_close;

	/* e1000_reset_hw: mask interrupts, stop RX/TX, let pending DMA settle, reset. */
	wr(E1000_IMC, 0xffffffffu);
	wr(E1000_RCTL, 0);
	wr(E1000_TCTL, E1000_TCTL_PSP);
	(void)rd(E1000_STATUS);
	clock_delay_us(10000);
	wr(E1000_CTRL, rd(E1000_CTRL) | E1000_CTRL_RST);
	clock_delay_us(5000);
	if (wait_reg(E1000_CTRL, E1000_CTRL_RST, 0, 500) < 0) {
		kprintf("e1000: CTRL.RST still set 500 ms after the reset\n");
		return -1;
	}
	wr(E1000_IMC, 0xffffffffu);
	(void)rd(E1000_ICR);

	if (read_mac(nic->mac, &mac_source) < 0)
		return -1;
	uint32_t ral, rah;
	e1000_mac_to_ra(nic->mac, &ral, &rah);
	wr(E1000_RAL0, ral);
	wr(E1000_RAH0, rah);
	for (uint32_t i = 0; i < 128; i++)
		wr(E1000_MTA + 4 * i, 0);

	/* Link: set link up, auto-speed; no PHY reset, loss-of-signal inversion or VLANs. */
	uint32_t ctrl = rd(E1000_CTRL);
	ctrl &= ~(E1000_CTRL_PHY_RST | E1000_CTRL_ILOS | E1000_CTRL_VME);
	wr(E1000_CTRL, ctrl | E1000_CTRL_SLU | E1000_CTRL_ASDE);

	/* Transmit (e1000_configure_tx). */
	memset(tx_ring, 0, sizeof(tx_ring));
	uint64_t tx_base = (uint64_t)(uintptr_t)tx_ring;
	wr(E1000_TDBAL, (uint32_t)tx_base);
	wr(E1000_TDBAH, (uint32_t)(tx_base >> 32));
	wr(E1000_TDLEN, sizeof(tx_ring));
	wr(E1000_TDH, 0);
	wr(E1000_TDT, 0);
	wr(E1000_TIPG, E1000_TIPG_COPPER);
	wr(E1000_TIDV, 0);
	wr(E1000_TADV, 0);
	wr(E1000_TCTL, E1000_TCTL_EN | E1000_TCTL_PSP | E1000_TCTL_RTLC |
	   (E1000_COLLISION_THRESHOLD << E1000_CT_SHIFT) |
	   (E1000_COLLISION_DISTANCE << E1000_COLD_SHIFT));
	e.tx_tail = e.tx_hw_tail = e.tx_clean = e.tx_queued = 0;

	/* Receive (e1000_configure_rx, e1000_setup_rctl): all but one buffer to the device. */
	for (uint32_t i = 0; i < RX_DESCS; i++) {
		memset(&rx_ring[i], 0, sizeof(rx_ring[i]));
		rx_ring[i].buffer_addr = (uint64_t)(uintptr_t)rx_bufs[i];
	}
	uint64_t rx_base = (uint64_t)(uintptr_t)rx_ring;
	wr(E1000_RDTR, 0);
	wr(E1000_RADV, 0);
	wr(E1000_RDBAL, (uint32_t)rx_base);
	wr(E1000_RDBAH, (uint32_t)(rx_base >> 32));
	wr(E1000_RDLEN, sizeof(rx_ring));
	wr(E1000_RDH, 0);
	wr(E1000_RDT, RX_DESCS - 1);
	e.rx_next = e.rx_unreturned = 0;
	e.rx_discarding = 0;
	wr(E1000_RCTL, E1000_RCTL_EN | E1000_RCTL_BAM | E1000_RCTL_LBM_NO | E1000_RCTL_RDMTS_HALF |
	   E1000_RCTL_SZ_2048 | (promisc ? E1000_RCTL_UPE | E1000_RCTL_MPE : 0));

	if (wait_reg(E1000_STATUS, E1000_STATUS_LU, E1000_STATUS_LU, nic_timeout_ms) < 0) {
		kprintf("e1000: link still down after %u ms (STATUS=0x%x CTRL=0x%x)\n",
			nic_timeout_ms, rd(E1000_STATUS), rd(E1000_CTRL));
		return -1;
	}
	nic->link_up = 1;
	kprintf("e1000: bar0=0x%lx mac-from=%s status=0x%x tx=%u rx=%u\n",
		(unsigned long)bar0, mac_source, rd(E1000_STATUS), TX_DESCS, RX_DESCS);
	return 0;
}
