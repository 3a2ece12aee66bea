/* Hostile test module: exports process_message as (i32) -> i32 instead of (i32, i32) -> i32. */
#include "wasmq_module.h"

WASMQ_EXPORT_ALLOCATOR();

WASMQ_EXPORT("process_message") uint32_t process_message(uint32_t address);
WASMQ_EXPORT("process_message") uint32_t process_message(uint32_t address) { return address; }
