#!/usr/bin/env bash
# Builds every plugin from source, installing each language's toolchain
# when it is missing:
#   Rust        -> plugins/target/wasm32-wasip2/release/<crate>.wasm
#   Python, JS, C -> plugins/target/components/<name>.wasm
# Usage: scripts/build-plugins.sh [rust|python|js|c]...   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."

langs=("$@")
[ ${#langs[@]} -gt 0 ] || langs=(rust python js c)
mkdir -p plugins/target/components
for lang in "${langs[@]}"; do
    case "$lang" in
        rust) cargo build --release --locked --target wasm32-wasip2 --manifest-path plugins/Cargo.toml ;;
        python|js|c) "scripts/build-plugins-$lang.sh" ;;
        *) echo "unknown plugin language '$lang' (rust, python, js, c)" >&2; exit 2 ;;
    esac
done
