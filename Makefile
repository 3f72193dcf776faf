# Makefile — the entry points a user types: `make demo`, `make test`. Both start by
# installing what is missing (scripts/install-deps.sh), then configure and build
# with CMake into build/ (or build-asan/ for the sanitizer run).
BUILD     ?= build
ASAN      ?= build-asan
BENCH_BUILD ?= build-bench
JOBS      ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=
DHF       := $(BUILD)/bin/dhf

.PHONY: all deps configure build test test-unit test-parity test-e2e test-asan test-faults test-slurm gpu-check-dry fuzz demo bench clean help

all: build

help:
	@echo "make demo       install deps, build, run the pipeline on the embedded default"
	@echo "make test       install deps, build, run every test (ctest)"
	@echo "make test-asan  pure-C modules and their tests under ASan+UBSan"
	@echo "make fuzz       libFuzzer runs of every parser (FUZZ_SECONDS each; clang), docs/RELIABILITY.md"
	@echo "make test-faults  the fault tests at full count (kill -9 loops x20 incl. table1, disk full, locks, bit rot)"
	@echo "make test-slurm   installs slurm-wlm+munge, runs the 3-shard job array + merge on a local cluster"
	@echo "make gpu-check-dry  scripts/gpu-check.sh's dry run on the CPU (what one GPU call will do)"
	@echo "make bench      benchmarks, built with DHF_PROFILE in build-bench/ (prints ratios; see BENCHMARKS.md)"
	@echo "make clean      remove build folders"

deps:
	@bash scripts/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS) >/dev/null

build: configure
	@cmake --build $(BUILD) -j$(JOBS)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

test-unit: build
	@cd $(BUILD) && ctest --output-on-failure -L unit
test-parity: build
	@cd $(BUILD) && ctest --output-on-failure -L parity
test-e2e: build
	@cd $(BUILD) && ctest --output-on-failure -L e2e

test-asan: deps
	@cmake -S . -B $(ASAN) -DDHF_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build $(ASAN) -j$(JOBS)
	@cd $(ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure -j$(JOBS)

test-faults: build
	@cd $(BUILD) && KILL_LOOPS=20 ctest --output-on-failure -R 'e2e_(faults|bad_inputs|table1)'

# a real one-node Slurm on localhost (Debian's slurm-wlm and munge, installed here)
test-slurm: build
	@bash scripts/install-deps.sh --slurm
	@cd $(BUILD) && ctest --output-on-failure -R 'e2e_slurm'

# the prepared GPU check, run here on the CPU (downloads the .debs it carries first)
gpu-check-dry:
	@bash scripts/gpu-check.sh dry-run

fuzz: build
	@DHF=$(CURDIR)/$(DHF) bash scripts/fuzz.sh build-fuzz

demo: build
	@bash scripts/demo.sh $(DHF)

# the benches build with DHF_PROFILE (the engine's per-pass timers) in their own folder
bench: deps
	@cmake -S . -B $(BENCH_BUILD) -DCMAKE_BUILD_TYPE=Release -DDHF_PROFILE=ON $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BENCH_BUILD) -j$(JOBS)
	@bash scripts/bench.sh $(BENCH_BUILD)

clean:
	rm -rf $(BUILD) $(ASAN) $(BENCH_BUILD) build-fuzz
