/*
 * PCI configuration space at CPL3: ECAM when ACPI has an MCFG table (hv),
 * or a host bridge in the DSDT with _CBA (QEMU's microvm, which has no
 * MCFG), else configuration mechanism #1 (ports 0xCF8/0xCFC, which
 * prog_kernel_init must open with io_allow_ports). Finds a function by vendor/device,
 * assigns its memory BAR 0 when firmware left it unassigned (QEMU microvm
 * assigns nothing), and enables memory decode and bus mastering.
 */
#ifndef NET_PCI_H
#define NET_PCI_H
#include <stdint.h>

#define PCI_CONF1_ADDR  0xcf8
#define PCI_CONF1_PORTS 8               /* 0xCF8-0xCFF */

#define PCI_VENDOR_ID   0x00
#define PCI_DEVICE_ID   0x02
#define PCI_COMMAND     0x04
#define PCI_CLASS_REV   0x08
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0        0x10
#define PCI_SECONDARY_BUS 0x19
#define PCI_COMMAND_IO          0x1
#define PCI_COMMAND_MEMORY      0x2
#define PCI_COMMAND_MASTER      0x4

struct pci_dev {
	uint8_t bus, dev, fn;
	uint16_t vendor, device;
	uint64_t bar0;                  /* memory BAR 0 as used */
	uint64_t bar0_size;
	int bar0_assigned_here;         /* 1 when this stub programmed it */
};

/*
 * Finds the configuration mechanism (prints which). `mmio_window` (0 =
 * none) is where BARs go when ACPI names no window. Returns 0, or -1 after
 * printing why.
 */
int pci_init(uint64_t mmio_window);
/* "ecam" or "conf1". */
const char *pci_method(void);
uint64_t pci_ecam_base(void);

/*
 * The first function with this vendor and one of `devices` (n of them) on
 * the buses reachable from the first one; BAR 0 (memory) assigned if need
 * be, memory decode and bus mastering on. 0; -2 when there is none; -1
 * when it cannot be set up (after printing why).
 */
int pci_find_and_enable(uint16_t vendor, const uint16_t *devices, int n, struct pci_dev *out);

uint32_t pci_read32(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off);
void pci_write32(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, uint32_t v);
uint16_t pci_read16(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off);
void pci_write16(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, uint16_t v);

#endif
