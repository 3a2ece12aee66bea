/* Hostile test module: process_message passes messages through, but process_batch returns one
 * ProcessResult fewer than the messages it was given (none for an empty batch), which the host
 * must report as a module error for the whole batch. */
#define WASMQ_NO_BATCH
#include "wasmq_module.h"

/* Replaces the message by an identical copy. */
static int pass_through(const wasmq_message *in, wasmq_output *out) {
  wasmq_output_add(out, in);
  return WASMQ_OK;
}

WASMQ_MODULE(pass_through);

WASMQ_EXPORT("process_batch") uint32_t process_batch(uint32_t address, uint32_t len);
WASMQ_EXPORT("process_batch") uint32_t process_batch(uint32_t address, uint32_t len) {
  wasmq_reader reader;
  wasmq_reader_init(&reader, (const uint8_t *)(uintptr_t)address, len);
  uint32_t count = 0;
  if (!wasmq_read_count(&reader, WASMQ_MIN_MESSAGE_BYTES, &count)) count = 0;
  uint32_t returned = count > 0 ? count - 1 : 0;

  wasmq_buffer result = {NULL, 0, 0, false};
  if (!wasmq_buffer_reserve(&result, 8)) return wasmq_deliver_result(&result, true);
  wasmq_buffer_put_u64(&result, returned);
  for (uint32_t i = 0; i < returned; ++i) {
    wasmq_output output;
    if (!wasmq_output_begin(&output, &result)) {
      result.failed = true;
      break;
    }
    wasmq_message message;
    if (wasmq_read_message(&reader, &message)) {
      pass_through(&message, &output);
      wasmq_message_release(&message);
    } else {
      wasmq_output_set_error(&output, "invalid input message");
    }
    if (!wasmq_output_finish(&output)) break;
  }
  return wasmq_deliver_result(&result, true);
}
