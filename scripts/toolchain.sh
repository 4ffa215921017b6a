#!/usr/bin/env bash
# Make sure the Rust tools `make` needs are here; install what is missing.
set -euo pipefail
if ! command -v cargo >/dev/null; then
  echo "cargo is not installed: install Rust with rustup (https://rustup.rs), then run make again" >&2
  exit 1
fi
for component in rustfmt clippy; do
  tool=$([ "$component" = rustfmt ] && echo "cargo fmt" || echo "cargo clippy")
  if ! $tool --version >/dev/null 2>&1; then
    echo "installing the $component component" >&2
    rustup component add "$component"
  fi
done
