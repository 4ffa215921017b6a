#!/usr/bin/env bash
# `make dist` for Python: the abi3 wheel (release, stripped, manylinux2014: glibc ≥ 2.17,
# linked with zig so this machine's newer glibc does not leak into it) and the sdist
# (the Rust sources of the core and the binding inside, building on its own), into OUT.
#
#   scripts/dist-python.sh OUT
#
# maturin and ziglang come from PyPI into their own virtualenv (.venv-dist).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mkdir -p "$1" && cd "$1" && pwd)
venv=${IDEMPO_DIST_VENV:-.venv-dist}
if [ ! -x "$venv/bin/maturin" ] || ! "$venv/bin/python" -c 'import ziglang' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "maturin>=1.16,<2" ziglang
fi
venv=$(cd "$venv" && pwd)
# maturin finds zig through the Python on PATH (`python -m ziglang`).
export PATH="$venv/bin:$PATH"
cd python
maturin build --quiet --release --strip --zig --compatibility manylinux2014 --out "$out"
maturin sdist --out "$out"
