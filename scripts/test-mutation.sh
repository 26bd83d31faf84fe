#!/usr/bin/env bash
# npm run test:mutation: StrykerJS over the unit tier (stryker.config.json),
# incremental from the committed reports/stryker-incremental.json; exits 1 when
# the score is under thresholds.break. Afterwards the incremental file loses the
# machine paths Stryker records (the sandbox in error texts, the project root),
# so that it can be committed as it is. Arguments go to `stryker run`.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
npx stryker run "$@" || status=$?
file=reports/stryker-incremental.json
if [ -f "$file" ]; then
  node -e '
    const fs = require("fs");
    const [file, root] = process.argv.slice(1);
    const escaped = root.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const text = fs.readFileSync(file, "utf8")
      .replace(new RegExp(escaped + "/\\.stryker-tmp[^/]*/sandbox-[A-Za-z0-9_-]+", "g"), "<stryker-sandbox>")
      .replaceAll(JSON.stringify(root).slice(1, -1), "<repo>");
    fs.writeFileSync(file, text);
  ' "$file" "$PWD" || status=1
fi
exit "$status"
