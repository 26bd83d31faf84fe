#!/usr/bin/env bash
# Profiles one TFTP server on one workload, outside run-anchors, for investigations.
#
#   sudo bench/tftp-profile.sh SERVER MODE BLKSIZE WINDOWSIZE [CLIENTS] [FILE]
#
# SERVER   bootfarm | tftpd-hpa | atftpd | dnsmasq-tftp (same command lines as run-anchors)
#          | floor (bench/tftp-floor.mjs, the minimal Node server; FLOOR_ARGS='--connect ...')
# MODE     plain    : just the transfer(s), with server CPU from /proc/PID/stat
#          cpu-prof : bootfarm or floor; node --cpu-prof, summarised by bench/cpuprofile-top.mjs
#          strace   : strace -c -f -p PID (syscall counts) during the transfer(s)
# CLIENTS  0 (default) = one `bench-tftp get` of FILE; N > 0 = one storm of N clients
# FILE     big64.bin (default; storms use storm32.bin) under /var/tmp/bench/tftproot
#
# Runs in a private network namespace `tfbp` (loopback only; created here, deleted
# on exit), server on 127.0.0.1:69. bootfarm runs from bench/.tftp-snapshot/dist
# (built by bench/run-tftp.sh; built here if missing). Output goes to stdout and to
# /tmp/tftp-profile/<server>-<mode>-bs<bs>-ws<ws>-c<clients>-<time>.*.
# Kills only the server PID it started.
set -euo pipefail

[ $# -ge 4 ] || { sed -n '2,19p' "$0"; exit 2; }
server=$1 mode=$2 bs=$3 ws=$4 clients=${5:-0}
file=${6:-}
[ "$(id -u)" -eq 0 ] || { echo "tftp-profile: needs root" >&2; exit 2; }
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
harness="$repo/../shared/bench"
root=/var/tmp/bench/tftproot
ns=tfbp
out=/tmp/tftp-profile
mkdir -p "$out"
tag="$out/$server-$mode-bs$bs-ws$ws-c$clients-$(date +%H%M%S)"
[ -n "$file" ] || { [ "$clients" -gt 0 ] && file=storm32.bin || file=big64.bin; }
[ -f "$root/$file" ] || { echo "tftp-profile: $root/$file missing (run bench/run-tftp.sh once)" >&2; exit 2; }

snapshot="${BOOTFARM_DIST:-$repo/bench/.tftp-snapshot/dist}"   # BOOTFARM_DIST=DIR: another build (A/B)
if [ "$server" = bootfarm ] && [ ! -f "$snapshot/server/cli/main.js" ]; then
  (cd "$repo" && npx --no-install tsc -p tsconfig.build.json --outDir "$snapshot")
  cp -r "$repo/templates" "$snapshot/templates"
fi

ip netns add "$ns"
spid=""
cleanup() {
  if [ -n "$spid" ] && kill -0 "$spid" 2>/dev/null; then
    kill -TERM "$spid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$spid" 2>/dev/null || true
  fi
  ip netns del "$ns" 2>/dev/null || true
}
trap cleanup EXIT
ip -n "$ns" link set lo up
ip -n "$ns" addr add 127.0.0.2/8 dev lo   # for tftpd-hpa's AI_ADDRCONFIG, as run-anchors does

run_dir="$out/run-$server"
rm -rf "$run_dir" "$run_dir-state"
mkdir -p "$run_dir"
flags=""
[ "$mode" = cpu-prof ] && flags="--cpu-prof --cpu-prof-dir=$tag.prof"
# SERVER_CPU / CLIENT_CPU (e.g. 0 and 1): pin server / client with taskset -c, to
# separate the same-CPU and cross-CPU cases of lock-step ping-pong.
spin=""; cpin=""
[ -n "${SERVER_CPU:-}" ] && spin="taskset -c $SERVER_CPU"
[ -n "${CLIENT_CPU:-}" ] && cpin="taskset -c $CLIENT_CPU"
case "$server" in
  bootfarm) BOOTFARM_DIST="$snapshot" BOOTFARM_NODE_FLAGS="$flags" \
              $spin ip netns exec "$ns" bash "$repo/bench/bootfarm-tftp-candidate.sh" 127.0.0.1 69 "$root" "$run_dir" \
              > "$tag.server.log" 2>&1 & spid=$! ;;
  tftpd-hpa) $spin ip netns exec "$ns" in.tftpd -L -a 127.0.0.1:69 -s -u nobody "$root" > "$tag.server.log" 2>&1 & spid=$! ;;
  atftpd) $spin ip netns exec "$ns" /opt/atftpd/usr/sbin/atftpd --daemon --no-fork --bind-address 127.0.0.1 --port 69 \
            --user nobody --group nogroup --maxthread 128 --logfile /dev/null "$root" > "$tag.server.log" 2>&1 & spid=$! ;;
  dnsmasq-tftp) $spin ip netns exec "$ns" dnsmasq -k -u root --port=0 --listen-address=127.0.0.1 --bind-interfaces --enable-tftp \
            --tftp-root="$root" --tftp-max=128 --quiet-tftp --edns-packet-max=65535 --log-facility=- -C /dev/null \
            > "$tag.server.log" 2>&1 & spid=$! ;;
  floor) $spin ip netns exec "$ns" node $flags "$repo/bench/tftp-floor.mjs" --root "$root" ${FLOOR_ARGS:-} \
            > "$tag.server.log" 2>&1 & spid=$! ;;
  *) echo "tftp-profile: unknown server $server" >&2; exit 2 ;;
