#!/usr/bin/env bash
# The Python middleware benchmarks (release build in .venv-bench): in-process ASGI cost,
# then uvicorn throughput of the bare app against the app behind the middleware.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${IDEMPO_BENCH_VENV:-.venv-bench}
IDEMPO_VENV=$venv IDEMPO_PROFILE=release scripts/python-env.sh
echo "== in-process (benches/python/asgi_inprocess.py)"
"$venv/bin/python" benches/python/asgi_inprocess.py
echo "== uvicorn + wrk, GET passthrough (benches/python/uvicorn_load.sh)"
IDEMPO_BENCH_VENV="$PWD/$venv" benches/python/uvicorn_load.sh
