#!/usr/bin/env bash
# `make demo`: start the example server, show the four behaviours with curl, stop it.
set -euo pipefail
bin="$1"
url=http://127.0.0.1:8080/charges
log=$(mktemp)
"$bin" 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do
  curl -s -o /dev/null "$url" 2>/dev/null && break
  kill -0 $pid 2>/dev/null || { cat "$log"; echo "demo server did not start"; exit 1; }
  sleep 0.1
done

show() { echo; printf '$ curl -X POST %s' "$url"; for a in "$@"; do case "$a" in -*) printf ' %s' "$a" ;; *) printf " '%s'" "$a" ;; esac; done; echo; curl -s -i -X POST "$url" "$@" | grep -viE '^(date|content-length):'; echo; }

echo "== 1. First call: the charge runs (201)"
show -H 'Idempotency-Key: "order-1"' -d '{"amount":42}'
echo "== 2. The client retries: the stored response is replayed, nothing is charged twice"
show -H 'Idempotency-Key: "order-1"' -d '{"amount":42}'
echo "== 3. A duplicate while the first is still running: 409 with Retry-After"
curl -s -o /dev/null -X POST "$url" -H 'Idempotency-Key: "order-2"' -d '{"amount":7}' &
first=$!
sleep 0.3
show -H 'Idempotency-Key: "order-2"' -d '{"amount":7}'
wait $first
echo "== 4. The same key with a different body: 422"
show -H 'Idempotency-Key: "order-1"' -d '{"amount":4200}'
echo "== 5. No key on a covered route (required: true): 400"
show -d '{"amount":1}'

echo "== The server's tracing events (one per decision, keys redacted)"
sed 's/\x1b\[[0-9;]*m//g' "$log"