esac
ok=""
for _ in $(seq 50); do
  if ip netns exec "$ns" "$harness/bench-tftp" get --file ready.txt --timeout 0.3 --deadline 2 >/dev/null 2>&1; then ok=1; break; fi
  sleep 0.2
done
[ -n "$ok" ] || { echo "tftp-profile: $server not ready; log:" >&2; cat "$tag.server.log" >&2; exit 1; }

# One unmeasured transfer first (WARMUP=0 to skip): bootfarm reads the file into its
# cache on first open and V8 compiles the hot path; the measured run is warm.
if [ "${WARMUP:-1}" = 1 ]; then
  ip netns exec "$ns" "$harness/bench-tftp" get --file "$file=$root/$file" --blksize "$bs" --windowsize "$ws" > /dev/null || true
fi
cpu() {  # utime+stime of PID and its threads + reaped children (cutime+cstime), in clock ticks
  awk '{print $14 + $15 + $16 + $17}' "/proc/$spid/stat"
}
sp=""
if [ "$mode" = strace ]; then
  strace -c -f -p "$spid" -o "$tag.strace" 2> /dev/null & sp=$!
  sleep 1
fi
c0=$(cpu)
us0=$(awk '{print $14 + $16, $15 + $17}' "/proc/$spid/stat")
flt0=$(awk '{print $10, $12}' "/proc/$spid/stat")
if [ "$clients" -gt 0 ]; then
  $cpin ip netns exec "$ns" "$harness/bench-tftp" --storm "$file=$root/$file" --clients "$clients" \
    --storm-blksizes "$bs" --storm-windowsizes "$ws" --server-pid "$spid" --json-out "$tag.json" 2>&1 | tail -3 | cut -c1-400
else
  $cpin ip netns exec "$ns" "$harness/bench-tftp" get --file "$file=$root/$file" --blksize "$bs" --windowsize "$ws" \
    | tee "$tag.json" | cut -c1-400
fi
c1=$(cpu)
us1=$(awk '{print $14 + $16, $15 + $17}' "/proc/$spid/stat")
flt1=$(awk '{print $10, $12}' "/proc/$spid/stat")
echo "tftp-profile: page faults during the run: $(( ${flt1% *} - ${flt0% *} )) minor, $(( ${flt1#* } - ${flt0#* } )) major"
echo "tftp-profile: user/system ticks during the run: $(( ${us1% *} - ${us0% *} )) user, $(( ${us1#* } - ${us0#* } )) system"
echo "tftp-profile: $server main process CPU during the run: $(( c1 - c0 )) ticks ($(getconf CLK_TCK)/s), threads and reaped children included"
if [ -n "$sp" ]; then
  kill -INT "$sp"; wait "$sp" 2>/dev/null || true
  head -30 "$tag.strace"
fi
if [ "$mode" = cpu-prof ]; then
  kill -TERM "$spid"; wait "$spid" 2>/dev/null || true
  spid=""
  prof=$(ls "$tag.prof"/*.cpuprofile | head -1)
  window=""
  [ "$clients" -gt 0 ] || window=$(python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).read().split(" ",1)[1]); print(d["t_start"], d["t_end"])' "$tag.json")
  node "$repo/bench/cpuprofile-top.mjs" "$prof" 25 $window | tee "$tag.top.txt"
fi
echo "tftp-profile: files $tag.*"
