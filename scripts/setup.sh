#!/usr/bin/env bash
# Installs what building and testing keyrot needs on a fresh machine:
#   - the wasm32-wasip2 Rust target (for plugins), clippy and rustfmt;
#   - a project virtualenv, .venv/ (git-ignored), holding the moto IAM
#     emulator (moto_server, boto3) and prometheus_client (whose parser
#     reads keyrot's metrics in tests). Nothing is installed into the system's
#     Python: Debian 12 refuses `pip install` there (externally managed);
#   - the CNCF distribution registry (Debian's docker-registry), for the
#     OCI tests, and the openssl CLI, which makes their throwaway CA;
#   - promtool (Debian's prometheus), which lints keyrot's metrics and
#     tests the example alert rules;
#   - unshare and mount (util-linux), for the test that runs the Kubernetes
#     example with a read-only root in a mount namespace.
# Needs python3 with its venv module; on Debian/Ubuntu the python3-venv
# package is installed with apt-get when missing.
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION="5.2.1"
VENV=.venv

say() { echo "setup: $*" >&2; }

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2
fi
for component in clippy rustfmt; do
    if ! rustup component list --installed | grep -q "^$component"; then
        rustup component add "$component"
    fi
done

# Debian splits venv's pip bootstrap (ensurepip) into python3-venv.
ensure_venv_module() {
    python3 -c 'import venv, ensurepip' >/dev/null 2>&1 && return
    command -v apt-get >/dev/null || {
        say "error: python3 has no working venv module; install it (python3-venv) and run again"
        exit 1
    }
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    say "installing python3-venv (apt-get)"
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
}

command -v python3 >/dev/null || {
    say "error: python3 is missing (Debian: apt-get install python3 python3-venv)"
    exit 1
}
# A venv whose python is gone (the interpreter it was made from was removed
# or upgraded) is rebuilt rather than patched.
if [ -e "$VENV" ] && ! "$VENV/bin/python" -c '' >/dev/null 2>&1; then
    say "rebuilding $VENV: its python no longer runs"
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    ensure_venv_module
    say "creating $VENV with $(command -v python3) ($(python3 --version 2>&1))"
    python3 -m venv "$VENV"
fi
have_moto=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null || true)
if [ "$have_moto" != "$MOTO_VERSION" ] || ! "$VENV/bin/python" -c 'import moto.server, flask' >/dev/null 2>&1; then
    say "installing moto[server] $MOTO_VERSION into $VENV (pip; about a minute)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "moto[server]==$MOTO_VERSION"
fi
# The metrics tests parse keyrot's Prometheus output with the reference
# client's own parser.
PROMETHEUS_CLIENT_VERSION="0.21.1"
have_prom=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("prometheus_client"))' 2>/dev/null || true)
if [ "$have_prom" != "$PROMETHEUS_CLIENT_VERSION" ]; then
    say "installing prometheus_client $PROMETHEUS_CLIENT_VERSION into $VENV (pip)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "prometheus_client==$PROMETHEUS_CLIENT_VERSION"
fi
[ -x "$VENV/bin/moto_server" ] || {
    say "error: $VENV/bin/moto_server is missing after installing moto"
    exit 1
}
# The OCI tests run the real registry on loopback. Debian's package starts a
# service on :5000 where an init system runs; the tests start their own.
if ! command -v docker-registry >/dev/null 2>&1; then
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null
fi
# The hostile-registry tests serve HTTPS with a CA made at test time.
if ! command -v openssl >/dev/null 2>&1; then
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
fi
# The metrics tests lint keyrot's output and test the example alert rules
# with promtool, from Debian's prometheus package (its service is not
# started where no init system runs; the tests start nothing of it).
if ! command -v promtool >/dev/null 2>&1; then
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    say "installing prometheus, for promtool (apt-get)"
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
# The test of the Kubernetes example runs keyrot in a mount namespace with a
# read-only root: unshare (util-linux), mount, chroot (coreutils).
missing=()
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
command -v mount >/dev/null 2>&1 || missing+=(mount)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    say "installing ${missing[*]} (apt-get)"
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
