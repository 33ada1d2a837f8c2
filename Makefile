# Thin wrapper over CMake for the two quick-start commands (see README.md).
# `make demo` and `make test` install missing Debian packages, configure, build, then run.
PY      := /usr/bin/python3
BUILD   := build
JOBS    ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release

# Debian packages the build and the tests need (see README "Dependencies").
DEB_PKGS := g++ cmake make pkg-config libsystemc-dev libboost-graph-dev nlohmann-json3-dev \
            pybind11-dev python3-dev python3-pybind11 python3-pytest python3-numpy \
            python3-matplotlib python3-pandas libgtest-dev googletest libbenchmark-dev \
            iproute2 ethtool

.PHONY: all deps build demo test bench clean

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

demo: build
	./ppsim run scenarios/default.json --out $(BUILD)/demo
	./ppsim report $(BUILD)/demo --out reports/demo

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

bench: build
	$(BUILD)/bench/ppsim_bench

clean:
	rm -rf $(BUILD)
