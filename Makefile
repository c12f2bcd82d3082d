# Relais: `make run` starts the hub with a demo SP and a demo IdP; `make test` runs every test.
CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

.PHONY: run build test lint check-services nextest

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
