/*
 * The one NIC net.elf drives (e1000 or NetVSC), as the workload sees it.
 * Everything polls at CPL3; every wait for the device is bounded by
 * nic_timeout_ms and fails with a message ("e1000: ..." / "netvsc: ...").
 */
#ifndef NET_NIC_H
#define NET_NIC_H
#include <stdint.h>

/* A received frame (no FCS), valid only during the call. The handler must not transmit. */
typedef void (*nic_rx_fn)(void *ctx, const uint8_t *frame, uint32_t len);

struct nic {
	const char *name;               /* "e1000" or "netvsc" */
	uint8_t mac[6];
	int link_up;
	uint32_t burst;                 /* doorbell (TDT write / ring commit) every `burst` frames */
	nic_rx_fn rx;                   /* may be NULL: frames are dropped */
	void *rx_ctx;
	/* Received frames through rx; returns how many, or -1 on a fatal error. */
	int (*poll)(void);
	/* Room for the next frame (ETH_FRAME_MAX bytes), waiting for the device if the
	 * ring is full; NULL after printing why. */
	uint8_t *(*tx_buf)(void);
	/* Queues the frame written to tx_buf(); rings the doorbell once `burst` are queued. */
	int (*tx_queue)(uint32_t len);
	/* Rings the doorbell for frames queued since the last one. */
	int (*tx_flush)(void);
	/* Flushes, then waits until the device has finished every frame. */
	int (*tx_drain)(void);
	/* Orderly shutdown (NetVSC: revoke buffers, close, unload); 0 or -1. */
	int (*close)(void);
	/* Counters for the summary. */
	uint64_t doorbells;             /* TDT writes, or VMBus signals to hv */
	uint64_t rx_frames, rx_dropped;
};

extern uint32_t nic_timeout_ms;

/* 0, or -1 after printing why. */
int e1000_open(struct nic *nic, uint64_t bar0, int promisc);
/* VMBus must be reachable (prog_kernel_init ran hv_detect & co). 0; -2 when hv
 * offers no synthetic NIC; -1 on any other failure (after printing why). */
int netvsc_open(struct nic *nic, int promisc);

#endif
