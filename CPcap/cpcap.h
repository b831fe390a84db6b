// CPcap: libpcap (Debian package libpcap-dev) for the pcap network back end and --capture files, plus the few
// Linux TUN/TAP and interface-flag requests the tap back end needs. Request numbers (_IOW & co.) do not import
// into Swift and ioctl(2) is variadic, so each request is a non-variadic static inline shim here; -1 means
// "read errno now". Logic stays in Swift (Sources/NetworkBackends).
#ifndef CPCAP_H
#define CPCAP_H
#include <pcap/pcap.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/eventfd.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <linux/capability.h>
#include <netpacket/packet.h>  // sockaddr_ll, for the tests' AF_PACKET socket on a tap
#include <dlfcn.h>

// MARK: libpcap, loaded when first used
// libpcap and what Debian links it with (dbus, systemd, gcrypt...) cost every hv start a millisecond of dynamic
// loading, so hv does not link it: the first pcap back end or capture file loads it with dlopen. Each
// cpcap_X(...) calls libpcap's pcap_X(...); call cpcap_load() first and use none of them if it returns 0.
// The handle and the function pointers are weak globals, not statics: every object file that includes this
// header then shares one copy (a static would give each its own, unloaded one).
__attribute__((weak)) void *cpcap_handle = 0;
static inline void *cpcap_library(void) {
    // Racing first calls both dlopen it; dlopen counts references and returns the same handle.
    void *current = __atomic_load_n(&cpcap_handle, __ATOMIC_ACQUIRE);
    if (!current) {
        current = dlopen("libpcap.so.0.8", RTLD_NOW | RTLD_LOCAL);
        if (!current) current = dlopen("libpcap.so.1", RTLD_NOW | RTLD_LOCAL);
        if (current) __atomic_store_n(&cpcap_handle, current, __ATOMIC_RELEASE);
    }
    return current;
}
/// 1 when libpcap is there and has every function below, else 0 (then cpcap_load_error says why).
static inline int cpcap_load(void);
static inline const char *cpcap_load_error(void) { const char *why = dlerror(); return why ? why : "libpcap not found"; }

#define CPCAP_FUNCTIONS(X) \
    X(pcap_t *, pcap_create, (const char *source, char *errbuf), (source, errbuf)) \
    X(int, pcap_activate, (pcap_t *p), (p)) \
    X(char *, pcap_geterr, (pcap_t *p), (p)) \
    X(int, pcap_datalink, (pcap_t *p), (p)) \
    X(const char *, pcap_statustostr, (int error), (error)) \
    X(int, pcap_next_ex, (pcap_t *p, struct pcap_pkthdr **header, const u_char **data), (p, header, data)) \
    X(int, pcap_snapshot, (pcap_t *p), (p)) \
    X(int, pcap_setnonblock, (pcap_t *p, int nonblock, char *errbuf), (p, nonblock, errbuf)) \
    X(int, pcap_setdirection, (pcap_t *p, pcap_direction_t direction), (p, direction)) \
    X(int, pcap_set_snaplen, (pcap_t *p, int snaplen), (p, snaplen)) \
    X(int, pcap_set_promisc, (pcap_t *p, int promisc), (p, promisc)) \
    X(int, pcap_set_immediate_mode, (pcap_t *p, int immediate), (p, immediate)) \
    X(int, pcap_set_buffer_size, (pcap_t *p, int size), (p, size)) \
    X(pcap_t *, pcap_open_offline, (const char *path, char *errbuf), (path, errbuf)) \
    X(pcap_t *, pcap_open_dead, (int linktype, int snaplen), (linktype, snaplen)) \
    X(int, pcap_inject, (pcap_t *p, const void *data, size_t size), (p, data, size)) \
    X(int, pcap_get_selectable_fd, (pcap_t *p), (p)) \
    X(pcap_dumper_t *, pcap_dump_open, (pcap_t *p, const char *path), (p, path)) \
    X(int, pcap_dump_flush, (pcap_dumper_t *d), (d)) \
    X(const char *, pcap_datalink_val_to_name, (int linktype), (linktype))

