#!/usr/bin/env bash
# Sets up a fresh Debian machine and runs bootfarm with examples/bootfarm.yaml.
# WARNING: the example is a full DHCP SERVER (dhcp.mode: full) for the segment on
# br0: every machine there that asks gets an address from it. On a LAN that has a
# DHCP server already, use proxy mode instead (docs/operating.md).
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
  echo "bootfarm: WARNING: this host's br0 exists, so bootfarm becomes THE DHCP SERVER (10.9.0.100-200) for every" >&2
  echo "bootfarm: machine on it. If br0 is bridged to a LAN with its own DHCP server, stop now (Ctrl-C) and use" >&2
  echo "bootfarm: dhcp.mode: proxy (docs/operating.md)." >&2
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
