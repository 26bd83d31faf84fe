#!/usr/bin/env bash
# DHCPv4 benchmark of bootfarm beside Kea and dnsmasq, in ONE interleaved
# run-anchors invocation (rep 1: kea kea-mem dnsmasq-dhcp dnsmasq-dhcp-ro bootfarm,
# rep 2: ..., each phase on a freshly started server with an empty lease database).
# bootfarm runs twice: syncWrites true (default; fsync per batch of leases) and
# bootfarm-nosync (syncWrites false: Kea memfile's durability, which never fsyncs).
#
#   sudo bench/run-dhcp.sh                 # the full run (3 reps), ~7-10 min
#   sudo bench/run-dhcp.sh --quick --servers kea,bootfarm   # smoke test (1 rep, 500 clients)
#   sudo BOOTFARM_BASE=<commit> bench/run-dhcp.sh   # before/after: adds bootfarm-base and
#        bootfarm-base-nosync, <commit>'s code, interleaved in the same run
#
# Extra arguments are appended to run-anchors' (argparse: a later option wins).
# Layout: the shared harness is at ../shared/bench beside this repository.
# Needs root (network namespaces nbb-dsrv/nbb-dcli, created and deleted by
# run-anchors) and the Debian packages of `scripts/install-system-deps.sh bench`.
# Results: bench/results/anchors-<stamp>.{jsonl,json,md} (run-anchors) and
# bench/results/run-dhcp-<time>.log (this script's output, with the commit and
# build measured). See bench/RESULTS.md.
set -euo pipefail

# shellcheck source=lib/run.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/run.sh"
bench_run_start dhcp
echo "run-dhcp: $(package_versions kea-dhcp4-server dnsmasq-base kea-admin)"

servers=kea,kea-mem,dnsmasq-dhcp,dnsmasq-dhcp-ro,bootfarm,bootfarm-nosync
base_candidates=()
if [ -n "${BOOTFARM_BASE:-}" ]; then
  base_dist=$(bench_base_snapshot dhcp "$BOOTFARM_BASE")
  servers+=,bootfarm-base,bootfarm-base-nosync
  for mode in true false; do
    suffix=$([ "$mode" = true ] || echo -nosync)
    base_candidates+=(--candidate "dhcp:bootfarm-base$suffix:env BOOTFARM_DIST=$base_dist bash $repo/bench/bootfarm-dhcp-candidate.sh {iface} {server_ip} {dir} $mode")
  done
fi

cd "$repo"
set -x
"$harness" --protocols dhcp --reps 3 \
  --servers "$servers" \
  --candidate "dhcp:bootfarm:bash $repo/bench/bootfarm-dhcp-candidate.sh {iface} {server_ip} {dir} true" \
  --candidate "dhcp:bootfarm-nosync:bash $repo/bench/bootfarm-dhcp-candidate.sh {iface} {server_ip} {dir} false" \
  "${base_candidates[@]}" \
  --results "$results" \
  "$@"
