#!/usr/bin/env bash
# make bench-tower (issue 17): the tower layer in process. Criterion medians, heap
# allocations per request (a counting allocator) and instructions per request under
# callgrind, each against the bare app and a no-op layer, into benches/README.md between
# the `<!-- tower:begin -->` and `<!-- tower:end -->` markers, with the budgets.
#
# Valgrind hides SHA-NI, so under callgrind sha2 runs its portable code. The SHA-256 part
# is therefore counted apart (callgrind's inclusive count of `compress256`, and the blocks
# that is, priced by a calibration run) and replaced by what the SHA-NI code this machine
# runs natively costs per block, counted in its disassembly: both figures are reported.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/idempo-target}
for tool in valgrind callgrind_annotate objdump; do
  command -v "$tool" >/dev/null || { echo "bench-tower: $tool is needed (apt-get install valgrind binutils)" >&2; exit 1; }
done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cargo bench -q -p idempo-benches --bench tower -- --output-format bencher 2>/dev/null | tee "$out/criterion"
cargo bench -q -p idempo-benches --bench allocations 2>/dev/null | tee "$out/allocations"
bin=$(cargo bench -q -p idempo-benches --bench tower --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys; print([m["executable"] for m in map(json.loads, sys.stdin) if m.get("executable") and "tower" in m["target"]["name"]][-1])')
count() { # variant n: total instructions, then compress256's inclusive instructions and calls
  TOWER_CALLS="$1:$2" valgrind --tool=callgrind --callgrind-out-file="$out/cg" "$bin" 2>&1 \
    | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
  callgrind_annotate --inclusive=yes --tree=caller "$out/cg" 2>/dev/null | python3 -c '
import re, sys
lines = sys.stdin.read().splitlines()
ir = calls = 0
for i, line in enumerate(lines):
    if re.search(r"\*\s+\S*sha2::sha256::compress256 ", line):
        ir = int(line.split()[0].replace(",", ""))
        j = i - 1
        while j >= 0 and "<" in lines[j]:
            m = re.search(r"\((\d[\d,]*)x\)", lines[j])
            calls += int(m.group(1).replace(",", "")) if m else 0
            j -= 1
        break
print(ir, calls)'
}
for variant in bare noop passthrough replay first sha; do
  for n in 200 1200; do
    count "$variant" "$n" > "$out/ir-$variant-$n"
  done
done
# The SHA-NI block function sha2 runs natively: its instructions, and those of its loop
# (one 64-byte block per turn), from the disassembly.
objdump -d -C --no-show-raw-insn "$bin" > "$out/all.s"
awk '/^[0-9a-f]+ <.*sha2::sha256::x86::digest_blocks.*>:$/ { on = 1; next }
  on && /^$/ { on = 0 }
  on { print }' "$out/all.s" > "$out/shani.s"
grep -q sha_ni /proc/cpuinfo && echo yes > "$out/sha-ni-cpu" || echo no > "$out/sha-ni-cpu"
python3 benches/tower_table.py "$out" benches/README.md
