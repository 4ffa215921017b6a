#!/usr/bin/env bash
# The Python test environment: a virtualenv at $IDEMPO_VENV (default .venv) holding the
# idempo package built from source (editable; a debug build, or an optimised one with
# IDEMPO_PROFILE=release, as `make bench` wants) and its test dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${IDEMPO_VENV:-.venv}
python=${PYTHON:-python3}
if ! "$python" -c 'import sys; assert sys.version_info >= (3, 10)' 2>/dev/null; then
  echo "python-env: Python 3.10 or newer is needed (found: $("$python" --version 2>&1))" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv" || {
    echo "python-env: could not create a virtualenv: install the venv module (apt-get install python3-venv)" >&2
    exit 1
  }
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "maturin>=1.16,<2"
# maturin develop: builds bindings/python into the shared target dir and installs the
# package editable, with the test extras from python/pyproject.toml.
release=()
[ "${IDEMPO_PROFILE:-debug}" = release ] && release=(--release)
(cd python && VIRTUAL_ENV="$PWD/../$venv" PATH="$PWD/../$venv/bin:$PATH" maturin develop --quiet ${release[@]+"${release[@]}"} --extras test)
