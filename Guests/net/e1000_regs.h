/*
 * Intel 82540EM (e1000) registers, bits and legacy descriptors, as Linux's
 * drivers/net/ethernet/intel/e1000/e1000_hw.h names them
 * (shared/reference/e1000.md). Pure declarations and inline helpers: the
 * host-side unit test compiles this header too.
 */
#ifndef NET_E1000_REGS_H
#define NET_E1000_REGS_H
#include <stddef.h>
#include <stdint.h>

#define E1000_VENDOR_INTEL      0x8086
#define E1000_DEV_82540EM       0x100e
#define E1000_BAR0_SIZE         0x20000

/* Register offsets in BAR0. */
#define E1000_CTRL      0x00000
#define E1000_STATUS    0x00008
#define E1000_EECD      0x00010
#define E1000_EERD      0x00014
#define E1000_ICR       0x000c0
#define E1000_IMS       0x000d0
#define E1000_IMC       0x000d8
#define E1000_RCTL      0x00100
#define E1000_TCTL      0x00400
#define E1000_TIPG      0x00410
#define E1000_RDBAL     0x02800
#define E1000_RDBAH     0x02804
#define E1000_RDLEN     0x02808
#define E1000_RDH       0x02810
#define E1000_RDT       0x02818
#define E1000_RDTR      0x02820
#define E1000_RADV      0x0282c
#define E1000_TDBAL     0x03800
#define E1000_TDBAH     0x03804
#define E1000_TDLEN     0x03808
#define E1000_TDH       0x03810
#define E1000_TDT       0x03818
#define E1000_TIDV      0x03820
#define E1000_TADV      0x0382c
#define E1000_MTA       0x05200         /* 128 x u32 */
#define E1000_RAL0      0x05400
#define E1000_RAH0      0x05404

#define E1000_CTRL_FD           0x00000001u
#define E1000_CTRL_ASDE         0x00000020u
#define E1000_CTRL_SLU          0x00000040u
#define E1000_CTRL_ILOS         0x00000080u
#define E1000_CTRL_RST          0x04000000u
#define E1000_CTRL_VME          0x40000000u
#define E1000_CTRL_PHY_RST      0x80000000u

#define E1000_STATUS_FD         0x00000001u
#define E1000_STATUS_LU         0x00000002u

#define E1000_EERD_START        0x00000001u
#define E1000_EERD_DONE         0x00000010u
#define E1000_EERD_ADDR_SHIFT   8
#define E1000_EERD_DATA_SHIFT   16

#define E1000_RAH_AV            0x80000000u

#define E1000_RCTL_EN           0x00000002u
#define E1000_RCTL_SBP          0x00000004u
#define E1000_RCTL_UPE          0x00000008u
#define E1000_RCTL_MPE          0x00000010u
#define E1000_RCTL_LPE          0x00000020u
#define E1000_RCTL_LBM_NO       0x00000000u
#define E1000_RCTL_RDMTS_HALF   0x00000000u
#define E1000_RCTL_BAM          0x00008000u
#define E1000_RCTL_SZ_2048      0x00000000u
#define E1000_RCTL_SECRC        0x04000000u

#define E1000_TCTL_EN           0x00000002u
#define E1000_TCTL_PSP          0x00000008u
#define E1000_TCTL_CT           0x00000ff0u
#define E1000_TCTL_COLD         0x003ff000u
#define E1000_TCTL_RTLC         0x01000000u
#define E1000_CT_SHIFT          4
#define E1000_COLD_SHIFT        12
#define E1000_COLLISION_THRESHOLD       15
#define E1000_COLLISION_DISTANCE        63
/* Linux's copper TIPG for the 82540: IPGT 8, IPGR1 8, IPGR2 6. */
#define E1000_TIPG_COPPER       (8u | 8u << 10 | 6u << 20)

/* Legacy transmit descriptor. */
struct e1000_tx_desc {
	uint64_t buffer_addr;
	uint16_t length;
	uint8_t cso;
	uint8_t cmd;
	uint8_t status;
	uint8_t css;
	uint16_t special;
} __attribute__((packed));

