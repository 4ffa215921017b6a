#!/usr/bin/env bash
# The Python packages in DIST as a user installs them, into a fresh virtualenv (Starlette,
# uvicorn and Flask from the index): the wheel on a PATH without cargo or rustc, or with
# --sdist the sdist, built from its own Rust sources (cargo needed; MATURIN_PEP517_ARGS
# passes through). Then an ASGI app under uvicorn and a Flask app under WSGI each serve a
# keyed request and its replay (python/idempo_tests/dist_smoke.py). Run by
# python/idempo_tests/test_dist.py (make test) and the release workflow.
#
#   scripts/dist-python-smoke.sh DIST [--sdist]
set -euo pipefail
dist=$(cd "$1" && pwd)
repo=$(cd "$(dirname "$0")/.." && pwd)
shopt -s nullglob
if [ "${2:-}" = --sdist ]; then packages=("$dist"/idempo-*.tar.gz); else packages=("$dist"/idempo-*.whl); fi
[ ${#packages[@]} -eq 1 ] || { echo "dist-python-smoke: $dist needs one ${2:-wheel} of idempo (make dist)" >&2; exit 1; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$(command -v python3 || command -v python)" -m venv "$scratch/env"
python=$scratch/env/bin/python
[ -x "$python" ] || python=$scratch/env/Scripts/python.exe
pip() { "$python" -m pip install --quiet --disable-pip-version-check "$@"; }
if [ "${2:-}" != --sdist ]; then
  source "$repo/scripts/without-rust.sh"
  pip starlette uvicorn flask
  pip --no-index "${packages[0]}"
else
  pip starlette uvicorn flask
  pip "${packages[0]}"
fi
# Outside the repository, so `import idempo` is the installed package.
cd "$scratch"
"$python" "$repo/python/idempo_tests/dist_smoke.py"
echo "dist-python-smoke: $(basename "${packages[0]}") serves ASGI and WSGI"
