#!/usr/bin/env bash
# Installs the Debian packages bootfarm's server, tests and benchmarks use.
# Idempotent: packages already present are skipped, so a second run is quick.
# Usage: scripts/install-system-deps.sh [runtime|test|image|bench]...  (default: runtime test)
set -euo pipefail

# mtools and dosfstools: a Pi node's signed HTTP boot image (boot.img, server/pi/boot-image.ts) is a FAT image.
# shim-signed, grub-efi-amd64-signed: the Secure Boot chain `bootfarm bootloaders`
# installs; sbsigntool: sbverify, with which `config check` reads a kernel's signature.
want_runtime=(iproute2 ca-certificates ipxe grub-common radvd mtools dosfstools shim-signed grub-efi-amd64-signed sbsigntool)
# Real peers the tests talk to: DHCP clients, a site DHCP server for proxy mode,
# packet capture, QEMU firmware (SeaBIOS+iPXE ROMs, OVMF) for guest boots, and a
# software TPM (swtpm) with tpm2-tools for kubernetes.admission: tpm, and a headless
# browser (chromium, driven over CDP by playwright-core) for the dashboard; ansible
# and ansible-lint for the role in ansible/ (its test drives a systemd container);
# U-Boot for QEMU's virt machine (the U-Boot boards) and its mkimage; etcd and etcdctl
# for the leases shared between instances (store.backend: etcd); faketime to run one
# instance with its clock ahead (the clock-skew test).
want_test=(qemu-system-arm qemu-efi-aarch64 busybox isc-dhcp-client isc-dhcp-relay dnsmasq-base nftables libnbd-bin python3-libnbd nbd-server nbdkit tshark tcpdump
           qemu-system-x86 ipxe-qemu ovmf qemu-utils curl tftp-hpa procps python3 ndisc6 openssl strace
           swtpm swtpm-tools tpm2-tools libtss2-tcti-swtpm0 jq chromium ansible ansible-lint
           u-boot-qemu u-boot-tools etcd-server etcd-client faketime)
# Image builds (bootfarm image base|build, its tests and bench): dockerd, debootstrap
# for the local base images, qemu-user for arm64/armhf RUN steps (binfmt entries are
# registered by the build when missing), squashfs/zstd/openssl/jq for the checks.
want_image=(docker.io debootstrap squashfs-tools zstd qemu-user-static binfmt-support openssl jq curl cpio)
want_bench=(kea-dhcp4-server kea-admin dnsmasq-base python3 fio nbd-server nbdkit qemu-utils libnbd-bin tftpd-hpa)

groups=("$@")
[ ${#groups[@]} -gt 0 ] || groups=(runtime test)
pkgs=()
for g in "${groups[@]}"; do
  case "$g" in
    runtime) pkgs+=("${want_runtime[@]}") ;;
    test) pkgs+=("${want_test[@]}") ;;
    image) pkgs+=("${want_image[@]}") ;;
    bench) pkgs+=("${want_bench[@]}") ;;
    *) echo "install-system-deps: unknown group '$g' (expected runtime, test, image or bench)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-system-deps: all present (${groups[*]})"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
# Keep Debian from starting daemons (kea, dnsmasq) as a side effect of installing them:
# tests and benchmarks start their own copies inside network namespaces.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
fi
echo "install-system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-system-deps: done"
