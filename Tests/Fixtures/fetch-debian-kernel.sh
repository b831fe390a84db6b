#!/usr/bin/env bash
# Fetches the Debian cloud kernel's bzImage for the loader tests into .cache/debian/
# (git-ignored): `apt-get download` + `dpkg -x`, nothing installed, nothing committed.
set -euo pipefail
cache="$(cd "$(dirname "$0")/../.." && pwd)/.cache/debian"
target="$cache/vmlinuz-cloud-amd64"
[ -s "$target" ] && exit 0
mkdir -p "$cache"
cd "$cache"
# linux-image-cloud-amd64 is a metapackage; the kernel is in the versioned package it depends on.
package=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
if [ -z "$package" ]; then
    echo "fetch-debian-kernel: apt knows no linux-image-cloud-amd64 (run apt-get update)" >&2
    exit 1
fi
rm -rf extract ./*.deb
apt-get download -q "$package"
dpkg -x ./"$package"_*.deb extract
cp extract/boot/vmlinuz-* "$target.tmp"
mv "$target.tmp" "$target"
rm -rf extract ./*.deb
echo "fetch-debian-kernel: $package -> $target"
