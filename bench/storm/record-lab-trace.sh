#!/usr/bin/env bash
# Records the NBD reads of one lab node's first boot, for bench/storm/clients.ts
# --trace: runs `bootfarm lab run --nodes amd64-bios` (under the shared QEMU lock),
# captures what the node sends to TCP port 10809 on the lab bridge with tcpdump, and
# writes one line per NBD_CMD_READ it sent, in order: "<offset> <length>"
# (bench/storm/pcap-nbd-reads.ts). If the boot fails, the reads up to the failure are
# still written, and the script exits 1.
#
#   sudo bench/storm/record-lab-trace.sh OUT.trace [WORK_DIR]
#
# Needs root, tcpdump, the lab image cache and a built dist/.
set -euo pipefail
out=${1:?usage: $0 OUT.trace [WORK_DIR]}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=${2:-/var/tmp/bootfarm-trace-$$}
rm -rf "$work"
mkdir -p "$work"
pcap="$work/nbd.pcap"
log="$work/lab.out"
flock /tmp/bootfarm-qemu.lock node "$repo/dist/server/cli/main.js" lab run --nodes amd64-bios \
  --images-dir /var/tmp/bootfarm-lab-images --work-dir "$work/lab" >"$log" 2>&1 &
lab=$!
ns=""
for _ in $(seq 600); do
  ns=$(sed -n 's/.*lab network \([^ ]*\) (bridge br0.*/\1/p' "$log" | head -1)
  [ -n "$ns" ] && break
  kill -0 "$lab" 2>/dev/null || break
  sleep 0.5
done
[ -n "$ns" ] || { cat "$log"; echo "record-lab-trace: the lab never named its network" >&2; exit 1; }
ip netns exec "$ns" tcpdump -i br0 -s 0 -w "$pcap" tcp dst port 10809 2>"$work/tcpdump.err" &
dump=$!
rc=0
wait "$lab" || rc=$?
kill "$dump" 2>/dev/null || true
wait "$dump" 2>/dev/null || true
grep -v '^ *|' "$log" | tail -8
node --import tsx "$repo/bench/storm/pcap-nbd-reads.ts" "$pcap" >"$out"
echo "record-lab-trace: $(wc -l <"$out") reads, $(awk '{s+=$2} END {print s/1048576}' "$out") MiB, in $out"
[ "$rc" -eq 0 ] || { echo "record-lab-trace: lab run failed ($rc), the trace stops where the boot did; kept $work" >&2; exit 1; }
rm -rf "$work"
