// Kafka's RecordBatch v2 ("magic 2"), the on-disk format of every partition log, so that a later
// Kafka front end can serve the files as they are.
//
// Layout (big-endian fixed-width fields; records use zigzag varints):
//   baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 = 2 | crc u32 |
//   attributes i16 | lastOffsetDelta i32 | baseTimestamp i64 | maxTimestamp i64 |
//   producerId i64 | producerEpoch i16 | baseSequence i32 | recordCount i32 | records...
// The CRC-32C covers attributes through the end of the batch. Each record:
//   length varint | attributes i8 | timestampDelta varlong | offsetDelta varint |
//   keyLength varint (-1: null) | key | valueLength varint | value |
//   headerCount varint | (keyLength varint | key | valueLength varint | value)*
//
// Pure functions on bytes; any thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/message.h"
#include "common/status.h"
#include "storage/compression.h"

namespace wasmq::storage {

constexpr size_t kBatchHeaderSize = 61;
// Bytes before batchLength's coverage starts: baseOffset + batchLength.
constexpr size_t kBatchLogOverhead = 12;

// The fixed part of a batch.
struct BatchHeader {
  int64_t base_offset = 0;
  int32_t batch_length = 0;  // bytes after the batchLength field
  uint32_t crc = 0;
  int32_t last_offset_delta = 0;
  int64_t base_timestamp = 0;
  int64_t max_timestamp = 0;
  int32_t record_count = 0;
  int16_t attributes = 0;  // bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control
  int64_t producer_id = -1;  // an idempotent producer's, or -1
  int16_t producer_epoch = -1;
  int32_t base_sequence = -1;

  int64_t last_offset() const { return base_offset + last_offset_delta; }
  int64_t next_offset() const { return last_offset() + 1; }
  // Size of the whole batch in the log.
  size_t size() const { return kBatchLogOverhead + static_cast<size_t>(batch_length); }
};

// Appends one batch holding `messages` (at least one) with offsets base_offset, base_offset+1,
// ... to `out`. Returns the batch's size.
size_t encode_batch(int64_t base_offset, std::span<const Message> messages, std::string* out);
// The same from views (a parsed request's bytes, encoded without a copy).
size_t encode_batch(int64_t base_offset, std::span<const MessageView> messages, std::string* out);

// Compresses the records of `batch` (one whole uncompressed batch, as encode_batch makes it)
// with `codec`, in place: the attributes name the codec, the length and CRC are made right.
// kNone leaves it as it is. On failure (kInvalidArgument naming the codec) it is unchanged.
Status compress_batch(std::string* batch, Codec codec);

// Reads the fixed header at the start of `bytes` and checks what it can without the body: at
// least kBatchHeaderSize bytes, magic 2, a batch length that covers the header, offsets and
// counts that make sense. The CRC is not checked (see batch_crc_ok).
Result<BatchHeader> parse_batch_header(std::span<const uint8_t> bytes);

// True when the CRC-32C stored in the batch matches its contents. `batch` is the whole batch.
bool batch_crc_ok(std::span<const uint8_t> batch);

// A stored message with its offset.
struct Record {
  int64_t offset = 0;
  Message message;
};

// The batch's compression codec (attributes bits 0-2; 0: none; see compression.h).
inline int batch_codec(const BatchHeader& h) { return h.attributes & 0x7; }

// Decodes every record of one whole batch (CRC checked; a compressed batch's records are
// decompressed first, up to kMaxDecompressedBytes), appending to `out`. Strict: counts,
// lengths and offsets must agree with the header; malformed input is an error, never a crash.
Status decode_batch(std::span<const uint8_t> batch, std::vector<Record>* out);

}  // namespace wasmq::storage
