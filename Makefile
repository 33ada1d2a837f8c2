# Thin wrapper over CMake for the two quick-start commands (see README.md).
# `make demo` and `make test` install missing Debian packages, configure, build, then run.
PY      := /usr/bin/python3
BUILD   := build
JOBS    ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release

# The sanitizer and fuzzing build (make sanitize, make fuzz, and part of make test): clang with
# ASan + UBSan, the libFuzzer targets, every C++ test and ppsim_run_scenario; no Python module.
SAN     := build-san
SAN_FLAGS := -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
             -DPPSIM_PYTHON=OFF -DPPSIM_BENCH=OFF -DPPSIM_FUZZ=ON
# make fuzz: executions per libFuzzer target (fuzz_world, slower, runs 100000) and Python inputs;
# FUZZ_ARGS=--merge folds what the fuzzers found into the committed corpora.
FUZZ_RUNS ?= 1000000
PY_FUZZ_INPUTS ?= 20000
FUZZ_ARGS ?=

# Debian packages the build and the tests need (see README "Dependencies").
DEB_PKGS := g++ cmake make pkg-config libsystemc-dev libboost-graph-dev nlohmann-json3-dev \
            pybind11-dev python3-dev python3-pybind11 python3-pytest python3-numpy \
            python3-matplotlib python3-pandas libgtest-dev googletest libbenchmark-dev \
            iproute2 ethtool clang-14 libclang-rt-14-dev llvm-14 \
            python3-tqdm python3-distributed python3-jsonschema chromium

.PHONY: all deps build san-build demo test sanitize fuzz bench bench-compare clean

all: build

deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "ppsim: installing missing Debian packages:" $$missing; \
	  if [ "$$(id -u)" != 0 ]; then echo "ppsim: need root to apt-get install (or install them yourself)" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS) -DPython3_EXECUTABLE=$(PY)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

$(SAN)/CMakeCache.txt: | deps
	cmake -S . -B $(SAN) $(SAN_FLAGS) -DPython3_EXECUTABLE=$(PY)

san-build: deps $(SAN)/CMakeCache.txt
	cmake --build $(SAN) -j $(JOBS)

demo: build
	./ppsim run scenarios/default.json --out $(BUILD)/demo
	./ppsim report $(BUILD)/demo --out reports/demo

# The Release tests (GoogleTest + pytest), then the sanitizer build's: every C++ test and every
# shipped scenario under ASan + UBSan, and a short run of each fuzz target.
test: build san-build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	cd $(SAN) && ctest --output-on-failure -j $(JOBS)

# Every C++ test and every shipped scenario (durations as shipped) under ASan + UBSan; the first
# report stops the run.
sanitize: san-build
	cd $(SAN) && ctest --output-on-failure -j $(JOBS) -L sanitize -LE fuzz

# The long forms: FUZZ_RUNS executions per libFuzzer target, PY_FUZZ_INPUTS Python inputs.
fuzz: build san-build
	$(PY) tests/fuzz/fuzz.py --build $(SAN) --runs $(FUZZ_RUNS) --long $(FUZZ_ARGS)
	PYTHONPATH=python PPSIM_BUILD=$(BUILD) $(PY) tests/python/fuzz_inputs.py --inputs $(PY_FUZZ_INPUTS)

# Google Benchmark, then the sweep benchmarks: points/s on 1 vs all cores, and a 10,000-point
# sweep of 100k-packet runs end to end (bench/bench_sweep.py; BENCH_SWEEP_ARGS=--quick for less).
BENCH_SWEEP_ARGS ?=
bench: build
	$(BUILD)/bench/ppsim_bench
	PYTHONPATH=python PPSIM_BUILD=$(BUILD) $(PY) bench/bench_sweep.py $(BENCH_SWEEP_ARGS)

# The RX path benchmarks of two builds in the same run, since only same-run ratios compare on a
# shared machine: this tree's and commit BASE's, built in a git worktree under build-base/
# (bench/compare_builds.py; BENCH_COMPARE_ARGS="--runs 9 --filter NicRx" for more or others).
BASE ?=
BASE_DIR := build-base
BENCH_COMPARE_ARGS ?=
bench-compare: build
	@test -n "$(BASE)" || { echo "make bench-compare: name the commit to compare with, BASE=<commit>" >&2; exit 2; }
	@if [ -d $(BASE_DIR)/src ]; then git -C $(BASE_DIR)/src checkout -q --detach $(BASE); \
	 else git worktree prune && git worktree add -q --detach $(BASE_DIR)/src $(BASE); fi
	cmake -S $(BASE_DIR)/src -B $(BASE_DIR)/build $(CMAKE_FLAGS) -DPPSIM_PYTHON=OFF -DPython3_EXECUTABLE=$(PY)
	cmake --build $(BASE_DIR)/build -j $(JOBS) --target ppsim_bench
	$(PY) bench/compare_builds.py $(BASE_DIR)/build/bench/ppsim_bench $(BUILD)/bench/ppsim_bench $(BENCH_COMPARE_ARGS)

clean:
	rm -rf $(BUILD) $(SAN) $(BASE_DIR)
	git worktree prune
