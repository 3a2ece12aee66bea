/* Test module: returns every message unchanged, without process_batch, so the host must fall
 * back to one process_message call per message. */
#define WASMQ_NO_BATCH
#include "wasmq_module.h"

/* Replaces the message by an identical copy. */
static int pass_through(const wasmq_message *in, wasmq_output *out) {
  wasmq_output_add(out, in);
  return WASMQ_OK;
}

WASMQ_MODULE(pass_through);
