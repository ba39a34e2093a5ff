#!/usr/bin/env bash
# Load test of tools/serve with wrk: POST /predict with a single-image JSON body, at 1 and 16
# connections, then stops the server (SIGTERM) and checks that it exited cleanly.
#
#   bench/serve_load.sh [MODEL]
#
# Environment: SIMDNN_BUILD_DIR (default build), PORT (18080), DURATION (10s),
# CONNECTIONS ("1 16"), SERVE_THREADS (16: one httplib worker per keep-alive connection),
# WRK_THREADS (1). Without MODEL, a 784-128-10 model is trained for one epoch into a temporary
# file (needs the Fashion-MNIST package from scripts/setup.sh).
# Needs wrk (apt-get install wrk); wrk and the server share the machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${SIMDNN_BUILD_DIR:-build}
port=${PORT:-18080}
duration=${DURATION:-10s}
connections=${CONNECTIONS:-"1 16"}
serve_threads=${SERVE_THREADS:-16}
wrk_threads=${WRK_THREADS:-1}

if ! command -v wrk > /dev/null; then
  echo "serve_load: wrk is not installed (apt-get install wrk)" >&2
  exit 1
fi
if [[ ! -x "$build_dir/tools/serve" ]]; then
  cmake --build "$build_dir" -j "$(nproc)" --target serve train
fi

scratch=$(mktemp -d)
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2> /dev/null; then
    kill -TERM "$server_pid" 2> /dev/null || true
    wait "$server_pid" 2> /dev/null || true
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT

model=${1:-}
if [[ -z "$model" ]]; then
  model="$scratch/model.safetensors"
  echo "serve_load: training a one-epoch model into $model" >&2
  "$build_dir/tools/train" --epochs 1 --out "$model" --no-progress > /dev/null
fi

# A single 28x28 image in the documented convention: 784 pixel values 0..255, MNIST-like
# (mostly background, a vertical stroke), as JSON. Built in Lua so the script needs no files.
cat > "$scratch/predict.lua" << 'EOF'
local values = {}
for i = 0, 783 do
  local row, col = math.floor(i / 28), i % 28
  local d = math.abs(col - 14)
  local v = 0
  if row >= 4 and row < 24 and d <= 3 then v = 255 - 40 * d end
  values[#values + 1] = tostring(v)
end
wrk.method = "POST"
wrk.body = '{"pixels":[' .. table.concat(values, ",") .. ']}'
wrk.headers["Content-Type"] = "application/json"

function response(status, headers, body)
  if status ~= 200 then
    io.stderr:write("unexpected status " .. status .. ": " .. body .. "\n")
  end
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors=%d rps=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
    summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
EOF

"$build_dir/tools/serve" --model "$model" --host 127.0.0.1 --port "$port" \
  --threads "$serve_threads" > "$scratch/serve.log" 2>&1 &
server_pid=$!
# Wait (at most 10 s) until the port accepts connections.
for _ in $(seq 100); do
  if (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null; then break; fi
  if ! kill -0 "$server_pid" 2> /dev/null; then
    cat "$scratch/serve.log" >&2
    exit 1
  fi
  sleep 0.1
done

echo "serve_load: $(head -1 "$scratch/serve.log")"
echo "serve_load: wrk -t$wrk_threads, $duration per run, $(nproc) cores shared by wrk and serve"
printf "%-12s %12s %10s %10s %10s %10s %10s %8s\n" connections requests "req/s" "p50 ms" "p90 ms" "p99 ms" "max ms" errors
for c in $connections; do
  t=$((wrk_threads < c ? wrk_threads : c))
  # A short warm-up so every worker has touched its model copy.
  wrk -t"$t" -c"$c" -d1s -s "$scratch/predict.lua" "http://127.0.0.1:$port/predict" > /dev/null
  out=$(wrk -t"$t" -c"$c" -d"$duration" -s "$scratch/predict.lua" "http://127.0.0.1:$port/predict")
  line=$(grep '^RESULT' <<< "$out")
  get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<< " $line"; }
  printf "%-12s %12s %10s %10s %10s %10s %10s %8s\n" "$c" "$(get requests)" "$(get rps)" \
    "$(get p50_ms)" "$(get p90_ms)" "$(get p99_ms)" "$(get max_ms)" "$(get errors)"
done

kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
server_pid=""
echo "serve_load: server stopped with exit code $status"
exit "$status"
