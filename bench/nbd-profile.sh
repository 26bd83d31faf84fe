#!/usr/bin/env bash
# Profiles one NBD server on one bench-nbd workload, outside run-anchors, for
# investigations (never during a run-anchors run: it would disturb it).
#
#   sudo bench/nbd-profile.sh SERVER MODE TEST [CLIENTS] [CLIENT_BYTES]
#
# SERVER  bootfarm | nbd-server | nbdkit | qemu-nbd (the same command lines as run-anchors)
# MODE    plain    : just the test, with server CPU (utime/stime of the PID and its
#                    children, from /proc) and its threads
#         cpu-prof : bootfarm only; node --cpu-prof, summarised by bench/cpuprofile-top.mjs
#         strace   : strace -c -f -p PID (syscall counts and time) during the test
# TEST    multi (20 python clients x 128 MiB, 256 KiB QD1; CLIENTS, CLIENT_BYTES),
#         seq (fio 1 MiB QD1 + nbdcopy), nbdcopy (nbdcopy alone), rand (4 KiB QD1, QD16)
#
# The server listens on 127.0.0.1:20809 in the host's namespace (loopback only; port
# 20809, not 10809, so it never meets a run-anchors server in netns nbb-lo), export
# `disk` = /var/tmp/bench/nbd/disk1g.img (made by run-anchors; 1 GiB, page cache).
# bootfarm runs from bench/.nbd-snapshot/dist (built by bench/run-nbd.sh; built
# here if missing). Output: stdout and /tmp/nbd-profile/<server>-<mode>-<test>-<time>.*
# Stops only the server PID it started.
set -euo pipefail

[ $# -ge 3 ] || { sed -n '2,21p' "$0"; exit 2; }
server=$1 mode=$2 test=$3 clients=${4:-20} client_bytes=${5:-128M}
[ "$(id -u)" -eq 0 ] || { echo "nbd-profile: needs root (strace, nbd-server user=root)" >&2; exit 2; }
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
harness="$repo/../shared/bench"
image=/var/tmp/bench/nbd/disk1g.img
port=20809
out=/tmp/nbd-profile
mkdir -p "$out"
tag="$out/$server-$mode-$test-$(date +%H%M%S)"
[ -f "$image" ] || { echo "nbd-profile: $image missing (run bench/run-nbd.sh once)" >&2; exit 2; }
cat "$image" > /dev/null   # page cache, as run-anchors does

snapshot="$repo/bench/.nbd-snapshot/dist"
if [ "$server" = bootfarm ] && [ ! -f "$snapshot/server/cli/main.js" ]; then
  (cd "$repo" && npx --no-install tsc -p tsconfig.build.json --outDir "$snapshot")
  cp -r "$repo/templates" "$snapshot/templates"
fi

run_dir="$out/run-$server"
rm -rf "$run_dir"
mkdir -p "$run_dir"
spid=""
cleanup() {
  if [ -n "$spid" ] && kill -0 "$spid" 2>/dev/null; then
    kill -TERM "$spid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$spid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

flags=""
[ "$mode" = cpu-prof ] && flags="--cpu-prof --cpu-prof-dir=$tag.prof"
case "$server" in
  bootfarm)
    BOOTFARM_DIST="$snapshot" BOOTFARM_NODE_FLAGS="$flags" \
      bash "$repo/bench/bootfarm-nbd-candidate.sh" 127.0.0.1 $port disk "$image" "$run_dir/bootfarm" \
      > "$tag.server.log" 2>&1 &
    spid=$! ;;
  nbdkit)
    nbdkit -f -r -i 127.0.0.1 -p $port -e disk file "$image" > "$tag.server.log" 2>&1 &
    spid=$! ;;
  qemu-nbd)
    qemu-nbd -r -t -b 127.0.0.1 -p $port -x disk -f raw --shared=0 --cache=writeback --aio=threads "$image" \
      > "$tag.server.log" 2>&1 &
    spid=$! ;;
  nbd-server)
    printf '[generic]\n    port = %s\n    listenaddr = 127.0.0.1\n    user = root\n    group = root\n[disk]\n    exportname = %s\n    readonly = true\n' \
      $port "$image" > "$run_dir/nbd.conf"
    nbd-server -C "$run_dir/nbd.conf" -p "$run_dir/nbd-server.pid" > "$tag.server.log" 2>&1
    for _ in $(seq 50); do [ -s "$run_dir/nbd-server.pid" ] && break; sleep 0.1; done
    spid=$(cat "$run_dir/nbd-server.pid") ;;
  *) echo "nbd-profile: unknown server $server" >&2; exit 2 ;;
