#!/usr/bin/env bash
# Load test of tools/serve with wrk, in one run:
#  1. POST /predict with a single-image JSON body at 1 and 16 connections;
#  2. the peer: the seed project's stack (bench/flask_app.py: Flask + gunicorn -w 2 + PyTorch +
#     prometheus_client) on the same model, same body, 16 connections; req/s, p99 and the ratios;
#  3. the idle/slowloris floor (bench/serve_floor.py): with 10,000 idle and 500 slowloris
#     connections open, 1,000 fresh /predict requests all get 200 with p99 <= 10 ms, RSS stays
#     <= 200 MB and, after, within 20% of idle;
# then stops the server (SIGTERM) and checks that it exited cleanly.
#
#   bench/serve_load.sh [MODEL]
#
# Environment: SIMDNN_BUILD_DIR (default build), PORT (18080; the peer uses PORT+1), DURATION
# (10s), CONNECTIONS ("1 16"), SERVE_THREADS (serve's --threads; default: serve's own),
# WRK_THREADS (1), PEER (1: run the Flask peer; 0 skips it), PEER_CONNECTIONS (16),
# FLOOR (1: run the floor; 0 skips it), FLOOR_IDLE (10000), FLOOR_SLOW (500),
# FLOOR_REQUESTS (1000), SERVE_ARGS (extra serve flags, split on spaces, e.g.
# "--store /tmp/p.db": the prediction store's counters are then printed at the end). Without MODEL, a 784-128-10 model is trained for one epoch into a
# temporary file (needs the Fashion-MNIST package from scripts/setup.sh).
# Needs wrk, and for the peer python3-flask, gunicorn, python3-torch, python3-prometheus-client
# (Debian 12 packages); wrk, the peer and the server share the machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${SIMDNN_BUILD_DIR:-build}
port=${PORT:-18080}
duration=${DURATION:-10s}
connections=${CONNECTIONS:-"1 16"}
serve_threads=${SERVE_THREADS:-}
read -r -a extra_serve_args <<< "${SERVE_ARGS:-}"
wrk_threads=${WRK_THREADS:-1}
peer=${PEER:-1}
peer_connections=${PEER_CONNECTIONS:-16}
peer_port=$((port + 1))
floor=${FLOOR:-1}
floor_idle=${FLOOR_IDLE:-10000}
floor_slow=${FLOOR_SLOW:-500}
floor_requests=${FLOOR_REQUESTS:-1000}
python=/usr/bin/python3  # Debian's, which has the python3-* packages

# The floor holds over 10,000 sockets in this shell's children and in serve.
ulimit -n "$(ulimit -Hn)" 2> /dev/null || true
if ((floor)) && (($(ulimit -n) < floor_idle + floor_slow + 1000)); then
  echo "serve_load: ulimit -n is $(ulimit -n), too low for the floor; FLOOR=0 skips it" >&2
  exit 1
fi

if ! command -v wrk > /dev/null; then
  echo "serve_load: wrk is not installed (apt-get install wrk)" >&2
  exit 1
fi
if [[ ! -x "$build_dir/tools/serve" ]]; then
  cmake --build "$build_dir" -j "$(nproc)" --target serve train
fi

scratch=$(mktemp -d)
server_pid=""
peer_pid=""
cleanup() {
  for pid in "$server_pid" "$peer_pid"; do
    if [[ -n "$pid" ]] && kill -0 "$pid" 2> /dev/null; then
      kill -TERM "$pid" 2> /dev/null || true
      wait "$pid" 2> /dev/null || true
    fi
  done
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

-- No response() callback: it hands every response body to Lua, which costs wrk (sharing the
-- two cores with the server) a third of its CPU. wrk counts non-2xx answers itself
-- (summary.errors.status, in the errors column).

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors=%d rps=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
    summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
EOF

# Waits (at most 20 s) until $1 accepts connections on port $2.
wait_for_port() {
  for _ in $(seq 200); do
    if (exec 3<> "/dev/tcp/127.0.0.1/$2") 2> /dev/null; then return 0; fi
    if ! kill -0 "$1" 2> /dev/null; then return 1; fi
    sleep 0.1
  done
  return 1
}

# One wrk run: prints "requests rps p50 p90 p99 max errors".
run_wrk() {
  local c=$1 url=$2 t=$((wrk_threads < $1 ? wrk_threads : $1))
  # A short warm-up so every worker has touched its buffers.
  wrk -t"$t" -c"$c" -d1s -s "$scratch/predict.lua" "$url" > /dev/null
  local out line
  out=$(wrk -t"$t" -c"$c" -d"$duration" -s "$scratch/predict.lua" "$url")
  line=$(grep '^RESULT' <<< "$out")
  get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<< " $line"; }
  echo "$(get requests) $(get rps) $(get p50_ms) $(get p90_ms) $(get p99_ms) $(get max_ms) $(get errors)"
}

