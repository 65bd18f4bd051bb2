# The README's two commands: `make run` and `make test`. Both install what is missing first.
SHELL := bash
# tools/node: the Node.js 22 that setup installs where the system's is older than Playwright needs.
export PATH := $(CURDIR)/tools/node/node_modules/.bin:$(CURDIR)/tools/node_modules/.bin:$(HOME)/.cargo/bin:$(PATH)

# Development secrets, so that publishing and callbacks work out of the box. They are public:
# set your own in the environment for anything but a local run.
export HERALD_PUBLISH_TOKEN ?= dev-only-publish-token
export HERALD_CALLBACK_SECRET ?= dev-only-callback-secret
export HERALD_WORKER_TOKEN ?= dev-only-worker-token
export HERALD_SESSION_KEY ?= dev-only-session-key-that-is-long-enough
export HERALD_ADMIN_TOKEN ?= dev-only-admin-token

.PHONY: run run-cluster example test setup setup-example setup-test lint test-rust test-js test-python test-e2e release bench bench-page bench-fanout bench-capacity bench-cluster bench-compare bench-scale check-fresh

## Set up, then run Herald at http://127.0.0.1:3000 (and its job worker), rebuilding on every change.
run: setup
	scripts/with-worker.sh cargo leptos watch

## Set up, then run two instances at http://127.0.0.1:3000 and :3001 sharing a throwaway Redis.
run-cluster: setup
	cargo leptos build
	scripts/run-cluster.sh

## Set up, then run the Flask example (examples/flask) on Herald at http://127.0.0.1:5000.
example: setup-example
	cargo leptos build
	scripts/run-example.sh

## Set up, then run every check and test: lints, Rust unit and integration tests, Playwright (the
## Flask example's spec too), the JS client and the Python helper.
test: setup-test lint test-e2e test-rust test-js test-python

setup:
	scripts/setup.sh

setup-example:
	scripts/setup.sh --example

setup-test:
	scripts/setup.sh --test

lint:
	cargo fmt --all -- --check
	cargo clippy --features testing --workspace --all-targets -- -D warnings
	cargo clippy --lib --features hydrate --target wasm32-unknown-unknown -- -D warnings
	tools/venv/bin/hadolint Dockerfile
	dclint --max-warnings 0 compose.yaml
	scripts/check-dockerfile.sh

test-e2e:
	scripts/with-worker.sh cargo leptos end-to-end

# The API suite runs three times: on the in-memory backend, then each server on a throwaway
# Redis, then with every stream served through hyper instead of the raw-socket fast path.
# `--workspace`: the unit tests of clients/rust too.
test-rust:
	cargo test --features testing --workspace
	HERALD_TEST_BACKEND=redis cargo test --features testing --test api
	HERALD_TEST_STREAMS=hyper cargo test --features testing --test api

# The browser client (clients/js) against the real binary, with Node's test runner; the binary is
# the one `cargo test --features testing` builds (so after test-rust this builds nothing).
test-js:
	[ -d clients/js/node_modules/eventsource ] && [ ! clients/js/package-lock.json -nt clients/js/node_modules/.package-lock.json ] \
	  || npm ci --prefix clients/js --no-audit --no-fund --loglevel=error
	cargo build --features testing --bin herald
	HERALD_BIN=$(CURDIR)/target/debug/herald node --test clients/js/test/*.test.js

# The Python helper (clients/python) against the real binary, in the example's venv (PyJWT).
test-python:
	cargo build --features testing --bin herald
	HERALD_BIN=$(CURDIR)/target/debug/herald examples/flask/.venv/bin/python -m unittest discover -s clients/python

## An optimised build: target/release/herald and target/site.
release: setup
	cargo leptos build --release

## Every benchmark (see README, "Performance").
bench: bench-page bench-fanout bench-capacity bench-cluster bench-compare bench-scale

## Bundle sizes and time to first tick on a release build.
bench-page: release setup-test
	scripts/bench-first-tick.sh

## The hub's fan-out against axum's Sse/Event, in one process.
bench-fanout:
	cargo bench --features testing --bench fanout

## Thousands of subscribers on the real binary: memory each, and publish-to-arrival times.
bench-capacity:
	cargo bench --features testing --bench capacity

## Two instances on one Redis against one in memory: latency at 1,000 subscribers, events/s published.
bench-cluster:
	cargo bench --features testing --bench cluster

## 100,000 subscribers over six instances on one Redis, beside one instance in memory with 10,000
## and the same 100,000 on six Nchan servers on Redis:
## latency over every delivery, memory per subscriber, Redis's cost, a burst (docs/bench/scale.svg).
bench-scale: setup-test
	cargo bench --features testing --bench scale

## Herald against Nchan, the idiomatic axum server, the seed's Flask design and a raw-write floor,
## one after another under one load generator: docs/bench/compare.svg and target/bench/compare.json.
bench-compare: setup-test
	cargo bench --features testing --bench compare

## Both commands on a fresh Debian: a debootstrap chroot per release (bookworm, then trixie) with
## only rustup's Rust, make and git, running .ci/run on a clone of HEAD. Needs root and ~15 GB, and
## takes about 20 minutes a release, so it is not part of `make test`. Options: see the script,
## e.g. `make check-fresh CHECK_FRESH_ARGS="--release bookworm --keep"`.
check-fresh:
	scripts/check-fresh.sh $(CHECK_FRESH_ARGS)
