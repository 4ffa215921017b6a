#!/usr/bin/env bash
# Start the asgi-idempotency-header peer app (uvicorn, one worker) from the repository
# root, configured by PORT, IDEMPO_STORE and IDEMPO_BARE like the fixture apps.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${IDEMPO_PEERS_DIR:-/var/tmp/idempo-peers}
exec "$dir/py/bin/uvicorn" --app-dir benches/peers asgi_idempotency_header:app --host 127.0.0.1 \
  --port "${PORT:-8080}" --log-level warning --no-access-log
