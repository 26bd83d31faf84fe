#!/usr/bin/env bash
# TFTP benchmark of bootfarm beside tftpd-hpa, atftpd and dnsmasq, in ONE interleaved
# run-anchors invocation (rep 1: tftpd-hpa atftpd dnsmasq-tftp bootfarm, rep 2: ...,
# each server freshly started for every rep, all on 127.0.0.1:69 in netns nbb-lo).
#
#   sudo bench/run-tftp.sh                 # the full run (3 reps), ~45-60 min
#   sudo bench/run-tftp.sh --quick --servers tftpd-hpa,bootfarm   # smoke test (1 rep)
#   sudo bench/run-tftp.sh --reps 2        # shorter full run
#
# Per server and rep, run-anchors runs ../shared/bench/bench-tftp with (fixed in
# run-anchors' bench_tftp):
#   single transfers of big64.bin (64 MiB) and mid8.bin (8 MiB) at
#     --blksizes 512,1468,8192,65464 --windowsizes 1,16 (1 transfer per cell)
#   a 50-client storm of storm32.bin (32 MiB each) at
#     --storm-blksizes 512,1468,8192,65464 --storm-windowsizes 1,16
# (--quick: blksizes 1468,8192, storm 5 clients at 1468 only).
# Extra arguments are appended to run-anchors' (argparse: a later option wins).
# Layout: the shared harness is at ../shared/bench beside this repository.
# Needs root (netns nbb-lo, created and deleted by run-anchors), tftpd-hpa and
# dnsmasq-base installed, and atftpd unpacked to /opt/atftpd (see bench/RESULTS.md).
# Results: bench/results/anchors-<stamp>.{jsonl,json,md} (run-anchors) and
# bench/results/run-tftp-<time>.log (this script's output, with the commit and
# build measured). See bench/RESULTS.md, section TFTP.
set -euo pipefail

# shellcheck source=lib/run.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/run.sh"
bench_run_start tftp
echo "run-tftp: $(package_versions tftpd-hpa dnsmasq-base), atftpd $( [ -x /opt/atftpd/usr/sbin/atftpd ] && echo /opt/atftpd || echo missing)"

cd "$repo"
set -x
"$harness" --protocols tftp --reps 3 \
  --servers tftpd-hpa,atftpd,dnsmasq-tftp,bootfarm \
  --tftp-clients 50 --storm-blksizes 512,1468,8192,65464 \
  --candidate "tftp:bootfarm:bash $repo/bench/bootfarm-tftp-candidate.sh {addr} {port} {tftproot} {dir}" \
  --results "$results" \
  "$@"
