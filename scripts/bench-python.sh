#!/usr/bin/env bash
# The Python middleware benchmarks (release build in .venv-bench): in-process ASGI cost,
# then uvicorn throughput of the bare app against the app behind the middleware.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${IDEMPO_BENCH_VENV:-.venv-bench}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "maturin>=1.16,<2" uvicorn starlette
(cd python && VIRTUAL_ENV="$PWD/../$venv" PATH="$PWD/../$venv/bin:$PATH" maturin develop --release --quiet)
echo "== in-process (benches/python/asgi_inprocess.py)"
"$venv/bin/python" benches/python/asgi_inprocess.py
echo "== uvicorn + wrk, GET passthrough (benches/python/uvicorn_load.sh)"
IDEMPO_BENCH_VENV="$PWD/$venv" benches/python/uvicorn_load.sh
