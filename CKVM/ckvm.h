// CKVM: the C surface hv needs from linux/kvm.h and a few Linux system calls.
//
// Swift cannot import the _IOW/_IOR request-number macros nor call the variadic
// ioctl(2), so this header gives one `CKVM_*` constant per request hv uses and
// non-variadic shims. Every shim returns what the system call returned: -1 means
// "read errno now". Keep this file to shims only; logic belongs in Sources/KVM.
#ifndef CKVM_H
#define CKVM_H

#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <signal.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>
#include <termios.h>

// MARK: request numbers on /dev/kvm
static const unsigned long CKVM_GET_API_VERSION = KVM_GET_API_VERSION;
static const unsigned long CKVM_CREATE_VM = KVM_CREATE_VM;
static const unsigned long CKVM_CHECK_EXTENSION = KVM_CHECK_EXTENSION;
static const unsigned long CKVM_GET_VCPU_MMAP_SIZE = KVM_GET_VCPU_MMAP_SIZE;
static const unsigned long CKVM_GET_SUPPORTED_CPUID = KVM_GET_SUPPORTED_CPUID;

// MARK: request numbers on a VM
static const unsigned long CKVM_CREATE_VCPU = KVM_CREATE_VCPU;
static const unsigned long CKVM_SET_USER_MEMORY_REGION = KVM_SET_USER_MEMORY_REGION;
static const unsigned long CKVM_SET_TSS_ADDR = KVM_SET_TSS_ADDR;
static const unsigned long CKVM_SET_IDENTITY_MAP_ADDR = KVM_SET_IDENTITY_MAP_ADDR;
static const unsigned long CKVM_ENABLE_CAP = KVM_ENABLE_CAP;
static const unsigned long CKVM_SIGNAL_MSI = KVM_SIGNAL_MSI;
static const unsigned long CKVM_SET_GSI_ROUTING = KVM_SET_GSI_ROUTING;
static const unsigned long CKVM_IOEVENTFD = KVM_IOEVENTFD;
static const unsigned long CKVM_X86_SET_MSR_FILTER = KVM_X86_SET_MSR_FILTER;

// MARK: request numbers on a vCPU
static const unsigned long CKVM_RUN = KVM_RUN;
static const unsigned long CKVM_GET_REGS = KVM_GET_REGS;
static const unsigned long CKVM_SET_REGS = KVM_SET_REGS;
static const unsigned long CKVM_GET_SREGS = KVM_GET_SREGS;
static const unsigned long CKVM_SET_SREGS = KVM_SET_SREGS;
static const unsigned long CKVM_SET_CPUID2 = KVM_SET_CPUID2;
static const unsigned long CKVM_GET_LAPIC = KVM_GET_LAPIC;
static const unsigned long CKVM_SET_LAPIC = KVM_SET_LAPIC;
static const unsigned long CKVM_SET_MSRS = KVM_SET_MSRS;
static const unsigned long CKVM_SET_FPU = KVM_SET_FPU;
static const unsigned long CKVM_GET_MSRS = KVM_GET_MSRS;
static const unsigned long CKVM_GET_TSC_KHZ = KVM_GET_TSC_KHZ;

// MARK: ioctl without varargs
static inline int ckvm_ioctl(int fd, unsigned long request, void *argument) {
    return ioctl(fd, request, argument);
}
static inline int ckvm_ioctl_value(int fd, unsigned long request, unsigned long value) {
    return ioctl(fd, request, value);
}

