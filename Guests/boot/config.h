/* Constants shared by entry.S and the C runtime (plain #defines only). */
#ifndef GUEST_CONFIG_H
#define GUEST_CONFIG_H

#define MAX_CPUS     32
#define KSTACK_SIZE  16384          /* per-CPU CPL0 stack (also TSS.RSP0) */
#define USTACK_SIZE  16384          /* per-CPU CPL3 stack */

/* GDT layout (see entry.S). */
#define KCODE32      0x08
#define KDATA        0x10
#define KCODE64      0x18
#define UDATA        0x23           /* 0x20 | RPL3 */
#define UCODE        0x2b           /* 0x28 | RPL3 */
#define TSS_SEL(slot) (0x30 + 16 * (slot))

#define AP_TRAMPOLINE 0x8000        /* SIPI vector 0x08 */
#define IRQ_STUB_SIZE 16            /* bytes per device interrupt stub (entry.S) */

#endif
