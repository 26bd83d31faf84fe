#!/usr/bin/env bash
# Sets up a fresh Debian machine for bootfarm's tests and runs all of them:
# system packages (real DHCP clients, dnsmasq, QEMU firmware...), npm packages,
# the type check, then every test. Needs root: tests create network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/test.sh: the tests create network namespaces and bind port 67; run as root (sudo)" >&2
  exit 2
fi
scripts/install-system-deps.sh runtime test
npm ci --no-audit --no-fund --loglevel=error
# What a contributor runs without root (typecheck, lint with the import-cycle rule,
# unused exports, formatting, the unit tier): a failure here stops the run early.
npm run --silent check
# Mutation testing of the decisions (docs/testing.md): incremental from the
# committed reports/stryker-incremental.json, so only mutants whose code or tests
# changed since are re-run (about 2 min when none did); exits 1 under the break
# threshold of stryker.config.json.
npm run --silent test:mutation
# The built CLI is what users run: build it, and a test runs it.
npm run --silent build

report=$(mktemp)
status=0
scripts/install-system-deps.sh image && bash scripts/start-dockerd.sh  # image builder tests: docker, debootstrap, qemu-user
npx vitest run --reporter=default --reporter=json --outputFile="$report" || status=$?
# One plain closing line that any CI can read.
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  // A suite that failed before its tests ran (a hook) counts as failed too.
  const failed = r.numFailedTests || (r.success ? 0 : Math.max(1, r.numFailedTestSuites));
  console.log(`tests: ${r.numPassedTests} passed, ${failed} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' "$report" || true
rm -f "$report"
exit "$status"
