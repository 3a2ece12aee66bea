/* Hostile test module: process_message allocates 1 MiB blocks, writing to every 4 KiB of each
 * (so every 64 KiB wasm page is touched), until malloc returns NULL, then traps. The blocks are
 * chained from a global list so that the compiler cannot drop the allocations. Only the host's
 * memory limit stops the growth. */
#include "wasmq_module.h"

enum { kBlockBytes = 1024 * 1024, kTouchStride = 4096 };

/* Each block starts with a pointer to the block allocated before it. */
static void *volatile newest_block;

WASMQ_EXPORT_ALLOCATOR();

WASMQ_EXPORT("process_message") uint32_t process_message(uint32_t address, uint32_t len);
WASMQ_EXPORT("process_message") uint32_t process_message(uint32_t address, uint32_t len) {
  (void)address;
  (void)len;
  for (;;) {
    volatile uint8_t *block = (volatile uint8_t *)malloc(kBlockBytes);
    if (block == NULL) __builtin_trap();
    for (uint32_t offset = 0; offset < kBlockBytes; offset += kTouchStride) {
      block[offset] = (uint8_t)(offset >> 12);
    }
    *(void *volatile *)block = newest_block;
    newest_block = (void *)block;
  }
}
