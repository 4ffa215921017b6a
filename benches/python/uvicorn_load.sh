#!/usr/bin/env bash
# Throughput of the bare app and of the app behind the middleware under uvicorn, measured
# with wrk on loopback in the same run, alternating, GET (passthrough) requests.
set -euo pipefail
cd "$(dirname "$0")"
venv=${IDEMPO_BENCH_VENV:-../../.venv-bench}
command -v wrk >/dev/null || { [ "$(id -u)" -eq 0 ] && apt-get install -y -qq wrk >/dev/null; } || { echo "install wrk"; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
rps() { # rps APP PATH [wrk args...]
  local app=$1; shift
  "$venv/bin/uvicorn" "http_apps:$app" --port "$port" --log-level warning --no-access-log &
  local pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.05; done
  wrk -t1 -c32 -d3s "$@" "http://127.0.0.1:$port/" >/dev/null  # warm-up
  wrk -t1 -c32 -d8s "$@" "http://127.0.0.1:$port/" | awk '/Requests\/sec/ {print $2}'
  kill $pid; wait $pid 2>/dev/null || true
}
for round in 1 2 3; do
  b=$(rps bare); w=$(rps wrapped)
  echo "round $round: bare $b req/s, with middleware (passthrough) $w req/s, ratio $(python3 -c "print(f'{$w/$b:.3f}')")"
done
