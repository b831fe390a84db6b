/*
 * PVH entry, long-mode switch, AP trampoline, exception and interrupt stubs,
 * and the CPL3 drop.
 *
 * The loader enters pvh_start32 in 32-bit protected mode, paging off, with
 * EBX = physical address of hvm_start_info. Nothing the loader set up (GDT,
 * stack) is trusted: we load our own GDT first thing.
 */
#include "config.h"

#define EFER_MSR   0xc0000080
#define EFER_LME   0x100
#define CR4_PAE    0x20
#define CR0_PE     0x1
#define CR0_WP     0x10000
#define CR0_PG     0x80000000
#define CR0_CD_NW  0x60000000

/* ---- Xen PVH note: type 18 = XEN_ELFNOTE_PHYS32_ENTRY ---- */
	.section .note.Xen, "a"
	.p2align 2
	.long 4                 /* namesz ("Xen\0") */
	.long 4                 /* descsz */
	.long 18                /* type */
	.asciz "Xen"
	.long pvh_start32

/* ---- BSP 32-bit entry ---- */
	.section .text.entry, "ax"
	.code32
	.globl pvh_start32
pvh_start32:
	cli
	cld
	movl %ebx, %esi                 /* start-info pointer: keep it safe */
	lgdt gdt_ptr
	ljmp $KCODE32, $1f
1:	movl $KDATA, %eax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	movl $(kstacks + KSTACK_SIZE), %esp     /* slot 0 stack */
	movl %esi, start_info_paddr
	call enable_long_mode
	ljmp $KCODE64, $bsp_entry64

/* PAE + our page tables + EFER.LME + PG. Shared by BSP and APs. */
enable_long_mode:
	movl %cr4, %eax
	orl $CR4_PAE, %eax
	movl %eax, %cr4
	movl $pml4, %eax
	movl %eax, %cr3
	movl $EFER_MSR, %ecx
	rdmsr
	orl $EFER_LME, %eax
	wrmsr
	movl %cr0, %eax
	andl $~CR0_CD_NW, %eax
	orl $(CR0_PG | CR0_WP | CR0_PE), %eax
	movl %eax, %cr0
	ret

/* ---- AP 32-bit entry (reached from the real-mode trampoline) ---- */
ap_entry32:
	movl $KDATA, %eax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	/* APs arrive concurrently: claim a slot (stack, TSS) atomically. */
	movl $1, %ebx
	lock xaddl %ebx, ap_next_slot
	cmpl $MAX_CPUS, %ebx
	jae park32
	leal 1(%ebx), %eax
	imull $KSTACK_SIZE, %eax
	addl $kstacks, %eax
	movl %eax, %esp
	call enable_long_mode
	ljmp $KCODE64, $ap_entry64
park32:
	cli
	hlt
	jmp park32

	.code64
bsp_entry64:
	call load_data_segs
	call kmain                      /* never returns */
	jmp park64

ap_entry64:
	call load_data_segs
	movl %ebx, %edi                 /* slot */
	call ap_main                    /* never returns */
park64:
	cli
	hlt
	jmp park64

load_data_segs:
	movl $KDATA, %eax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	ret

/*
 * enter_user(entry = rdi, arg = rsi, user_rsp = rdx): iretq to CPL3 with
 * IOPL=0 and IF=0. Port access at CPL3 is granted only by the TSS bitmap.
 */
	.globl enter_user
enter_user:
	movl $UDATA, %eax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %fs
	movw %ax, %gs
	pushq $UDATA                    /* SS */
	pushq %rdx                      /* RSP */
	pushq $0x2                      /* RFLAGS: IOPL=0, IF=0 */
	pushq $UCODE                    /* CS */
	pushq %rdi                      /* RIP */
	movq %rsi, %rdi
	iretq

/* ---- exception stubs: push a uniform (vector, error) pair ---- */
	.macro ISR vec, has_err
	.p2align 4
isr_\vec:
	.if \has_err == 0
	pushq $0
	.endif
	pushq $\vec
	jmp isr_common
	.endm

	ISR 0,0
	ISR 1,0
	ISR 2,0
	ISR 3,0
	ISR 4,0
	ISR 5,0
	ISR 6,0
	ISR 7,0
	ISR 8,1
	ISR 9,0
	ISR 10,1
	ISR 11,1
	ISR 12,1
	ISR 13,1
	ISR 14,1
	ISR 15,0
	ISR 16,0
	ISR 17,1
	ISR 18,0
	ISR 19,0
	ISR 20,0
	ISR 21,1
	ISR 22,0
	ISR 23,0
	ISR 24,0
	ISR 25,0
	ISR 26,0
	ISR 27,0
	ISR 28,0
	ISR 29,1
	ISR 30,1
	ISR 31,0

isr_common:
	movq %rsp, %rdi                 /* struct exc_frame * */
	andq $-16, %rsp                 /* ABI alignment for the C handler */
	call exception_handler          /* never returns */
	jmp park64

	.globl isr_spurious
isr_spurious:
	iretq

/*
 * ---- device interrupt stubs, vectors 32..254 (0xFF stays isr_spurious) ----
 * One 16-byte stub per vector, so the runtime finds vector v's stub at
 * irq_stubs + (v - 32) * 16 without a table. Unlike exceptions these return:
 * save the caller-saved registers (-mgeneral-regs-only: no vector state) and
 * call irq_dispatch(vector).
 */
	.p2align 4
	.globl irq_stubs
