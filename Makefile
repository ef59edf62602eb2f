# Thin wrapper over CMake: the targets a newcomer types.
#   make        release build (build/release/hyperseaport)
#   make demo   install deps if missing, build, run the local demo
#   make test   install deps if missing, build with sanitizers and fuzzers, run every test
#   make fuzz   run each fuzz target for longer (FUZZ_SECONDS, default 300)
#   make bench  benchmarks against the JS reference, printed as ratios

MAKEFLAGS += --no-print-directory
JOBS ?= $(shell nproc)
RELEASE := build/release
CHECK := build/check
FUZZ_SECONDS ?= 300

.PHONY: all release check setup demo test fuzz bench clean

all: release

setup:
	@scripts/setup

release:
	@cmake -S . -B $(RELEASE) -DCMAKE_BUILD_TYPE=Release -DHSP_TESTS=ON >/dev/null
	@cmake --build $(RELEASE) -j $(JOBS)

# The test build uses clang so that the same tree also builds the libFuzzer targets.
check:
	@CC=clang cmake -S . -B $(CHECK) -DCMAKE_BUILD_TYPE=Debug -DHSP_SANITIZE=ON -DHSP_FUZZ=ON >/dev/null
	@cmake --build $(CHECK) -j $(JOBS)

demo: setup release
	@scripts/demo $(RELEASE)/hyperseaport

# Everything under ASan/UBSan in the check tree, then the unit tests under valgrind in the
# release tree (valgrind cannot run sanitized binaries).
test: setup release check
	@cd $(CHECK) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)
	@cd $(RELEASE) && ctest --output-on-failure -j $(JOBS) -L valgrind

fuzz: check
	@scripts/fuzz $(CHECK)/fuzz $(FUZZ_SECONDS)

bench: setup release
	@scripts/bench $(RELEASE)

clean:
	rm -rf build