esac
for _ in $(seq 100); do
  python3 -c "import socket;socket.create_connection(('127.0.0.1',$port),1).close()" 2>/dev/null && break
  sleep 0.1
done
[ "$mode" = cpu-prof ] && [ "$server" != bootfarm ] && { echo "nbd-profile: cpu-prof is for bootfarm" >&2; exit 2; }

# CPU ticks of the server and all its descendants (fork-per-client servers).
tree_ticks() {
  local total=0 p
  # processes only (pstree -p would also list threads, whose /proc/TID/stat is the
  # whole process's)
  for p in $(ps -e -o pid=,ppid= | awk -v root="$spid" '
      { kids[$2] = kids[$2] " " $1 }
      END { n = split(root, q, " "); while (n > 0) { p = q[n--]; print p; m = split(kids[p], c, " "); for (i = 1; i <= m; i++) q[++n] = c[i] } }'); do
    [ -r "/proc/$p/stat" ] || continue
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}

uri="nbd://127.0.0.1:$port/disk"
run_test() {
  case "$test" in
    multi|seq|rand)
      "$harness/bench-nbd" --host 127.0.0.1 --port $port --export disk --ref "$image" --tests "$test" --reps 1 \
        --runtime 8 --clients "$clients" --client-bytes "$client_bytes" --server-pid "$spid" --label "$server" \
        > "$tag.bench.out" 2> "$tag.bench.err" || true
      grep -E '^(multi|seq|rand):' "$tag.bench.err" | cut -c1-400 || tail -5 "$tag.bench.err" ;;
    nbdcopy)
      local t0 t1
      t0=$(date +%s.%N); nbdcopy "$uri" null: ; t1=$(date +%s.%N)
      python3 -c "print('nbdcopy: %.0f MiB/s' % (1024/($t1-$t0)))" ;;
    *) echo "nbd-profile: unknown test $test" >&2; exit 2 ;;
  esac
}

s0=$(tree_ticks)
w0=$(date +%s.%N)
if [ "$mode" = strace ]; then
  strace -c -f -p "$spid" -o "$tag.strace" &
  stpid=$!
  sleep 0.5
  run_test
  kill -INT "$stpid"; wait "$stpid" || true
  sort -k2 -n -r "$tag.strace" | head -20 > "$tag.strace.top" || true
  head -22 "$tag.strace"
else
  run_test
fi
w1=$(date +%s.%N)
s1=$(tree_ticks)
hz=$(getconf CLK_TCK)
echo "server $server pid $spid: cpu $(python3 -c "print('%.2f s' % (($s1-$s0)/$hz))") over $(python3 -c "print('%.2f s wall' % ($w1-$w0))"), threads $(ls /proc/$spid/task | wc -l), VmHWM $(grep VmHWM /proc/$spid/status | awk '{print $2, $3}')"
if [ "$mode" = cpu-prof ]; then
  cleanup; spid=""
  sleep 1
  prof=$(ls -t "$tag.prof"/*.cpuprofile 2>/dev/null | head -1)
  [ -n "$prof" ] && node "$repo/bench/cpuprofile-top.mjs" "$prof" 30 | tee "$tag.top"
fi
echo "nbd-profile: output in $tag.*"
