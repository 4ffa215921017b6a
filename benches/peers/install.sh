#!/usr/bin/env bash
# Install the peer libraries `make bench` compares with, from their registries, into a
# scratch directory outside the repository ($IDEMPO_PEERS_DIR, default
# /var/tmp/idempo-peers). Nothing of theirs is committed; versions are pinned here.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${IDEMPO_PEERS_DIR:-/var/tmp/idempo-peers}
mkdir -p "$dir"

# Python: asgi-idempotency-header (its Redis backend imports fastapi and redis<5). The
# framework and server are the versions idempo's own fixture runs with.
venv=${IDEMPO_VENV:-.venv-bench}
starlette=$("$venv/bin/python" -c 'import starlette; print(starlette.__version__)')
uvicorn=$("$venv/bin/python" -c 'import uvicorn; print(uvicorn.__version__)')
[ -x "$dir/py/bin/python" ] || python3 -m venv "$dir/py"
"$dir/py/bin/python" -m pip install --quiet --disable-pip-version-check \
  "asgi-idempotency-header[redis]==0.2.0" "redis>=4.2,<5" fastapi "starlette==$starlette" "uvicorn[standard]==$uvicorn"
"$dir/py/bin/python" -c 'import idempotency_header_middleware.backends.redis' || {
  echo "peers: asgi-idempotency-header does not import" >&2
  exit 1
}

# Node: @node-idempotency/core with its Redis and memory adapters (the
# @node-idempotency/express package is not in the npm registry: 404), and
# express-idempotency. Express itself is idempo's own (node/node_modules).
mkdir -p "$dir/node"
[ -f "$dir/node/package.json" ] || echo '{"name":"idempo-bench-peers","private":true}' >"$dir/node/package.json"
(cd "$dir/node" && npm install --silent --no-audit --no-fund \
  @node-idempotency/core@1.0.11 @node-idempotency/storage-adapter-redis@1.0.2 \
  @node-idempotency/storage-adapter-memory@1.0.2 express-idempotency@1.0.5)
echo "peers installed in $dir"
