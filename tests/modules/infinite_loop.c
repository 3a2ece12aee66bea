/* Hostile test module: process_message never returns. The loop stores to a volatile object on
 * every turn, so the compiler must keep it. Only the host's execution timeout ends the call. */
#include "wasmq_module.h"

static volatile uint32_t spin_count;

WASMQ_EXPORT_ALLOCATOR();

WASMQ_EXPORT("process_message") uint32_t process_message(uint32_t address, uint32_t len);
WASMQ_EXPORT("process_message") uint32_t process_message(uint32_t address, uint32_t len) {
  (void)address;
  (void)len;
  for (;;) spin_count = spin_count + 1;
}
