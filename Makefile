# The two commands of the README: `make demo` and `make test`.
SHELL := /bin/bash
# One target directory outside the clone, shared by every build (and by CI on this
# machine); one explicit target triple so napi/maturin builds later share it too.
export CARGO_TARGET_DIR ?= /var/tmp/idempo-target
export CARGO_BUILD_TARGET ?= x86_64-unknown-linux-gnu
export CARGO_TERM_COLOR ?= never
BIN := $(CARGO_TARGET_DIR)/$(CARGO_BUILD_TARGET)/debug

.PHONY: demo test lint fixtures toolchain fuzz soak bench bench-stores bench-python bench-node python-env node-env

## demo: build the example server, show a first call, a replay, a 409 and a 422, stop it
demo: toolchain
	cargo build --quiet -p idempo --example demo
	scripts/demo.sh $(BIN)/examples/demo

## test: formatting, clippy, then every test in the workspace against real Redis, Redis
## Cluster and PostgreSQL (throwaway servers unless REDIS_URL, REDIS_CLUSTER_URLS and
## DATABASE_URL are set)
test: toolchain lint fixtures python-env node-env
	scripts/with-services.sh scripts/test-all.sh

## node-env: node/node_modules and the debug addon node/idempo.node
node-env: toolchain
	scripts/node-env.sh

## python-env: the virtualenv (.venv) with the idempo package built from source
python-env: toolchain
	scripts/python-env.sh

lint: toolchain
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

## fixtures: build every conformance fixture app (tests/fixtures/apps.json)
fixtures: toolchain python-env node-env
	cargo build -p idempo-fixture

toolchain:
	@scripts/toolchain.sh

## fuzz: every cargo-fuzz target in fuzz/ for FUZZ_SECONDS (default 60) each, from the
## corpus in fuzz/corpus (nightly toolchain; make test runs 15 s each)
fuzz: toolchain
	scripts/fuzz.sh

## soak: sustained mixed load on every fixture app, one store at a time: SOAK_WARMUP
## (default 300) s of warm-up, then SOAK_SECONDS (default 600) s judged per store; no
## duplicate execution, memory flat after the warm-up (benches/soak/soak.py; optimised
## builds; about 50 minutes; not part of make test)
soak: toolchain
	scripts/with-services.sh scripts/soak.sh

## bench: every integration's fixture app and the peer libraries under the same HTTP load
## on every store (benches/http/bench.py), written into benches/README.md's results table.
## Optimised builds; takes about 25 minutes; not part of make test.
bench: toolchain
	scripts/with-services.sh scripts/bench.sh

## bench-stores: criterion benchmarks of every store on loopback (release build; not part
## of make test). Figures go in benches/README.md.
bench-stores: toolchain
	scripts/with-services.sh scripts/bench-stores.sh

## bench-python: the Python middleware's own cost in-process, and uvicorn throughput
## against the bare app (release build in .venv-bench; not part of make test)
bench-python: toolchain
	scripts/bench-python.sh

## bench-node: the Express/Fastify middleware's own cost in-process, and wrk throughput
## against the bare apps (release addon; not part of make test)
bench-node: toolchain
	scripts/bench-node.sh
