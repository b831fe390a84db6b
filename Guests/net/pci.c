/* PCI configuration space, enumeration and BAR 0 setup at CPL3 (see pci.h). */
#include "pci.h"
#include "acpi.h"
#include "../boot/runtime.h"
#include "../lib/fmt.h"
#include "../lib/io.h"

#define FOUR_GIB        0x100000000ull
#define MAX_BARS        64              /* assigned memory ranges we remember */
#define MAX_BUSES       32              /* buses we scan (bus 0 and bridges below it) */

static struct {
	int ecam;                       /* 0 = mechanism #1, 1 = MCFG, 2 = DSDT _CBA */
	volatile uint8_t *ecam_base;
	uint8_t bus_start, bus_end;
	struct acpi_window windows[8];
	int nwindows;
	uint64_t cmdline_window;
	struct acpi_window used[MAX_BARS];      /* BARs already decoding somewhere */
	int nused;
} pci;

/* ---- port I/O the runtime's io.h lacks ---- */
static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port) : "memory");
	return v;
}

static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline uint16_t inw(uint16_t port)
{
	uint16_t v;
	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port) : "memory");
	return v;
}

/* ---- ACPI: identity map below 4 GiB ---- */
static const void *map_identity(uint64_t phys, uint32_t len)
{
	if (phys == 0 || phys >= FOUR_GIB || len > FOUR_GIB - phys)
		return 0;
	return (const void *)(uintptr_t)phys;
}

static const struct acpi_rsdp *find_rsdp(const char **where)
{
	uint64_t given = boot_rsdp_paddr();
	const struct acpi_rsdp *r;

	if (given && map_identity(given, sizeof(*r)) &&
	    acpi_rsdp_valid((const void *)(uintptr_t)given)) {
		*where = "pvh-start-info";
		return (const void *)(uintptr_t)given;
	}
	/* Legacy search: the EBDA's first KiB (segment at 0x40E), then the BIOS area. */
	uintptr_t bda = 0x40e;          /* BIOS data area: EBDA segment */
	__asm__("" : "+r"(bda));        /* a real address, not a null-page constant */
	uint32_t ebda = (uint32_t)*(const volatile uint16_t *)bda << 4;
	if (ebda >= 0x80000 && ebda < 0xa0000 && (r = acpi_rsdp_scan((const void *)(uintptr_t)ebda, 1024))) {
		*where = "ebda";
		return r;
	}
	if ((r = acpi_rsdp_scan((const void *)0xe0000, 0x20000))) {
		*where = "bios-area";
		return r;
	}
	return 0;
}

int pci_init(uint64_t mmio_window)
{
	const char *where = "none";
	const struct acpi_rsdp *rsdp = find_rsdp(&where);
	struct acpi_mcfg_entry e;

	pci.cmdline_window = mmio_window;
	if (rsdp) {
		const struct acpi_sdt_header *mcfg = acpi_find_table(rsdp, "MCFG", map_identity);
		if (mcfg && acpi_mcfg_segment0(mcfg, &e)) {
			uint64_t span = ((uint64_t)e.end_bus + 1) << 20;
			if (e.base >= FOUR_GIB || span > FOUR_GIB - e.base) {
				kprintf("net: MCFG ECAM at 0x%lx is beyond the stub's 4 GiB identity map; "
					"using ports 0xCF8/0xCFC\n", (unsigned long)e.base);
			} else {
				pci.ecam = 1;
				pci.ecam_base = (volatile uint8_t *)(uintptr_t)e.base;
				pci.bus_start = e.start_bus;
				pci.bus_end = e.end_bus;
			}
		}
		const struct acpi_sdt_header *dsdt = acpi_find_dsdt(rsdp, map_identity);
		if (dsdt) {
			const uint8_t *aml = (const uint8_t *)dsdt + sizeof(*dsdt);
			uint32_t len = dsdt->length - (uint32_t)sizeof(*dsdt);
			uint64_t cba;
			pci.nwindows = acpi_scan_mem_windows(aml, len, pci.windows, 8);
			/* No MCFG (QEMU's microvm): the host bridge's _CBA names the ECAM. */
			if (!pci.ecam && acpi_find_cba(aml, len, &cba)) {
				uint8_t first = 0, last = 255;
				acpi_find_bus_range(aml, len, &first, &last);
				if (cba < FOUR_GIB && ((uint64_t)last + 1) << 20 <= FOUR_GIB - cba) {
					pci.ecam = 2;
					pci.ecam_base = (volatile uint8_t *)(uintptr_t)cba;
					pci.bus_start = first;
					pci.bus_end = last;
				}
			}
		}
	}
	if (!pci.ecam) {
		pci.bus_start = 0;
		pci.bus_end = 255;
		/* Mechanism #1 must answer: bit 31 of CONFIG_ADDRESS reads back as written. */
		outl(PCI_CONF1_ADDR, 0x80000000u);
		if (inl(PCI_CONF1_ADDR) != 0x80000000u) {
			kprintf("net: no PCI: no MCFG table or _CBA (RSDP: %s) and no configuration "
				"mechanism #1 at 0xCF8\n", where);
			return -1;
		}
	}
	kprintf("net: pci %s%s0x%lx buses %u-%u rsdp=%s windows=%d\n",
		pci.ecam == 1 ? "ecam(mcfg)" : pci.ecam ? "ecam(_cba)" : "conf1",
		pci.ecam ? " base=" : " ports=",
		pci.ecam ? (unsigned long)(uintptr_t)pci.ecam_base : (unsigned long)PCI_CONF1_ADDR,
		pci.bus_start, pci.bus_end, where, pci.nwindows);
	return 0;
}

