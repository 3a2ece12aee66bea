/* Test module: returns every message unchanged. Exports process_batch too. */
#include "wasmq_module.h"

/* Replaces the message by an identical copy. */
static int pass_through(const wasmq_message *in, wasmq_output *out) {
  wasmq_output_add(out, in);
  return WASMQ_OK;
}

WASMQ_MODULE(pass_through);
