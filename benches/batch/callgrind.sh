#!/usr/bin/env bash
# Instructions one batch of 10,000 shipments (every other one credit-held) costs a dispatch-risk
# build, counted by callgrind: repeatable where wall-clock ratios on these machines move by
# 8-30 % between runs of the same binary. The server runs under valgrind on a fresh SQLite
# file; one warm-up batch, then the counters are zeroed, one batch is sent, and the counts are
# dumped. User-space work only: the kernel's part of writing and syncing is not counted.
#   benches/batch/callgrind.sh BIN [PORT]   (BIN: a dispatch-risk binary built at a commit)
# Prints the program's total and the writer thread's share; the dump is left in $OUT.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$1; port=${2:-$((20000 + RANDOM % 20000))}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
python3 benches/batch/body.py 0.5 "$OUT/batch.json"
key=$("$bin" keys --database-url "sqlite:$OUT/b.sqlite3" create --name bench --role workflow | tail -1)
DISPATCH_RISK_REQUEST_TIMEOUT=3600 RUST_LOG=warn valgrind --tool=callgrind --dump-line=no \
  --callgrind-out-file="$OUT/callgrind.%p" \
  "$bin" serve --bind "127.0.0.1:$port" --database-url "sqlite:$OUT/b.sqlite3" >"$OUT/server.log" 2>&1 &
pid=$!
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 1; done
post() { curl -s -o /dev/null -w '%{http_code}' -m 3000 -H "authorization: Bearer $key" \
  -H 'content-type: application/json' --data-binary "@$OUT/batch.json" \
  "http://127.0.0.1:$port/v1/score/batch"; }
[ "$(post)" = 200 ] || { echo "warm-up batch failed" >&2; kill "$pid"; exit 1; }
sleep 5
callgrind_control -z "$pid" >/dev/null
[ "$(post)" = 200 ] || { echo "measured batch failed" >&2; kill "$pid"; exit 1; }
sleep 5
callgrind_control -d "$pid" >/dev/null
sleep 2
kill "$pid"; wait "$pid" 2>/dev/null || true
dump=$(ls "$OUT"/callgrind.*.1)
total=$(callgrind_annotate "$dump" | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
writer=$(callgrind_annotate --inclusive=yes "$dump" | awk '/sqlite_writer::run( |$)/ && !done {gsub(",", "", $1); print $1; done = 1}')
echo "$(basename "$bin"): ${total} instructions per batch; the writer thread ${writer:-?}; dump in $dump"
