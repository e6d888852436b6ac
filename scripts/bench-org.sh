#!/usr/bin/env bash
# The organization benchmark: keyrot rotating an AWS Organization of
# ACCOUNTS accounts with USERS CI users each (--org, through a member role),
# CONCURRENCY at a time, against a local moto, beside the fleet benchmark's
# floor for the same number of users: benches/iam_baseline.rs, the four IAM
# calls of a rotation per user straight through aws-sdk-iam, in one account.
# Every run rotates every user again (no --older-than), RUNS times after one
# warm-up; no new key is verified (--no-verify, as in bench-fleet.sh).
#
# Besides wall time and peak memory (GNU time), it counts the AWS requests
# each keyrot run makes, from moto's request log: calls per user, beside the
# baseline's 4.
#
#   scripts/bench-org.sh                              # 100 x 10, concurrency 16, 3 runs
#   ACCOUNTS=20 USERS=5 RUNS=1 scripts/bench-org.sh
#
# Touches no AWS account: every call goes to the emulator on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

accounts=${ACCOUNTS:-100}
users=${USERS:-10}
concurrency=${CONCURRENCY:-16}
runs=${RUNS:-3}
plugin=${PLUGIN:-plugins/target/wasm32-wasip2/release/hello.wasm}
total=$((accounts * users))

[ -x .venv/bin/moto_server ] || scripts/setup.sh
py=.venv/bin/python
[ -x /usr/bin/time ] || { echo "bench-org: needs GNU time (apt-get install time)" >&2; exit 2; }

echo "bench-org: building (release)" >&2
baseline=$(cargo bench --locked --bench iam_baseline --no-run --message-format=json 2>/dev/null |
    "$py" -c '
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "iam_baseline" and msg.get("executable"):
        print(msg["executable"])')
[ -x "$baseline" ] || { echo "bench-org: could not build benches/iam_baseline.rs" >&2; exit 1; }
cargo build --release --locked
[ -f "$plugin" ] ||
    cargo build --release --locked --target wasm32-wasip2 --manifest-path plugins/Cargo.toml

work=$(mktemp -d)
port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.venv/bin/moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true; rm -rf "$work"' EXIT

# moto accepts any credentials; these never leave this machine.
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
export KEYROT_CACHE_DIR="$work/cache" KEYROT_STATE_DIR="$work/state"

echo "bench-org: building an organization of $accounts accounts x $users users" >&2
ACCOUNTS=$accounts USERS=$users PORT=$port "$py" - <<'PY'
import os, socket, sys, time
import boto3

port = int(os.environ["PORT"])
for _ in range(300):  # moto takes a moment to start listening
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("bench-org: moto did not start")
url = os.environ["AWS_ENDPOINT_URL"]
orgs = boto3.client("organizations", endpoint_url=url)
sts = boto3.client("sts", endpoint_url=url)
orgs.create_organization(FeatureSet="ALL")
for a in range(int(os.environ["ACCOUNTS"])):
    status = orgs.create_account(AccountName=f"bench-{a:03}", Email=f"bench-{a}@example.com")
    account = status["CreateAccountStatus"]["AccountId"]
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::{account}:role/keyrot-member",
                            RoleSessionName="setup")["Credentials"]
    iam = boto3.client("iam", endpoint_url=url, aws_access_key_id=creds["AccessKeyId"],
                       aws_secret_access_key=creds["SecretAccessKey"],
                       aws_session_token=creds["SessionToken"])
    for u in range(int(os.environ["USERS"])):
        iam.create_user(UserName=f"ci-{u:02}", Path="/ci/")
        iam.create_access_key(UserName=f"ci-{u:02}")
PY
users_file="$work/users.txt"
"$baseline" --setup "$total" --users-file "$users_file" --concurrency 16 >&2

keyrot_cmd=(target/release/keyrot --org --org-role-name keyrot-member --path-prefix /ci/
    --concurrency "$concurrency" --plugin "$plugin" --no-verify --endpoint-url "$AWS_ENDPOINT_URL")
baseline_cmd=("$baseline" --users-file "$users_file" --concurrency "$concurrency")

# One timed run of "$@": appends "wall_seconds peak_kib requests" to file $1.
measure() {
    local out=$1
    shift
    local before
    before=$(grep -c '" [0-9][0-9][0-9] ' "$work/moto.log" || true)
    if ! /usr/bin/time -f '%e %M' -o "$work/time" "$@" >"$work/stdout" 2>"$work/stderr"; then
        echo "bench-org: failed: $*" >&2
        tail -n 20 "$work/stderr" >&2
        exit 1
    fi
    sleep 0.2 # let moto finish writing its log
    local after
    after=$(grep -c '" [0-9][0-9][0-9] ' "$work/moto.log" || true)
    echo "$(tail -n 1 "$work/time") $((after - before))" >>"$out"
}

echo "bench-org: $total users in $accounts accounts, concurrency $concurrency, $runs runs each after a warm-up" >&2
: >"$work/keyrot" >"$work/baseline"
measure /dev/null "${keyrot_cmd[@]}"
measure /dev/null "${baseline_cmd[@]}"
for i in $(seq "$runs"); do
    echo "bench-org: run $i of $runs" >&2
    measure "$work/keyrot" "${keyrot_cmd[@]}"
    measure "$work/baseline" "${baseline_cmd[@]}"
done

ACCOUNTS=$accounts TOTAL=$total CONCURRENCY=$concurrency WORK=$work "$py" - <<'PY'
import os, statistics

def load(name):
    rows = [l.split() for l in open(os.path.join(os.environ["WORK"], name)) if l.strip()]
    return [float(r[0]) for r in rows], [int(r[1]) / 1024 for r in rows], [int(r[2]) for r in rows]

total, accounts, conc = int(os.environ["TOTAL"]), os.environ["ACCOUNTS"], os.environ["CONCURRENCY"]
print(f"| command ({total} users, concurrency {conc}) | wall, median (min-max) | per user | AWS calls per user | peak RSS, median |")
print("| --- | ---: | ---: | ---: | ---: |")
results = {}
for name, label in [("keyrot", f"keyrot --org, {accounts} accounts"),
                    ("baseline", "aws-sdk-iam calls only, one account (baseline)")]:
    wall, rss, calls = load(name)
    med = statistics.median(wall)
    results[name] = med
    print(f"| {label} | {med:.2f} s ({min(wall):.2f}-{max(wall):.2f}) "
          f"| {1000 * med / total:.1f} ms | {statistics.median(calls) / total:.2f} "
          f"| {statistics.median(rss):.0f} MiB |")
print(f"\nkeyrot takes {results['keyrot'] / results['baseline']:.2f}x the baseline's wall time.")
PY