irq_stubs:
	.set v, 32
	.rept 255 - 32
	/* .org also fails the build ("move .org backwards") if a stub outgrows its slot. */
	.org irq_stubs + (v - 32) * IRQ_STUB_SIZE, 0xcc
	pushq $v
	jmp irq_common
	.set v, v + 1
	.endr

irq_common:
	cld                             /* the ABI wants DF=0 on entry to C */
	pushq %rax
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	movq 72(%rsp), %rdi             /* the vector the stub pushed */
	pushq %rbp
	movq %rsp, %rbp
	andq $-16, %rsp                 /* ABI alignment for the C handler */
	call irq_dispatch
	movq %rbp, %rsp
	popq %rbp
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	popq %rax
	addq $8, %rsp                   /* drop the vector */
	iretq

/*
 * ---- system calls: UD1 %eax,%eax at CPL3 -> #UD (vector 6) -> here ----
 * From CPL3: RAX = call number, RDI = argument. Returns ucall_dispatch's
 * value in RAX, every other register preserved, execution resumed after
 * the 3-byte UD1. Any other #UD goes on to the fatal exception path.
 * Why not a DPL3 `int n` gate or SYSCALL: on the PVM host `int n` at CPL3
 * raises #UD and SYSCALL reaches LSTAR without leaving CPL3, while
 * exceptions do arrive at CPL0 through the IDT. Compilers emit UD2 for
 * traps, never UD1, so a genuine bug is not mistaken for a call.
 */
	.globl ucall_entry
ucall_entry:
	testb $3, 8(%rsp)               /* CS: from CPL3? */
	jz 2f
	pushq %rcx
	movq 8(%rsp), %rcx              /* the faulting RIP */
	cmpw $0xb90f, (%rcx)            /* 0F B9: UD1 ... */
	jne 1f
	cmpb $0xc0, 2(%rcx)             /* ... C0: %eax, %eax */
	jne 1f
	addq $3, 8(%rsp)                /* resume after it */
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	movq %rdi, %rsi                 /* argument */
	movq %rax, %rdi                 /* call number */
	pushq %rbp
	movq %rsp, %rbp
	andq $-16, %rsp                 /* ABI alignment for the C handler */
	cld
	call ucall_dispatch
	movq %rbp, %rsp
	popq %rbp
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	iretq
1:	popq %rcx
2:	jmp isr_6                       /* a real #UD */

	.section .rodata
	.p2align 3
	.globl isr_table
isr_table:
	.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.quad isr_\v
	.endr

/*
 * ---- AP real-mode trampoline: copied by the BSP to AP_TRAMPOLINE ----
 * Position independent except for absolute targets above 1 MiB. lgdtl loads
 * the full 32-bit GDT base even in real mode; the far jump then lands
 * directly in ap_entry32 inside the image.
 */
	.globl ap_tramp_start, ap_tramp_end
	.code16
ap_tramp_start:
	cli
	cld
	lgdtl %cs:ap_tramp_gdtr - ap_tramp_start
	movl %cr0, %eax
	orl $CR0_PE, %eax
	movl %eax, %cr0
	ljmpl $KCODE32, $ap_entry32
	.p2align 2
ap_tramp_gdtr:
	.word gdt_end - gdt - 1
	.long gdt
ap_tramp_end:
	.code64

/* ---- GDT, page tables, stacks ---- */
	.data
	.p2align 4
	.globl gdt_tss
gdt:
	.quad 0
	.quad 0x00cf9b000000ffff        /* 0x08 code32, DPL0 */
	.quad 0x00cf93000000ffff        /* 0x10 data, DPL0 */
	.quad 0x00af9b000000ffff        /* 0x18 code64, DPL0 */
	.quad 0x00cff3000000ffff        /* 0x20 data, DPL3 */
	.quad 0x00affb000000ffff        /* 0x28 code64, DPL3 */
gdt_tss:
	.fill 2 * MAX_CPUS, 8, 0        /* 0x30: one 16-byte TSS descriptor per CPU */
gdt_end:

	.p2align 2
	.word 0
gdt_ptr:
	.word gdt_end - gdt - 1
	.long gdt

	.globl ap_next_slot
ap_next_slot:
	.long 1                         /* slot 0 is the BSP */

/*
 * Identity map of 0..4 GiB with 2 MiB pages. U/S is set at every level so
 * CPL3 can run the image (this is a test stub, not an OS). The 2 MiB pages
 * holding the LAPIC (0xFEE00000) and the IOAPIC (0xFEC00000) are uncached.
 */
	.p2align 12
	.globl pml4
pml4:
	.quad pdpt + 0x7
	.fill 511, 8, 0
pdpt:
	.quad pd + 0x0007, pd + 0x1007, pd + 0x2007, pd + 0x3007
	.fill 508, 8, 0
pd:
	.set i, 0
	.rept 2048
	.if i == (0xfee00000 >> 21) || i == (0xfec00000 >> 21)
	.quad (i << 21) | 0x9f          /* P RW US PWT PCD PS */
	.else
	.quad (i << 21) | 0x87          /* P RW US PS */
	.endif
	.set i, i + 1
	.endr

	.bss
	.p2align 4
	.globl kstacks
kstacks:
	.skip MAX_CPUS * KSTACK_SIZE

	.section .note.GNU-stack, "", @progbits