serve_args=(--model "$model" --host 127.0.0.1 --port "$port")
[[ -n "$serve_threads" ]] && serve_args+=(--threads "$serve_threads")
((${#extra_serve_args[@]})) && serve_args+=("${extra_serve_args[@]}")
# The floor needs room for its connections, where serve has a limit on them.
# (The help is captured first: with pipefail, grep -q closing the pipe early could kill serve
# with SIGPIPE, fail the test, and leave serve at its default 1,024 connections.)
serve_help=$("$build_dir/tools/serve" --help 2>&1 || true)
if grep -q -- "--max-connections" <<< "$serve_help"; then
  serve_args+=(--max-connections $((floor_idle + floor_slow + 1000)))
fi
"$build_dir/tools/serve" "${serve_args[@]}" > "$scratch/serve.log" 2>&1 &
server_pid=$!
if ! wait_for_port "$server_pid" "$port"; then
  cat "$scratch/serve.log" >&2
  exit 1
fi

echo "serve_load: $(head -1 "$scratch/serve.log")"
echo "serve_load: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) cores shared by wrk, the peer and serve; load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "serve_load: wrk -t$wrk_threads, $duration per run"
printf "%-22s %12s %10s %10s %10s %10s %10s %8s\n" "server, connections" requests "req/s" "p50 ms" "p90 ms" "p99 ms" "max ms" errors
declare -A serve_rps=() serve_p99=()
for c in $connections $peer_connections; do
  [[ -n "${serve_rps[$c]:-}" ]] && continue
  read -r requests rps p50 p90 p99 max errors <<< "$(run_wrk "$c" "http://127.0.0.1:$port/predict")"
  serve_rps[$c]=$rps
  serve_p99[$c]=$p99
  printf "%-22s %12s %10s %10s %10s %10s %10s %8s\n" "serve, $c" "$requests" "$rps" "$p50" "$p90" "$p99" "$max" "$errors"
done

if ((peer)); then
  SIMDNN_MODEL="$model" PROMETHEUS_MULTIPROC_DIR="$scratch" \
    "$python" /usr/bin/gunicorn -w 2 -b "127.0.0.1:$peer_port" --chdir bench \
    --log-level warning flask_app:app > "$scratch/peer.log" 2>&1 &
  peer_pid=$!
  if ! wait_for_port "$peer_pid" "$peer_port"; then
    cat "$scratch/peer.log" >&2
    exit 1
  fi
  # gunicorn binds before its workers have imported torch: wait (up to 60 s) for /healthz.
  "$python" - "$peer_port" << 'EOF_PY'
import sys, time, urllib.request
for _ in range(600):
    try:
        if urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=2).status == 200:
            break
    except OSError:
        time.sleep(0.1)
EOF_PY
  read -r requests rps p50 p90 p99 max errors <<< "$(run_wrk "$peer_connections" "http://127.0.0.1:$peer_port/predict")"
  printf "%-22s %12s %10s %10s %10s %10s %10s %8s\n" "flask peer, $peer_connections" "$requests" "$rps" "$p50" "$p90" "$p99" "$max" "$errors"
  kill -TERM "$peer_pid"
  wait "$peer_pid" 2> /dev/null || true
  peer_pid=""
  awk -v a="${serve_rps[$peer_connections]}" -v b="$rps" -v pa="${serve_p99[$peer_connections]}" -v pb="$p99" \
    -v c="$peer_connections" 'BEGIN { printf "serve_load: at %d connections serve does %.1fx the peer'"'"'s req/s, with %.1fx lower p99\n", c, a / b, pb / pa }'
fi

floor_status=0
if ((floor)); then
  echo "serve_load: floor: $floor_idle idle + $floor_slow slowloris connections, $floor_requests fresh requests"
  "$python" bench/serve_floor.py "$port" "$server_pid" "$floor_idle" "$floor_slow" "$floor_requests" \
    || floor_status=$?
fi

# The prediction store's counters (serve --store): what was written and what was dropped.
if ((${#extra_serve_args[@]})); then
  "$python" - "$port" << 'EOF_PY'
import sys, urllib.request
text = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=5).read().decode()
for line in text.splitlines():
    if line.startswith("prediction_store_"):
        print("serve_load: " + line)
EOF_PY
fi

kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
server_pid=""
echo "serve_load: server stopped with exit code $status"
if ((floor_status)); then
  echo "serve_load: the floor missed a bound" >&2
  exit 1
fi
exit "$status"
