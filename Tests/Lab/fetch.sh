#!/usr/bin/env bash
# Fetches what the nested lab needs into .cache/lab/ (git-ignored) with `apt-get download` +
# `dpkg -x`: nothing is installed on the host and nothing downloaded is committed.
#   .cache/lab/busybox            static busybox (L1 and L2 userland, and the host's cpio)
#   .cache/lab/linux/             the extracted Debian cloud kernel package (L1 and L2 kernel,
#                                 kvm and tun modules for L1, hv_* modules for L2)
#   .cache/lab/modules/*.ko       irqbypass, kvm, kvm-amd, tun (the NIC scenarios' tap), uncompressed
#                                 for busybox insmod
#   .cache/lab/l2-modules/*.ko    hv_vmbus, hv_utils, hv_netvsc (VMBus and the synthetic NIC in L2),
#                                 uncompressed likewise
#   .cache/lab/vmlinuz            the kernel image, a stable name for the other scripts
#   .cache/lab/vmlinux            the ELF kernel inside it, for the PVH boot path
#   .cache/lab/linux-std/         the extracted standard kernel package (linux-image-amd64): the L2
#                                 kernel of the e1000 scenarios, as the cloud kernel has no e1000
#   .cache/lab/vmlinuz-std        its kernel image
#   .cache/lab/l2-std-modules/*.ko  e1000 from that package (modules load only into the kernel they
#                                 were built for: the cloud kernel's vermagic is 6.1.0-N-cloud-amd64,
#                                 the standard one's 6.1.0-N-amd64)
# Idempotent: each part is skipped when it is already there.
set -euo pipefail
cache="$(cd "$(dirname "$0")/../.." && pwd)/.cache/lab"
mkdir -p "$cache"
cd "$cache"

