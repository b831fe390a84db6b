/* RSDP, RSDT/XSDT, MCFG, DSDT windows (see acpi.h). */
#include "acpi.h"

static uint8_t sum8(const void *p, uint32_t len)
{
	const uint8_t *b = p;
	uint8_t s = 0;

	while (len--)
		s = (uint8_t)(s + *b++);
	return s;
}

static int sig_eq(const char *a, const char *b, int n)
{
	for (int i = 0; i < n; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

int acpi_rsdp_valid(const void *p)
{
	const struct acpi_rsdp *r = p;

	if (!sig_eq(r->signature, "RSD PTR ", 8) || sum8(p, 20) != 0)
		return 0;
	if (r->revision >= 2 && (r->length < sizeof(*r) || r->length > 4096 ||
				 sum8(p, r->length) != 0))
		return 0;
	return 1;
}

const struct acpi_rsdp *acpi_rsdp_scan(const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t off = 0; off + sizeof(struct acpi_rsdp) <= len; off += 16)
		if (acpi_rsdp_valid(b + off))
			return (const struct acpi_rsdp *)(b + off);
	return 0;
}

/* A whole, checksummed table at phys, or NULL. */
static const struct acpi_sdt_header *map_table(uint64_t phys, acpi_map_fn map)
{
	const struct acpi_sdt_header *h = phys ? map(phys, sizeof(*h)) : 0;

	if (!h || h->length < sizeof(*h) || h->length > (16u << 20))
		return 0;
	h = map(phys, h->length);
	if (!h || sum8(h, h->length) != 0)
		return 0;
	return h;
}

const struct acpi_sdt_header *acpi_find_table(const struct acpi_rsdp *rsdp, const char sig[4],
					      acpi_map_fn map)
{
	int xsdt = rsdp->revision >= 2 && rsdp->xsdt_address;
	const struct acpi_sdt_header *root =
		map_table(xsdt ? rsdp->xsdt_address : rsdp->rsdt_address, map);
	unsigned width = xsdt ? 8 : 4;

	if (!root || !sig_eq(root->signature, xsdt ? "XSDT" : "RSDT", 4))
		return 0;
	const uint8_t *e = (const uint8_t *)root + sizeof(*root);
	uint32_t n = (root->length - (uint32_t)sizeof(*root)) / width;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t phys = width == 8 ? rd64(e + 8 * i) : rd32(e + 4 * i);
		const struct acpi_sdt_header *t = map_table(phys, map);
		if (t && sig_eq(t->signature, sig, 4))
			return t;
	}
	return 0;
}

const struct acpi_sdt_header *acpi_find_dsdt(const struct acpi_rsdp *rsdp, acpi_map_fn map)
{
	const struct acpi_sdt_header *fadt = acpi_find_table(rsdp, "FACP", map);
	const uint8_t *f = (const uint8_t *)fadt;
	uint64_t phys = 0;

	if (!fadt)
		return 0;
	if (fadt->length >= ACPI_FADT_X_DSDT_OFFSET + 8)
		phys = rd64(f + ACPI_FADT_X_DSDT_OFFSET);
	if (!phys && fadt->length >= ACPI_FADT_DSDT_OFFSET + 4)
		phys = rd32(f + ACPI_FADT_DSDT_OFFSET);
	const struct acpi_sdt_header *d = map_table(phys, map);
	return d && sig_eq(d->signature, "DSDT", 4) ? d : 0;
}

int acpi_mcfg_segment0(const struct acpi_sdt_header *mcfg, struct acpi_mcfg_entry *out)
{
	const uint8_t *b = (const uint8_t *)mcfg;

	if (!sig_eq(mcfg->signature, "MCFG", 4))
		return 0;
	for (uint32_t off = ACPI_MCFG_ENTRIES_OFFSET; off + sizeof(*out) <= mcfg->length;
	     off += sizeof(*out)) {
		struct acpi_mcfg_entry e;
		__builtin_memcpy(&e, b + off, sizeof(e));
		if (e.segment == 0 && e.base && e.start_bus <= e.end_bus) {
			*out = e;
			return 1;
		}
	}
	return 0;
}

