#!/usr/bin/env bash
# NBD benchmark of bootfarm's built-in NBD server beside nbd-server, nbdkit and
# qemu-nbd, in ONE interleaved run-anchors invocation (rep 1: nbd-server nbdkit
# qemu-nbd bootfarm, rep 2: ..., each server freshly started for every rep, all on
# 127.0.0.1:10809 in netns nbb-lo, export `disk` = /var/tmp/bench/nbd/disk1g.img,
# 1 GiB of random bytes, read-only, in the page cache).
#
#   sudo bench/run-nbd.sh                  # the full run (3 reps), ~10-15 min
#   sudo bench/run-nbd.sh --quick --servers nbd-server,bootfarm   # smoke test (1 rep)
#   sudo bench/run-nbd.sh --reps 5         # for close calls
#
# Per server and rep, run-anchors runs ../shared/bench/bench-nbd --tests
# check,seq,rand,multi (fixed in run-anchors' bench_nbd):
#   check  300 random ranges compared with the image (own python client, NBD_OPT_GO)
#   seq    fio --ioengine=nbd --rw=read --bs=1M --iodepth=1 over the whole export,
#          and nbdcopy nbd://... null: (up to 4 connections with CAN_MULTI_CONN)
#   rand   fio 4 KiB random reads at iodepth 1 and 16, one connection, 8 s each
#   multi  20 python clients, one connection each, 128 MiB sequential each (256 KiB QD1)
# (--quick: 2 s random runs, 16 MiB per client).
# Extra arguments are appended to run-anchors' (argparse: a later option wins).
# Layout: the shared harness is at ../shared/bench beside this repository.
# Needs root (netns nbb-lo, created and deleted by run-anchors) and the Debian
# packages nbd-server nbdkit qemu-utils libnbd-bin fio python3.
# Results: bench/results/anchors-<stamp>.{jsonl,json,md} (run-anchors) and
# bench/results/run-nbd-<time>.log (this script's output, with the commit and
# build measured). See bench/RESULTS.md, section NBD.
set -euo pipefail

# shellcheck source=lib/run.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/run.sh"
for tool in fio nbdcopy nbd-server nbdkit qemu-nbd; do
  command -v "$tool" >/dev/null || { echo "run-nbd: $tool missing (apt-get install fio libnbd-bin nbd-server nbdkit qemu-utils)" >&2; exit 2; }
done
fio --enghelp 2>/dev/null | grep -qx '[[:space:]]*nbd' || { echo "run-nbd: this fio has no nbd engine" >&2; exit 2; }
bench_run_start nbd
echo "run-nbd: $(package_versions nbd-server nbdkit qemu-utils fio libnbd-bin)"

cd "$repo"
set -x
"$harness" --protocols nbd --reps 3 \
  --servers nbd-server,nbdkit,qemu-nbd,bootfarm \
  --candidate "nbd:bootfarm:bash $repo/bench/bootfarm-nbd-candidate.sh {addr} {port} {export} {image} {dir}" \
  --results "$results" \
  "$@"
