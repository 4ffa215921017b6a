#!/usr/bin/env bash
# Start the Fastify peer app (@node-idempotency/core on Fastify) from the repository root,
# configured by PORT, IDEMPO_STORE and IDEMPO_BARE like the fixture apps.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec node benches/peers/fastify_peers.js
