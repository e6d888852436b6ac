#!/usr/bin/env bash
# Builds the JavaScript handlers (plugins/js-hello, plugins/circleci) into
# components with ComponentizeJS, pinned by plugins/js/package-lock.json:
#   plugins/target/components/js-hello.wasm, plugins/target/components/circleci.wasm
# Needs Node >= 20 and npm. Runs `npm ci` only when node_modules is missing
# or older than the lock file, then the plugins' unit tests, then the build.
# Usage: scripts/build-plugins-js.sh [js-hello|circleci]...   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."

command -v node >/dev/null && command -v npm >/dev/null || {
    echo "building the JavaScript plugins needs Node.js 20+ and npm" >&2
    exit 1
}

pkg=plugins/js
# npm ci writes node_modules/.package-lock.json last: if it is missing or
# older than the lock file, the install is missing, partial or stale.
if [ ! -f "$pkg/node_modules/.package-lock.json" ] ||
    [ "$pkg/package-lock.json" -nt "$pkg/node_modules/.package-lock.json" ]; then
    (cd "$pkg" && npm ci --no-audit --no-fund)
fi

(cd "$pkg" && npm test --silent)
node "$pkg/build.mjs" "$@"
