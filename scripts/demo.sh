#!/usr/bin/env bash
# The main job on a fresh Debian machine: set everything up, then boot emulated
# boards from power-on to "joined" against bootfarm running in its container.
#   1. Debian packages (QEMU and firmware, docker.io, debootstrap, qemu-user...),
#      npm packages, the build; dockerd started if none runs.
#   2. The lab image for amd64 and arm64 (bootfarm image build; a cache hit when
#      nothing changed) and bootfarm's server image (bootfarm server-image).
#   3. bootfarm lab run: an amd64 SeaBIOS board, an arm64 UEFI board and a scripted
#      Raspberry Pi 4 on a private bridge (no uplink), each followed to joined; a
#      per-node timeline and summary; everything torn down. Exit 1 if a node failed.
# Extra arguments go to `bootfarm lab run` (e.g. --nodes amd64-bios,amd64-uefi --server host).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/demo.sh: the lab creates network namespaces, a bridge and taps; run as root (sudo)" >&2
  exit 2
fi
scripts/install-system-deps.sh runtime test image
[ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
bash scripts/start-dockerd.sh
images=${BOOTFARM_LAB_IMAGES:-/var/tmp/bootfarm-lab-images}
node dist/server/cli/main.js image build --name lab --arch amd64,arm64 --images-dir "$images" --plain
exec node dist/server/cli/main.js lab run --server docker --nodes amd64-bios,arm64-uefi,pi4 --images-dir "$images" --image lab "$@"
