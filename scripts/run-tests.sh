#!/usr/bin/env bash
# Run one test command, keep its output, and close with one summary line
# ("<label>: N passed, N failed") so a reader (or CI) sees the totals at the end.
set -uo pipefail
label="$1"; shift
log=$(mktemp)
"$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# cargo's "test result: ok. N passed; M failed" lines, pytest's "N passed, M failed", or
# node's "# pass N" / "# fail N".
read -r passed failed < <(awk '
  /^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
  /^[0-9]+ (passed|failed)/ || /^=+ .*(passed|failed).* =+$/ || /^[0-9]+ passed,/ {
    for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed,?$/) p += $(i-1); if ($(i) ~ /^failed,?$/) f += $(i-1); if ($(i) ~ /^errors?,?$/) f += $(i-1) } }
  /^conformance: [0-9]+ passed, [0-9]+ failed/ { p += $2; f += $4 }
  /^# pass [0-9]+$/ { p += $3 }
  /^# fail [0-9]+$/ { f += $3 }
  END { print p+0, f+0 }' "$log")
rm -f "$log"
echo
echo "$label: $passed passed, $failed failed"
if [ "$status" -eq 0 ] && [ "$passed" -eq 0 ]; then
  echo "$label: no test ran" >&2
  exit 1
fi
exit "$status"
