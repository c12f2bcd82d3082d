# Relais: `make run` starts the hub with a demo SP and a demo IdP; `make test` runs every test.
CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

.PHONY: run build test lint check-services nextest fuzz

build:
	$(CARGO) build --bin relais --bin demo-idp --bin demo-sp

run: check-services build
	@TARGET_DIR="$(TARGET_DIR)" deploy/run.sh

test: check-services nextest
	$(CARGO) nextest run --workspace --no-fail-fast

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

check-services:
	@deploy/check-services.sh

nextest:
	@$(CARGO) nextest --version >/dev/null 2>&1 || $(CARGO) install cargo-nextest --locked

# Load benchmark (see README, Benchmarks): the whole sweep in about 15 minutes on 2 cores.
# BENCH_FLAGS passes options, e.g. BENCH_FLAGS="--duration 5 --modes processes".
.PHONY: bench
bench: check-services
	$(CARGO) build --release -p relais -p relais-bench
	$(CARGO) bench -p relais-bench --bench micro
	$(TARGET_DIR)/release/relais-bench --relais-bin $(TARGET_DIR)/release/relais --criterion $(TARGET_DIR)/criterion $(BENCH_FLAGS)

# Each fuzz target for FUZZ_SECONDS (default 60); needs cargo-fuzz (installed if missing).
FUZZ_SECONDS ?= 60
fuzz:
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in authorize_request token_request jose_parsing; do \
	  RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done
