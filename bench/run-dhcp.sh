#!/usr/bin/env bash
# DHCPv4 benchmark of bootfarm beside Kea and dnsmasq, in ONE interleaved
# run-anchors invocation (rep 1: kea kea-mem dnsmasq-dhcp dnsmasq-dhcp-ro bootfarm,
# rep 2: ..., each phase on a freshly started server with an empty lease database).
# bootfarm runs twice: syncWrites true (default; fsync per batch of leases) and
# bootfarm-nosync (syncWrites false: Kea memfile's durability, which never fsyncs).
#
#   sudo bench/run-dhcp.sh                 # the full run (3 reps), ~7-10 min
#   sudo bench/run-dhcp.sh --quick --servers kea,bootfarm   # smoke test (1 rep, 500 clients)
#
# Extra arguments are appended to run-anchors' (argparse: a later option wins).
# Layout: the shared harness is at ../shared/bench beside this repository.
# Needs root (network namespaces nbb-dsrv/nbb-dcli, created and deleted by
# run-anchors) and the Debian packages of `scripts/install-system-deps.sh bench`.
# Results: bench/results/anchors-<stamp>.{jsonl,json,md} (run-anchors) and
# bench/results/run-dhcp-<time>.log (this script's output, with the commit and
# build measured). See bench/RESULTS.md.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
harness="$repo/../shared/bench/run-anchors"
results="$repo/bench/results"

[ -x "$harness" ] || { echo "run-dhcp: $harness not found (shared/ must sit beside the repo)" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "run-dhcp: needs root (network namespaces)" >&2; exit 2; }
mkdir -p "$results"
log="$results/run-dhcp-$(date +%Y%m%d-%H%M%S).log"
exec > >(tee "$log") 2>&1

# A private build snapshot (bench/dist, git-ignored like every dist/): compiled once
# here, used by every start of the candidate (BOOTFARM_DIST), so the whole run
# measures one build even if server/ or dist/ change while it runs.
snapshot="$repo/bench/dist"
rm -rf "$snapshot"
(cd "$repo" && npx --no-install tsc -p tsconfig.build.json --outDir "$snapshot")
# `serve` (and `config check`) compile the handlebars templates at start, even in a
# DHCP-only config, from <outDir>/templates (server/boot/templates.ts), which tsc
# does not copy; without them every bootfarm start exits with ENOENT .../ipxe.hbs.
cp -r "$repo/templates" "$snapshot/templates"
export BOOTFARM_DIST="$snapshot"
echo "run-dhcp: bootfarm $(git -C "$repo" rev-parse HEAD) (uncommitted changes under server/: $(git -C "$repo" status --porcelain -- server | wc -l))"
echo "run-dhcp: build snapshot $snapshot, sha256 of its .js: $(cd "$snapshot" && find . -name '*.js' -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-16)"
echo "run-dhcp: node $(node --version), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"

cd "$repo"
set -x
"$harness" --protocols dhcp --reps 3 \
  --servers kea,kea-mem,dnsmasq-dhcp,dnsmasq-dhcp-ro,bootfarm,bootfarm-nosync \
  --candidate "dhcp:bootfarm:bash $repo/bench/bootfarm-dhcp-candidate.sh {iface} {server_ip} {dir} true" \
  --candidate "dhcp:bootfarm-nosync:bash $repo/bench/bootfarm-dhcp-candidate.sh {iface} {server_ip} {dir} false" \
  --results "$results" \
  "$@"
