#!/usr/bin/env bash
# make bench: optimised builds of everything measured, the peer libraries in a scratch
# directory, then benches/http/bench.py over every fixture app and peer on every store
# (the services come from scripts/with-services.sh). Arguments go to bench.py; without
# any, the results table in benches/README.md is rewritten, then idempo against the Node
# peer on the peer's own app (bench.py --versus), and benches/http/waiting.py
# (waiting against 409 + retry, issue 16) and scripts/bench-tower.sh (the tower layer in
# process, issue 17) write theirs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/release-builds.sh
# uvicorn as deployed (uvloop and httptools), for idempo's fixture and the peer alike.
.venv-bench/bin/python -m pip install --quiet --disable-pip-version-check "uvicorn[standard]"
benches/peers/install.sh
command -v psql >/dev/null || { echo "bench: psql is needed (apt-get install postgresql-client)" >&2; exit 1; }
if [ $# -eq 0 ]; then
  set -- --write benches/README.md --json "${CARGO_TARGET_DIR:-/var/tmp/idempo-target}/bench-results.json"
  python3 benches/http/bench.py "$@"
  # idempo against the Node peer on the peer's own app, in the same rounds (issue 17).
  python3 benches/http/bench.py --versus benches/README.md --rounds 7
  # Waiting for the original against 409 + retry (issue 16).
  python3 benches/http/waiting.py --write benches/README.md
  # The tower layer in process (issue 17).
  scripts/bench-tower.sh
else
  python3 benches/http/bench.py "$@"
fi
