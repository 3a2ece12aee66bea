/* Hostile test module: process_message calls WASI proc_exit(3). */
#include <wasi/api.h>

#include "wasmq_module.h"

WASMQ_EXPORT_ALLOCATOR();

WASMQ_EXPORT("process_message") uint32_t process_message(uint32_t address, uint32_t len);
WASMQ_EXPORT("process_message") uint32_t process_message(uint32_t address, uint32_t len) {
  (void)address;
  (void)len;
  __wasi_proc_exit(3);
}
