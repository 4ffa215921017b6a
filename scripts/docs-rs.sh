#!/usr/bin/env bash
# The crate's documentation as docs.rs builds it (core/Cargo.toml's
# package.metadata.docs.rs): nightly rustdoc, every feature, `--cfg docsrs` so each item
# shows the feature it needs, and any rustdoc warning (a broken or private link) an error.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup toolchain list | grep -q '^nightly' || {
  echo "docs-rs: the nightly Rust toolchain is needed (rustup toolchain install nightly)" >&2
  exit 1
}
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/docs-rs" RUSTDOCFLAGS="--cfg docsrs -D warnings" \
  cargo +nightly doc --quiet -p idempo --all-features --no-deps
