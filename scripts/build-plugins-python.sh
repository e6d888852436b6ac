#!/usr/bin/env bash
# Builds the Python plugins with componentize-py, installing it (pinned) into
# the project virtualenv .venv/ (made by scripts/setup.sh) when it is missing
# or another version; nothing goes into the system's Python:
#   plugins/gitlab        -> plugins/target/components/gitlab.wasm
#   plugins/vault         -> plugins/target/components/vault.wasm
#   plugins/python-hello  -> plugins/target/components/python-hello.wasm
#   plugins/python-report -> plugins/target/components/python-report.wasm
#                            (a reporter, from wit/reporter/ alone)
# The WIT each one is built against is assembled under plugins/target/python/
# from keyrot's wit/ (the contract, unchanged) and, for gitlab and vault, its own world
# plus the WASI 0.2 packages wasi:http needs, taken from the wasmtime-wasi-http
# crate keyrot links (found through `cargo metadata`, which fetches it if
# needed). Safe to run again; scripts/build-plugins.sh python runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

COMPONENTIZE_PY_VERSION="0.25.1"
py=.venv/bin/python

[ -x "$py" ] || scripts/setup.sh
installed_version() {
    "$py" -c 'import importlib.metadata as m; print(m.version("componentize-py"))' 2>/dev/null || true
}
if [ "$(installed_version)" != "$COMPONENTIZE_PY_VERSION" ]; then
    echo "installing componentize-py $COMPONENTIZE_PY_VERSION into .venv"
    "$py" -m pip install --quiet --disable-pip-version-check \
        "componentize-py==$COMPONENTIZE_PY_VERSION"
fi

componentize_py() {
    "$py" -c 'import sys, componentize_py; sys.argv[0] = "componentize-py"; componentize_py.script()' \
        --quiet "$@"
}

work=plugins/target/python
out=plugins/target/components
mkdir -p "$work" "$out"

# The WASI WIT packages of the wasmtime-wasi-http crate keyrot builds with.
http_deps="$(cargo metadata --format-version 1 --locked | "$py" -c '
import json, os, sys
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "wasmtime-wasi-http":
        print(os.path.join(os.path.dirname(p["manifest_path"]), "wit", "deps"))
        break
')"
if [ ! -f "$http_deps/http.wit" ]; then
    echo "cannot find the wasi:http WIT of the wasmtime-wasi-http crate (looked in '$http_deps')" >&2
    exit 1
fi
for world in plugins/gitlab/wit/world.wit plugins/vault/wit/world.wit; do
    want="$(sed -n 's|.*import wasi:http/outgoing-handler@\([0-9.]*\);.*|\1|p' "$world")"
    if ! grep -qx "package wasi:http@$want;" "$http_deps/http.wit"; then
        have="$(sed -n 's|^package wasi:http@\(.*\);|\1|p' "$http_deps/http.wit")"
        echo "$world imports wasi:http@$want but keyrot's wasmtime-wasi-http" \
            "provides wasi:http@$have: update the version in world.wit" >&2
        exit 1
    fi
done

# keyrot's WIT folder for the contract version a world includes: wit/ for
# the current one, its frozen copy wit/VERSION/ for an older one.
keyrot_wit() {
    local want have
    want="$(sed -n 's|.*include keyrot:handler/new-key-handler@\([0-9.]*\);.*|\1|p' "$1")"
    have="$(sed -n 's|^package keyrot:handler@\(.*\);|\1|p' wit/handler.wit)"
    if [ "$want" = "$have" ]; then
        echo wit
    elif [ -n "$want" ] && [ -f "wit/$want/handler.wit" ]; then
        echo "wit/$want"
    else
        echo "$1 includes keyrot:handler@${want:-?}, which is neither wit/ ($have) nor in wit/VERSION/" >&2
        exit 1
    fi
}

# plugins/target/python/NAME-wit for a plugin with outbound HTTP: the
# plugin's world; keyrot's contract and its deps; the WASI packages (one file
# each: cli, clocks, filesystem, http, io, random, sockets).
http_wit() {
    local name="$1" keyrot wit
    keyrot="$(keyrot_wit "plugins/$name/wit/world.wit")"
    wit="$work/$name-wit"
    rm -rf "$wit"
    mkdir -p "$wit/deps/keyrot-handler"
    cp "plugins/$name/wit/"*.wit "$wit/"
    cp "$keyrot/handler.wit" "$wit/deps/keyrot-handler/"
    cp -R "$keyrot/deps/." "$wit/deps/"
    cp "$http_deps"/*.wit "$wit/deps/"
}
http_wit gitlab
http_wit vault

# The handlers with outbound HTTP share plugins/python-shared (the wasi:http
# client and the shapes their API code works with).
for name in gitlab vault; do
    echo "unit-testing plugins/$name on the venv's Python"
    (cd "plugins/$name" &&
        PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=../python-shared "../../$py" -m unittest --quiet)
done

build() {
    local name="$1" dir="$2" wit_dir="$3" world="$4"
    # From a copy of the sources without the tests: componentize-py imports
    # the app to snapshot it and would leave __pycache__ in plugins/.
    local src="$work/$name-src"
    rm -rf "$src"
    mkdir -p "$src"
    cp "$dir"/*.py "$src/"
    case "$name" in gitlab | vault) cp plugins/python-shared/*.py "$src/" ;; esac
    rm -f "$src"/test_*.py
    # Skip the slow part when nothing that goes into the component changed.
    local stamp
    stamp="$( (echo "componentize-py $COMPONENTIZE_PY_VERSION $world"
        find "$src" "$wit_dir" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum)"
    if [ -f "$out/$name.wasm" ] && [ "$(cat "$work/$name.stamp" 2>/dev/null)" = "$stamp" ]; then
        echo "$out/$name.wasm is up to date"
        return
    fi
    echo "building $out/$name.wasm"
    componentize_py -d "$wit_dir" -w "$world" componentize app -p "$src" -o "$out/$name.wasm.tmp"
    mv "$out/$name.wasm.tmp" "$out/$name.wasm"
    echo "$stamp" >"$work/$name.stamp"
}

start=$SECONDS
build gitlab plugins/gitlab "$work/gitlab-wit" keyrot:gitlab/gitlab-handler@0.1.0
build vault plugins/vault "$work/vault-wit" keyrot:vault/vault-handler@0.1.0
build python-hello plugins/python-hello wit keyrot:handler/new-key-handler
build python-report plugins/python-report wit/reporter keyrot:reporter/run-reporter
echo "Python plugins ready in plugins/target/components ($((SECONDS - start))s)"
