// CRC-32C (Castagnoli), the checksum of Kafka's RecordBatch v2.
#pragma once

#include <cstddef>
#include <cstdint>

namespace wasmq {

// Extends `crc` (0 to start) over [data, data + size). Uses the CPU's CRC32 instruction when
// it has one (SSE 4.2), else a table; both give the same result. Any thread.
uint32_t crc32c(uint32_t crc, const void* data, size_t size);

// The table implementation, exposed so tests can compare the two.
uint32_t crc32c_portable(uint32_t crc, const void* data, size_t size);

}  // namespace wasmq
