#!/usr/bin/env bash
# Sets up a fresh Debian machine and runs bootfarm with examples/bootfarm.yaml.
# The example serves 10.9.0.0/24 on bridge br0 as 10.9.0.1. If this host has no
# br0, the server runs in an isolated network namespace "bootfarm-lab" that holds
# a br0 with no uplink: attach VMs to it (taps in that namespace) to boot them,
# and nothing reaches your real network. Ctrl-C stops it and removes the namespace.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/run-example.sh: DHCP needs port 67 and a bridge; run as root (sudo)" >&2
  exit 2
fi
scripts/install-system-deps.sh runtime
[ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
node dist/server/cli/main.js config check examples/bootfarm.yaml
# iPXE for BIOS and UEFI x86-64, GRUB for arm64 UEFI, from Debian's packages, into tftp.root.
node dist/server/cli/main.js bootloaders --config examples/bootfarm.yaml

if ip link show br0 >/dev/null 2>&1; then
  exec node dist/server/cli/main.js serve --config examples/bootfarm.yaml
fi

ns=bootfarm-lab
created=0
if ! ip netns list | grep -qx "$ns\( .*\)\?"; then
  ip netns add "$ns"
  created=1
  ip -n "$ns" link set lo up
  ip -n "$ns" link add br0 type bridge stp_state 0 forward_delay 0
  ip -n "$ns" addr add 10.9.0.1/24 dev br0
  ip -n "$ns" link set br0 up
fi
cleanup() { [ "$created" = 1 ] && ip netns del "$ns" 2>/dev/null || true; }
trap cleanup EXIT
echo "bootfarm: serving on br0 (10.9.0.1/24) inside network namespace $ns; attach guests with:"
echo "  ip -n $ns tuntap add dev tap0 mode tap && ip -n $ns link set tap0 master br0 up"
echo "  ip netns exec $ns qemu-system-x86_64 -m 512 -boot n -netdev tap,id=n,ifname=tap0,script=no,downscript=no -device e1000,netdev=n"
ip netns exec "$ns" node dist/server/cli/main.js serve --config examples/bootfarm.yaml &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid; cleanup' INT TERM
wait $pid
