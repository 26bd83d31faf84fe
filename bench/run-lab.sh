#!/usr/bin/env bash
# Boot-time benchmark of the emulation lab: bootfarm (`bootfarm lab run`) beside the
# stock-server reference (../shared/e2e-reference: dnsmasq + nbd-server + a python
# HTTP server), amd64 SeaBIOS+iPXE guests under QEMU, in ONE interleaved run:
#
#   rep r:  reference amd64 x1  ->  bootfarm amd64-bios x1  ->  reference amd64 x3 at once
#           ->  bootfarm amd64-bios*3        (+ the same with the servers in Docker, --docker)
#
#   sudo bench/run-lab.sh                 # 3 reps, ~25-35 min on this 2-core machine
#   sudo bench/run-lab.sh --quick         # 1 rep
#   sudo bench/run-lab.sh --reps 5 --docker
#
# Options: --reps N (3) | --quick (= --reps 1) | --docker (also both servers in their
# containers) | --images-dir DIR (/var/tmp/lab-images) | --image NAME (lab) |
# --timeout S (600, per node) | --raw DIR (raw data; default /var/tmp/bench-lab/<stamp>).
#
# Prepared once, before the reps: a private build snapshot of bootfarm
# (bench/.lab-snapshot/dist, git-ignored, so dist/ or server/ may change during the
# run; the docker variant builds its server image from the checkout's dist/); the
# lab image (built with `image build --plain` if missing); the reference's amd64
# kernel/initrd/squashfs under $E2E_OUT (/var/tmp/e2e-ref; its build-rootfs.sh if
# missing) and, for --docker, its server image (its docker/build-images.sh).
#
# Each case runs with a sampler (bench/lab-summary.py sample) that follows the
# server's processes -- bootfarm's `serve` process / the reference's dnsmasq,
# nbd-server (and its per-client children) and e2e-httpd.py; in docker mode every
# process in the container's network namespace -- reading /proc/<pid>/stat every
# 0.5 s, and the bytes its eth0 sent (/proc/<pid>/net/dev), plus the machine's
# load. End points (see bench/RESULTS.md "Boot time (emulation lab)"): reference =
# QEMU start -> NETBOOT-E2E-OK on the serial console (its tsrun.py), bootfarm =
# power-on (just before QEMU is spawned) -> the "joined" event (the node agent's
# report after the kubeadm stand-in succeeded), from `lab run --json`.
#
# Results: raw data under --raw (reference run dirs are under $E2E_OUT/runs too);
# bench/results/lab-<stamp>.json and .md (bench/lab-summary.py) and
# bench/results/lab-<stamp>.log (this script's output).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ref=${E2E_REF_DIR:-$repo/../shared/e2e-reference}
export E2E_OUT=${E2E_OUT:-/var/tmp/e2e-ref}
reps=3 docker=0 images_dir=/var/tmp/lab-images image=lab timeout=600 raw=""
while [ $# -gt 0 ]; do
  case $1 in
  --reps) reps=$2; shift 2 ;;
  --quick) reps=1; shift ;;
  --docker) docker=1; shift ;;
  --images-dir) images_dir=$2; shift 2 ;;
  --image) image=$2; shift 2 ;;
  --timeout) timeout=$2; shift 2 ;;
  --raw) raw=$2; shift 2 ;;
  -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
  *) echo "run-lab: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "run-lab: needs root (network namespaces, taps)" >&2; exit 2; }
[ -x "$ref/run-e2e.sh" ] || { echo "run-lab: the reference is not at $ref (set E2E_REF_DIR)" >&2; exit 2; }
for tool in qemu-system-x86_64 dnsmasq nbd-server tcpdump python3 node; do
  command -v "$tool" >/dev/null || { echo "run-lab: $tool missing" >&2; exit 2; }
done

stamp=$(date +%Y%m%d-%H%M%S)
raw=$(realpath -m "${raw:-/var/tmp/bench-lab/$stamp}")
results=$repo/bench/results
mkdir -p "$raw" "$results"
exec > >(tee "$results/lab-$stamp.log") 2>&1
echo "run-lab: $stamp, reps $reps, docker $docker, raw data $raw"
echo "run-lab: bootfarm $(git -C "$repo" rev-parse HEAD) (uncommitted changes under server/: $(git -C "$repo" status --porcelain -- server | wc -l))"
echo "run-lab: node $(node --version), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "run-lab: $(qemu-system-x86_64 --version | head -1); dnsmasq $(dpkg-query -W -f='${Version}' dnsmasq-base 2>/dev/null || echo '?'); nbd-server $(dpkg-query -W -f='${Version}' nbd-server 2>/dev/null || echo '?')"

# ---- preparation (once) --------------------------------------------------------
snapshot=$repo/bench/.lab-snapshot/dist
rm -rf "$snapshot"
(cd "$repo" && npx --no-install tsc -p tsconfig.build.json --outDir "$snapshot")
cp -r "$repo/templates" "$snapshot/templates"
echo "run-lab: build snapshot $snapshot, sha256 of its .js: $(cd "$snapshot" && find . -name '*.js' -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-16)"
bf_host=(node "$snapshot/server/cli/main.js")
if [ "$docker" = 1 ]; then
  # The server image is built from the checkout (its Dockerfile and dist/).
  [ -f "$repo/dist/server/lab/lab.js" ] || (cd "$repo" && npm run build)
  bf_docker=(node "$repo/dist/server/cli/main.js")
fi
if [ ! -f "$images_dir/$image/current/amd64/root.squashfs" ]; then
  echo "run-lab: building the lab image $image (amd64) under $images_dir"
  "${bf_host[@]}" image build --name "$image" --arch amd64 --images-dir "$images_dir" --plain
