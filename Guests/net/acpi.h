/*
 * The few ACPI tables the stub reads to find PCI: the RSDP (from the PVH
 * start info, else the EBDA's first KiB, else 0xE0000-0xFFFFF, as the ACPI
 * spec's legacy search), the RSDT/XSDT, MCFG (the ECAM window) and the
 * DSDT, where _CRS resource templates name the host bridge's memory
 * windows. Physical addresses are turned into pointers by the caller's map
 * function (identity below 4 GiB in the guest; a fake memory in the unit
 * test). Pure C: the host-side unit test links it too.
 */
#ifndef NET_ACPI_H
#define NET_ACPI_H
#include <stddef.h>
#include <stdint.h>

struct acpi_rsdp {
	char signature[8];              /* "RSD PTR " */
	uint8_t checksum;               /* first 20 bytes */
	char oem_id[6];
	uint8_t revision;               /* 0: ACPI 1.0 (RSDT only); 2: XSDT */
	uint32_t rsdt_address;
	uint32_t length;                /* revision >= 2 */
	uint64_t xsdt_address;
	uint8_t extended_checksum;      /* all `length` bytes */
	uint8_t reserved[3];
} __attribute__((packed));

struct acpi_sdt_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	uint32_t creator_id;
	uint32_t creator_revision;
} __attribute__((packed));

struct acpi_mcfg_entry {
	uint64_t base;                  /* ECAM of bus 0 of this segment */
	uint16_t segment;
	uint8_t start_bus;
	uint8_t end_bus;
	uint32_t reserved;
} __attribute__((packed));

_Static_assert(sizeof(struct acpi_rsdp) == 36, "rsdp");
_Static_assert(sizeof(struct acpi_sdt_header) == 36, "sdt header");
_Static_assert(sizeof(struct acpi_mcfg_entry) == 16, "mcfg entry");
#define ACPI_MCFG_ENTRIES_OFFSET 44     /* header + 8 reserved bytes */
#define ACPI_FADT_DSDT_OFFSET    40     /* u32 */
#define ACPI_FADT_X_DSDT_OFFSET  140    /* u64, FADT revision >= 2 */

/* Maps [phys, phys + len) for reading; NULL when it cannot. */
typedef const void *(*acpi_map_fn)(uint64_t phys, uint32_t len);

/* Signature and checksum(s) of an RSDP at p (36 bytes readable). */
int acpi_rsdp_valid(const void *p);
/* First valid RSDP on a 16-byte boundary in [p, p + len). */
const struct acpi_rsdp *acpi_rsdp_scan(const void *p, size_t len);
/* The table `sig` from the XSDT (revision >= 2 and set) else the RSDT; checksummed. */
const struct acpi_sdt_header *acpi_find_table(const struct acpi_rsdp *rsdp, const char sig[4],
					      acpi_map_fn map);
/* The DSDT the FADT names (X_DSDT if set, else DSDT); NULL if none. */
const struct acpi_sdt_header *acpi_find_dsdt(const struct acpi_rsdp *rsdp, acpi_map_fn map);
/* MCFG's entry for PCI segment 0; 1 if found. */
int acpi_mcfg_segment0(const struct acpi_sdt_header *mcfg, struct acpi_mcfg_entry *out);

struct acpi_window {
	uint64_t base, size;
};
/*
 * Memory ranges named by DWord (0x87) and QWord (0x8A) Address Space
 * Descriptors (resource type 0 = memory, consistent min/max/length) in an
 * AML byte stream: the PCI host bridge's _CRS windows, among others. Up to
 * `max` into out; returns how many were found.
 */
int acpi_scan_mem_windows(const void *aml, uint32_t len, struct acpi_window *out, int max);

/*
 * The ECAM base a host bridge's _CBA gives, as QEMU's GPEX (microvm with
 * pcie=on has no MCFG) writes it: Name (_CBA, <integer>) or a method
 * Method (_CBA, 0) { Return (<integer>) }. 1 if found.
 */
int acpi_find_cba(const void *aml, uint32_t len, uint64_t *base);
/*
 * The bus range of the first WordBusNumber descriptor (0x88, resource
 * type 2) that starts at bus 0: the root bridge's _CRS. 1 if found.
 */
int acpi_find_bus_range(const void *aml, uint32_t len, uint8_t *start, uint8_t *end);

#endif
