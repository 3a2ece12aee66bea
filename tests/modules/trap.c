/* Hostile test module: process_message executes `unreachable` (a trap) at once. */
#include "wasmq_module.h"

WASMQ_EXPORT_ALLOCATOR();

WASMQ_EXPORT("process_message") uint32_t process_message(uint32_t address, uint32_t len);
WASMQ_EXPORT("process_message") uint32_t process_message(uint32_t address, uint32_t len) {
  (void)address;
  (void)len;
  __builtin_trap();
}
