// Input shaping shared by the storage fuzz targets. Random bytes almost never carry a right
// CRC-32C, so the decoders would stop at the checksum; when the first input byte is odd, the
// target rewrites the CRC of every batch it finds before decoding, so that the fuzzer reaches the
// record parser behind the checksum too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/crc32c.h"
#include "storage/record_batch.h"

namespace wasmq::fuzz {

inline uint64_t get_be(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

// The input without its first (mode) byte, with each batch's CRC made right when the mode
// byte is odd. Batches are followed by their batchLength field; one that claims more bytes than
// are left, or fewer than a header, ends the walk.
inline std::string shape_batches(const uint8_t* data, size_t size) {
  if (size == 0) return {};
  std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((data[0] & 1) == 0) return bytes;
  constexpr size_t kCrcOffset = 17;
  constexpr size_t kAttributesOffset = 21;
  auto* p = reinterpret_cast<uint8_t*>(bytes.data());
  size_t position = 0;
  while (bytes.size() - position >= storage::kBatchHeaderSize) {
    const int64_t length = static_cast<int32_t>(get_be(p + position + 8, 4));
    if (length < static_cast<int64_t>(storage::kBatchHeaderSize - storage::kBatchLogOverhead) ||
        static_cast<uint64_t>(length) > bytes.size() - position - storage::kBatchLogOverhead) {
      break;
    }
    const size_t end = position + storage::kBatchLogOverhead + static_cast<size_t>(length);
    const uint32_t crc =
        crc32c(0, p + position + kAttributesOffset, end - position - kAttributesOffset);
    for (int i = 0; i < 4; ++i) p[position + kCrcOffset + i] = static_cast<uint8_t>(crc >> (24 - 8 * i));
    position = end;
  }
  return bytes;
}

}  // namespace wasmq::fuzz
