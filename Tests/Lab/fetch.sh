#!/usr/bin/env bash
# Fetches what the nested lab needs into .cache/lab/ (git-ignored) with `apt-get download` +
# `dpkg -x`: nothing is installed on the host and nothing downloaded is committed.
#   .cache/lab/busybox            static busybox (L1 and L2 userland, and the host's cpio)
#   .cache/lab/linux/             the extracted Debian cloud kernel package (L1 and L2 kernel,
#                                 kvm modules for L1, hv_* modules for later L2 work)
#   .cache/lab/modules/*.ko       irqbypass, kvm, kvm-amd, uncompressed for busybox insmod
#   .cache/lab/vmlinuz            the kernel image, a stable name for the other scripts
#   .cache/lab/vmlinux            the ELF kernel inside it, for the PVH boot path
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

if [ ! -x busybox ]; then
    deb=$(download busybox-static)
    rm -rf bb-extract
    dpkg -x "$deb" bb-extract
    cp bb-extract/bin/busybox busybox.tmp
    mv busybox.tmp busybox
    rm -rf bb-extract download
    echo "lab fetch: busybox-static -> $cache/busybox"
fi

if [ ! -s vmlinuz ] || [ ! -s modules/kvm-amd.ko ]; then
    # linux-image-cloud-amd64 is a metapackage; the kernel is in the versioned package it depends on.
    # The cloud kernel ships kvm.ko, kvm-amd.ko and irqbypass.ko (checked on 6.1.0-56), so it
    # serves as L1 as well as L2.
    package=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
    if [ -z "$package" ]; then
        echo "lab fetch: apt knows no linux-image-cloud-amd64 (run apt-get update)" >&2
        exit 1
    fi
    deb=$(download "$package")
    rm -rf linux modules
    dpkg -x "$deb" linux
    rm -rf download
    mkdir -p modules
    moddir=$(echo linux/lib/modules/*)
    for m in virt/lib/irqbypass arch/x86/kvm/kvm arch/x86/kvm/kvm-amd; do
        name=$(basename "$m").ko
        # Debian 12 ships plain .ko; later releases compress them, which busybox insmod cannot read.
        if [ -f "$moddir/kernel/$m.ko" ]; then cp "$moddir/kernel/$m.ko" "modules/$name"
        elif [ -f "$moddir/kernel/$m.ko.xz" ]; then xz -dc "$moddir/kernel/$m.ko.xz" > "modules/$name"
        elif [ -f "$moddir/kernel/$m.ko.zst" ]; then zstd -qdc "$moddir/kernel/$m.ko.zst" > "modules/$name"
        else
            echo "lab fetch: $package has no $m module (use linux-image-amd64 for L1)" >&2
            exit 1
        fi
    done
    cp linux/boot/vmlinuz-* vmlinuz.tmp
    mv vmlinuz.tmp vmlinuz
    echo "lab fetch: $package -> $cache/vmlinuz, modules/"
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