// MARK: kvm_run fields behind anonymous unions (Swift cannot name them reliably)
static inline struct kvm_run *ckvm_run(void *mapping) { return (struct kvm_run *)mapping; }
static inline uint8_t ckvm_run_io_direction(const struct kvm_run *r) { return r->io.direction; }
static inline uint8_t ckvm_run_io_size(const struct kvm_run *r) { return r->io.size; }
static inline uint16_t ckvm_run_io_port(const struct kvm_run *r) { return r->io.port; }
static inline uint32_t ckvm_run_io_count(const struct kvm_run *r) { return r->io.count; }
static inline uint64_t ckvm_run_io_data_offset(const struct kvm_run *r) { return r->io.data_offset; }
static inline uint64_t ckvm_run_mmio_address(const struct kvm_run *r) { return r->mmio.phys_addr; }
static inline uint8_t *ckvm_run_mmio_data(struct kvm_run *r) { return r->mmio.data; }
static inline uint32_t ckvm_run_mmio_length(const struct kvm_run *r) { return r->mmio.len; }
static inline uint8_t ckvm_run_mmio_is_write(const struct kvm_run *r) { return r->mmio.is_write; }
static inline uint64_t ckvm_run_fail_entry_reason(const struct kvm_run *r) { return r->fail_entry.hardware_entry_failure_reason; }
static inline uint32_t ckvm_run_fail_entry_cpu(const struct kvm_run *r) { return r->fail_entry.cpu; }
static inline uint32_t ckvm_run_internal_suberror(const struct kvm_run *r) { return r->internal.suberror; }
static inline uint32_t ckvm_run_internal_ndata(const struct kvm_run *r) { return r->internal.ndata; }
static inline uint64_t ckvm_run_internal_data(const struct kvm_run *r, uint32_t i) {
    return i < 16 ? r->internal.data[i] : 0;
}
static inline uint32_t ckvm_run_system_event_type(const struct kvm_run *r) { return r->system_event.type; }
static inline uint8_t ckvm_run_eoi_vector(const struct kvm_run *r) { return r->eoi.vector; }
static inline uint64_t ckvm_run_hardware_exit_reason(const struct kvm_run *r) { return r->hw.hardware_exit_reason; }
// KVM_EXIT_X86_RDMSR / KVM_EXIT_X86_WRMSR: hv fills data for a read, or sets error to inject #GP.
static inline uint32_t ckvm_run_msr_index(const struct kvm_run *r) { return r->msr.index; }
static inline uint32_t ckvm_run_msr_reason(const struct kvm_run *r) { return r->msr.reason; }
static inline uint64_t ckvm_run_msr_data(const struct kvm_run *r) { return r->msr.data; }
static inline void ckvm_run_msr_complete(struct kvm_run *r, uint64_t data, uint8_t error) {
    r->msr.data = data;
    r->msr.error = error;
}
static inline void ckvm_run_set_immediate_exit(struct kvm_run *r, uint8_t value) {
    __atomic_store_n(&r->immediate_exit, value, __ATOMIC_SEQ_CST);
}

// MARK: variable-length KVM structures
// kvm_cpuid2, kvm_msrs and kvm_irq_routing end in flexible arrays; these give their sizes.
static inline unsigned long ckvm_cpuid2_size(uint32_t entries) {
    return sizeof(struct kvm_cpuid2) + entries * sizeof(struct kvm_cpuid_entry2);
}
static inline unsigned long ckvm_msrs_size(uint32_t entries) {
    return sizeof(struct kvm_msrs) + entries * sizeof(struct kvm_msr_entry);
}
static inline unsigned long ckvm_irq_routing_size(uint32_t entries) {
    return sizeof(struct kvm_irq_routing) + entries * sizeof(struct kvm_irq_routing_entry);
}
static inline struct kvm_cpuid_entry2 *ckvm_cpuid2_entries(struct kvm_cpuid2 *c) { return c->entries; }
static inline struct kvm_msr_entry *ckvm_msrs_entries(struct kvm_msrs *m) { return m->entries; }
static inline struct kvm_irq_routing_entry *ckvm_irq_routing_entries(struct kvm_irq_routing *r) { return r->entries; }
static inline void ckvm_irq_routing_entry_set_msi(struct kvm_irq_routing_entry *e, uint32_t gsi,
                                                  uint32_t address_lo, uint32_t address_hi, uint32_t data) {
    e->gsi = gsi;
    e->type = KVM_IRQ_ROUTING_MSI;
    e->flags = 0;
    e->u.msi.address_lo = address_lo;
    e->u.msi.address_hi = address_hi;
    e->u.msi.data = data;
}

