#!/usr/bin/env bash
# Run every cargo-fuzz target in fuzz/ for FUZZ_SECONDS (default 60) each, starting from
# the corpus in fuzz/corpus/<target>. New inputs go to a scratch copy, so the tree stays
# clean; a crash fails the run and leaves its input in fuzz/artifacts/<target>.
# Needs the nightly toolchain (cargo fuzz builds with sanitizers); installs cargo-fuzz.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
rustup toolchain list | grep -q '^nightly' || {
  echo "fuzz: the nightly Rust toolchain is needed (rustup toolchain install nightly)" >&2
  exit 1
}
command -v cargo-fuzz >/dev/null || cargo install --quiet --locked cargo-fuzz
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/idempo-target}/fuzz"
unset CARGO_BUILD_TARGET
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd fuzz
cargo +nightly fuzz build -O 2>&1 | grep -v '^\s*Compiling' || true
total=0
targets=0
for target in $(cargo +nightly fuzz list); do
  mkdir -p "$scratch/$target"
  log="$scratch/$target.log"
  if ! cargo +nightly fuzz run -O "$target" "$scratch/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "fuzz: $target FAILED (input kept in fuzz/artifacts/$target)" >&2
    exit 1
  fi
  runs=$(grep -o 'Done [0-9]* runs' "$log" | grep -o '[0-9]*' || echo 0)
  total=$((total + runs))
  targets=$((targets + 1))
  echo "fuzz: $target: $runs executions in ${seconds}s, no crash"
done
echo "$targets passed, 0 failed, $total executions in all"
