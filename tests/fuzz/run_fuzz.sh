#!/usr/bin/env bash
# Runs fuzz targets of the fuzz build (tests/fuzz/CMakeLists.txt) and prints one line per target:
#   fuzz <name>: ok, <N> executions in <S> s   |   fuzz <name>: FAILED (<log>)
# Exits non-zero when any target crashed, hit a sanitizer report, broke an invariant, leaked, or
# went past its memory or time limits. docs/testing.md explains the options.
#
#   run_fuzz.sh --build-dir DIR [--runs N] [--seconds S] [--seed N] [--keep-corpus] [NAME...]
#
# --runs N      inputs each target runs after its seeds (-runs); 0: no bound
# --seconds S   time bound per target (-max_total_time); 0: no bound
# --seed N      libFuzzer's random seed; 0: a new one each run
# --keep-corpus grow DIR/corpus/<name> across runs (make fuzz); without it the inputs found are
#               dropped at the end (the ctest smoke run)
# NAME...       targets (default: all). Crashing inputs land in DIR/artifacts/<name>/, logs in
#               DIR/logs/<name>.log (DIR/logs-short/ without --keep-corpus).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
all=(bincode record_batch partition_log module pipeline config produce kafka_request)

build="" runs=0 seconds=0 seed=0 keep=0 names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --keep-corpus) keep=1; shift ;;
    -*) echo "run_fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) names+=("$1"); shift ;;
  esac
done
[ -n "$build" ] || { echo "run_fuzz.sh: --build-dir is required" >&2; exit 2; }
build="$(cd "$build" && pwd)"
[ ${#names[@]} -gt 0 ] || names=("${all[@]}")

# Seeds of one target: its committed corpus (tests/fuzz/corpus/<name>; .wat compiled, .hex
# decoded: binary modules are committed as text), the
# project's test data of that format, and the generated binary seeds.
prepare_seeds() {
  local name="$1" seeds="$build/seeds/$1"
  rm -rf "$seeds" && mkdir -p "$seeds"
  local f
  for f in "$here/corpus/$name"/*; do
    [ -f "$f" ] || continue
    case "$f" in
      *.wat) wat2wasm --enable-all -o "$seeds/$(basename "$f" .wat).wasm" "$f" || return 1 ;;
      *.hex) python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(open(sys.argv[1]).read()))' \
               "$f" >"$seeds/$(basename "$f" .hex).bin" || return 1 ;;
      *) cp "$f" "$seeds/" ;;
    esac
  done
  case "$name" in
    bincode) cp "$root"/tests/data/abi-vectors/*.bin "$seeds/" ;;
    pipeline) cp "$root"/tests/data/pipelines/*.json "$seeds/" ;;
    config) cp "$root"/tests/data/config/*.toml "$seeds/" && cp "$root/config/broker.toml" "$seeds/" ;;
    module)
      for f in "$root"/tests/modules/*.wat; do
        [ -f "$f" ] || continue
        wat2wasm --enable-all -o "$seeds/tests-$(basename "$f" .wat).wasm" "$f" || return 1
      done ;;
  esac
  "$build/fuzz_seed_gen" "$build/seeds-generated" || return 1
  if [ -d "$build/seeds-generated/$name" ]; then cp "$build/seeds-generated/$name"/* "$seeds/"; fi
}

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

failed=0
for name in "${names[@]}"; do
  binary="$build/${name}_fuzz"
  # Short runs (ctest) log apart, so that they never overwrite the log of a long run.
  logs="$build/logs"
  [ $keep -eq 1 ] || logs="$build/logs-short"
  log="$logs/$name.log"
  mkdir -p "$logs" "$build/artifacts/$name"
  if [ ! -x "$binary" ]; then
    echo "fuzz $name: FAILED (no binary $binary)"; failed=1; continue
  fi
  if ! prepare_seeds "$name" >"$log" 2>&1; then
    echo "fuzz $name: FAILED (cannot prepare seeds, see $log)"; failed=1; continue
  fi
  if [ $keep -eq 1 ]; then
    corpus="$build/corpus/$name"
    mkdir -p "$corpus"
  else
    corpus="$(mktemp -d)"
  fi
  start=$(date +%s)
  # -malloc_limit_mb: no input of these sizes may make a parser allocate 256 MiB at once.
  "$binary" -runs="$runs" -max_total_time="$seconds" -seed="$seed" -timeout=25 \
    -rss_limit_mb=2048 -malloc_limit_mb=256 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$name/" "$corpus" "$build/seeds/$name" >>"$log" 2>&1
  status=$?
  elapsed=$(( $(date +%s) - start ))
  [ $keep -eq 1 ] || rm -rf "$corpus"
  executions="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  if [ $status -eq 0 ]; then
    echo "fuzz $name: ok, ${executions:-?} executions in ${elapsed} s"
  else
    echo "fuzz $name: FAILED (exit $status after ${elapsed} s; log $log, input in $build/artifacts/$name/)"
    grep -E "ERROR: |runtime error|invariant broken|SUMMARY" "$log" | head -5 | sed 's/^/  /'
    failed=1
  fi
done
exit $failed
