#!/usr/bin/env bash
# DHCPv4 benchmark of bootfarm beside Kea and dnsmasq, in ONE interleaved
# run-anchors invocation (rep 1: kea kea-mem dnsmasq-dhcp dnsmasq-dhcp-ro bootfarm,
# rep 2: ..., each phase on a freshly started server with an empty lease database).
#
#   sudo bench/run-dhcp.sh                 # the full run (3 reps), ~10-15 min
#   sudo bench/run-dhcp.sh --quick --servers kea,bootfarm   # smoke test (1 rep, 500 clients)
#
# Extra arguments are appended to run-anchors' (argparse: a later option wins).
# Layout: the shared harness is at ../shared/bench beside this repository.
# Needs root (network namespaces nbb-dsrv/nbb-dcli, created and deleted by
# run-anchors) and the Debian packages of `scripts/install-system-deps.sh bench`.
# Results: bench/results/anchors-<stamp>.{jsonl,json,md}; see bench/RESULTS.md.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
harness="$repo/../shared/bench/run-anchors"
results="$repo/bench/results"

[ -x "$harness" ] || { echo "run-dhcp: $harness not found (shared/ must sit beside the repo)" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "run-dhcp: needs root (network namespaces)" >&2; exit 2; }

# Build the production JS up front, so no build happens inside a measured run.
(cd "$repo" && npx --no-install tsc -p tsconfig.build.json)

mkdir -p "$results"
cd "$repo"
exec "$harness" --protocols dhcp --reps 3 \
  --servers kea,kea-mem,dnsmasq-dhcp,dnsmasq-dhcp-ro,bootfarm \
  --candidate "dhcp:bootfarm:bash $repo/bench/bootfarm-dhcp-candidate.sh {iface} {server_ip} {dir}" \
  --results "$results" \
  "$@"