# apt-cache needs package lists; a fresh container may have none.
if ! ls /var/lib/apt/lists/*Packages* >/dev/null 2>&1; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -q
fi

# apt-get download runs as _apt when it can; a world-writable scratch dir avoids its warning.
download() {
    local dl="$cache/download"
    rm -rf "$dl"; mkdir -p "$dl"; chmod 777 "$dl"
    (cd "$dl" && apt-get download -q "$1" >/dev/null)
    echo "$dl"/*.deb
}

# $1: a modules tree (linux/lib/modules/VERSION), $2: a module's path under kernel/ without .ko,
# $3: where the plain .ko goes. Debian 12 ships plain .ko; later releases compress them, which
# busybox insmod cannot read. Fails when the package has no such module.
unpack_module() {
    if [ -f "$1/kernel/$2.ko" ]; then cp "$1/kernel/$2.ko" "$3.tmp"
    elif [ -f "$1/kernel/$2.ko.xz" ]; then xz -dc "$1/kernel/$2.ko.xz" > "$3.tmp"
    elif [ -f "$1/kernel/$2.ko.zst" ]; then zstd -qdc "$1/kernel/$2.ko.zst" > "$3.tmp"
    else return 1
    fi
    mv "$3.tmp" "$3"
}

if [ ! -x busybox ]; then
    deb=$(download busybox-static)
    rm -rf bb-extract
    dpkg -x "$deb" bb-extract
    cp bb-extract/bin/busybox busybox.tmp
    mv busybox.tmp busybox
    rm -rf bb-extract download
    echo "lab fetch: busybox-static -> $cache/busybox"
fi

if [ ! -s vmlinuz ] || [ ! -s modules/kvm-amd.ko ] || [ ! -d linux/lib/modules ]; then
    # linux-image-cloud-amd64 is a metapackage; the kernel is in the versioned package it depends on.
    # The cloud kernel ships kvm.ko, kvm-amd.ko and irqbypass.ko (checked on 6.1.0-56), so it
    # serves as L1 as well as L2.
    package=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ && !found { print $2; found = 1 }')
    if [ -z "$package" ]; then
        echo "lab fetch: apt knows no linux-image-cloud-amd64 (run apt-get update)" >&2
        exit 1
    fi
    deb=$(download "$package")
    rm -rf linux modules l2-modules   # l2-modules must match this kernel: refilled below
    dpkg -x "$deb" linux
    rm -rf download
    mkdir -p modules
    moddir=$(echo linux/lib/modules/*)
    for m in virt/lib/irqbypass arch/x86/kvm/kvm arch/x86/kvm/kvm-amd; do
        if ! unpack_module "$moddir" "$m" "modules/$(basename "$m").ko"; then
            echo "lab fetch: $package has no $m module (use linux-image-amd64 for L1)" >&2
            exit 1
        fi
    done
    cp linux/boot/vmlinuz-* vmlinuz.tmp
    mv vmlinuz.tmp vmlinuz
    echo "lab fetch: $package -> $cache/vmlinuz, modules/"
fi

# The tap device hv creates in L1 for the NIC scenarios needs /dev/net/tun: CONFIG_TUN=m in the
# cloud kernel (checked on 6.1.0-56-cloud-amd64; tun's depends= is empty).
if [ ! -s modules/tun.ko ]; then
    mkdir -p modules
    moddir=$(echo linux/lib/modules/*)
    if ! unpack_module "$moddir" drivers/net/tun modules/tun.ko; then
        echo "lab fetch: $moddir has no tun module (L1 needs CONFIG_TUN for the NIC scenarios' tap)" >&2
        exit 1
    fi
    echo "lab fetch: L1 module -> $cache/modules/tun.ko"
fi

# The Hyper-V guest modules L2 loads with lab.vmbus=1 (Tests/Lab/l2-init), from the package
# extracted above (kept in linux/). Checked on 6.1.0-56-cloud-amd64: CONFIG_HYPERV=m and
# CONFIG_HYPERV_UTILS=m, so both are modules; their depends= (what `modinfo -F depends` prints):
# none for hv_vmbus, hv_vmbus for hv_utils (busybox insmod resolves nothing: l2-init loads them in this order).
# The platform side (hypercall page, SynIC, the TSC-page clocksource: CONFIG_HYPERV_TIMER=y) is
# built into the kernel. hv_netvsc (CONFIG_HYPERV_NET=m, for lab.net=netvsc) depends on hv_vmbus
# only: its failover companion (net_failover) is not a dependency in 6.1. For later: hv_storvsc
# needs scsi_common, scsi_mod, scsi_transport_fc and hv_vmbus (and sd_mod for disks).
l2_modules="drivers/hv/hv_vmbus drivers/hv/hv_utils drivers/net/hyperv/hv_netvsc"
l2_missing=""
for m in $l2_modules; do
    [ -s "l2-modules/$(basename "$m").ko" ] || l2_missing="$l2_missing $m"
done
if [ -n "$l2_missing" ]; then
    mkdir -p l2-modules
    moddir=$(echo linux/lib/modules/*)
    for m in $l2_missing; do
        if ! unpack_module "$moddir" "$m" "l2-modules/$(basename "$m").ko"; then
            echo "lab fetch: $moddir has no $m module (the L2 kernel needs CONFIG_HYPERV=m, CONFIG_HYPERV_UTILS=m, CONFIG_HYPERV_NET=m)" >&2
            exit 1
        fi
    done
    echo "lab fetch: L2 modules -> $cache/l2-modules/ ($(cd l2-modules && echo *.ko))"
fi

# The standard kernel for the e1000 scenarios (lab.net=e1000 in L2): linux-image-cloud-amd64 has no
# e1000 (CONFIG_E1000 is not set there); linux-image-amd64 builds it as a module (CONFIG_E1000=m;
# checked on 6.1.0-56-amd64: e1000's depends= is empty). Its modules are kept apart from the cloud
# kernel's (l2-std-modules/): a module loads only into the kernel it was built for. L1 stays on the
# cloud kernel; build-initramfs.sh puts this kernel and its own L2 initramfs into L1's image.
l2_std_modules="drivers/net/ethernet/intel/e1000/e1000"
std_missing=""
for m in $l2_std_modules; do
    [ -s "l2-std-modules/$(basename "$m").ko" ] || std_missing="$std_missing $m"
done
if [ ! -s vmlinuz-std ] || [ ! -d linux-std/lib/modules ] || [ -n "$std_missing" ]; then
    package=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ && !found { print $2; found = 1 }')
    if [ -z "$package" ]; then
        echo "lab fetch: apt knows no linux-image-amd64 (run apt-get update)" >&2
        exit 1
    fi
    deb=$(download "$package")
    rm -rf linux-std l2-std-modules vmlinuz-std   # all three come from this one package
    dpkg -x "$deb" linux-std
    rm -rf download
    mkdir -p l2-std-modules
    moddir=$(echo linux-std/lib/modules/*)
    for m in $l2_std_modules; do
        if ! unpack_module "$moddir" "$m" "l2-std-modules/$(basename "$m").ko"; then
            echo "lab fetch: $package has no $m module (the e1000 scenarios need CONFIG_E1000=m)" >&2
            exit 1
        fi
    done
    cp linux-std/boot/vmlinuz-* vmlinuz-std.tmp
    mv vmlinuz-std.tmp vmlinuz-std
    echo "lab fetch: $package -> $cache/vmlinuz-std, l2-std-modules/ ($(cd l2-std-modules && echo *.ko))"
fi

if [ ! -s vmlinux ]; then
    # The ELF vmlinux inside the bzImage, for the PVH scenario: the protected-mode code starts at
    # (setup_sects + 1) * 512; payload_offset (0x248) and payload_length (0x24C) locate the
    # compressed kernel within it (boot protocol 2.08+).
    u() { od -An -t"u$2" -j "$1" -N "$2" vmlinuz | tr -d ' '; }
    start=$(( ($(u $((0x1F1)) 1) + 1) * 512 + $(u $((0x248)) 4) ))
    length=$(u $((0x24C)) 4)
    magic=$(od -An -tx1 -j "$start" -N 4 vmlinuz | tr -d ' \n')
    case "$magic" in
        02214c18) decompress=(lz4 -dc) ;;
        28b52ffd) decompress=(zstd -qdc) ;;
        fd377a58) decompress=(xz -dc) ;;
        1f8b*)    decompress=(gzip -dc) ;;
        *) echo "lab fetch: unknown kernel compression (magic $magic)" >&2; exit 1 ;;
    esac
    # The build appends the uncompressed size after the stream, which some decompressors call
    # trailing garbage (lz4 exits 1); what counts is that a whole ELF came out.
    dd if=vmlinuz bs=64K iflag=skip_bytes,count_bytes skip="$start" count="$length" status=none \
        | "${decompress[@]}" > vmlinux.tmp || true
    if [ "$(od -An -tx1 -N 4 vmlinux.tmp | tr -d ' \n')" != 7f454c46 ]; then
        echo "lab fetch: no ELF came out of the bzImage's payload (${decompress[0]})" >&2
        exit 1
    fi
    mv vmlinux.tmp vmlinux
    echo "lab fetch: vmlinux ($(du -h vmlinux | cut -f1)) extracted with ${decompress[0]}"
fi
