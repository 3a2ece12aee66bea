/* Hostile test module: process_message recurses without bound. Each level uses the result of the
 * level below twice, so the compiler cannot turn the recursion into a loop, and the depth limit
 * is read from a volatile object, so the compiler cannot prove where it ends. The frames live in
 * wasm locals (nothing takes their address), so the engine's native stack limit is what stops
 * it ("stack overflow"), not the module's shadow stack in linear memory. */
#include "wasmq_module.h"

static volatile uint32_t depth_limit = UINT32_MAX;

/* Recurses until `depth` reaches `limit`. */
static uint32_t descend(uint32_t depth, uint32_t limit) {
  if (depth == limit) return depth;
  uint32_t below = descend(depth + 1, limit);
  return below * 31u + (below ^ depth);
}

WASMQ_EXPORT_ALLOCATOR();

WASMQ_EXPORT("process_message") uint32_t process_message(uint32_t address, uint32_t len);
WASMQ_EXPORT("process_message") uint32_t process_message(uint32_t address, uint32_t len) {
  (void)address;
  (void)len;
  return descend(0, depth_limit);
}
