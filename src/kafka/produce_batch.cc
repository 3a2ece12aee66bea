#include "kafka/produce_batch.h"

#include "common/utf8.h"
#include "kafka/protocol.h"

namespace wasmq::kafka {
namespace {

CheckedBatch refuse(int16_t code, std::string why) {
  CheckedBatch c;
  c.error = code;
  c.why = std::move(why);
  return c;
}

}  // namespace

CheckedBatch check_produce_batch(std::optional<std::span<const uint8_t>> records, bool decode) {
  if (!records || records->empty()) return refuse(error::kInvalidRecord, "no records");
  const auto bytes = *records;
  if (bytes.size() > kMaxBatchBytes) {
    return refuse(error::kMessageTooLarge, "a batch of " + std::to_string(bytes.size()) +
                                               " bytes (at most " + std::to_string(kMaxBatchBytes) + ")");
  }
  auto header = storage::parse_batch_header(bytes);
  if (!header.is_ok()) return refuse(error::kCorruptMessage, header.status().message());
  if (header->size() > bytes.size()) return refuse(error::kCorruptMessage, "a truncated batch");
  if (header->size() < bytes.size()) {
    return refuse(error::kInvalidRecord, "more than one batch (a produce request carries one per partition)");
  }
  if (!storage::batch_crc_ok(bytes)) return refuse(error::kCorruptMessage, "the batch's CRC does not match");
  const int16_t attributes = header->attributes;
  if ((attributes & 0x7) > 4) {
    return refuse(error::kUnsupportedCompressionType,
                  "compression codec " + std::to_string(attributes & 0x7) + " is not one of Kafka's");
  }
  if (attributes & 0x30) {
    return refuse(error::kInvalidRecord, "transactional and control batches are not supported");
  }
  if (header->record_count <= 0) return refuse(error::kInvalidRecord, "a batch without records");
  CheckedBatch c;
  if (Status s = storage::decode_batch(bytes, &c.records); !s.is_ok()) {
    return refuse(error::kCorruptMessage, s.message());
  }
  // Offsets inside the batch run 0, 1, 2, ... to lastOffsetDelta: the log gives the batch as
  // many offsets as it has records.
  if (header->last_offset_delta != header->record_count - 1) {
    return refuse(error::kInvalidRecord, "lastOffsetDelta does not match the record count");
  }
  for (size_t i = 0; i < c.records.size(); ++i) {
    const Message& m = c.records[i].message;
    if (c.records[i].offset != header->base_offset + static_cast<int64_t>(i)) {
      return refuse(error::kInvalidRecord, "record offset deltas are not 0, 1, 2, ...");
    }
    for (const auto& h : m.headers) {
      // Kafka's header names are strings; values are bytes.
      if (!is_valid_utf8(h.first)) {
        return refuse(error::kInvalidRecord, "record " + std::to_string(i) + ": a header name is not UTF-8");
      }
    }
    if (decode) {
      // Modules see keys and header values as strings (module-abi.md).
      if (Status s = text_for_modules(m); !s.is_ok()) {
        return refuse(error::kInvalidRecord, "record " + std::to_string(i) + ": " + s.message());
      }
    }
  }
  if (!decode) c.records.clear();
  c.batch.bytes.assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  c.batch.records = static_cast<uint32_t>(header->record_count);
  c.header = *header;
  return c;
}

}  // namespace wasmq::kafka
