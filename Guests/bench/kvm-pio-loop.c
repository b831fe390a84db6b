/*
 * kvm-pio-loop: the minimal C KVM run loop used as the baseline for hv's
 * per-exit overhead. One vCPU, 64 MiB RAM at GPA 0, PVH boot.
 *
 *   usage: kvm-pio-loop IMAGE.elf [cmdline]
 *
 * Port I/O: OUT 0x3F8 -> stdout, IN 0x3FD -> 0x60 (THR empty), OUT 0x501 ->
 * exit(byte), all other OUTs ignored, all other INs read 0xFF. Any other
 * exit reason is fatal (status 1).
 *
 * On this host /dev/kvm is PVM: a vCPU put directly into protected/long mode
 * with KVM_SET_SREGS never runs, so the vCPU starts in real mode in a small
 * trampoline that enters 32-bit protected mode itself and jumps to the PVH
 * entry with EBX = start info.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MEM_SIZE        (64ULL << 20)
#define TRAMP_GPA       0xf0000ULL      /* real-mode CS = 0xF000 */
#define START_INFO_GPA  0x7000ULL
#define MEMMAP_GPA      0x7040ULL
#define CMDLINE_GPA     0x7100ULL
#define CMDLINE_MAX     (0x8000 - CMDLINE_GPA)  /* stub's AP trampoline is at 0x8000 */

/*
 * Real mode -> 32-bit protected mode. Entered with CS.base = TRAMP_GPA,
 * IP = 0, EBX = start info, EDI = PVH entry (set via KVM_SET_REGS).
 */
extern const char tramp_start[], tramp_end[];
__asm__(
	".pushsection .rodata\n"
	"tramp_start:\n"
	".code16\n"
	"	cli\n"
	"	lgdtl %cs:tramp_gdtr - tramp_start\n"
	"	movl %cr0, %eax\n"
	"	orl $1, %eax\n"
	"	movl %eax, %cr0\n"
	"	ljmpl $0x08, $0xf0000 + tramp_pm - tramp_start\n"
	".code32\n"
	"tramp_pm:\n"
	"	movl $0x10, %eax\n"
	"	movw %ax, %ds\n"
	"	movw %ax, %es\n"
	"	movw %ax, %ss\n"
	"	movw %ax, %fs\n"
	"	movw %ax, %gs\n"
	"	jmp *%edi\n"
	"	.p2align 3\n"
	"tramp_gdt:\n"
	"	.quad 0, 0x00cf9b000000ffff, 0x00cf93000000ffff\n"
	"tramp_gdtr:\n"
	"	.word 23\n"
	"	.long 0xf0000 + tramp_gdt - tramp_start\n"
	"tramp_end:\n"
	".code64\n"
	".popsection\n");

struct hvm_start_info {
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
	uint32_t memmap_entries, reserved;
};

struct hvm_memmap_entry {
	uint64_t addr, size;
	uint32_t type, reserved;
};

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void fail(const char *msg)
{
	fprintf(stderr, "kvm-pio-loop: %s\n", msg);
	exit(1);
}

/* Loads PT_LOAD segments; returns the PVH entry from the Xen note. */
static uint32_t load_elf(const char *path, uint8_t *mem)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		die(path);
	uint8_t *f = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (f == MAP_FAILED)
		die("mmap image");
	close(fd);

	const Elf64_Ehdr *eh = (const void *)f;
	if ((size_t)st.st_size < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_machine != EM_X86_64 ||
	    eh->e_phoff + (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > (uint64_t)st.st_size)
		fail("not an x86-64 ELF64 image");

	uint32_t entry = 0;
	const Elf64_Phdr *ph = (const void *)(f + eh->e_phoff);
	for (int i = 0; i < eh->e_phnum; i++, ph++) {
		if (ph->p_offset + ph->p_filesz > (uint64_t)st.st_size)
			fail("segment outside file");
		if (ph->p_type == PT_LOAD) {
			if (ph->p_paddr + ph->p_memsz > MEM_SIZE || ph->p_filesz > ph->p_memsz)
				fail("segment outside guest RAM");
			memcpy(mem + ph->p_paddr, f + ph->p_offset, ph->p_filesz);
			memset(mem + ph->p_paddr + ph->p_filesz, 0, ph->p_memsz - ph->p_filesz);
		} else if (ph->p_type == PT_NOTE) {
			uint64_t off = 0;
			while (off + sizeof(Elf64_Nhdr) <= ph->p_filesz) {
				const Elf64_Nhdr *n = (const void *)(f + ph->p_offset + off);
				const char *name = (const char *)(n + 1);
				uint64_t desc = sizeof(*n) + ((n->n_namesz + 3) & ~3u);
				if (off + desc + n->n_descsz > ph->p_filesz)
					break;
				if (n->n_type == 18 && n->n_namesz == 4 && !memcmp(name, "Xen", 4) &&
				    n->n_descsz >= 4)
					memcpy(&entry, f + ph->p_offset + off + desc, 4);
				off += desc + ((n->n_descsz + 3) & ~3u);
			}
		}
	}
	if (!entry)
		fail("no PVH (Xen, type 18) entry note");
	munmap(f, st.st_size);
	return entry;
}

