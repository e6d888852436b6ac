#!/usr/bin/env bash
# A demo rotation on a fresh machine, against a local IAM emulator: builds
# keyrot and the example plugin, starts moto (from .venv/, which
# scripts/setup.sh makes) on a free loopback port, creates user `demo` with
# one key, rotates it through plugins/hello, and prints the report.
# Touches no AWS account: every call goes to the emulator on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
# The debug build, which scripts/test.sh builds too: one Wasmtime compile
# serves both commands.
cargo build --locked
cargo build --release --locked --target wasm32-wasip2 --manifest-path plugins/Cargo.toml

py=.venv/bin/python
port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.venv/bin/moto_server -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true' EXIT

# moto accepts any credentials; these never leave this machine.
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
endpoint="http://127.0.0.1:$port"

ENDPOINT=$endpoint "$py" - <<'PY'
import os, time, boto3, botocore.exceptions
iam = boto3.client("iam", endpoint_url=os.environ["ENDPOINT"])
for _ in range(300):  # moto takes a moment to start listening
    try:
        iam.list_users()
        break
    except botocore.exceptions.EndpointConnectionError:
        time.sleep(0.1)
iam.create_user(UserName="demo")
key = iam.create_access_key(UserName="demo")["AccessKey"]["AccessKeyId"]
print(f"== user demo starts with key {key}")
PY

echo "== keyrot --plugin hello.wasm --user demo --endpoint-url $endpoint"
./target/debug/keyrot --plugin plugins/target/wasm32-wasip2/release/hello.wasm --user demo \
    --endpoint-url "$endpoint"

ENDPOINT=$endpoint "$py" - <<'PY'
import os, boto3
iam = boto3.client("iam", endpoint_url=os.environ["ENDPOINT"])
keys = iam.list_access_keys(UserName="demo")["AccessKeyMetadata"]
print("== user demo now has: " + ", ".join(f"{k['AccessKeyId']} ({k['Status']})" for k in keys))
PY
