#!/usr/bin/env bash
# Starts dockerd if none answers on /var/run/docker.sock, and waits for it.
# Idempotent: a running daemon (systemd's or one started earlier) is left alone.
# The daemon started here touches no host networking (--bridge=none,
# --iptables=false): image builds run their RUN steps with the host's network
# (bootfarm passes networkmode=host) and lab containers use --network none.
set -euo pipefail
SOCK=/var/run/docker.sock
LOG=${BOOTFARM_DOCKERD_LOG:-/var/log/bootfarm-dockerd.log}

answers() { curl -sf --unix-socket "$SOCK" http://localhost/_ping >/dev/null 2>&1; }

if answers; then
  echo "start-dockerd: dockerd already running"
  exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "start-dockerd: dockerd is not installed; install it with: apt-get install docker.io (or scripts/install-system-deps.sh image)" >&2
  exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "start-dockerd: dockerd must be started as root (sudo $0)" >&2
  exit 2
fi
# A stale socket or pid file from a daemon that died would make dockerd refuse to start.
if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
  rm -f /var/run/docker.pid
fi
echo "start-dockerd: starting dockerd (log: $LOG)"
setsid nohup dockerd --bridge=none --iptables=false --ip6tables=false >>"$LOG" 2>&1 </dev/null &
for _ in $(seq 1 120); do
  if answers; then
    echo "start-dockerd: dockerd ready"
    exit 0
  fi
  sleep 0.5
done
echo "start-dockerd: dockerd did not answer on $SOCK within 60 s; see $LOG" >&2
tail -n 20 "$LOG" >&2 || true
exit 1
