/* Test module: splits, filters, fails or stops on request, driven by the message itself.
 *
 *   header `fail` present      -> error result "asked to fail"
 *   value `filter-me`          -> no output (filtered)
 *   otherwise                  -> N copies, N = header `copies` (decimal, default 2, at most
 *                                 kMaxCopies), each with header `copy_index` = 0..N-1
 *   header `stop` present      -> should_continue false (with the copies)
 */
#include "wasmq_module.h"

enum { kDefaultCopies = 2, kMaxCopies = 10000 };

/* Emits the copies described above. */
static int split(const wasmq_message *in, wasmq_output *out) {
  if (wasmq_find_header(in, "fail") != NULL) {
    wasmq_output_set_error(out, "asked to fail");
    return WASMQ_FAILED;
  }
  if (wasmq_bytes_equal_cstr(in->value, "filter-me")) return WASMQ_OK;
  if (wasmq_find_header(in, "stop") != NULL) wasmq_output_set_should_continue(out, false);

  uint64_t copies = kDefaultCopies;
  const wasmq_header *copies_header = wasmq_find_header(in, "copies");
  if (copies_header != NULL && !wasmq_parse_u64(copies_header->value, kMaxCopies, &copies)) {
    wasmq_output_set_error(out, "header copies must be a decimal number from 0 to 10000");
    return WASMQ_FAILED;
  }
  for (uint64_t i = 0; i < copies; ++i) {
    char digits[WASMQ_DECIMAL_CAPACITY];
    wasmq_header copy_index = {wasmq_cstr("copy_index"), wasmq_format_u64(i, digits)};
    if (!wasmq_output_add_with_headers(out, in, &copy_index, 1)) return WASMQ_FAILED;
  }
  return WASMQ_OK;
}

WASMQ_MODULE(split);
