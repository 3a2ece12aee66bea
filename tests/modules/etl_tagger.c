/* Test module for the executor: changes messages as its configuration (init_module JSON) says.
 * Exports process_batch.
 *
 *   "filter_word": w        value contains w -> no output (filtered); checked first
 *   "header": h             sets header h to "header_value" (default "1")
 *   "count_header": h       sets header h to this instance's call count (1, 2, ...)
 *   "remove_header": h      removes header h
 *   "key": k                sets the key
 *   "value": v              sets the value
 *   "append": s             appends s to the value (after "value")
 *   "timestamp": n          sets the timestamp
 *   "route": t              sets header wasmq.topic to t
 *   "stop": true            should_continue false
 *   "copies": n             n outputs (split), each with header "copy" = 0..n-1 when n != 1
 *
 * Without configuration it returns every message unchanged. */
#include "etl_config.h"

enum { kMaxCopies = 100 };

static char header_name[kEtlConfigStringCapacity], header_value[kEtlConfigStringCapacity] = "1";
static char count_header[kEtlConfigStringCapacity], remove_header[kEtlConfigStringCapacity];
static char new_key[kEtlConfigStringCapacity], new_value[kEtlConfigStringCapacity];
static char append[kEtlConfigStringCapacity], route[kEtlConfigStringCapacity];
static char filter_word[kEtlConfigStringCapacity];
static bool has_header, has_count_header, has_remove, has_key, has_value, has_timestamp, stop;
static bool has_route;
static int64_t new_timestamp, copies = 1;
static uint64_t calls;

static int configure(wasmq_bytes config) {
  if (!etl_config_store(config)) return WASMQ_FAILED;
  has_header = etl_config_string("header", header_name);
  etl_config_string("header_value", header_value);
  has_count_header = etl_config_string("count_header", count_header);
  has_remove = etl_config_string("remove_header", remove_header);
  has_key = etl_config_string("key", new_key);
  has_value = etl_config_string("value", new_value);
  etl_config_string("append", append);
  has_timestamp = etl_config_int("timestamp", &new_timestamp);
  has_route = etl_config_string("route", route);
  etl_config_string("filter_word", filter_word);
  stop = etl_config_true("stop");
  etl_config_int("copies", &copies);
  if (copies < 0 || copies > kMaxCopies) return WASMQ_FAILED;
  return WASMQ_OK;
}

/* True when `name` is one this module sets or removes, so the input's header is dropped. */
static bool replaced(wasmq_bytes name) {
  return (has_header && wasmq_bytes_equal_cstr(name, header_name)) ||
         (has_count_header && wasmq_bytes_equal_cstr(name, count_header)) ||
         (has_remove && wasmq_bytes_equal_cstr(name, remove_header)) ||
         (has_route && wasmq_bytes_equal_cstr(name, "wasmq.topic")) ||
         (copies != 1 && wasmq_bytes_equal_cstr(name, "copy"));
}

static int tag(const wasmq_message *in, wasmq_output *out) {
  ++calls;
  if (etl_contains(in->value, filter_word)) return WASMQ_OK;
  if (stop) wasmq_output_set_should_continue(out, false);

  wasmq_message message = *in;
  if (has_key) {
    message.has_key = 1;
    message.key = wasmq_cstr(new_key);
  }
  if (has_value) message.value = wasmq_cstr(new_value);
  size_t append_len = strlen(append);
  uint8_t *value = (uint8_t *)malloc(message.value.len + append_len + 1);
  wasmq_header *headers = (wasmq_header *)malloc((in->header_count + 4) * sizeof(wasmq_header));
  if (value == NULL || headers == NULL) {
    free(value);
    free(headers);
    wasmq_output_set_error(out, "out of memory");
    return WASMQ_FAILED;
  }
  if (message.value.len != 0) memcpy(value, message.value.data, message.value.len);
  memcpy(value + message.value.len, append, append_len);
  message.value.data = value;
  message.value.len += (uint32_t)append_len;
  if (has_timestamp) message.timestamp = new_timestamp;

  uint32_t count = 0;
  for (uint32_t i = 0; i < in->header_count; ++i) {
    if (!replaced(in->headers[i].name)) headers[count++] = in->headers[i];
  }
  char calls_text[WASMQ_DECIMAL_CAPACITY];
  if (has_header) {
    headers[count++] = (wasmq_header){wasmq_cstr(header_name), wasmq_cstr(header_value)};
  }
  if (has_count_header) {
    headers[count++] =
        (wasmq_header){wasmq_cstr(count_header), wasmq_format_u64(calls, calls_text)};
  }
  if (has_route) headers[count++] = (wasmq_header){wasmq_cstr("wasmq.topic"), wasmq_cstr(route)};
  message.headers = headers;

  int status = WASMQ_OK;
  for (int64_t i = 0; i < copies && status == WASMQ_OK; ++i) {
    char index_text[WASMQ_DECIMAL_CAPACITY];
    message.header_count = count;
    if (copies != 1) {
      headers[count] =
          (wasmq_header){wasmq_cstr("copy"), wasmq_format_u64((uint64_t)i, index_text)};
      message.header_count = count + 1;
    }
    if (!wasmq_output_add(out, &message)) status = WASMQ_FAILED;
  }
  free(value);
  free(headers);
  return status;
}

WASMQ_MODULE(tag);
WASMQ_INIT(configure);
