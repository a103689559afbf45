#!/usr/bin/env bash
# Cost of logging + metrics at 512 concurrent streams (issue 7's target: <= 2 % of serving
# throughput). Not a CTest test: a benchmark to run by hand on a quiet machine.
#
# Alternates rounds of `moeserve serve --backend null` (pinned to SERVER_CORE) without and with
# observability (--metrics-port + --log-file + engine_stats every 5 s, and a scraper fetching
# /metrics every second), each driven by `moeserve bench serve --concurrency 512` (pinned to
# CLIENT_CORE). Per round: streamed output tokens/s and server CPU (utime + stime) per token.
# Usage: tests/e2e/observability/overhead.sh [MOESERVE_BIN] [ROUNDS] [NUM_PROMPTS]
set -euo pipefail
BIN=${1:-build/bin/moeserve}
ROUNDS=${2:-3}
PROMPTS=${3:-2048}
OUTPUT_LEN=${OUTPUT_LEN:-1024}  # tokens per request (short requests weigh the per-request work)
SERVER_CORE=${SERVER_CORE:-0}
CLIENT_CORE=${CLIENT_CORE:-1}
WORK=$(mktemp -d)
SERVER_PID=""
SCRAPER_PID=""
cleanup() {
  [ -n "$SCRAPER_PID" ] && kill "$SCRAPER_PID" 2>/dev/null || true
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
"$BIN" generate-model --preset tiny --out "$WORK/tiny" > /dev/null
CLK=$(getconf CLK_TCK)

# round MODE: prints "MODE tok_per_s cpu_us_per_token"
round() {
  local mode=$1 extra=()
  local mport=0
  if [ "$mode" = on ]; then
    mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    extra=(--metrics-port "$mport" --log-file "$WORK/requests.jsonl" --engine-stats-interval 5)
  fi
  : > "$WORK/server.out"
  taskset -c "$SERVER_CORE" "$BIN" --log-level warning serve --backend null --model "$WORK/tiny" \
    --port 0 --max-num-seqs 1024 --max-num-batched-tokens 65536 "${extra[@]}" \
    > "$WORK/server.out" 2> "$WORK/server.log" &
  SERVER_PID=$!
  for _ in $(seq 200); do grep -q "listening on" "$WORK/server.out" && break; sleep 0.05; done
  local port
  port=$(sed -n 's/.*listening on .*:\([0-9]*\)$/\1/p' "$WORK/server.out")
  taskset -c "$CLIENT_CORE" "$BIN" bench serve --port "$port" --no-progress \
    --num-prompts 2000 --random-input-len 32 --random-output-len 16 --max-concurrency 64 > /dev/null
  if [ "$mode" = on ]; then
    ( while true; do curl -s "http://127.0.0.1:$mport/metrics" > /dev/null || true; sleep 1; done ) &
    SCRAPER_PID=$!
  fi
  local s0 s1
  s0=$(awk '{print $14 + $15}' "/proc/$SERVER_PID/stat")
  taskset -c "$CLIENT_CORE" "$BIN" bench serve --port "$port" --no-progress --json "$WORK/r.json" \
    --num-prompts "$PROMPTS" --random-input-len 32 --random-output-len "$OUTPUT_LEN" --ignore-eos \
    --concurrency 512 > /dev/null
  s1=$(awk '{print $14 + $15}' "/proc/$SERVER_PID/stat")
  if [ -n "$SCRAPER_PID" ]; then kill "$SCRAPER_PID"; wait "$SCRAPER_PID" 2>/dev/null || true; SCRAPER_PID=""; fi
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
  python3 - "$WORK/r.json" "$mode" "$((s1 - s0))" "$CLK" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ticks, clk = int(sys.argv[3]), int(sys.argv[4])
tokens = r["total_output"]
print("%s %.0f %.3f %d" % (sys.argv[2], r["output_throughput"], ticks / clk * 1e6 / tokens, r["failed"]))
PY
}

echo "mode tok_per_s server_cpu_us_per_token failed"
for i in $(seq "$ROUNDS"); do
  round off
  round on
done | tee "$WORK/rounds.txt"
python3 - "$WORK/rounds.txt" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
for mode in ("off", "on"):
    t = [float(r[1]) for r in rows if r[0] == mode]
    c = [float(r[2]) for r in rows if r[0] == mode]
    print("%-3s median %.0f tok/s, median %.3f server CPU us/token (n=%d)"
          % (mode, statistics.median(t), statistics.median(c), len(t)))
off_t = statistics.median(float(r[1]) for r in rows if r[0] == "off")
on_t = statistics.median(float(r[1]) for r in rows if r[0] == "on")
off_c = statistics.median(float(r[2]) for r in rows if r[0] == "off")
on_c = statistics.median(float(r[2]) for r in rows if r[0] == "on")
print("throughput change with observability: %+.2f %%; server CPU per token: %+.2f %%"
      % (100 * (on_t / off_t - 1), 100 * (on_c / off_c - 1)))
PY
