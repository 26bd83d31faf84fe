#!/usr/bin/env bash
# Image build benchmark: per arch, the time to make the base image, a cold build
# (--no-cache: every step runs again), a cached rebuild, and the sizes of what is
# published; beside a plain `debootstrap --include=<same packages>` + mksquashfs
# of the same package set (no Docker, no cache, no initrd).
#   bench/run-imagebuild.sh [ARCH...]      (default: amd64 arm64)
# Results: a markdown table on stdout and in bench/results/run-imagebuild-<time>.log.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" -eq 0 ] || { echo "run-imagebuild: needs root (dockerd, debootstrap)" >&2; exit 2; }
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(amd64 arm64)
results="$repo/bench/results"
mkdir -p "$results"
exec > >(tee "$results/run-imagebuild-$(date +%Y%m%d-%H%M%S).log") 2>&1
"$repo/scripts/install-system-deps.sh" image >/dev/null
bash "$repo/scripts/start-dockerd.sh" >/dev/null
work=$(mktemp -d /var/tmp/bf-bench-image-XXXXXX)
trap 'umount -R "$work"/plain-*/proc 2>/dev/null || true; rm -rf "$work"' EXIT
cli=(node --import tsx "$repo/server/cli/main.ts")
mirror=${MIRROR:-http://deb.debian.org/debian}
name=bench$$
# The rootfs stage's package list (imagebuild/Dockerfile) plus the kernel.
pkgs="systemd-sysv,udev,kmod,iproute2,initramfs-tools,nbd-client,busybox,zstd,curl,ca-certificates,openssl,jq"
echo "run-imagebuild: bootfarm $(git -C "$repo" rev-parse --short HEAD), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), docker $(docker version -f '{{.Server.Version}}' 2>/dev/null || echo '?')"

secs() { local s; s=$(date +%s.%N); "$@" >"$work/last.log" 2>&1 || { tail -n 30 "$work/last.log" >&2; return 1; }; awk -v a="$(date +%s.%N)" -v b="$s" 'BEGIN { printf "%.1f", a - b }'; }
mib() { awk -v n="$(stat -c %s "$1")" 'BEGIN { printf "%.1f", n / 1048576 }'; }

rows=()
for arch in "${arches[@]}"; do
  case $arch in amd64) kpkg=linux-image-amd64 ;; arm64) kpkg=linux-image-arm64 ;; armhf) kpkg=linux-image-armmp-lpae ;; *) echo "unknown arch $arch" >&2; exit 2 ;; esac
  echo "== $arch: base image (debootstrap minbase + docker load)"
  t_base=$(secs "${cli[@]}" image base --arch "$arch" --mirror "$mirror")
  echo "== $arch: cold build (--no-cache)"
  t_cold=$(secs "${cli[@]}" image build --name "$name" --arch "$arch" --images-dir "$work/images" --plain --no-cache --mirror "$mirror")
  echo "== $arch: cached rebuild"
  t_cached=$(secs "${cli[@]}" image build --name "$name" --arch "$arch" --images-dir "$work/images" --plain --mirror "$mirror")
  out="$work/images/$name/current/$arch"
  echo "== $arch: plain debootstrap --include + mksquashfs"
  plain="$work/plain-$arch"
  t_plain_boot=$(secs debootstrap --variant=minbase --arch="$arch" --include="$pkgs,$kpkg" bookworm "$plain" "$mirror")
  t_plain_sq=$(secs mksquashfs "$plain" "$work/plain-$arch.squashfs" -noappend -comp zstd -no-progress -quiet -wildcards -e 'boot/*' 'var/cache/apt/*' 'var/lib/apt/lists/*' 'proc/*' 'sys/*' 'dev/*' 'run/*' 'tmp/*')
  rows+=("| $arch | $t_base | $t_cold | $t_cached | $(mib "$out/root.squashfs") | $(mib "$out/vmlinuz") | $(mib "$out/initrd.img") | $(du -sm "$out/rpi" 2>/dev/null | cut -f1 || echo -) | $t_plain_boot + $t_plain_sq | $(mib "$work/plain-$arch.squashfs") |")
  echo "row: ${rows[-1]}"   # printed now too: a run stopped later keeps its finished arches
  docker image rm "bootfarm/$name:build-$arch" >/dev/null 2>&1 || true
  rm -rf "$plain" "$work/plain-$arch.squashfs"
done
echo
echo "| arch | base image s | cold build s | cached rebuild s | root.squashfs MiB | vmlinuz MiB | initrd MiB | rpi/ MiB | plain debootstrap + mksquashfs s | plain squashfs MiB |"
echo "|---|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
