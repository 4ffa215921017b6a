# Sourced by the dist scripts: the release build tools in their own virtualenv, pinned so
# a release build is reproducible: maturin (the wheel and sdist), ziglang (a linker that
# targets an old glibc) and cargo-zigbuild (the same for the npm addon). Puts them first on
# PATH; maturin and cargo-zigbuild find zig through that Python (`python -m ziglang`).
#
# The zig linker is a wrapper script whose path is derived from the tool's own path, and
# cargo hashes the linker into every crate's fingerprint. So the virtualenv lives beside
# the shared target directory (IDEMPO_DIST_VENV, default $CARGO_TARGET_DIR/dist-venv), not
# in the checkout, or each clone would rebuild every dependency; and the wheel and the npm
# addon build into their own target directories, or each would undo the other's.
dist_tools=("maturin==1.16.0" "ziglang==0.17.1" "cargo-zigbuild==0.24.1")
dist_venv=${IDEMPO_DIST_VENV:-${CARGO_TARGET_DIR:-$PWD/target}/dist-venv}
pinned=$("$dist_venv/bin/python" -m pip freeze 2>/dev/null | grep -cxF -f <(printf '%s\n' "${dist_tools[@]}") || true)
if [ "${pinned:-0}" -ne "${#dist_tools[@]}" ]; then
  python3 -m venv "$dist_venv"
  "$dist_venv/bin/python" -m pip install --quiet --disable-pip-version-check "${dist_tools[@]}"
fi
dist_venv=$(cd "$dist_venv" && pwd)
export PATH="$dist_venv/bin:$PATH"
dist_target_dir=${CARGO_TARGET_DIR:-$PWD/target}
