/*
 * The TSC frequency for net.elf's timings and timeouts, wherever it runs:
 * Hyper-V's TSC_FREQUENCY MSR (0x40000022) when the partition grants it
 * (hv), else CPUID 0x15 (crystal ratio), 0x16 (base MHz) or the KVM/VMware
 * timing leaf 0x40000010, else a calibration against the PIT (QEMU TCG
 * offers none of the leaves). CPUID and MSRs are read at CPL0; the PIT
 * calibration runs at CPL3 and needs ports 0x40-0x43 open.
 */
#ifndef NET_TSC_H
#define NET_TSC_H
#include <stdint.h>

/* CPL0: sets clock_tsc_hz if a CPUID leaf or MSR gives it; returns the source or NULL. */
const char *tsc_detect_cpl0(void);
/* CPL0: opens the PIT ports to CPL3 (for tsc_calibrate_pit); 0 if the bitmap is full. */
int tsc_allow_pit_ports(void);
/* CPL3: measures the TSC over ~42 ms of PIT channel 0; 0 when no PIT answers. */
uint64_t tsc_calibrate_pit(void);

#endif
