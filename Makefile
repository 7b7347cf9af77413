# strata: the two quick-start targets are `make demo` and `make test`; both install what they
# need on a fresh Debian 12 machine first (scripts/install-deps.sh).
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
FUZZ_SECONDS ?= 20
CTEST_ARGS ?=

.PHONY: all deps build asan fuzz demo test unit integration e2e bench format lint clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD) -j $(JOBS)

# Unit tests under AddressSanitizer + UndefinedBehaviorSanitizer.
asan: deps
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSTRATA_SANITIZE=ON -DSTRATA_BENCH=OFF >/dev/null
	ninja -C $(ASAN_BUILD) -j $(JOBS) strata_unit_tests
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(ASAN_BUILD)/bin/strata_unit_tests --gtest_brief=1

# libFuzzer targets: replay the corpus, then fuzz each for FUZZ_SECONDS.
fuzz: deps
	cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTRATA_FUZZ=ON \
	  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ >/dev/null
	ninja -C $(FUZZ_BUILD) -j $(JOBS) fuzzers
	bash scripts/run-fuzzers.sh $(FUZZ_BUILD)/bin $(FUZZ_SECONDS)

demo: build
	bash scripts/demo.sh $(BUILD)

test: build asan fuzz
	cd $(BUILD) && ctest --output-on-failure $(CTEST_ARGS)

unit: build
	cd $(BUILD) && ctest --output-on-failure -L unit
integration: build
	cd $(BUILD) && ctest --output-on-failure -L integration
e2e: build
	cd $(BUILD) && ctest --output-on-failure -L e2e

bench: build
	$(BUILD)/bin/runtime_vs_peers
	bash bench/image_vs_peers.sh $(BUILD)

format:
	find src tests bench -name '*.cc' -o -name '*.h' -o -name '*.c' | xargs clang-format -i

lint: build
	find src -name '*.cc' | xargs clang-tidy -p $(BUILD) --quiet

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
