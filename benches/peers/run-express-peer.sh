#!/usr/bin/env bash
# Start a Node peer app (PEER=node-idempotency|express-idempotency) from the repository
# root, configured by PORT, IDEMPO_STORE and IDEMPO_BARE like the fixture apps.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec node benches/peers/express_peers.js