// The three that return nothing.
#define CPCAP_PROCEDURES(X) \
    X(void, pcap_close, (pcap_t *p), (p)) \
    X(void, pcap_dump_close, (pcap_dumper_t *d), (d)) \
    X(void, pcap_dump, (u_char *user, const struct pcap_pkthdr *header, const u_char *data), (user, header, data))

#define CPCAP_POINTER(ret, name, params, args) \
    __attribute__((weak)) ret (*cpcap_fn_##name) params = 0; \
    static inline ret (**cpcap_pointer_##name(void)) params { return &cpcap_fn_##name; }
CPCAP_FUNCTIONS(CPCAP_POINTER)
CPCAP_PROCEDURES(CPCAP_POINTER)
#define CPCAP_RESOLVE(ret, name, params, args) \
    if (!*cpcap_pointer_##name()) *cpcap_pointer_##name() = (ret (*) params)dlsym(library, #name); \
    if (!*cpcap_pointer_##name()) return 0;
static inline int cpcap_load(void) {
    void *library = cpcap_library();
    if (!library) return 0;
    CPCAP_FUNCTIONS(CPCAP_RESOLVE)
    CPCAP_PROCEDURES(CPCAP_RESOLVE)
    return 1;
}
#define CPCAP_CALL(ret, name, params, args) \
    static inline ret c##name params { return (*cpcap_pointer_##name()) args; }
CPCAP_FUNCTIONS(CPCAP_CALL)
#define CPCAP_CALL_PROCEDURE(ret, name, params, args) \
    static inline void c##name params { (*cpcap_pointer_##name()) args; }
CPCAP_PROCEDURES(CPCAP_CALL_PROCEDURE)

static const int CPCAP_IFNAMSIZ = IFNAMSIZ;
static const short CPCAP_IFF_UP = IFF_UP;

/// TUNSETIFF with IFF_TAP | IFF_NO_PI (and no IFF_VNET_HDR, no IFF_MULTI_QUEUE) on an open /dev/net/tun: creates
/// the tap `name` (gone when the last descriptor closes unless made persistent) or attaches to an existing one.
/// The kernel's name for the device is copied to `actual` (CPCAP_IFNAMSIZ bytes, NUL-terminated).
static inline int cpcap_tun_set_tap(int fd, const char *name, char *actual) {
    struct ifreq request;
    memset(&request, 0, sizeof request);
    strncpy(request.ifr_name, name, IFNAMSIZ - 1);
    request.ifr_flags = IFF_TAP | IFF_NO_PI;
    int result = ioctl(fd, TUNSETIFF, &request);
    if (result == 0) {
        memcpy(actual, request.ifr_name, IFNAMSIZ);
        actual[IFNAMSIZ - 1] = 0;
    }
    return result;
}

/// SIOCGIFFLAGS on any socket.
static inline int cpcap_get_interface_flags(int socket, const char *name, short *flags) {
    struct ifreq request;
    memset(&request, 0, sizeof request);
    strncpy(request.ifr_name, name, IFNAMSIZ - 1);
    int result = ioctl(socket, SIOCGIFFLAGS, &request);
    if (result == 0) *flags = request.ifr_flags;
    return result;
}

/// SIOCSIFFLAGS on any socket (needs CAP_NET_ADMIN).
static inline int cpcap_set_interface_flags(int socket, const char *name, short flags) {
    struct ifreq request;
    memset(&request, 0, sizeof request);
    strncpy(request.ifr_name, name, IFNAMSIZ - 1);
    request.ifr_flags = flags;
    return ioctl(socket, SIOCSIFFLAGS, &request);
}

/// unshare(CLONE_NEWNET) for the calling thread only (network namespaces are per thread): the tests create their
/// tap devices there so that they never touch the host's networking. unshare(2) itself is declared only under
/// _GNU_SOURCE, which Swift's Glibc module does not see, hence the raw system call.
static inline int cpcap_unshare_network_namespace(void) {
    return (int)syscall(SYS_unshare, 0x40000000 /* CLONE_NEWNET */);
}

/// Drops every capability of the calling thread only (capabilities belong to threads, and the thread keeps uid 0
/// but loses root's powers): the tests reach the "not permitted" errors this way while running as root.
static inline int cpcap_drop_thread_capabilities(void) {
    struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof data);
    return (int)syscall(SYS_capset, &header, data);
}
#endif
