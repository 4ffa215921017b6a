#!/usr/bin/env bash
# The Node middleware benchmarks with a release addon: in-process cost, then wrk over
# loopback against the bare apps (GET, and POST without a key). Restores the debug addon.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/node-env.sh
(cd node && IDEMPO_NATIVE_PROFILE=release node scripts/build-native.js)
trap '(cd node && IDEMPO_NATIVE_PROFILE=debug node scripts/build-native.js >/dev/null)' EXIT
echo "== in-process (benches/node/inprocess.js)"
node benches/node/inprocess.js
echo "== wrk, GET (passthrough)"
benches/node/http_load.sh
echo "== wrk, POST without a key (passthrough)"
WRK_ARGS="-s post.lua" benches/node/http_load.sh
