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

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
harness="$repo/../shared/bench/run-anchors"
results="$repo/bench/results"

[ -x "$harness" ] || { echo "run-nbd: $harness not found (shared/ must sit beside the repo)" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "run-nbd: needs root (network namespaces)" >&2; exit 2; }
for tool in fio nbdcopy nbd-server nbdkit qemu-nbd; do
  command -v "$tool" >/dev/null || { echo "run-nbd: $tool missing (apt-get install fio libnbd-bin nbd-server nbdkit qemu-utils)" >&2; exit 2; }
done
fio --enghelp 2>/dev/null | grep -qx '[[:space:]]*nbd' || { echo "run-nbd: this fio has no nbd engine" >&2; exit 2; }
mkdir -p "$results"
log="$results/run-nbd-$(date +%Y%m%d-%H%M%S).log"
exec > >(tee "$log") 2>&1

# A private build snapshot: compiled once here, used by every start of the candidate
# (BOOTFARM_DIST), so the whole run measures one build even if server/ or dist/
# change while it runs. Its own directory (not bench/dist of run-dhcp.sh, not
# bench/.tftp-snapshot of run-tftp.sh): each run script deletes and rebuilds its own
# snapshot when it starts, which must not pull the build from under another run.
# bench/.nbd-snapshot/dist is git-ignored (dist/) and stays inside the repository so
# that node finds node_modules/.
snapshot="$repo/bench/.nbd-snapshot/dist"
rm -rf "$snapshot"
(cd "$repo" && npx --no-install tsc -p tsconfig.build.json --outDir "$snapshot")
# `serve` compiles the handlebars templates at start (server/boot/templates.ts:
# <outDir>/templates), which tsc does not copy.
cp -r "$repo/templates" "$snapshot/templates"
export BOOTFARM_DIST="$snapshot"
echo "run-nbd: bootfarm $(git -C "$repo" rev-parse HEAD) (uncommitted changes under server/: $(git -C "$repo" status --porcelain -- server | wc -l))"
echo "run-nbd: build snapshot $snapshot, sha256 of its .js: $(cd "$snapshot" && find . -name '*.js' -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-16)"
echo "run-nbd: node $(node --version), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "run-nbd: nbd-server $(dpkg-query -W -f='${Version}' nbd-server 2>/dev/null || echo '?'), nbdkit $(dpkg-query -W -f='${Version}' nbdkit 2>/dev/null || echo '?'), qemu-nbd $(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null || echo '?'), fio $(dpkg-query -W -f='${Version}' fio 2>/dev/null || echo '?'), libnbd $(dpkg-query -W -f='${Version}' libnbd-bin 2>/dev/null || echo '?')"

cd "$repo"
set -x
"$harness" --protocols nbd --reps 3 \
  --servers nbd-server,nbdkit,qemu-nbd,bootfarm \
  --candidate "nbd:bootfarm:bash $repo/bench/bootfarm-nbd-candidate.sh {addr} {port} {export} {image} {dir}" \
  --results "$results" \
  "$@"
