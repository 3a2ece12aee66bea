/* Test module: init_module always rejects its configuration (returns 0). process_message passes
 * each message through with header `init_seen_len`: the configuration length init_module was
 * given, or "none" when init_module was not called. */
#include "wasmq_module.h"

static bool init_called = false;
static uint32_t init_config_len = 0;

/* Records the configuration's length and rejects it. */
static int reject_config(wasmq_bytes config) {
  init_called = true;
  init_config_len = config.len;
  return WASMQ_FAILED;
}

/* Passes the message through with header init_seen_len. */
static int report_init(const wasmq_message *in, wasmq_output *out) {
  char digits[WASMQ_DECIMAL_CAPACITY];
  wasmq_bytes seen_len =
      init_called ? wasmq_format_u64(init_config_len, digits) : wasmq_cstr("none");
  wasmq_header seen = {wasmq_cstr("init_seen_len"), seen_len};
  return wasmq_output_add_with_headers(out, in, &seen, 1) ? WASMQ_OK : WASMQ_FAILED;
}

WASMQ_MODULE(report_init);
WASMQ_INIT(reject_config);