const char *pci_method(void)
{
	return pci.ecam ? "ecam" : "conf1";
}

uint64_t pci_ecam_base(void)
{
	return pci.ecam ? (uint64_t)(uintptr_t)pci.ecam_base : 0;
}

/* ---- configuration access ---- */
static volatile uint8_t *ecam_addr(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off)
{
	return pci.ecam_base + (((uint64_t)(bus - pci.bus_start) << 20) | ((uint64_t)dev << 15) |
				((uint64_t)fn << 12) | off);
}

static void conf1_select(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off)
{
	outl(PCI_CONF1_ADDR, 0x80000000u | (uint32_t)bus << 16 | (uint32_t)dev << 11 |
	     (uint32_t)fn << 8 | (off & 0xfc));
}

uint32_t pci_read32(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off)
{
	if (pci.ecam)
		return *(volatile uint32_t *)ecam_addr(bus, dev, fn, off);
	conf1_select(bus, dev, fn, off);
	return inl(0xcfc);
}

void pci_write32(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, uint32_t v)
{
	if (pci.ecam) {
		*(volatile uint32_t *)ecam_addr(bus, dev, fn, off) = v;
		return;
	}
	conf1_select(bus, dev, fn, off);
	outl(0xcfc, v);
}

uint16_t pci_read16(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off)
{
	if (pci.ecam)
		return *(volatile uint16_t *)ecam_addr(bus, dev, fn, off);
	conf1_select(bus, dev, fn, off);
	return inw((uint16_t)(0xcfc + (off & 2)));
}

void pci_write16(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, uint16_t v)
{
	if (pci.ecam) {
		*(volatile uint16_t *)ecam_addr(bus, dev, fn, off) = v;
		return;
	}
	conf1_select(bus, dev, fn, off);
	outw((uint16_t)(0xcfc + (off & 2)), v);
}

/* ---- BARs ---- */

/* Base of memory BAR `i` (0 when unassigned or not memory); *next = index after it. */
static uint64_t bar_base(uint8_t b, uint8_t d, uint8_t f, int i, int *is64)
{
	uint32_t lo = pci_read32(b, d, f, (uint16_t)(PCI_BAR0 + 4 * i));

	*is64 = (lo & 0x7) == 0x4;
	if (lo & 1)
		return 0;
	uint64_t base = lo & ~0xfull;
	if (*is64)
		base |= (uint64_t)pci_read32(b, d, f, (uint16_t)(PCI_BAR0 + 4 * (i + 1))) << 32;
	return base;
}

