/* Light module without process_batch, as the seeds' modules are: adds the header
 * `processed-by: wasmq` to every message and passes it on. The benchmarks deploy it under the
 * names of the seed pipeline's transforming modules; the host calls process_message once per
 * message. */
#define WASMQ_NO_BATCH
#include "wasmq_module.h"

static const wasmq_header kAdded[] = {
    {{(const uint8_t *)"processed-by", 12}, {(const uint8_t *)"wasmq", 5}},
};

static int add_header(const wasmq_message *in, wasmq_output *out) {
  return wasmq_output_add_with_headers(out, in, kAdded, 1) ? WASMQ_OK : WASMQ_FAILED;
}

WASMQ_MODULE(add_header);
