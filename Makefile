# Palisade: every entry point a person or CI uses.
.PHONY: deps build test demo bench lab-down fmt lint

CARGO ?= cargo

deps:
	bash scripts/install-deps.sh

build: deps
	$(CARGO) build --workspace --all-targets

fmt:
	$(CARGO) fmt --all -- --check

lint: deps
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The whole suite: formatting, lints, unit, BPF and end-to-end tests (needs root).
test: deps fmt lint build
	$(CARGO) test --workspace --no-fail-fast -- --test-threads=2

# Brings up the scenario lab, applies the scenario policies one by one, shows each outcome
# with real curl, ping and dig, then tears the lab down.
demo: deps
	$(CARGO) build --release -p palisade
	bash scripts/demo.sh target/release/palisade

bench: deps
	bash scripts/bench.sh

lab-down:
	-./target/release/palisade lab down || ./target/debug/palisade lab down
