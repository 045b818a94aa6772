# qface: the two set-up commands are `make run` (main job) and `make test`.
BUILD ?= build
JOBS ?= $(shell nproc)
RUN_DIR ?= runs/demo

.PHONY: all setup configure build test run bench clean

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
