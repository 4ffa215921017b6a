#!/usr/bin/env bash
# make bench-tower (issue 17): the tower layer in process. Criterion medians, heap
# allocations per request (a counting allocator) and instructions per request under
# callgrind, each against the bare app and a no-op layer, into benches/README.md between
# the `<!-- tower:begin -->` and `<!-- tower:end -->` markers, with the budgets.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/idempo-target}
command -v valgrind >/dev/null || { echo "bench-tower: valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cargo bench -q -p idempo-benches --bench tower -- --output-format bencher 2>/dev/null | tee "$out/criterion"
cargo bench -q -p idempo-benches --bench allocations 2>/dev/null | tee "$out/allocations"
bin=$(cargo bench -q -p idempo-benches --bench tower --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys; print([m["executable"] for m in map(json.loads, sys.stdin) if m.get("executable") and "tower" in m["target"]["name"]][-1])')
for variant in bare noop passthrough replay first; do
  for n in 200 1200; do
    TOWER_CALLS="$variant:$n" valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" 2>&1 \
      | sed -n 's/.*Collected : \([0-9]*\).*/\1/p' > "$out/ir-$variant-$n"
  done
done
python3 benches/tower_table.py "$out" benches/README.md
