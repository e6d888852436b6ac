#!/usr/bin/env bash
# Installs what building and testing keyrot needs on a fresh machine:
# the wasm32-wasip2 Rust target (for plugins), the moto IAM emulator and the
# CNCF distribution registry (Debian's docker-registry, for the OCI tests).
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
# The OCI tests run the real registry on loopback. Debian's package starts a
# service on :5000 where an init system runs; the tests start their own.
if ! command -v docker-registry >/dev/null 2>&1; then
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null
fi
