#!/usr/bin/env bash
# The fleet benchmark: keyrot rotating USERS users CONCURRENCY at a time
# (--users-file, --concurrency) through a trivial plugin, beside the floor
# for the same work: benches/iam_baseline.rs, the same IAM calls per user
# (ListAccessKeys, CreateAccessKey, ListAccessKeys, DeleteAccessKey) made
# straight through aws-sdk-iam. Both run against a local moto on a free
# loopback port, in turn (keyrot, baseline, keyrot, ...), RUNS times each
# after one warm-up of each (which also fills keyrot's plugin cache). Every
# run rotates every user again: each starts and ends with one key.
#
# Each run is timed from outside, whole process, with GNU time (wall
# seconds and peak resident memory); the script prints medians (min-max) as
# a markdown table.
#
#   scripts/bench-fleet.sh                      # 500 users, concurrency 8, 5 runs
#   USERS=100 CONCURRENCY=4 RUNS=3 scripts/bench-fleet.sh
#   BASELINE_ONLY=1 scripts/bench-fleet.sh      # just the SDK baseline
#
# Touches no AWS account: every call goes to the emulator on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

users=${USERS:-500}
concurrency=${CONCURRENCY:-8}
runs=${RUNS:-5}
plugin=${PLUGIN:-plugins/target/wasm32-wasip2/release/hello.wasm}
baseline_only=${BASELINE_ONLY:-}

[ -x .venv/bin/moto_server ] || scripts/setup.sh
py=.venv/bin/python
[ -x /usr/bin/time ] || { echo "bench-fleet: needs GNU time (apt-get install time)" >&2; exit 2; }

echo "bench-fleet: building (release)" >&2
baseline=$(cargo bench --locked --bench iam_baseline --no-run --message-format=json 2>/dev/null |
    "$py" -c '
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "iam_baseline" and msg.get("executable"):
        print(msg["executable"])')
[ -x "$baseline" ] || { echo "bench-fleet: could not build benches/iam_baseline.rs" >&2; exit 1; }
if [ -z "$baseline_only" ]; then
    cargo build --release --locked
    [ -f "$plugin" ] ||
        cargo build --release --locked --target wasm32-wasip2 --manifest-path plugins/Cargo.toml
fi

work=$(mktemp -d)
port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.venv/bin/moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto_pid=$!
trap 'kill $moto_pid 2>/dev/null || true; rm -rf "$work"' EXIT
PORT=$port "$py" - <<'PY'
import os, socket, sys, time
for _ in range(300):  # moto takes a moment to start listening
    try:
        socket.create_connection(("127.0.0.1", int(os.environ["PORT"])), timeout=1).close()
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("bench-fleet: moto did not start")
PY

# moto accepts any credentials; these never leave this machine.
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
export KEYROT_CACHE_DIR="$work/cache" KEYROT_STATE_DIR="$work/state"
users_file="$work/users.txt"
"$baseline" --setup "$users" --users-file "$users_file" --concurrency 16 >&2

keyrot_cmd=(target/release/keyrot --users-file "$users_file" --concurrency "$concurrency"
    --plugin "$plugin" --no-verify --endpoint-url "$AWS_ENDPOINT_URL")
baseline_cmd=("$baseline" --users-file "$users_file" --concurrency "$concurrency")

# One timed run of "$@": appends "wall_seconds peak_kib" to file $1.
measure() {
    local out=$1
    shift
    if ! /usr/bin/time -f '%e %M' -o "$work/time" "$@" >"$work/stdout" 2>"$work/stderr"; then
        echo "bench-fleet: failed: $*" >&2
        tail -n 20 "$work/stderr" >&2
        exit 1
    fi
    tail -n 1 "$work/time" >>"$out"
}

echo "bench-fleet: $users users, concurrency $concurrency, $runs runs each after a warm-up" >&2
: >"$work/keyrot" >"$work/baseline"
[ -n "$baseline_only" ] || measure /dev/null "${keyrot_cmd[@]}"
measure /dev/null "${baseline_cmd[@]}"
for i in $(seq "$runs"); do
    echo "bench-fleet: run $i of $runs" >&2
    [ -n "$baseline_only" ] || measure "$work/keyrot" "${keyrot_cmd[@]}"
    measure "$work/baseline" "${baseline_cmd[@]}"
done

USERS=$users CONCURRENCY=$concurrency PLUGIN=$(basename "$plugin") WORK=$work "$py" - <<'PY'
import os, statistics

def load(name):
    path = os.path.join(os.environ["WORK"], name)
    rows = [line.split() for line in open(path) if line.strip()]
    return [float(r[0]) for r in rows], [int(r[1]) / 1024 for r in rows]

users, conc = os.environ["USERS"], os.environ["CONCURRENCY"]
print(f"| command ({users} users, concurrency {conc}) | wall, median (min-max) | per user | peak RSS, median |")
print("| --- | ---: | ---: | ---: |")
results = {}
for name, label in [("keyrot", f"keyrot, plugin {os.environ['PLUGIN']}"),
                    ("baseline", "aws-sdk-iam calls only (baseline)")]:
    wall, rss = load(name)
    if not wall:
        continue
    med = statistics.median(wall)
    results[name] = med
    print(f"| {label} | {med:.2f} s ({min(wall):.2f}-{max(wall):.2f}) "
          f"| {1000 * med / int(users):.1f} ms | {statistics.median(rss):.0f} MiB |")
if len(results) == 2:
    print(f"\nkeyrot takes {results['keyrot'] / results['baseline']:.2f}x the baseline's wall time.")
PY