/* Size of memory BAR i by the all-ones probe (decode must be off). */
static uint64_t bar_size(uint8_t b, uint8_t d, uint8_t f, int i, int is64)
{
	uint16_t off = (uint16_t)(PCI_BAR0 + 4 * i);
	uint32_t lo = pci_read32(b, d, f, off), hi = 0, mlo, mhi = 0xffffffffu;

	pci_write32(b, d, f, off, 0xffffffffu);
	mlo = pci_read32(b, d, f, off);
	pci_write32(b, d, f, off, lo);
	if (is64) {
		hi = pci_read32(b, d, f, (uint16_t)(off + 4));
		pci_write32(b, d, f, (uint16_t)(off + 4), 0xffffffffu);
		mhi = pci_read32(b, d, f, (uint16_t)(off + 4));
		pci_write32(b, d, f, (uint16_t)(off + 4), hi);
	}
	uint64_t mask = ((uint64_t)mhi << 32) | (mlo & ~0xfull);
	if (!is64)
		mask |= 0xffffffff00000000ull;
	if ((mlo & ~0xfull) == 0)
		return 0;
	return ~mask + 1;
}

static void remember(uint64_t base, uint64_t size)
{
	if (base && size && pci.nused < MAX_BARS) {
		pci.used[pci.nused].base = base;
		pci.used[pci.nused].size = size;
		pci.nused++;
	}
}

/*
 * Note the memory BARs a function decodes now (to place ours clear of
 * them), sized with its decode off for the moment of the probe, as
 * Linux's __pci_read_base does.
 */
static void note_bars(uint8_t b, uint8_t d, uint8_t f, int nbars)
{
	uint16_t cmd = pci_read16(b, d, f, PCI_COMMAND);

	if (!(cmd & PCI_COMMAND_MEMORY))
		return;
	pci_write16(b, d, f, PCI_COMMAND, (uint16_t)(cmd & ~PCI_COMMAND_MEMORY));
	for (int i = 0; i < nbars; i++) {
		int is64;
		uint64_t base = bar_base(b, d, f, i, &is64);
		if (base)
			remember(base, bar_size(b, d, f, i, is64));
		if (is64)
			i++;
	}
	pci_write16(b, d, f, PCI_COMMAND, cmd);
}

static int overlaps(uint64_t base, uint64_t size)
{
	for (int i = 0; i < pci.nused; i++)
		if (base < pci.used[i].base + pci.used[i].size && pci.used[i].base < base + size)
			return 1;
	if (pci.ecam) {
		uint64_t eb = (uint64_t)(uintptr_t)pci.ecam_base;
		uint64_t es = ((uint64_t)pci.bus_end - pci.bus_start + 1) << 20;
		if (base < eb + es && eb < base + size)
			return 1;
	}
	return 0;
}

static uint64_t place_in(uint64_t wbase, uint64_t wsize, uint64_t size)
{
	uint64_t end = wbase + wsize;

	for (uint64_t a = (wbase + size - 1) & ~(size - 1); a + size <= end && a + size > a; a += size)
		if (a + size <= FOUR_GIB && !overlaps(a, size))
			return a;
	return 0;
}

static uint64_t allocate(uint64_t size)
{
	for (int i = 0; i < pci.nwindows; i++) {
		uint64_t a = place_in(pci.windows[i].base, pci.windows[i].size, size);
		if (a)
			return a;
	}
	if (pci.cmdline_window)
		return place_in(pci.cmdline_window, FOUR_GIB - pci.cmdline_window, size);
	return 0;
}

/* "bb:dd.f" (kprintf has no field widths). */
static const char *bdf(const struct pci_dev *p)
{
	static char s[8];
	static const char hex[] = "0123456789abcdef";

	s[0] = hex[p->bus >> 4];
	s[1] = hex[p->bus & 15];
	s[2] = ':';
	s[3] = hex[p->dev >> 4];
	s[4] = hex[p->dev & 15];
	s[5] = '.';
	s[6] = hex[p->fn & 7];
	s[7] = '\0';
	return s;
}

/* ---- enumeration ---- */
static int match(uint16_t vendor, uint16_t device, uint16_t want_vendor, const uint16_t *devices,
		 int n)
{
	if (vendor != want_vendor)
		return 0;
	for (int i = 0; i < n; i++)
		if (devices[i] == device)
			return 1;
	return 0;
}

