# The two commands: `make run` and `make test`. Every target installs what is missing first.
# `make fuzz` and `make asan` are the long checks (docs/testing.md).
BUILD_DIR ?= build
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release

# Fuzz targets (tests/fuzz): clang-14 + libFuzzer + ASan + UBSan, in their own build directory.
FUZZ_BUILD_DIR ?= build-fuzz
# FUZZ_RUNS: inputs per target in `make fuzz`, after its seeds; FUZZ_SECONDS: a time bound per
# target (0: none); FUZZ_SMOKE_RUNS: inputs per target in `make test`; FUZZ_TARGETS: some targets
# only (empty: all).
FUZZ_RUNS ?= 1000000
FUZZ_SECONDS ?= 0
FUZZ_SMOKE_RUNS ?= 20000
FUZZ_TARGETS ?=

# The whole suite under ASan + UBSan + LSan, assertions on (docs/testing.md, "make asan").
ASAN_BUILD_DIR ?= build-asan
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize=vptr -fno-sanitize-recover=undefined \
             -fno-omit-frame-pointer
SAN_LOGS = $(CURDIR)/$(ASAN_BUILD_DIR)/sanitizer-logs

.PHONY: all bootstrap build run test bench clean format fuzz-build fuzz asan tsan install

all: build

bootstrap:
	@./scripts/bootstrap.sh

build: bootstrap
	@cmake -S . -B $(BUILD_DIR) -G Ninja $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD_DIR)

run: build
	./$(BUILD_DIR)/wasmq serve --config config/broker.toml

# PREFIX/bin/wasmq, V8 in PREFIX/lib/wasmq, the SDKs and an example configuration in
# PREFIX/share/wasmq, the systemd unit in PREFIX/lib/systemd/system; DESTDIR honoured. The tree
# can be moved (RUNPATH $ORIGIN/../lib/wasmq). docs/operations.md, "Install and run as a service".
PREFIX ?= /usr/local
install: build
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD_DIR) --prefix $(PREFIX)

test: build fuzz-build
	ctest --test-dir $(FUZZ_BUILD_DIR) --output-on-failure -j2
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j2

fuzz-build: bootstrap
	@cmake -S tests/fuzz -B $(FUZZ_BUILD_DIR) -G Ninja -DCMAKE_C_COMPILER=clang-14 \
	  -DCMAKE_CXX_COMPILER=clang++-14 -DFUZZ_SMOKE_RUNS=$(FUZZ_SMOKE_RUNS) >/dev/null
	@cmake --build $(FUZZ_BUILD_DIR)

fuzz: fuzz-build
	tests/fuzz/run_fuzz.sh --build-dir $(FUZZ_BUILD_DIR) --runs $(FUZZ_RUNS) \
	  --seconds $(FUZZ_SECONDS) --keep-corpus $(FUZZ_TARGETS)

# Reports of every process, `wasmq serve` children included, go to files: any file fails the run.
# allow_user_segv_handler=1 lets V8 install its wasm trap handler (guest out-of-bounds accesses).
asan: bootstrap
	@cmake -S . -B $(ASAN_BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
	  -DCMAKE_C_FLAGS="$(SAN_FLAGS)" -DCMAKE_CXX_FLAGS="$(SAN_FLAGS)" \
	  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
	  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
	@cmake --build $(ASAN_BUILD_DIR)
	@rm -rf $(SAN_LOGS) && mkdir -p $(SAN_LOGS)
	ASAN_OPTIONS="detect_leaks=1:handle_segv=1:allow_user_segv_handler=1:check_initialization_order=1:strict_init_order=1:log_path=$(SAN_LOGS)/asan:log_exe_name=1" \
	UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$(SAN_LOGS)/ubsan:log_exe_name=1" \
	  ctest --test-dir $(ASAN_BUILD_DIR) --output-on-failure -j2
	@if [ -n "$$(ls -A $(SAN_LOGS))" ]; then \
	  echo "sanitizer reports in $(SAN_LOGS):"; cat $(SAN_LOGS)/*; exit 1; fi
	@echo "asan: no sanitizer report"

# The storage, broker, ETL and HTTP unit tests under ThreadSanitizer, built with clang-14 (with
# -Wthread-safety for the annotated locks). V8 is not instrumented: races inside it are not
# seen, races between it and our code are.
TSAN_BUILD_DIR ?= build-tsan
TSAN_LOGS = $(CURDIR)/$(TSAN_BUILD_DIR)/sanitizer-logs
tsan: bootstrap
	@cmake -S . -B $(TSAN_BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
	  -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
	  -DCMAKE_C_FLAGS="-fsanitize=thread" -DCMAKE_CXX_FLAGS="-fsanitize=thread -Wthread-safety -Werror=thread-safety" \
	  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" >/dev/null
	@cmake --build $(TSAN_BUILD_DIR) --target storage_test broker_test etl_test http_test kafka_test
	@rm -rf $(TSAN_LOGS) && mkdir -p $(TSAN_LOGS)
	@cd $(TSAN_BUILD_DIR) && failed=0; for t in storage_test broker_test etl_test http_test kafka_test; do \
	  TSAN_OPTIONS="halt_on_error=0:second_deadlock_stack=1:suppressions=$(CURDIR)/tests/tsan.supp:log_path=$(TSAN_LOGS)/tsan:log_exe_name=1" \
	    ./$$t --gtest_brief=1 || failed=1; done; exit $$failed
	@if [ -n "$$(ls -A $(TSAN_LOGS))" ]; then \
	  echo "sanitizer reports in $(TSAN_LOGS):"; cat $(TSAN_LOGS)/*; exit 1; fi
	@echo "tsan: no sanitizer report"

bench: build
	python3 bench/engine_bench.py --build-dir $(BUILD_DIR)
	python3 bench/broker_bench.py --build-dir $(BUILD_DIR)
	python3 bench/etl_bench.py --build-dir $(BUILD_DIR)
	python3 bench/pool_bench.py --build-dir $(BUILD_DIR)
	python3 bench/kafka_bench.py --build-dir $(BUILD_DIR)

format:
	clang-format -i $$(git ls-files 'src/*.cc' 'src/*.h' 'tests/*.cc' 'tests/*.h')

clean:
	rm -rf $(BUILD_DIR) $(FUZZ_BUILD_DIR) $(ASAN_BUILD_DIR) $(TSAN_BUILD_DIR)
