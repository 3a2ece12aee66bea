// What wasmq speaks of Kafka's protocol: the API keys and the version ranges it advertises
// (docs/kafka.md, from spec kafka.md), the error codes it answers with, and the request header.
//
// Frames: a big-endian i32 size, then the request. Request header v1 (api_key i16, api_version
// i16, correlation_id i32, client_id NULLABLE_STRING); v2 adds a tagged-field section, and only
// ApiVersions v3 uses it below these caps. Response header v0 (correlation_id i32) for every
// response here, ApiVersions v3 included (Kafka's rule for ApiVersions).
// Pure definitions and functions; any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "kafka/wire.h"

namespace wasmq::kafka {

enum class ApiKey : int16_t {
  kProduce = 0,
  kFetch = 1,
  kListOffsets = 2,
  kMetadata = 3,
  kOffsetCommit = 8,
  kOffsetFetch = 9,
  kFindCoordinator = 10,
  kJoinGroup = 11,
  kHeartbeat = 12,
  kLeaveGroup = 13,
  kSyncGroup = 14,
  kDescribeGroups = 15,
  kListGroups = 16,
  kSaslHandshake = 17,
  kApiVersions = 18,
  kCreateTopics = 19,
  kDeleteTopics = 20,
  kInitProducerId = 22,
  kDescribeConfigs = 32,
  kSaslAuthenticate = 36,
};

struct VersionRange {
  ApiKey key;
  int16_t min;
  int16_t max;
};

// The APIs served now, with the versions advertised in ApiVersions. A key that is not here is
// not advertised, and a request for it closes the connection.
std::span<const VersionRange> supported_apis();
// The range of `key`, or nullopt when it is not served.
std::optional<VersionRange> supported_range(int16_t key);
// "Produce", "Fetch", ... ("api 42" for an unknown key): for logs and figures.
std::string_view api_name(int16_t key);

// Kafka's error codes (org.apache.kafka.common.protocol.Errors) that wasmq answers with.
namespace error {
inline constexpr int16_t kNone = 0;
inline constexpr int16_t kUnknownServerError = -1;
inline constexpr int16_t kOffsetOutOfRange = 1;
inline constexpr int16_t kCorruptMessage = 2;
inline constexpr int16_t kUnknownTopicOrPartition = 3;
inline constexpr int16_t kLeaderNotAvailable = 5;
inline constexpr int16_t kRequestTimedOut = 7;
inline constexpr int16_t kMessageTooLarge = 10;
inline constexpr int16_t kCoordinatorNotAvailable = 15;
inline constexpr int16_t kInvalidTopic = 17;
inline constexpr int16_t kRecordListTooLarge = 18;
inline constexpr int16_t kInvalidRequiredAcks = 21;
inline constexpr int16_t kIllegalGeneration = 22;
inline constexpr int16_t kInconsistentGroupProtocol = 23;
inline constexpr int16_t kInvalidGroupId = 24;
inline constexpr int16_t kUnknownMemberId = 25;
inline constexpr int16_t kInvalidSessionTimeout = 26;
inline constexpr int16_t kRebalanceInProgress = 27;
inline constexpr int16_t kTopicAuthorizationFailed = 29;
inline constexpr int16_t kGroupAuthorizationFailed = 30;
inline constexpr int16_t kClusterAuthorizationFailed = 31;
inline constexpr int16_t kUnsupportedSaslMechanism = 33;
inline constexpr int16_t kIllegalSaslState = 34;
inline constexpr int16_t kUnsupportedVersion = 35;
inline constexpr int16_t kTopicAlreadyExists = 36;
inline constexpr int16_t kInvalidPartitions = 37;
inline constexpr int16_t kInvalidReplicationFactor = 38;
inline constexpr int16_t kInvalidRequest = 42;
inline constexpr int16_t kUnsupportedForMessageFormat = 43;
inline constexpr int16_t kPolicyViolation = 44;
inline constexpr int16_t kOutOfOrderSequenceNumber = 45;
inline constexpr int16_t kInvalidProducerEpoch = 47;
inline constexpr int16_t kTransactionalIdAuthorizationFailed = 53;
inline constexpr int16_t kKafkaStorageError = 56;
inline constexpr int16_t kSaslAuthenticationFailed = 58;
inline constexpr int16_t kUnsupportedCompressionType = 76;
inline constexpr int16_t kMemberIdRequired = 79;
inline constexpr int16_t kInvalidRecord = 87;
}  // namespace error

struct RequestHeader {
  int16_t api_key = 0;
  int16_t api_version = 0;
  int32_t correlation_id = 0;
  std::optional<std::string_view> client_id;  // a view into the frame
};

// Reads the request header at the start of a frame (`r` is left at the request body). Whether
// the header has a tagged-field section depends on the API and version: only ApiVersions v3
// among the versions served. On malformed bytes, `r` fails.
RequestHeader read_request_header(Reader& r);

// Whether `key` at `version` is a flexible version (compact types, tagged fields) here.
bool is_flexible(int16_t key, int16_t version);

}  // namespace wasmq::kafka
