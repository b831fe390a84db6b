#!/usr/bin/env bash
# Assembles the nested lab's initramfs images (cpio newc, gzip) in .cache/lab/:
#   l2-initrd.img  busybox + Tests/Lab/l2-init as /init, and the Hyper-V guest modules (hv_vmbus,
#                  hv_utils, hv_netvsc) in /lib/modules/ for lab.vmbus=1 and lab.net=netvsc: the
#                  level-2 guest's userland under the cloud kernel
#   l2-std-initrd.img  the same with the standard kernel's modules (e1000) instead, for lab.net=e1000
#                  under vmlinuz-std (modules load only into the kernel they were built for)
#   l1-initrd.img  busybox + Tests/Lab/l1-init as /init, the kvm and tun modules, the static hv with
#                  the shared libraries it still links, Guests/build/hello.elf, and under /l2/ the
#                  L2 kernels (vmlinuz, vmlinux, vmlinuz-std) with initrd.img and initrd-std.img
# Needs Tests/Lab/fetch.sh, `make -C Guests` and the static release build
# (swift build -c release --static-swift-stdlib --scratch-path .build-static) first.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
lab="$root/Tests/Lab"
cache="$root/.cache/lab"
hv="$root/.build-static/release/hv"
hello="$root/Guests/build/hello.elf"

for f in "$cache/busybox" "$cache/vmlinuz" "$cache/vmlinux" "$cache/modules/kvm-amd.ko" "$cache/modules/tun.ko" \
         "$cache/l2-modules/hv_vmbus.ko" "$cache/l2-modules/hv_utils.ko" "$cache/l2-modules/hv_netvsc.ko" \
         "$cache/vmlinuz-std" "$cache/l2-std-modules/e1000.ko" "$hv" "$hello"; do
    [ -e "$f" ] || { echo "lab initramfs: missing $f (see the comment at the top of $0)" >&2; exit 1; }
done

# The host may have no cpio; busybox's applet writes newc archives as well.
if command -v cpio >/dev/null; then cpio=(cpio --quiet); else cpio=("$cache/busybox" cpio); fi

# $1: staging directory. Busybox with a link per applet in /bin, and the mount points.
populate_busybox() {
    mkdir -p "$1/bin" "$1/dev" "$1/proc" "$1/sys" "$1/tmp" "$1/usr/bin"
    ln -s bin "$1/sbin"
    cp "$cache/busybox" "$1/bin/busybox"
    for applet in $("$cache/busybox" --list); do
        [ -e "$1/bin/$applet" ] || ln -s busybox "$1/bin/$applet"
    done
}

# $1: staging directory, $2: output image. Sorted for a reproducible archive.
pack() {
    (cd "$1" && find . | LC_ALL=C sort | "${cpio[@]}" -o -H newc -R 0:0) | gzip -6 > "$2.tmp"
    mv "$2.tmp" "$2"
}

# Level 2: $1 the modules directory, $2 the image. One per L2 kernel.
build_l2() {
    local stage="$cache/l2-root"
    rm -rf "$stage"
    populate_busybox "$stage"
    install -m 755 "$lab/l2-init" "$stage/init"
    mkdir -p "$stage/lib/modules"
    cp "$1"/*.ko "$stage/lib/modules/"
    pack "$stage" "$2"
}
build_l2 "$cache/l2-modules" "$cache/l2-initrd.img"
build_l2 "$cache/l2-std-modules" "$cache/l2-std-initrd.img"

# Level 1.
stage="$cache/l1-root"
rm -rf "$stage"
populate_busybox "$stage"
install -m 755 "$lab/l1-init" "$stage/init"
mkdir -p "$stage/lib/modules" "$stage/l2"
cp "$cache"/modules/{irqbypass,kvm,kvm-amd,tun}.ko "$stage/lib/modules/"
# Debug sections are 3 MB of the image and are not needed to run; symbols stay for backtraces.
strip --strip-debug -o "$stage/usr/bin/hv" "$hv"
# --static-swift-stdlib still links libc, libm, libstdc++, libgcc_s and the loader dynamically:
# copy each to the path ldd resolves it to, so the binary's loader and search paths find them.
# hv loads libpcap with dlopen when a capture file or pcap back end is used: it and its libraries too.
# awk reads to the end (no `exit`): under pipefail, a reader that leaves early kills ldconfig with
# SIGPIPE (status 141) whenever its output outgrows the pipe buffer, as it did on a CI machine.
libpcap=$(ldconfig -p | awk '/libpcap\.so\.0\.8 .*x86-64/ && !found { print $NF; found = 1 }')
[ -n "$libpcap" ] || { echo "build-initramfs: libpcap.so.0.8 not found (Debian package libpcap0.8)" >&2; exit 1; }
{ ldd "$hv"; echo "	$libpcap"; ldd "$libpcap"; } | awk '/=> \// { print $3 } /^\t\// { print $1 }' | sort -u | while read -r lib; do
    mkdir -p "$stage$(dirname "$lib")"
    cp -L "$lib" "$stage$lib"
done
cp "$hello" "$stage/hello.elf"
cp "$cache/vmlinuz" "$stage/l2/vmlinuz"
# The ELF kernel for the PVH scenario, stripped: hv loads only its PT_LOAD segments and notes.
strip --strip-all -o "$stage/l2/vmlinux" "$cache/vmlinux"
cp "$cache/l2-initrd.img" "$stage/l2/initrd.img"
# The standard kernel and its initramfs, for the e1000 scenarios.
cp "$cache/vmlinuz-std" "$stage/l2/vmlinuz-std"
cp "$cache/l2-std-initrd.img" "$stage/l2/initrd-std.img"
pack "$stage" "$cache/l1-initrd.img"

echo "lab initramfs: $cache/l1-initrd.img ($(du -h "$cache/l1-initrd.img" | cut -f1)), l2-initrd.img ($(du -h "$cache/l2-initrd.img" | cut -f1)), l2-std-initrd.img ($(du -h "$cache/l2-std-initrd.img" | cut -f1))"