/// One KVM_X86_SET_MSR_FILTER range that denies (sends to user space) reads and writes of
/// [base, base + count); bitmap must hold count bits of zeros and outlive the call.
static inline void ckvm_msr_filter_set_range(struct kvm_msr_filter *f, uint32_t i, uint32_t base, uint32_t count,
                                             uint8_t *bitmap) {
    f->ranges[i].flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
    f->ranges[i].base = base;
    f->ranges[i].nmsrs = count;
    f->ranges[i].bitmap = bitmap;
}

// KVM_IOEVENTFD flags are built from an enum, which Swift does not import as macros.
static const uint32_t CKVM_IOEVENTFD_PIO_DATAMATCH = KVM_IOEVENTFD_FLAG_PIO | KVM_IOEVENTFD_FLAG_DATAMATCH;
static const uint32_t CKVM_IOEVENTFD_DEASSIGN = KVM_IOEVENTFD_FLAG_DEASSIGN;

// MARK: atomics on memory shared with the guest (rings, SynIC pages)
static inline uint32_t ckvm_atomic_load_u32(const void *p) { return __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE); }
static inline void ckvm_atomic_store_u32(void *p, uint32_t v) { __atomic_store_n((uint32_t *)p, v, __ATOMIC_RELEASE); }
static inline uint32_t ckvm_atomic_fetch_or_u32(void *p, uint32_t v) { return __atomic_fetch_or((uint32_t *)p, v, __ATOMIC_SEQ_CST); }
static inline uint8_t ckvm_atomic_fetch_or_u8(void *p, uint8_t v) { return __atomic_fetch_or((uint8_t *)p, v, __ATOMIC_SEQ_CST); }
/// A full barrier: orders this thread's stores before its later loads, as the ring protocol needs.
static inline void ckvm_memory_barrier(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// MARK: Linux system calls Swift's Glibc module does not surface
static inline int ckvm_memfd_create(const char *name, unsigned int flags) {
    return (int)syscall(SYS_memfd_create, name, flags);
}
static const unsigned int CKVM_MFD_CLOEXEC = 1U; // MFD_CLOEXEC from linux/memfd.h
static inline int ckvm_pthread_kill(pthread_t thread, int signal) { return pthread_kill(thread, signal); }
static inline pthread_t ckvm_pthread_self(void) { return pthread_self(); }


// MARK: signals for stopping vCPU threads
// The kick signal only has to interrupt KVM_RUN (it returns EINTR), so its handler is empty
// and installed without SA_RESTART.
static void ckvm_kick_handler(int signal) { (void)signal; }
static inline int ckvm_install_kick_handler(int signal) {
    struct sigaction action = {0};
    action.sa_handler = ckvm_kick_handler;
    sigemptyset(&action.sa_mask);
    return sigaction(signal, &action, 0);
}
/// Blocks (how = SIG_BLOCK) or unblocks the given signals (0: none) in the calling thread; new threads inherit the mask.
static inline int ckvm_thread_sigmask(int how, int signal1, int signal2, int signal3) {
    sigset_t set;
    sigemptyset(&set);
    if (signal1 > 0) sigaddset(&set, signal1);
    if (signal2 > 0) sigaddset(&set, signal2);
    if (signal3 > 0) sigaddset(&set, signal3);
    return pthread_sigmask(how, &set, 0);
}
/// Blocks three signals in the calling thread and saves the mask it had in `previous`.
static inline int ckvm_block_signals(int signal1, int signal2, int signal3, sigset_t *previous) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signal1);
    sigaddset(&set, signal2);
    sigaddset(&set, signal3);
    return pthread_sigmask(SIG_BLOCK, &set, previous);
}
/// A non-blocking, close-on-exec signalfd for three signals (which the caller has blocked).
static inline int ckvm_signalfd(int signal1, int signal2, int signal3) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signal1);
    sigaddset(&set, signal2);
    sigaddset(&set, signal3);
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}
static inline int ckvm_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }
/// A blocking eventfd, for a thread that sleeps in read(2) or poll(2) until the guest signals.
static inline int ckvm_eventfd_blocking(void) { return eventfd(0, EFD_CLOEXEC); }

#endif
