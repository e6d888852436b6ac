#!/usr/bin/env bash
# A local IAM emulator to try keyrot and handlers on, touching no AWS
# account: moto (from .venv/, installed by scripts/setup.sh) on
# 127.0.0.1:${PORT:-5050}, with user ci-bot holding one access key.
# Runs in the foreground until Ctrl-C. Then, in another terminal:
#
#   export AWS_ACCESS_KEY_ID=emulator AWS_SECRET_ACCESS_KEY=emulator AWS_REGION=us-east-1
#   keyrot --endpoint-url http://127.0.0.1:5050 --plugin hello.wasm --user ci-bot
set -euo pipefail
cd "$(dirname "$0")/.."

port=${PORT:-5050}
[ -x .venv/bin/moto_server ] || scripts/setup.sh
.venv/bin/moto_server -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true' EXIT INT TERM

ENDPOINT="http://127.0.0.1:$port" .venv/bin/python - <<'PY'
import os, sys, time, boto3, botocore.exceptions
iam = boto3.client("iam", endpoint_url=os.environ["ENDPOINT"], region_name="us-east-1",
                   aws_access_key_id="emulator", aws_secret_access_key="emulator")
for _ in range(300):  # moto takes a moment to start listening
    try:
        iam.list_users()
        break
    except botocore.exceptions.EndpointConnectionError:
        time.sleep(0.1)
else:
    sys.exit(f"moto did not start on {os.environ['ENDPOINT']} (is the port taken? set PORT)")
iam.create_user(UserName="ci-bot")
key = iam.create_access_key(UserName="ci-bot")["AccessKey"]["AccessKeyId"]
print(f"IAM emulator on {os.environ['ENDPOINT']}: user ci-bot has key {key}. Ctrl-C stops it.")
print("In another terminal:")
print("  export AWS_ACCESS_KEY_ID=emulator AWS_SECRET_ACCESS_KEY=emulator AWS_REGION=us-east-1")
print(f"  keyrot --endpoint-url {os.environ['ENDPOINT']} --plugin PLUGIN.wasm --user ci-bot ...")
PY
wait "$moto_pid"
