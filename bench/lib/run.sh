# Shared start of the bench/run-*.sh scripts (sourced, not run).
#
# bench_run_start NAME: checks for the shared harness (../shared/bench beside the
# repository) and root, sends this script's output to bench/results/run-NAME-<time>.log
# too, and compiles a private build snapshot, bench/.NAME-snapshot/dist (git-ignored,
# inside the repository so node finds node_modules/), exported as BOOTFARM_DIST: every
# start of the candidate runs that one build, even if server/ or dist/ change while the
# run goes on, and each run script only ever deletes its own snapshot. tsc does not copy
# templates/, which `serve` compiles at start (server/config/templates.ts), so they are
# copied in. Sets repo, harness and results, and prints the commit and build measured.
bench_run_start() {
  local name=$1 snapshot
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  harness="$repo/../shared/bench/run-anchors"
  results="$repo/bench/results"
  [ -x "$harness" ] || { echo "run-$name: $harness not found (shared/ must sit beside the repo)" >&2; exit 2; }
  [ "$(id -u)" -eq 0 ] || { echo "run-$name: needs root (network namespaces)" >&2; exit 2; }
  mkdir -p "$results"
  exec > >(tee "$results/run-$name-$(date +%Y%m%d-%H%M%S).log") 2>&1
  snapshot="$repo/bench/.$name-snapshot/dist"
  rm -rf "$snapshot"
  (cd "$repo" && npx --no-install tsc -p tsconfig.build.json --outDir "$snapshot")
  cp -r "$repo/templates" "$snapshot/templates"
  # `serve` reads its version from the package.json beside dist/ (server/cli/package-info.ts).
  cp "$repo/package.json" "$snapshot/../package.json"
  export BOOTFARM_DIST="$snapshot"
  echo "run-$name: bootfarm $(git -C "$repo" rev-parse HEAD) (uncommitted changes under server/: $(git -C "$repo" status --porcelain -- server | wc -l))"
  echo "run-$name: build snapshot $snapshot, sha256 of its .js: $(cd "$snapshot" && find . -name '*.js' -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-16)"
  echo "run-$name: node $(node --version), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
}

# package_versions PKG...: "pkg version, ..." for the run header.
package_versions() {
  local p out=""
  for p in "$@"; do out+="$p $(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || echo '?'), "; done
  printf '%s\n' "${out%, }"
}

# bench_base_snapshot NAME COMMIT: compiles COMMIT's server/ (from `git archive`, so the
# working tree is not touched) into bench/.NAME-base-snapshot/dist, with its templates/
# and package.json, and prints that dist directory. With it a run measures the code
# before and after a change side by side, interleaved in one run-anchors invocation.
# The sources sit under bench/ so that tsc and node find the repository's node_modules/.
bench_base_snapshot() {
  local name=$1 commit=$2 base
  base="$repo/bench/.$name-base-snapshot"
  rm -rf "$base"
  mkdir -p "$base/src"
  git -C "$repo" archive "$commit" server templates package.json tsconfig.json tsconfig.build.json | tar -x -C "$base/src"
  (cd "$base/src" && npx --no-install tsc -p tsconfig.build.json --outDir "$base/dist") >&2
  cp -r "$base/src/templates" "$base/dist/templates"
  cp "$base/src/package.json" "$base/package.json"
  echo "run-$name: base $(git -C "$repo" rev-parse "$commit") built into $base/dist, sha256 of its .js: $(cd "$base/dist" && find . -name '*.js' -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-16)" >&2
  printf '%s\n' "$base/dist"
}
