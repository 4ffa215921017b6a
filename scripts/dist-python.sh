#!/usr/bin/env bash
# `make dist` for Python: the abi3 wheel (the `dist` profile: LTO, one codegen unit,
# stripped; manylinux2014: glibc ≥ 2.17, linked with zig so this machine's newer glibc does
# not leak into it) and the sdist (the Rust sources of the core and the binding inside,
# building on its own), into OUT.
#
#   scripts/dist-python.sh OUT
set -euo pipefail
out=$(mkdir -p "$1" && cd "$1" && pwd)
cd "$(dirname "$0")/.."
source scripts/dist-tools.sh
cd python
CARGO_TARGET_DIR="$dist_target_dir/dist-wheel" \
  maturin build --quiet --profile dist --zig --compatibility manylinux2014 --out "$out"
maturin sdist --out "$out"
