/* Test module for the executor: passes messages through, adding header "header" (from the
 * init_module JSON; default "counter") = this instance's call count (1, 2, ...). Fails with an
 * error result on messages whose value contains "error_word". Does not export process_batch, so
 * the host calls process_message once per message. */
#define WASMQ_NO_BATCH
#include "etl_config.h"

static char header_name[kEtlConfigStringCapacity] = "counter";
static char error_word[kEtlConfigStringCapacity];
static uint64_t calls;

static int configure(wasmq_bytes config) {
  if (!etl_config_store(config)) return WASMQ_FAILED;
  etl_config_string("header", header_name);
  etl_config_string("error_word", error_word);
  return WASMQ_OK;
}

static int count(const wasmq_message *in, wasmq_output *out) {
  ++calls;
  if (etl_contains(in->value, error_word)) {
    wasmq_output_set_error(out, "asked to fail");
    return WASMQ_FAILED;
  }
  char calls_text[WASMQ_DECIMAL_CAPACITY];
  wasmq_header counter = {wasmq_cstr(header_name), wasmq_format_u64(calls, calls_text)};
  return wasmq_output_add_with_headers(out, in, &counter, 1) ? WASMQ_OK : WASMQ_FAILED;
}

WASMQ_MODULE(count);
WASMQ_INIT(configure);
