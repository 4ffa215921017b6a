#!/usr/bin/env bash
# `make dist` for Rust: `cargo package -p idempo` (which builds the packaged crate on its
# own, from the registry's dependencies, as `cargo publish` would), copied into OUT.
#
#   scripts/dist-crate.sh OUT
set -euo pipefail
out=$(mkdir -p "$1" && cd "$1" && pwd)
cd "$(dirname "$0")/.."
cargo package --quiet --allow-dirty -p idempo
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
cp "${CARGO_TARGET_DIR:-target}/package/idempo-$version.crate" "$out/"
