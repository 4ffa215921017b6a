#!/usr/bin/env bash
# Throughput of each framework's bare app and the same app behind idempo, measured with
# wrk on loopback in one run, alternating, three rounds, GET (passthrough) requests.
set -euo pipefail
cd "$(dirname "$0")"
command -v wrk >/dev/null || { [ "$(id -u)" -eq 0 ] && apt-get install -y -qq wrk >/dev/null; } || { echo "install wrk"; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
rps() { # rps APP WRAPPED
  APP=$1 WRAPPED=$2 PORT=$port node http_app.js &
  local pid=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.05; done
  wrk -t1 -c32 -d3s ${WRK_ARGS:-} "http://127.0.0.1:$port/" >/dev/null
  wrk -t1 -c32 -d6s ${WRK_ARGS:-} "http://127.0.0.1:$port/" | awk '/Requests\/sec/ {print $2}'
  kill $pid; wait $pid 2>/dev/null || true
}
# Two cores serve both wrk and the app, so single runs vary by several percent:
# ROUNDS (default 5) alternating rounds, and the median of each side.
for app in ${APPS:-express fastify}; do
  bare=(); with=()
  for round in $(seq ${ROUNDS:-5}); do
    bare+=("$(rps $app 0)"); with+=("$(rps $app "${WITH:-1}")")
    echo "$app round $round: bare ${bare[-1]} req/s, with idempo (passthrough) ${with[-1]} req/s"
  done
  python3 -c "import statistics as s; b=s.median([$(IFS=,; echo "${bare[*]}")]); w=s.median([$(IFS=,; echo "${with[*]}")]); print(f'$app median: bare {b:.0f} req/s, with idempo {w:.0f} req/s, ratio {w/b:.3f}')"
done
