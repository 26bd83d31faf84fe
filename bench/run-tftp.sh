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

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
harness="$repo/../shared/bench/run-anchors"
results="$repo/bench/results"

[ -x "$harness" ] || { echo "run-tftp: $harness not found (shared/ must sit beside the repo)" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "run-tftp: needs root (network namespaces)" >&2; exit 2; }
mkdir -p "$results"
log="$results/run-tftp-$(date +%Y%m%d-%H%M%S).log"
exec > >(tee "$log") 2>&1

# A private build snapshot: compiled once here, used by every start of the candidate
# (BOOTFARM_DIST), so the whole run measures one build even if server/ or dist/
# change while it runs. Not bench/dist: run-dhcp.sh deletes and rebuilds that
# directory on every start, which once removed this run's snapshot (with its
# templates) mid-run. bench/.tftp-snapshot/dist is git-ignored (dist/) and stays
# inside the repository so that node finds node_modules/.
snapshot="$repo/bench/.tftp-snapshot/dist"
rm -rf "$snapshot"
(cd "$repo" && npx --no-install tsc -p tsconfig.build.json --outDir "$snapshot")
# The built server looks for its handlebars templates at <outDir>/templates
# (server/boot/templates.ts: dirname(import.meta.url)/../../templates), which tsc does
# not copy; without them `serve` exits with ENOENT .../templates/ipxe.hbs.
cp -r "$repo/templates" "$snapshot/templates"
export BOOTFARM_DIST="$snapshot"
echo "run-tftp: bootfarm $(git -C "$repo" rev-parse HEAD) (uncommitted changes under server/: $(git -C "$repo" status --porcelain -- server | wc -l))"
echo "run-tftp: build snapshot $snapshot, sha256 of its .js: $(cd "$snapshot" && find . -name '*.js' -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-16)"
echo "run-tftp: node $(node --version), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "run-tftp: in.tftpd $(dpkg-query -W -f='${Version}' tftpd-hpa 2>/dev/null || echo '?'), dnsmasq $(dpkg-query -W -f='${Version}' dnsmasq-base 2>/dev/null || echo '?'), atftpd $( [ -x /opt/atftpd/usr/sbin/atftpd ] && echo /opt/atftpd || echo missing)"

cd "$repo"
set -x
"$harness" --protocols tftp --reps 3 \
  --servers tftpd-hpa,atftpd,dnsmasq-tftp,bootfarm \
  --tftp-clients 50 --storm-blksizes 512,1468,8192,65464 \
  --candidate "tftp:bootfarm:bash $repo/bench/bootfarm-tftp-candidate.sh {addr} {port} {tftproot} {dir}" \
  --results "$results" \
  "$@"
