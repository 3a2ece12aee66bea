/* Hostile test module: exports memory, alloc and dealloc, but no process_message. */
#include "wasmq_module.h"

WASMQ_EXPORT_ALLOCATOR();
