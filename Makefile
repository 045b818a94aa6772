# qface: the two set-up commands are `make run` (main job) and `make test`.
BUILD ?= build
JOBS ?= $(shell nproc)
RUN_DIR ?= runs/demo

.PHONY: all setup configure build test run bench clean fuzz fuzz-build test-asan

# Reliability (docs/reliability.md); neither is part of `make test`.
#   make fuzz       libFuzzer targets (clang; scripts/setup-dev.sh), each run FUZZ_SECONDS
#   make test-asan  the whole test suite built with ASan + UBSan (GCC) in build-asan/
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= npy pickle checkpoint recordio bin_set ijb_meta config serve_request
ASAN_BUILD ?= build-asan
NICE ?= nice -n 15

all: build

setup:
	bash scripts/setup.sh

configure: setup
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

run: build
	./$(BUILD)/qface demo --out $(RUN_DIR)

clean:
	rm -rf $(BUILD)

fuzz-build:
	@command -v clang++ >/dev/null && ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 || \
	  { echo "make fuzz: needs clang++ with libFuzzer (Debian: clang libclang-rt-14-dev); run: bash scripts/setup-dev.sh" >&2; exit 1; }
	$(NICE) cmake -S . -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
	  -DQFACE_FUZZ=ON -DQFACE_BUILD_TESTS=OFF -DQFACE_BUILD_BENCH=OFF -DQFACE_PCH=OFF
	$(NICE) cmake --build $(FUZZ_BUILD) --target fuzz -j 1

fuzz: fuzz-build
	$(NICE) bash scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

test-asan: setup
	$(NICE) cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="-O1 -DNDEBUG" \
	  -DQFACE_SANITIZE=address,undefined -DQFACE_BUILD_BENCH=OFF
	$(NICE) cmake --build $(ASAN_BUILD) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/scripts/sanitizer/lsan.supp:print_suppressions=0 \
	UBSAN_OPTIONS=suppressions=$(CURDIR)/scripts/sanitizer/ubsan.supp:print_stacktrace=1:halt_on_error=1 \
	  $(NICE) ctest --test-dir $(ASAN_BUILD) --output-on-failure -j 2
