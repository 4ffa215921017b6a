#!/usr/bin/env bash
# make soak: optimised builds of every fixture app and the load generator, then
# benches/soak/soak.py (sustained mixed load per store; memory flat, nothing run twice).
# The services come from scripts/with-services.sh. Arguments go to soak.py; without any,
# the results table in benches/README.md is rewritten.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/release-builds.sh
if [ $# -eq 0 ]; then
  set -- --write benches/README.md
fi
python3 benches/soak/soak.py "$@"
