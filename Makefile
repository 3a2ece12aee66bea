# The two commands: `make run` and `make test`. Every target installs what is missing first.
BUILD_DIR ?= build
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release

.PHONY: all bootstrap build run test bench clean format

all: build

bootstrap:
	@./scripts/bootstrap.sh

build: bootstrap
	@cmake -S . -B $(BUILD_DIR) -G Ninja $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD_DIR)

run: build
	./$(BUILD_DIR)/wasmq serve --config config/broker.toml

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j2

bench: build
	python3 bench/engine_bench.py --build-dir $(BUILD_DIR)
	python3 bench/broker_bench.py --build-dir $(BUILD_DIR)
	python3 bench/etl_bench.py --build-dir $(BUILD_DIR)
	python3 bench/pool_bench.py --build-dir $(BUILD_DIR)

format:
	clang-format -i $$(git ls-files 'src/*.cc' 'src/*.h' 'tests/*.cc' 'tests/*.h')

clean:
	rm -rf $(BUILD_DIR)
