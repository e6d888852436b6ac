#!/usr/bin/env bash
# Sets up a fresh machine and runs every check keyrot must pass: formatting,
# lints, the plugin build, and all tests (unit, and end to end against moto).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo build --release --locked --target wasm32-wasip2 --manifest-path plugins/Cargo.toml
cargo test --locked