static void write_start_info(uint8_t *mem, const char *cmdline)
{
	struct hvm_start_info *si = (void *)(mem + START_INFO_GPA);
	struct hvm_memmap_entry *mm = (void *)(mem + MEMMAP_GPA);

	memset(si, 0, sizeof(*si));
	si->magic = 0x336ec578;
	si->version = 1;
	mm[0] = (struct hvm_memmap_entry){ 0, 0xa0000, 1, 0 };                   /* RAM */
	mm[1] = (struct hvm_memmap_entry){ 0x100000, MEM_SIZE - 0x100000, 1, 0 }; /* RAM */
	si->memmap_paddr = MEMMAP_GPA;
	si->memmap_entries = 2;
	if (cmdline) {
		if (strlen(cmdline) >= CMDLINE_MAX)
			fail("command line too long");
		strcpy((char *)mem + CMDLINE_GPA, cmdline);
		si->cmdline_paddr = CMDLINE_GPA;
	}
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: %s IMAGE.elf [cmdline]\n", argv[0]);
		return 1;
	}

	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		die("/dev/kvm");
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		die("KVM_CREATE_VM");
	if (ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000UL) < 0)
		die("KVM_SET_TSS_ADDR");
	struct kvm_enable_cap cap = { .cap = KVM_CAP_SPLIT_IRQCHIP, .args = { 24 } };
	if (ioctl(vm, KVM_ENABLE_CAP, &cap) < 0)
		die("KVM_CAP_SPLIT_IRQCHIP");

	uint8_t *mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap guest RAM");
	struct kvm_userspace_memory_region region = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = MEM_SIZE,
		.userspace_addr = (uint64_t)mem,
	};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		die("KVM_SET_USER_MEMORY_REGION");

	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		die("KVM_CREATE_VCPU");
	int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size < 0)
		die("KVM_GET_VCPU_MMAP_SIZE");
	struct kvm_run *run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		die("mmap kvm_run");

	/* Required: without a CPUID table, EFER.LME writes fault. */
	int nent = 256;
	struct kvm_cpuid2 *cpuid = calloc(1, sizeof(*cpuid) + nent * sizeof(cpuid->entries[0]));
	cpuid->nent = nent;
	if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, cpuid) < 0)
		die("KVM_GET_SUPPORTED_CPUID");
	/* One vCPU: leaf 1 must not advertise the host's logical CPU count. */
	for (unsigned i = 0; i < cpuid->nent; i++)
		if (cpuid->entries[i].function == 1)
			cpuid->entries[i].ebx = (cpuid->entries[i].ebx & 0xffff) | (1u << 16);
	if (ioctl(vcpu, KVM_SET_CPUID2, cpuid) < 0)
		die("KVM_SET_CPUID2");

	uint32_t entry = load_elf(argv[1], mem);
	write_start_info(mem, argc > 2 ? argv[2] : NULL);
	memcpy(mem + TRAMP_GPA, tramp_start, tramp_end - tramp_start);

	/* Reset state (real mode), with CS pointing at the trampoline. */
	struct kvm_sregs sregs;
	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		die("KVM_GET_SREGS");
	sregs.cs.selector = TRAMP_GPA >> 4;
	sregs.cs.base = TRAMP_GPA;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
		die("KVM_SET_SREGS");
	struct kvm_regs regs = { .rip = 0, .rflags = 2, .rbx = START_INFO_GPA, .rdi = entry };
	if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		die("KVM_SET_REGS");

	for (;;) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			die("KVM_RUN");
		}
		if (run->exit_reason != KVM_EXIT_IO) {
			fflush(stdout);
			fprintf(stderr, "kvm-pio-loop: unexpected exit reason %u\n", run->exit_reason);
			return 1;
		}
		uint8_t *data = (uint8_t *)run + run->io.data_offset;
		uint16_t port = run->io.port;
		for (uint32_t i = 0; i < run->io.count; i++, data += run->io.size) {
			if (run->io.direction == KVM_EXIT_IO_OUT) {
				if (port == 0x3f8) {
					putchar_unlocked(data[0]);
				} else if (port == 0x501) {
					fflush(stdout);
					exit(data[0]);
				}
			} else {
				memset(data, port == 0x3fd ? 0x60 : 0xff, run->io.size);
			}
		}
	}
}