fi
echo "run-lab: bootfarm image $image = $(readlink "$images_dir/$image/current" 2>/dev/null || echo '?'): $(cd "$images_dir/$image/current/amd64" && stat -c '%n %s' vmlinuz initrd.img root.squashfs | tr '\n' ' ')"
if [ ! -f "$E2E_OUT/srv/nbd/rootfs-amd64.squashfs" ] || [ ! -f "$E2E_OUT/srv/http/amd64/vmlinuz" ]; then
  echo "run-lab: building the reference amd64 root (its build-rootfs.sh, ~2.5 min)"
  "$ref/build-rootfs.sh" amd64
fi
echo "run-lab: reference $E2E_OUT/srv: $(cd "$E2E_OUT/srv" && stat -c '%n %s' http/amd64/vmlinuz http/amd64/initrd.img nbd/rootfs-amd64.squashfs | tr '\n' ' ')"
if [ "$docker" = 1 ] && ! docker image inspect local/e2e-server:latest >/dev/null 2>&1; then
  echo "run-lab: building the reference's docker images (its docker/build-images.sh)"
  "$ref/docker/build-images.sh"
fi

# ---- one case ------------------------------------------------------------------
sampler_pid=""
start_sampler() { # mode anchor out
  python3 "$repo/bench/lab-summary.py" sample --mode "$1" --anchor "$2" --out "$3" &
  sampler_pid=$!
}
stop_sampler() {
  [ -n "$sampler_pid" ] || return 0
  kill -TERM "$sampler_pid" 2>/dev/null || true
  wait "$sampler_pid" 2>/dev/null || true
  sampler_pid=""
}
trap 'stop_sampler' EXIT

run_ref() { # rep n mode(host|docker)
  local rep=$1 n=$2 mode=$3 dir="$raw/r$1-ref-$3-$2x" rc=0
  mkdir -p "$dir"
  if ip netns list | grep -qw e2eref-net; then echo "run-lab: netns e2eref-net exists already (another reference run?): skipped" >&2; return 1; fi
  cut -d' ' -f1-3 /proc/loadavg > "$dir/loadavg-start"
  if [ "$mode" = host ]; then start_sampler ref-host e2eref-srv "$dir/server-cpu.json"
  else start_sampler docker-name e2eref-server "$dir/server-cpu.json"; fi
  local t0=$SECONDS
  "$ref/run-e2e.sh" -a amd64 -n "$n" -s "$mode" -t "$timeout" > "$dir/run-e2e.log" 2>&1 || rc=$?
  stop_sampler
  cut -d' ' -f1-3 /proc/loadavg > "$dir/loadavg-end"
  local run; run=$(readlink -f "$E2E_OUT/runs/latest")
  echo "$run" > "$dir/run-dir"
  cp "$run/timings.json" "$run/meta.json" "$dir/" 2>/dev/null || true
  cp "$run/server/dnsmasq.conf" "$dir/" 2>/dev/null || true
  echo "run-lab: rep $rep reference $mode x$n: exit $rc in $((SECONDS - t0)) s, markers: $(grep -h -o 'tsrun: .*' "$dir/run-e2e.log" | tr '\n' ';')"
}

run_bf() { # rep n mode(host|docker)
  local rep=$1 n=$2 mode=$3 dir="$raw/r$1-bf-$3-$2x" rc=0 nodes=amd64-bios cli
  [ "$n" -gt 1 ] && nodes="amd64-bios*$n"
  mkdir -p "$dir"
  cut -d' ' -f1-3 /proc/loadavg > "$dir/loadavg-start"
  if [ "$mode" = host ]; then cli=("${bf_host[@]}"); start_sampler bf-host "$dir/work/bootfarm.yaml" "$dir/server-cpu.json"
  else cli=("${bf_docker[@]}"); start_sampler docker-mount "$dir/work" "$dir/server-cpu.json"; fi
  local t0=$SECONDS
  "${cli[@]}" lab run --server "$mode" --nodes "$nodes" --json --images-dir "$images_dir" --image "$image" \
    --timeout "$timeout" --work-dir "$dir/work" > "$dir/lab.json" 2> "$dir/lab.log" || rc=$?
  stop_sampler
  cut -d' ' -f1-3 /proc/loadavg > "$dir/loadavg-end"
  echo "run-lab: rep $rep bootfarm $mode x$n: exit $rc in $((SECONDS - t0)) s, $(grep -h -E 'joined$|FAILED' "$dir/lab.log" | sed 's/^lab: //' | tr '\n' ';')"
}

# ---- interleaved reps ----------------------------------------------------------
modes=(host)
[ "$docker" = 1 ] && modes+=(docker)
for rep in $(seq 1 "$reps"); do
  for mode in "${modes[@]}"; do
    run_ref "$rep" 1 "$mode" || true
    run_bf "$rep" 1 "$mode" || true
    run_ref "$rep" 3 "$mode" || true
    run_bf "$rep" 3 "$mode" || true
  done
done

# Only this run's labs (their ids are in the lab logs) and the reference's fixed names.
mine=$( { echo 'e2eref-'; grep -ho 'lab network bflab[0-9a-f]*' "$raw"/*/lab.log 2>/dev/null | awk '{print $3}'; } | paste -sd'|')
echo "run-lab: left behind by this run: netns [$(ip netns list | grep -E "^($mine)" | tr '\n' ' ')] containers [$(docker ps -a --format '{{.Names}}' 2>/dev/null | grep -E "^(e2eref-server|${mine#e2eref-|})" | tr '\n' ' ')]"
echo "run-lab: load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
python3 "$repo/bench/lab-summary.py" summarize "$raw" --json "$results/lab-$stamp.json" --md "$results/lab-$stamp.md"
