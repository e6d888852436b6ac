#!/usr/bin/env bash
# Installs what building and testing keyrot needs on a fresh machine:
# the wasm32-wasip2 Rust target (for plugins) and the moto IAM emulator.
# Safe to run again: each step is skipped when already done.
set -euo pipefail

MOTO_VERSION="5.2.1"

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi
for component in clippy rustfmt; do
    if ! rustup component list --installed | grep -q "^$component"; then
        rustup component add "$component"
    fi
done
if ! python3 -c "import moto.server, flask" >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi
# pyenv installs console scripts behind shims; refresh them if pyenv is here.
if command -v pyenv >/dev/null 2>&1; then
    pyenv rehash || true
fi
