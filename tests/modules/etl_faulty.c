/* Test module for the executor: fails as its configuration (init_module JSON) says, and
 * otherwise passes messages through. Exports process_batch (the SDK runs the function below
 * once per message of a batch, so "calls" counts messages processed by this instance).
 *
 *   "fail_first": n         the first n calls of this instance return an error result
 *   "error_word": w         value contains w -> error result "asked to fail on <w>"
 *   "trap_word": w          value contains w -> trap (`unreachable`)
 *   "loop_word": w          value contains w -> loops until the host ends the call
 *   "busy_ms": n            every call first spins n ms on the monotonic clock
 *
 * On success the output is the input plus header `faulty.calls` = this instance's call count. */
#include <time.h>

#include "etl_config.h"

static char error_word[kEtlConfigStringCapacity], trap_word[kEtlConfigStringCapacity];
static char loop_word[kEtlConfigStringCapacity];
static int64_t fail_first, busy_ms;
static uint64_t calls;
static volatile uint32_t spin_count;

static int configure(wasmq_bytes config) {
  if (!etl_config_store(config)) return WASMQ_FAILED;
  etl_config_string("error_word", error_word);
  etl_config_string("trap_word", trap_word);
  etl_config_string("loop_word", loop_word);
  etl_config_int("fail_first", &fail_first);
  etl_config_int("busy_ms", &busy_ms);
  return WASMQ_OK;
}

static int64_t monotonic_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static int misbehave(const wasmq_message *in, wasmq_output *out) {
  ++calls;
  if (busy_ms > 0) {
    int64_t until = monotonic_ms() + busy_ms;
    while (monotonic_ms() < until) spin_count = spin_count + 1;
  }
  if (etl_contains(in->value, loop_word)) {
    for (;;) spin_count = spin_count + 1;
  }
  if (etl_contains(in->value, trap_word)) __builtin_trap();
  if ((int64_t)calls <= fail_first) {
    wasmq_output_set_error(out, "failing the first calls on purpose");
    return WASMQ_FAILED;
  }
  if (etl_contains(in->value, error_word)) {
    char text[sizeof "asked to fail on " + kEtlConfigStringCapacity] = "asked to fail on ";
    strcat(text, error_word);
    wasmq_output_set_error(out, text);
    return WASMQ_FAILED;
  }
  char calls_text[WASMQ_DECIMAL_CAPACITY];
  wasmq_header counter = {wasmq_cstr("faulty.calls"), wasmq_format_u64(calls, calls_text)};
  return wasmq_output_add_with_headers(out, in, &counter, 1) ? WASMQ_OK : WASMQ_FAILED;
}

WASMQ_MODULE(misbehave);
WASMQ_INIT(configure);
