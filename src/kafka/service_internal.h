// What the files of Service share (service.cc, service_groups.cc); not part of the room's
// interface.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "kafka/protocol.h"
#include "kafka/wire.h"
#include "storage/topic_store.h"

namespace wasmq::kafka::service_internal {

// The frame was not a request this service can answer: the connection closes.
inline Status malformed(const RequestHeader& h, const Reader& r) {
  return invalid_argument(std::string(api_name(h.api_key)) + " v" + std::to_string(h.api_version) +
                          ": " + std::string(r.error()));
}

// The one broker of this cluster.
constexpr int32_t kNodeId = 0;

// Partition `index` of `topic`, or null when either does not exist.
inline const storage::PartitionLog* partition_of(const std::shared_ptr<storage::Topic>& topic, int32_t index) {
  if (!topic || index < 0 || static_cast<uint32_t>(index) >= topic->partition_count()) return nullptr;
  return &topic->partition(static_cast<uint32_t>(index));
}

inline int16_t error_for(const Status& s) {
  switch (s.code()) {
    case StatusCode::kNotFound: return error::kUnknownTopicOrPartition;
    case StatusCode::kOutOfRange: return error::kOffsetOutOfRange;
    case StatusCode::kInvalidArgument: return error::kInvalidRequest;
    case StatusCode::kUnavailable: return error::kRequestTimedOut;
    case StatusCode::kIo: return error::kKafkaStorageError;
    default: return error::kUnknownServerError;
  }
}

}  // namespace wasmq::kafka::service_internal
