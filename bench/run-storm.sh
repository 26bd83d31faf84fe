#!/usr/bin/env bash
# Boot storm: N simulated amd64 BIOS/iPXE machines (bench/storm/clients.ts: DHCP as the
# PXE ROM, TFTP of undionly.kpxe lock-step at blksize 1468, DHCP as iPXE, HTTP script +
# kernel + initrd, NBD attach + a synthetic first-boot read pattern) against bootfarm
# (full DHCP mode, N inventory nodes) and against the stock stack (dnsmasq DHCP +
# tftpd-hpa + nbd-server + the e2e reference's python HTTP server), rounds interleaved
# in one run (bench/storm/run.ts says how).
#
#   sudo bench/run-storm.sh --count 50 --rounds 2
#   sudo bench/run-storm.sh --count 200 --rounds 2 --seq-mib 16 --rand-reads 256
#
# Arguments go to bench/storm/run.ts (--count, --rounds, --servers bootfarm,stock,
# --seq-mib, --rand-reads, --spread-ms, --deadline-s, --image-dir). Needs root, the
# lab image cache (/var/tmp/bootfarm-lab-images, amd64), ../shared beside the
# repository (the reference's e2e-httpd.py) and the packages of
# `scripts/install-system-deps.sh bench` (dnsmasq-base, tftpd-hpa, nbd-server) plus
# ipxe (undionly.kpxe). Results: bench/results/storm-<stamp>/ (per-round timelines,
# server logs, summary.md) and bench/results/run-storm-<time>.log.
set -euo pipefail

# shellcheck source=lib/run.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/run.sh"
bench_run_start storm
echo "run-storm: $(package_versions dnsmasq-base tftpd-hpa nbd-server python3 ipxe)"

cd "$repo"
set -x
node --import tsx bench/storm/run.ts --main-js "$BOOTFARM_DIST/server/cli/main.js" --results "$results" "$@"
