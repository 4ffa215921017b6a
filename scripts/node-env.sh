#!/usr/bin/env bash
# The Node test environment: node/node_modules (from package-lock.json) and node/idempo.node,
# the addon built by the package's own install script (a debug build here).
set -euo pipefail
cd "$(dirname "$0")/../node"
command -v node >/dev/null && command -v npm >/dev/null || {
  echo "node-env: Node.js ≥ 18 with npm is needed: install it (apt-get install nodejs npm)" >&2
  exit 1
}
IDEMPO_NATIVE_PROFILE=debug npm install --no-audit --no-fund --loglevel=error
