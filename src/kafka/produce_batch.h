// What a producer sent for one partition, checked before anything is stored (Kafka's
// LogValidator, for what wasmq accepts): exactly one RecordBatch v2, whole, its CRC-32C right,
// uncompressed or with one of Kafka's codecs (records that decompress within
// storage::kMaxDecompressedBytes), neither transactional nor a control batch, no larger than kMaxBatchBytes, with
// records that decode and agree with its header. A batch that fails is refused with the error
// code a Kafka client expects, and nothing of it is stored.
// Pure function; any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "storage/partition_log.h"
#include "storage/record_batch.h"

namespace wasmq::kafka {

// Kafka's default message.max.bytes: the largest batch accepted.
inline constexpr size_t kMaxBatchBytes = 1'048'588;

struct CheckedBatch {
  int16_t error = 0;   // a Kafka error code; 0 when the batch is good
  std::string why;     // what was wrong (for the log)
  storage::BatchHeader header;          // the batch's header (when good)
  storage::EncodedBatch batch;          // the bytes to append as they came (when good)
  std::vector<storage::Record> records;  // decoded, when `decode` was asked
};

// `decode`: also hand the records back (a pipeline will run on them).
CheckedBatch check_produce_batch(std::optional<std::span<const uint8_t>> records, bool decode);


}  // namespace wasmq::kafka
