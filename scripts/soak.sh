#!/usr/bin/env bash
# make soak: optimised builds of every fixture app and the load generator, then
# benches/soak/soak.py (sustained mixed load per store; memory flat, nothing run twice).
# The services come from scripts/with-services.sh. Arguments go to soak.py.
set -euo pipefail
cd "$(dirname "$0")/.."
export IDEMPO_PROFILE=release IDEMPO_VENV=.venv-bench
cargo build --quiet --release -p idempo-fixture
cargo build --quiet --release -p idempo-benches --bin idempo-load
scripts/python-env.sh
scripts/node-env.sh
(cd node && IDEMPO_NATIVE_PROFILE=release node scripts/build-native.js)
# The tests use the debug addon: put it back afterwards.
trap '(cd node && IDEMPO_NATIVE_PROFILE=debug node scripts/build-native.js >/dev/null)' EXIT
python3 benches/soak/soak.py "$@"