int pci_find_and_enable(uint16_t vendor, const uint16_t *devices, int n, struct pci_dev *out)
{
	uint8_t queue[MAX_BUSES];
	int head = 0, tail = 0, found = 0;

	queue[tail++] = pci.bus_start;
	while (head < tail) {
		uint8_t b = queue[head++];
		for (uint8_t d = 0; d < 32; d++) {
			uint8_t nfn = 1;
			for (uint8_t f = 0; f < nfn; f++) {
				uint32_t id = pci_read32(b, d, f, PCI_VENDOR_ID);
				if ((id & 0xffff) == 0xffff || (id & 0xffff) == 0)
					continue;
				uint8_t htype = (uint8_t)(pci_read32(b, d, f, 0x0c) >> 16);
				if (f == 0 && (htype & 0x80))
					nfn = 8;
				if ((htype & 0x7f) == 1) {              /* PCI-PCI bridge */
					note_bars(b, d, f, 2);
					uint8_t sec = (uint8_t)(pci_read32(b, d, f, 0x18) >> 8);
					if (sec > b && sec <= pci.bus_end && tail < MAX_BUSES)
						queue[tail++] = sec;
					continue;
				}
				if ((htype & 0x7f) != 0)
					continue;
				note_bars(b, d, f, 6);
				if (!found && match((uint16_t)id, (uint16_t)(id >> 16), vendor, devices, n)) {
					out->bus = b;
					out->dev = d;
					out->fn = f;
					out->vendor = (uint16_t)id;
					out->device = (uint16_t)(id >> 16);
					found = 1;
				}
			}
		}
	}
	if (!found) {
		kprintf("net: no PCI device %x:%x on buses %u..%u (%s)\n", vendor, devices[0],
			pci.bus_start, pci.bus_end, pci_method());
		return -2;
	}

	uint8_t b = out->bus, d = out->dev, f = out->fn;
	uint16_t cmd = pci_read16(b, d, f, PCI_COMMAND);
	int is64;
	uint64_t base = bar_base(b, d, f, 0, &is64);
	uint32_t raw = pci_read32(b, d, f, PCI_BAR0);

	if (raw & 1) {
		kprintf("net: %s BAR 0 is an I/O BAR (0x%x), want memory\n", bdf(out), raw);
		return -1;
	}
	/* Size with decode off, as Linux's __pci_read_base does. */
	pci_write16(b, d, f, PCI_COMMAND, (uint16_t)(cmd & ~(PCI_COMMAND_MEMORY | PCI_COMMAND_IO)));
	out->bar0_size = bar_size(b, d, f, 0, is64);
	if (!out->bar0_size) {
		kprintf("net: %s BAR 0 is not implemented\n", bdf(out));
		return -1;
	}
	if (base && !(cmd & PCI_COMMAND_MEMORY) && overlaps(base, out->bar0_size))
		base = 0;               /* firmware's value collides: place it again */
	if (!base && b != pci.bus_start) {
		kprintf("net: %s BAR 0 unassigned behind a bridge (the stub places BARs on the "
			"root bus only)\n", bdf(out));
		return -1;
	}
	if (!base) {
		base = allocate(out->bar0_size);
		if (!base) {
			kprintf("net: %s BAR 0 (%lu KiB) unassigned and no room in the "
				"ACPI _CRS windows (%d found); pass pci_mmio=0x... to name one\n",
				bdf(out), (unsigned long)(out->bar0_size >> 10), pci.nwindows);
			return -1;
		}
		pci_write32(b, d, f, PCI_BAR0, (uint32_t)base | (is64 ? 0x4 : 0));
		if (is64)
			pci_write32(b, d, f, PCI_BAR0 + 4, (uint32_t)(base >> 32));
		out->bar0_assigned_here = 1;
		if (bar_base(b, d, f, 0, &is64) != base) {
			kprintf("net: %s BAR 0 did not keep 0x%lx\n", bdf(out),
				(unsigned long)base);
			return -1;
		}
	}
	remember(base, out->bar0_size);
	out->bar0 = base;
	pci_write16(b, d, f, PCI_COMMAND, (uint16_t)(cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER));
	uint16_t now = pci_read16(b, d, f, PCI_COMMAND);
	if ((now & (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER)) !=
	    (PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER)) {
		kprintf("net: %s command register kept 0x%x, want memory + bus master\n", bdf(out), now);
		return -1;
	}
	return 0;
}
