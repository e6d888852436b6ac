#!/usr/bin/env bash
# Sets up a fresh machine and runs every check keyrot must pass: formatting,
# lints, every plugin built from source (Rust, Python, JavaScript, C), the
# Rust plugins' unit tests, and all tests: unit, and end to end against moto
# and loopback fake APIs.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
scripts/build-plugins.sh
# The Rust plugins' own unit tests (their pure parts), natively.
cargo test --locked --manifest-path plugins/Cargo.toml --workspace
cargo test --locked