int acpi_scan_mem_windows(const void *aml, uint32_t len, struct acpi_window *out, int max)
{
	const uint8_t *b = aml;
	int n = 0;

	for (uint32_t i = 0; i + 3 <= len && n < max; i++) {
		uint32_t dlen = (uint32_t)b[i + 1] | (uint32_t)b[i + 2] << 8;
		uint64_t min, maxa, size;

		if (b[i] == 0x87 && dlen >= 0x17 && i + 3 + 0x17 <= len) {
			const uint8_t *d = b + i + 3;   /* resource type byte */
			if (d[0] != 0)
				continue;
			min = rd32(d + 7);
			maxa = rd32(d + 11);
			size = rd32(d + 19);
		} else if (b[i] == 0x8a && dlen >= 0x2b && i + 3 + 0x2b <= len) {
			const uint8_t *d = b + i + 3;
			if (d[0] != 0)
				continue;
			min = rd64(d + 11);
			maxa = rd64(d + 19);
			size = rd64(d + 35);
		} else {
			continue;
		}
		if (size == 0 || maxa < min || maxa - min + 1 != size)
			continue;
		out[n].base = min;
		out[n].size = size;
		n++;
	}
	return n;
}

/* An AML integer constant at p (ZeroOp, OneOp, Byte/Word/DWord/QWordPrefix); bytes used or 0. */
static uint32_t aml_integer(const uint8_t *p, uint32_t avail, uint64_t *v)
{
	if (avail < 1)
		return 0;
	switch (p[0]) {
	case 0x00: *v = 0; return 1;
	case 0x01: *v = 1; return 1;
	case 0x0a: if (avail < 2) return 0; *v = p[1]; return 2;
	case 0x0b: if (avail < 3) return 0; *v = (uint64_t)p[1] | (uint64_t)p[2] << 8; return 3;
	case 0x0c: if (avail < 5) return 0; *v = rd32(p + 1); return 5;
	case 0x0e: if (avail < 9) return 0; *v = rd64(p + 1); return 9;
	default: return 0;
	}
}

int acpi_find_cba(const void *aml, uint32_t len, uint64_t *base)
{
	const uint8_t *b = aml;

	for (uint32_t i = 1; i + 4 < len; i++) {
		if (b[i] != '_' || b[i + 1] != 'C' || b[i + 2] != 'B' || b[i + 3] != 'A')
			continue;
		uint32_t at = i + 4, avail = len - at;
		uint64_t v;
		if (b[i - 1] == 0x08) {                 /* NameOp _CBA <integer> */
			if (aml_integer(b + at, avail, &v) && v) {
				*base = v;
				return 1;
			}
			continue;
		}
		/* MethodOp PkgLength _CBA MethodFlags ReturnOp <integer> */
		if (avail >= 3 && b[at + 1] == 0xa4 && aml_integer(b + at + 2, avail - 2, &v) && v) {
			*base = v;
			return 1;
		}
	}
	return 0;
}

int acpi_find_bus_range(const void *aml, uint32_t len, uint8_t *start, uint8_t *end)
{
	const uint8_t *b = aml;

	/* 0x88, length 13, type 2 (bus), flags x2, granularity, min, max, translation, length. */
	for (uint32_t i = 0; i + 16 <= len; i++) {
		if (b[i] != 0x88 || b[i + 1] != 0x0d || b[i + 2] != 0 || b[i + 3] != 2)
			continue;
		uint32_t min = (uint32_t)b[i + 8] | (uint32_t)b[i + 9] << 8;
		uint32_t max = (uint32_t)b[i + 10] | (uint32_t)b[i + 11] << 8;
		uint32_t n = (uint32_t)b[i + 14] | (uint32_t)b[i + 15] << 8;
		if (min != 0 || max < min || max > 255 || n != max - min + 1)
			continue;
		*start = (uint8_t)min;
		*end = (uint8_t)max;
		return 1;
	}
	return 0;
}
