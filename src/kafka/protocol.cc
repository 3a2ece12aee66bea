#include "kafka/protocol.h"

#include <array>

namespace wasmq::kafka {
namespace {

// Every API served, with the versions advertised (docs/kafka.md).
constexpr std::array kSupported = {
    // From v0, though v0-2 (message formats v0 and v1) are answered with
    // UNSUPPORTED_FOR_MESSAGE_FORMAT: librdkafka compresses with gzip, snappy and lz4 only for a
    // broker that advertises Produce v0 (docs/kafka.md).
    VersionRange{ApiKey::kProduce, 0, 7},
    VersionRange{ApiKey::kFetch, 4, 11},
    VersionRange{ApiKey::kListOffsets, 0, 3},
    VersionRange{ApiKey::kMetadata, 0, 6},
    VersionRange{ApiKey::kOffsetCommit, 0, 7},
    VersionRange{ApiKey::kOffsetFetch, 0, 5},
    VersionRange{ApiKey::kFindCoordinator, 0, 2},
    VersionRange{ApiKey::kJoinGroup, 0, 5},
    VersionRange{ApiKey::kHeartbeat, 0, 3},
    VersionRange{ApiKey::kLeaveGroup, 0, 1},
    VersionRange{ApiKey::kSyncGroup, 0, 3},
    VersionRange{ApiKey::kDescribeGroups, 0, 4},
    VersionRange{ApiKey::kListGroups, 0, 2},
    VersionRange{ApiKey::kSaslHandshake, 0, 1},
    VersionRange{ApiKey::kApiVersions, 0, 3},
    VersionRange{ApiKey::kCreateTopics, 0, 4},
    VersionRange{ApiKey::kDeleteTopics, 0, 3},
    VersionRange{ApiKey::kInitProducerId, 0, 1},
    VersionRange{ApiKey::kDescribeConfigs, 0, 2},
    VersionRange{ApiKey::kSaslAuthenticate, 0, 1},
};

}  // namespace

std::span<const VersionRange> supported_apis() { return kSupported; }

std::optional<VersionRange> supported_range(int16_t key) {
  for (const auto& r : kSupported) {
    if (static_cast<int16_t>(r.key) == key) return r;
  }
  return std::nullopt;
}

std::string_view api_name(int16_t key) {
  switch (static_cast<ApiKey>(key)) {
    case ApiKey::kProduce: return "Produce";
    case ApiKey::kFetch: return "Fetch";
    case ApiKey::kListOffsets: return "ListOffsets";
    case ApiKey::kMetadata: return "Metadata";
    case ApiKey::kOffsetCommit: return "OffsetCommit";
    case ApiKey::kOffsetFetch: return "OffsetFetch";
    case ApiKey::kFindCoordinator: return "FindCoordinator";
    case ApiKey::kJoinGroup: return "JoinGroup";
    case ApiKey::kHeartbeat: return "Heartbeat";
    case ApiKey::kLeaveGroup: return "LeaveGroup";
    case ApiKey::kSyncGroup: return "SyncGroup";
    case ApiKey::kDescribeGroups: return "DescribeGroups";
    case ApiKey::kListGroups: return "ListGroups";
    case ApiKey::kSaslHandshake: return "SaslHandshake";
    case ApiKey::kApiVersions: return "ApiVersions";
    case ApiKey::kCreateTopics: return "CreateTopics";
    case ApiKey::kDeleteTopics: return "DeleteTopics";
    case ApiKey::kInitProducerId: return "InitProducerId";
    case ApiKey::kDescribeConfigs: return "DescribeConfigs";
    case ApiKey::kSaslAuthenticate: return "SaslAuthenticate";
  }
  return "unknown";
}

bool is_flexible(int16_t key, int16_t version) {
  return key == static_cast<int16_t>(ApiKey::kApiVersions) && version >= 3;
}

RequestHeader read_request_header(Reader& r) {
  RequestHeader h;
  h.api_key = r.i16();
  h.api_version = r.i16();
  h.correlation_id = r.i32();
  // The client id stays a NULLABLE_STRING in header v2 too.
  h.client_id = r.nullable_string();
  if (is_flexible(h.api_key, h.api_version)) r.skip_tagged_fields();
  return h;
}

}  // namespace wasmq::kafka
