# Shared steps of the bench/bootfarm-*-candidate.sh wrappers (sourced, not run).

# bootfarm_main_js LABEL: prints the built CLI to exec. BOOTFARM_DIST (set by the
# run-*.sh scripts) names a private build snapshot compiled once per run, so every
# phase measures the same code; otherwise the repository's dist/ is used, rebuilt
# when missing or older than any server/**/*.ts. Exits 2 when the boot templates
# cannot be found: `serve` compiles them at start, from <outDir>/templates or the
# repository's templates/ one level higher (server/config/templates.ts); tsc does not
# copy them, so the run scripts copy them into their snapshot.
bootfarm_main_js() {
  local label=$1 repo main_js out_dir
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  main_js="$repo/dist/server/cli/main.js"
  if [ -n "${BOOTFARM_DIST:-}" ]; then
    main_js="$BOOTFARM_DIST/server/cli/main.js"
    [ -f "$main_js" ] || { echo "$label: $main_js missing" >&2; exit 2; }
  elif [ ! -f "$main_js" ] || [ -n "$(find "$repo/server" -name '*.ts' -newer "$main_js" -print -quit)" ]; then
    echo "$label: building dist/ (missing or stale)" >&2
    (cd "$repo" && npx --no-install tsc -p tsconfig.build.json) >&2
  fi
  out_dir="$(dirname "$main_js")/../.."
  [ -f "$out_dir/templates/ipxe.hbs" ] || [ -f "$out_dir/../templates/ipxe.hbs" ] ||
    { echo "$label: no templates/ipxe.hbs in $out_dir or its parent (copy $repo/templates to $out_dir/templates)" >&2; exit 2; }
  printf '%s\n' "$main_js"
}

# fresh_dirs DIR SUB...: makes each DIR/SUB a symlink to a new, empty DIR-SUB.
# run-anchors empties DIR before every start with os.unlink() on each entry, which
# fails on a sub-directory and would abort every start after the first; a symlink
# unlinks fine, and each phase starts from empty state, as the anchors do.
fresh_dirs() {
  local dir=$1 sub real
  shift
  mkdir -p "$dir"
  for sub in "$@"; do
    real="$dir-$sub"
    rm -rf -- "$real"
    mkdir -p "$real"
    rm -rf -- "${dir:?}/$sub"
    ln -s "$real" "$dir/$sub"
  done
}
