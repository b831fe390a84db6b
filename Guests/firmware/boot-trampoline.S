/*
 * hv's boot trampoline: the first code a boot vCPU runs.
 *
 * On PVM hosts a vCPU whose protected- or long-mode state is set with KVM_SET_SREGS never
 * runs, while one that starts in real mode and switches modes itself does (design.md §2).
 * So hv starts the boot vCPU in real mode at this code, placed at FIRMWARE_BASE (0xF0000,
 * reserved in the e820 map) with CS = 0xF000, IP = 0, and it enters the kernel the way the
 * kernel's boot protocol asks:
 *   mode 0 (PVH):      32-bit protected mode, paging off, CS 0x08, DS/ES/SS 0x18, EBX = start info
 *   mode 1 (Linux 64): long mode on hv's identity page tables, CS 0x10 (__BOOT_CS),
 *                      DS/ES/SS 0x18 (__BOOT_DS), RSI = boot_params
 * hv fills the parameter block below; the code itself never changes. Its assembled bytes
 * are in Sources/Partition/Boot/BootTrampoline.swift, and a test checks that they match
 * this file.
 *
 * Build: gcc -c boot-trampoline.S && objcopy -O binary -j .text boot-trampoline.o out.bin
 */
#define FIRMWARE_BASE 0xF0000
#define ABS(label) (FIRMWARE_BASE + (label - start))

.text
.code16
.globl start
start:
	cli
	lgdtl %cs:(gdt_pointer - start)
	movl %cr0, %eax
	orl $1, %eax                       /* CR0.PE */
	movl %eax, %cr0
	ljmpl $0x08, $ABS(protected32)

.code32
protected32:
	movl $0x18, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl %eax, %fs
	movl %eax, %gs
	cmpl $1, ABS(param_mode)
	je long_mode
	movl ABS(param_ebx), %ebx
	jmp *ABS(param_entry32)

long_mode:
	movl %cr4, %eax
	orl $0x20, %eax                    /* CR4.PAE */
	movl %eax, %cr4
	movl ABS(param_cr3), %eax
	movl %eax, %cr3
	movl $0xC0000080, %ecx             /* EFER.LME */
	rdmsr
	orl $0x100, %eax
	wrmsr
	movl %cr0, %eax
	orl $0x80000000, %eax              /* CR0.PG */
	movl %eax, %cr0
	ljmpl $0x10, $ABS(long64)

.code64
long64:
	movq ABS(param_rsi), %rsi
	movq ABS(param_rsp), %rsp
	xorl %ebp, %ebp
	xorl %ebx, %ebx
	jmpq *ABS(param_entry64)

/* Parameter block, written by hv. */
.balign 16
param_mode:    .long 0
param_ebx:     .long 0
param_entry32: .long 0
param_cr3:     .long 0
param_rsi:     .quad 0
param_rsp:     .quad 0
param_entry64: .quad 0

.balign 16
gdt:
	.quad 0                            /* 0x00 null */
	.quad 0x00CF9B000000FFFF           /* 0x08 flat 32-bit code */
	.quad 0x00AF9B000000FFFF           /* 0x10 64-bit code (__BOOT_CS) */
	.quad 0x00CF93000000FFFF           /* 0x18 flat data (__BOOT_DS) */
gdt_end:
gdt_pointer:
	.word gdt_end - gdt - 1
	.long ABS(gdt)