#define E1000_TXD_CMD_EOP       0x01    /* end of packet */
#define E1000_TXD_CMD_IFCS      0x02    /* insert FCS */
#define E1000_TXD_CMD_RS        0x08    /* report status (DD write-back) */
#define E1000_TXD_CMD_DEXT      0x20
#define E1000_TXD_STAT_DD       0x01

/* Receive descriptor. */
struct e1000_rx_desc {
	uint64_t buffer_addr;
	uint16_t length;                /* FCS included unless RCTL.SECRC */
	uint16_t csum;
	uint8_t status;
	uint8_t errors;
	uint16_t special;
} __attribute__((packed));

#define E1000_RXD_STAT_DD       0x01
#define E1000_RXD_STAT_EOP      0x02
#define E1000_RXD_ERR_FRAME_ERR_MASK    0x97    /* CE | SE | SEQ | CXE | RXE (Linux) */
#define E1000_FCS_LEN           4

_Static_assert(sizeof(struct e1000_tx_desc) == 16, "tx desc");
_Static_assert(offsetof(struct e1000_tx_desc, length) == 8, "tx length");
_Static_assert(offsetof(struct e1000_tx_desc, cmd) == 11, "tx cmd");
_Static_assert(offsetof(struct e1000_tx_desc, status) == 12, "tx status");
_Static_assert(sizeof(struct e1000_rx_desc) == 16, "rx desc");
_Static_assert(offsetof(struct e1000_rx_desc, status) == 12, "rx status");
_Static_assert(offsetof(struct e1000_rx_desc, errors) == 13, "rx errors");

/* A legacy descriptor for one whole frame in one buffer, as Linux's e1000_tx_queue. */
static inline void e1000_tx_desc_fill(volatile struct e1000_tx_desc *d, uint64_t addr,
				      uint16_t len)
{
	d->buffer_addr = addr;
	d->length = len;
	d->cso = 0;
	d->css = 0;
	d->special = 0;
	d->status = 0;
	d->cmd = E1000_TXD_CMD_EOP | E1000_TXD_CMD_IFCS | E1000_TXD_CMD_RS;
}

/* Descriptors in flight between `clean` (oldest unfinished) and `tail` in a ring of n. */
static inline uint32_t e1000_ring_used(uint32_t clean, uint32_t tail, uint32_t n)
{
	return (tail + n - clean) % n;
}

/* Free slots: one always stays empty so that tail == head means "empty". */
static inline uint32_t e1000_ring_free(uint32_t clean, uint32_t tail, uint32_t n)
{
	return n - 1 - e1000_ring_used(clean, tail, n);
}

/*
 * RDT after the driver has taken descriptors up to next - 1: the device
 * owns [RDH, RDT), the driver keeps the slot at RDT empty, so RDT trails
 * the next descriptor the driver will look at by one.
 */
static inline uint32_t e1000_rdt_for(uint32_t next, uint32_t n)
{
	return (next + n - 1) % n;
}

/* RAL/RAH for a MAC (byte 0 in RAL's low bits), with Address Valid. */
static inline void e1000_mac_to_ra(const uint8_t mac[6], uint32_t *ral, uint32_t *rah)
{
	*ral = (uint32_t)mac[0] | (uint32_t)mac[1] << 8 | (uint32_t)mac[2] << 16 |
	       (uint32_t)mac[3] << 24;
	*rah = (uint32_t)mac[4] | (uint32_t)mac[5] << 8 | E1000_RAH_AV;
}

static inline void e1000_ra_to_mac(uint32_t ral, uint32_t rah, uint8_t mac[6])
{
	for (int i = 0; i < 4; i++)
		mac[i] = (uint8_t)(ral >> (8 * i));
	mac[4] = (uint8_t)rah;
	mac[5] = (uint8_t)(rah >> 8);
}

#endif
