// The codecs of Kafka's RecordBatch (attributes bits 0-2): gzip, snappy, lz4, zstd, from
// Debian's zlib, snappy, lz4 and zstd libraries. A compressed batch holds its records section
// compressed as one stream; its header stays plain.
//
// Decompression is bounded (a small hostile batch must not expand into gigabytes): past
// `max_bytes` it fails. Snappy comes raw (librdkafka) or in the xerial framing of the Java
// client ("\x82SNAPPY\0", then length-prefixed blocks); both are read, xerial is written.
// Pure functions; any thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/status.h"

namespace wasmq::storage {

enum class Codec : uint8_t { kNone = 0, kGzip = 1, kSnappy = 2, kLz4 = 3, kZstd = 4 };

// "none", "gzip", "snappy", "lz4", "zstd"; "codec N" for another value.
std::string codec_name(int codec);

// The decompressed bytes of `in`, at most `max_bytes` of them; kInvalidArgument naming the codec
// when `in` is not a valid stream of it or expands past `max_bytes`. kInvalidArgument for an
// unknown codec.
Result<std::string> decompress(int codec, std::span<const uint8_t> in, size_t max_bytes);

// `in` compressed with `codec` (not kNone).
Result<std::string> compress(Codec codec, std::string_view in);

// The most a batch's records may expand to.
inline constexpr size_t kMaxDecompressedBytes = 64ull << 20;

}  // namespace wasmq::storage
