#!/usr/bin/env bash
# Builds an EXPERIMENTAL copy of the NBD snapshot in which the export's read path can
# be switched by the environment variable NBD_READ, for benchmarking alternatives to
# the current code without touching server/ (see bench/RESULTS.md, section NBD):
#
#   NBD_READ unset   the snapshot's own code (FileHandle.read, a promise per pread,
#                    through libuv's thread pool)
#   NBD_READ=fsread  fs.read with a callback (still the thread pool, no FileHandle
#                    promise machinery)
#   NBD_READ=sync    fs.readSync on the event loop (no thread-pool hand-off; blocks the
#                    event loop for the duration of each pread: fine from the page
#                    cache, not from a cold disk)
#
#   bench/nbd-read-variants.sh [SNAPSHOT]   # default bench/.nbd-snapshot/dist (run-nbd.sh builds it)
#   sudo bench/run-nbd.sh \
#     --candidate "nbd:bootfarm-fsread:env BOOTFARM_DIST=$PWD/bench/.nbd-exp/dist NBD_READ=fsread bash $PWD/bench/bootfarm-nbd-candidate.sh {addr} {port} {export} {image} {dir}" \
#     --candidate "nbd:bootfarm-syncread:env BOOTFARM_DIST=$PWD/bench/.nbd-exp/dist NBD_READ=sync bash $PWD/bench/bootfarm-nbd-candidate.sh {addr} {port} {export} {image} {dir}"
#   (from the repository root: run-anchors starts candidates elsewhere, so the paths are absolute)
#
# (run-nbd.sh rebuilds its snapshot from the same HEAD first, so the patched copy and
# the `bootfarm` candidate are the same build but for the read function; the log's
# sha256 and this script's must come from the same commit.)
# It patches the compiled server/nbd/catalog.js by text and fails if the pattern
# (07edaa3's `read: async (offset, length) => { const buf = acquire(length);`) is gone.
# Output: bench/.nbd-exp/dist (git-ignored: dist/).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src=${1:-$repo/bench/.nbd-snapshot/dist}
[ -f "$src/server/nbd/catalog.js" ] || { echo "nbd-read-variants: $src/server/nbd/catalog.js missing (run bench/run-nbd.sh once)" >&2; exit 2; }
rm -rf "$repo/bench/.nbd-exp"
mkdir -p "$repo/bench/.nbd-exp"
cp -r "$src" "$repo/bench/.nbd-exp/dist"
python3 - "$repo/bench/.nbd-exp/dist/server/nbd/catalog.js" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
s = s.replace("import path from 'node:path';",
              "import path from 'node:path';\nimport * as fsc from 'node:fs';\nconst NBD_READ = process.env.NBD_READ ?? '';", 1)
old = """            read: async (offset, length) => {
                const buf = acquire(length);"""
new = """            read: NBD_READ === 'sync' ? (offset, length) => {
                const buf = acquire(length);
                let done = 0;
                while (done < length) {
                    const n = fsc.readSync(handle.fd, buf, done, length - done, offset + done);
                    if (n === 0) return Promise.reject(new Error(`${file} ended early at ${offset + done}`));
                    done += n;
                }
                return Promise.resolve(buf);
            } : NBD_READ === 'fsread' ? (offset, length) => new Promise((resolve, reject) => {
                const buf = acquire(length);
                let done = 0;
                const step = () => fsc.read(handle.fd, buf, done, length - done, offset + done, (err, n) => {
                    if (err) return reject(err);
                    if (n === 0) return reject(new Error(`${file} ended early at ${offset + done}`));
                    done += n;
                    if (done < length) step(); else resolve(buf);
                });
                step();
            }) : async (offset, length) => {
                const buf = acquire(length);"""
if s.count(old) != 1:
    sys.exit("nbd-read-variants: the read function of catalog.js changed; update this script")
open(p, "w").write(s.replace(old, new))
PY
node --check "$repo/bench/.nbd-exp/dist/server/nbd/catalog.js"
echo "nbd-read-variants: bench/.nbd-exp/dist from $src (sha256 of the snapshot's .js: $(cd "$src" && find . -name '*.js' -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-16))"
