#!/usr/bin/env bash
# Seconds per batch of 10,000 shipments for several builds of dispatch-risk, alternating in one
# run: each build serves a fresh SQLite database, gets two warm-up batches and then six timed
# ones, ROUNDS times; the medians and their ratios to the first build are printed. Every other
# shipment carries a credit hold (each opens an approval), as in the service bench.
#   benches/batch/ab.sh ROUNDS BIN_A BIN_B ...   (BIN: a dispatch-risk binary built at a commit)
# Add PERF=1 to record each build's server with perf into $OUT/<name>.data.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=$1; shift
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
python3 benches/batch/body.py 0.5 "$OUT/batch.json"
one() {
  local bin=$1 name=$2 d key port pid pp=""
  d=$(mktemp -d)
  key=$("$bin" keys --database-url "sqlite:$d/b.sqlite3" create --name bench --role workflow | tail -1)
  port=$((20000 + RANDOM % 20000))
  RUST_LOG=warn "$bin" serve --bind "127.0.0.1:$port" --database-url "sqlite:$d/b.sqlite3" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
  post() { curl -s -o /dev/null -w '%{time_total}\n' -H "authorization: Bearer $key" \
    -H 'content-type: application/json' --data-binary "@$OUT/batch.json" \
    "http://127.0.0.1:$port/v1/score/batch"; }
  post >/dev/null; post >/dev/null
  if [ "${PERF:-0}" = 1 ]; then
    perf record -F 499 -g --call-graph dwarf,16384 -p "$pid" -o "$OUT/$name.data" 2>/dev/null & pp=$!
    sleep 0.5
  fi
  for _ in $(seq 6); do echo "$name $(post)"; done
  if [ -n "$pp" ]; then kill -INT "$pp"; wait "$pp" || true; fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$d"
}
for _ in $(seq "$ROUNDS"); do for b in "$@"; do one "$b" "$(basename "$b")"; done; done > "$OUT/times"
python3 - "$OUT/times" "$@" <<'PY'
import collections, os, statistics, sys
d = collections.defaultdict(list)
for line in open(sys.argv[1]):
    name, t = line.split()
    d[name].append(float(t))
names = [os.path.basename(b) for b in sys.argv[2:]]
first = statistics.median(d[names[0]])
for n in names:
    m = statistics.median(d[n])
    print(f"{n}: {m:.3f} s per batch ({10000 / m:,.0f} shipments/s) over {len(d[n])}; {first / m:.2f}x of {names[0]}")
PY
