/* Hostile test module: returns one message whose value is kDefaultBytes (17 MiB) of 'x', or as
 * many bytes as the decimal header `size` says (at most kMaxBytes), to test the host's
 * max_output_bytes limit (16 MiB by default). Key, headers and timestamp are kept. */
#include "wasmq_module.h"

enum { kDefaultBytes = 17 * 1024 * 1024, kMaxBytes = 1024 * 1024 * 1024 };

/* Replaces the value by a run of 'x'. */
static int inflate(const wasmq_message *in, wasmq_output *out) {
  uint64_t size = kDefaultBytes;
  const wasmq_header *size_header = wasmq_find_header(in, "size");
  if (size_header != NULL && !wasmq_parse_u64(size_header->value, kMaxBytes, &size)) {
    wasmq_output_set_error(out, "header size must be a decimal number of at most 1 GiB");
    return WASMQ_FAILED;
  }
  uint8_t *value = (uint8_t *)malloc(size != 0 ? (size_t)size : 1);
  if (value == NULL) {
    wasmq_output_set_error(out, "cannot allocate the output value");
    return WASMQ_FAILED;
  }
  memset(value, 'x', (size_t)size);
  wasmq_message inflated = *in;
  inflated.value.data = value;
  inflated.value.len = (uint32_t)size;
  bool added = wasmq_output_add(out, &inflated);
  free(value);
  return added ? WASMQ_OK : WASMQ_FAILED;
}

WASMQ_MODULE(inflate);
