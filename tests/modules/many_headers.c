/* Hostile test module: returns the input message with as many distinct extra headers as the
 * decimal header `count` says (default 100000, at most 1000000), named "h<number>" with empty
 * values. A host that de-duplicates a result's headers by scanning them would spend minutes on
 * one call, outside the call's time limit; the host's header limit must refuse it at once. */
#include "wasmq_module.h"

enum { kDefaultCount = 100000, kMaxCount = 1000000 };

static int add_headers(const wasmq_message *in, wasmq_output *out) {
  uint64_t count = kDefaultCount;
  const wasmq_header *count_header = wasmq_find_header(in, "count");
  if (count_header != NULL && !wasmq_parse_u64(count_header->value, kMaxCount, &count)) {
    wasmq_output_set_error(out, "header count must be a decimal number of at most 1000000");
    return WASMQ_FAILED;
  }
  wasmq_header *headers =
      (wasmq_header *)malloc((size_t)(count != 0 ? count : 1) * sizeof *headers);
  char *names = (char *)malloc((size_t)(count != 0 ? count : 1) * 8);
  if (headers == NULL || names == NULL) {
    wasmq_output_set_error(out, "cannot allocate the headers");
    return WASMQ_FAILED;
  }
  for (uint64_t i = 0; i < count; ++i) {
    char *name = names + i * 8;
    uint32_t len = 0;
    name[len++] = 'h';
    char digits[WASMQ_DECIMAL_CAPACITY];
    wasmq_format_u64(i, digits);
    for (const char *d = digits; *d != '\0' && len < 8; ++d) name[len++] = *d;
    headers[i].name.data = (const uint8_t *)name;
    headers[i].name.len = len;
    headers[i].value.data = (const uint8_t *)"";
    headers[i].value.len = 0;
  }
  bool added = wasmq_output_add_with_headers(out, in, headers, (uint32_t)count);
  free(names);
  free(headers);
  return added ? WASMQ_OK : WASMQ_FAILED;
}

WASMQ_MODULE(add_headers);
