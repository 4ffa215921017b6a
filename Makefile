# The two commands of the README: `make demo` and `make test`. `make help` lists the rest.
SHELL := /bin/bash
# One target directory outside the clone, shared by every build (and by CI on this
# machine); one explicit target triple so napi/maturin builds later share it too.
export CARGO_TARGET_DIR ?= /var/tmp/idempo-target
export CARGO_BUILD_TARGET ?= x86_64-unknown-linux-gnu
export CARGO_TERM_COLOR ?= never
BIN := $(CARGO_TARGET_DIR)/$(CARGO_BUILD_TARGET)/debug
VENV := $(or $(IDEMPO_VENV),.venv)

.PHONY: help demo test lint fixtures toolchain fuzz soak bench bench-tower bench-encryption bench-stores bench-python bench-node python-env node-env dist

## help: list the targets
help:
	@awk '/^##   /{ sub(/^##   /, ""); printf "  %-18s %s\n", "", $$0; next } \
	  /^## /{ sub(/^## /, ""); split($$0, a, ": "); printf "  make %-13s %s\n", a[1], substr($$0, length(a[1]) + 3) }' $(MAKEFILE_LIST)

## demo: build the example server, show a first call, a replay, a 409 and a 422, stop it
demo: toolchain
	cargo build --quiet -p idempo --example demo
	scripts/demo.sh $(BIN)/examples/demo

## test: the linters, then every test against real Redis, Redis Cluster and PostgreSQL
##   (throwaway servers unless REDIS_URL, REDIS_CLUSTER_URLS and DATABASE_URL are set),
##   and the packages of `make dist` installed as users install them
test: toolchain lint fixtures python-env node-env dist
	scripts/with-services.sh scripts/test-all.sh

## lint: rustfmt, clippy, ruff and mypy --strict (Python), ESLint (JavaScript), one
##   version number in Cargo.toml, python/pyproject.toml and node/package.json, and the
##   crate's docs as docs.rs builds them
lint: toolchain python-env node-env
	$(VENV)/bin/python scripts/check-versions.py
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(VENV)/bin/ruff check .
	cd python && ../$(VENV)/bin/python -m mypy --strict --no-incremental idempo idempo_examples
	node/node_modules/.bin/eslint .
	scripts/docs-rs.sh

## node-env: node/node_modules and the debug addon node/idempo.node
node-env: toolchain
	scripts/node-env.sh

## python-env: the virtualenv (.venv) with the idempo package built from source
python-env: toolchain
	scripts/python-env.sh

## dist: release packages into dist/ (the `dist` profile: LTO, stripped): the Python abi3
##   manylinux2014 wheel and the sdist, the npm main package and this platform's prebuilt
##   addon package, and the crate (`cargo package`); other platforms are built by
##   .github/workflows/release.yml
dist: toolchain
	rm -rf dist
	# The tools first (the two builds would both install them), then the wheel and the
	# addon at once: each ends in a single-threaded LTO link.
	source scripts/dist-tools.sh
	scripts/dist-python.sh dist & wheel=$$!; scripts/dist-node.sh dist; npm=$$?; wait $$wheel && [ $$npm -eq 0 ]
	scripts/dist-crate.sh dist

## fixtures: build every conformance fixture app (tests/fixtures/apps.json)
fixtures: toolchain python-env node-env
	cargo build -p idempo-fixture

toolchain:
	@scripts/toolchain.sh

## fuzz: every cargo-fuzz target for FUZZ_SECONDS (default 60) each (nightly toolchain;
##   make test runs 15 s each)
fuzz: toolchain
	scripts/fuzz.sh

## soak: sustained mixed load on every fixture app, one store at a time; no duplicate
##   execution, memory flat after the warm-up (about 50 minutes; not part of make test)
soak: toolchain
	scripts/with-services.sh scripts/soak.sh

## bench: every integration's fixture app and the peer libraries under the same HTTP
##   load on every store, into benches/README.md (about 25 minutes; not part of make test)
bench: toolchain
	scripts/with-services.sh scripts/bench.sh

## bench-tower: the tower layer in process: criterion, allocations, callgrind instructions
bench-tower: toolchain
	scripts/bench-tower.sh

## bench-encryption: what encryption at rest adds to a replay of 1 KiB (criterion, in process)
bench-encryption: toolchain
	cargo bench -p idempo-benches --bench encryption

## bench-stores: criterion benchmarks of every store on loopback (release build)
bench-stores: toolchain
	scripts/with-services.sh scripts/bench-stores.sh

## bench-python: the Python middleware's own cost in-process, and uvicorn throughput
bench-python: toolchain
	scripts/bench-python.sh

## bench-node: the Express/Fastify middleware's own cost in-process, and wrk throughput
bench-node: toolchain
	scripts/bench-node.sh
