#!/usr/bin/env bash
# A demo rotation on a fresh machine, against a local IAM emulator: builds
# keyrot and the example plugin, starts moto, creates user `demo` with one
# key, rotates it through plugins/hello, and prints the report.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --release --locked
cargo build --release --locked --target wasm32-wasip2 --manifest-path plugins/Cargo.toml

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m moto.server -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true' EXIT

# moto accepts any credentials; these never leave this machine.
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ENDPOINT_URL="http://127.0.0.1:$port"

python3 - <<'PY'
import os, time, boto3, botocore.exceptions
iam = boto3.client("iam", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
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

echo "== keyrot --plugin hello.wasm --user demo"
./target/release/keyrot --plugin plugins/target/wasm32-wasip2/release/hello.wasm --user demo

python3 - <<'PY'
import os, boto3
iam = boto3.client("iam", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
keys = iam.list_access_keys(UserName="demo")["AccessKeyMetadata"]
print("== user demo now has: " + ", ".join(f"{k['AccessKeyId']} ({k['Status']})" for k in keys))
PY
