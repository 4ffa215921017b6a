# Sourced by scripts/bench.sh and scripts/soak.sh: optimised builds of every fixture app
# (IDEMPO_PROFILE=release, Python in .venv-bench, the release Node addon) and of the load
# generator. The Node addon goes back to the debug build the tests use when the caller
# exits.
export IDEMPO_PROFILE=release IDEMPO_VENV=.venv-bench
cargo build --quiet --release -p idempo-fixture
cargo build --quiet --release -p idempo-benches --bin idempo-load
scripts/python-env.sh
scripts/node-env.sh
(cd node && IDEMPO_NATIVE_PROFILE=release node scripts/build-native.js)
trap '(cd node && IDEMPO_NATIVE_PROFILE=debug node scripts/build-native.js >/dev/null)' EXIT
