#!/usr/bin/env bash
# `make dist` for npm: the addon in the `dist` profile (LTO, one codegen unit, stripped)
# for TARGET (default: this machine's), then the platform package and the main package
# (node/scripts/dist.js) into OUT. A glibc Linux addon is linked with zig against glibc
# 2.17, as the wheel is, so it loads on any distribution from CentOS 7 on; other targets
# are built natively on a machine of that platform (.github/workflows/release.yml).
#
#   scripts/dist-node.sh OUT [TARGET] [--all-targets]
set -euo pipefail
out=$(mkdir -p "$1" && cd "$1" && pwd)
cd "$(dirname "$0")/.."
shift
target=$(rustc -vV | sed -n 's/^host: //p')
options=()
for arg; do [[ $arg == --* ]] && options+=("$arg") || target=$arg; done
case "$target" in
  *-linux-gnu)
    source scripts/dist-tools.sh
    export CARGO_TARGET_DIR="$dist_target_dir/dist-npm"
    cargo zigbuild --quiet --profile dist -p idempo-node --target "$target.2.17"
    addon=$CARGO_TARGET_DIR/$target/dist/libidempo_node.so ;;
  *)
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}/dist-npm
    # musl links the C runtime statically by default, which a loadable addon cannot do.
    [[ $target == *-musl ]] && export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=-crt-static"
    cargo build --quiet --profile dist -p idempo-node --target "$target"
    case "$target" in
      *-apple-darwin) addon=$CARGO_TARGET_DIR/$target/dist/libidempo_node.dylib ;;
      *-windows-*) addon=$CARGO_TARGET_DIR/$target/dist/idempo_node.dll ;;
      *) addon=$CARGO_TARGET_DIR/$target/dist/libidempo_node.so ;;
    esac ;;
esac
node node/scripts/dist.js "$out" --addon "$addon" ${options[@]+"${options[@]}"}
