# zbpf's top-level GNU Makefile (the kernel module's BSD Makefile is kmod/Makefile).
#
#   make deps          install missing Debian packages and the FreeBSD headers
#   make test          deps + fmt + clippy + unit + abi-check + lint-scripts
#   make fmt           cargo fmt --check
#   make clippy        cargo clippy, warnings are errors
#   make unit          cargo test
#   make abi-check     src/abi against FreeBSD's headers, with its self-test
#   make lint-scripts  shellcheck the shell scripts
#   make demo ARGS=... run the demo

SHELL := /bin/sh
CARGO_HOME ?= $(HOME)/.cargo
export PATH := $(CARGO_HOME)/bin:$(PATH)

CARGO ?= cargo
FEATURES ?= hosted
# Extra flags for `cargo test` (e.g. --release).
UNIT_FLAGS ?=
ARGS ?=

# Prints the stage's name, and its wall time when it ends (failed or not).
STAGE = @echo "==> $@"; t0=$$(date +%s); trap 'echo "<== $@: $$(($$(date +%s) - t0)) s"' EXIT;

.PHONY: all deps test fmt clippy unit abi-check lint-scripts demo

all: test

deps:
	$(STAGE) bash scripts/deps.sh

test: deps fmt clippy unit abi-check lint-scripts

fmt: deps
	$(STAGE) $(CARGO) fmt --check

clippy: deps
	$(STAGE) $(CARGO) clippy --all-targets --features $(FEATURES) -- -D warnings

unit: deps
	$(STAGE) $(CARGO) test --features $(FEATURES) $(UNIT_FLAGS)

abi-check: deps
	$(STAGE) ABIGEN_FEATURES="$(FEATURES)" bash scripts/abi-check.sh

lint-scripts: deps
	$(STAGE) shellcheck scripts/*.sh .ci/run

demo: deps
	$(STAGE) $(CARGO) run --release --features $(FEATURES) --bin zbpf-demo -- $(ARGS)
