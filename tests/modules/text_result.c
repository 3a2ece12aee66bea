/* Test module written against the seed 001 document's ABI: process_message returns a pointer to
 * the result's JSON text instead of to the 8-byte {ptr, len} of a bincode WasmResult. */
#include "wasmq_module.h"

static const char kJson[] = "{\"transformed_messages\":[],\"should_continue\":true}";

WASMQ_EXPORT_ALLOCATOR();

WASMQ_EXPORT("process_message") uint32_t process_message(uint32_t address, uint32_t len);
WASMQ_EXPORT("process_message") uint32_t process_message(uint32_t address, uint32_t len) {
  (void)address;
  (void)len;
  return (uint32_t)(uintptr_t)kJson;
}
