# Palisade: every entry point a person or CI uses (the scripts do the work).
.PHONY: deps build test demo bench lab-down

deps:
	bash scripts/install-deps.sh

build: deps
	cargo build --workspace --all-targets

# The whole suite: formatting, lints, unit, BPF and end-to-end tests (needs root).
test:
	bash scripts/test.sh

# Scenario lab demo with real curl, ping and dig; tears the lab down at the end.
demo:
	bash scripts/demo.sh

bench: deps
	bash scripts/bench.sh

lab-down:
	-./target/release/palisade lab down || ./target/debug/palisade lab down
