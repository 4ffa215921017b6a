#!/usr/bin/env bash
# Every test suite, each closing with "<suite>: N passed, N failed", then the total.
set -uo pipefail
cd "$(dirname "$0")/.."
venv=${IDEMPO_VENV:-.venv}
status=0
results=()
run() { # run LABEL COMMAND...
  local out
  out=$(mktemp)
  scripts/run-tests.sh "$@" | tee "$out"
  local code=${PIPESTATUS[0]}
  results+=("$(tail -n 1 "$out")")
  rm -f "$out"
  [ "$code" -eq 0 ] || status=1
}
run rust cargo test --workspace
run python "$venv/bin/python" -m pytest python/idempo_tests -q -p no:cacheprovider
run node bash -c 'cd node && node --test test/*.test.js'
run conformance "$venv/bin/python" tests/conformance/driver.py --matrix
# A short fuzz run (make fuzz runs a minute per target).
run fuzz env FUZZ_SECONDS="${FUZZ_SECONDS:-15}" scripts/fuzz.sh
echo
echo "== summary"
passed=0; failed=0
for line in "${results[@]}"; do
  echo "$line"
  p=$(sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed.*/\1/p' <<<"$line"); f=$(sed -n 's/.*: \([0-9]*\) passed, \([0-9]*\) failed.*/\2/p' <<<"$line")
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
done
echo "all: $passed passed, $failed failed"
exit $status
