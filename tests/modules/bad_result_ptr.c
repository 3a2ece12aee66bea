/* Hostile test module: returns result pointers that lie outside linear memory.
 *   value `result-ptr`  -> process_message returns 0xFFFFFFF0 as the WasmResult address
 *   value `null`        -> process_message returns 0 (what an allocator failure looks like)
 *   anything else       -> a valid WasmResult whose {ptr, len} is {0xFFFF0000, 0x20000}; note that
 *                          ptr + len wraps to 0x10000 in 32-bit arithmetic
 */
#include "wasmq_module.h"

static const uint32_t kBadWasmResultAddress = 0xFFFFFFF0u;
static const uint32_t kBadResultAddress = 0xFFFF0000u;
static const uint32_t kBadResultLen = 0x20000u;

WASMQ_EXPORT_ALLOCATOR();

WASMQ_EXPORT("process_message") uint32_t process_message(uint32_t address, uint32_t len);
WASMQ_EXPORT("process_message") uint32_t process_message(uint32_t address, uint32_t len) {
  wasmq_reader reader;
  wasmq_reader_init(&reader, (const uint8_t *)(uintptr_t)address, len);
  wasmq_message message;
  bool wants_bad_wasm_result = false;
  bool wants_null = false;
  if (wasmq_read_message(&reader, &message)) {
    wants_bad_wasm_result = wasmq_bytes_equal_cstr(message.value, "result-ptr");
    wants_null = wasmq_bytes_equal_cstr(message.value, "null");
    wasmq_message_release(&message);
  }
  if (wants_bad_wasm_result) return kBadWasmResultAddress;
  if (wants_null) return 0;
  uint32_t *wasm_result = (uint32_t *)malloc(2 * sizeof(uint32_t));
  if (wasm_result == NULL) __builtin_trap();
  wasm_result[0] = kBadResultAddress;
  wasm_result[1] = kBadResultLen;
  return (uint32_t)(uintptr_t)wasm_result;
}
