// The requests wasmq serves, decoded from a frame's body into plain structs (strings and record
// bytes are views into the frame, which must outlive them). One function per API, for the
// versions served (protocol.h); each reads the whole body and fails the Reader on malformed
// bytes or bytes left over. Kafka's message schemas (clients/src/main/resources/common/message)
// are the reference for the field order per version.
// Pure functions; any thread. The fuzz target `kafka_request` runs them on arbitrary bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "kafka/wire.h"

namespace wasmq::kafka {

struct MetadataRequest {
  // nullopt: every topic (v0: an empty list means every topic too).
  std::optional<std::vector<std::string_view>> topics;
  bool allow_auto_topic_creation = true;  // v4+; before v4 the broker's setting decides
};
MetadataRequest read_metadata(Reader& r, int16_t version);

struct ProduceRequest {
  std::optional<std::string_view> transactional_id;
  int16_t acks = -1;
  int32_t timeout_ms = 0;
  struct Partition {
    int32_t index = 0;
    std::optional<std::span<const uint8_t>> records;  // null: no records
  };
  struct Topic {
    std::string_view name;
    std::vector<Partition> partitions;
  };
  std::vector<Topic> topics;
};
ProduceRequest read_produce(Reader& r, int16_t version);

struct FetchRequest {
  int32_t max_wait_ms = 0;
  int32_t min_bytes = 0;
  int32_t max_bytes = 0x7fffffff;
  int8_t isolation_level = 0;
  int32_t session_id = 0;
  int32_t session_epoch = -1;
  struct Partition {
    int32_t index = 0;
    int64_t fetch_offset = 0;
    int32_t max_bytes = 0;
  };
  struct Topic {
    std::string_view name;
    std::vector<Partition> partitions;
  };
  std::vector<Topic> topics;
};
FetchRequest read_fetch(Reader& r, int16_t version);

struct ListOffsetsRequest {
  struct Partition {
    int32_t index = 0;
    int64_t timestamp = 0;  // -1 latest, -2 earliest, else the first offset at or after it
  };
  struct Topic {
    std::string_view name;
    std::vector<Partition> partitions;
  };
  std::vector<Topic> topics;
};
ListOffsetsRequest read_list_offsets(Reader& r, int16_t version);

struct CreateTopicsRequest {
  struct Topic {
    std::string_view name;
    int32_t num_partitions = -1;      // -1: the broker's default
    int16_t replication_factor = -1;  // -1: the broker's default
    bool has_assignments = false;     // manual replica assignments (not supported)
    std::vector<std::pair<std::string_view, std::optional<std::string_view>>> configs;
  };
  std::vector<Topic> topics;
  int32_t timeout_ms = 0;
  bool validate_only = false;
};
CreateTopicsRequest read_create_topics(Reader& r, int16_t version);

struct DeleteTopicsRequest {
  std::vector<std::string_view> names;
  int32_t timeout_ms = 0;
};
DeleteTopicsRequest read_delete_topics(Reader& r, int16_t version);

struct InitProducerIdRequest {
  std::optional<std::string_view> transactional_id;
  int32_t transaction_timeout_ms = 0;
};
InitProducerIdRequest read_init_producer_id(Reader& r, int16_t version);

struct FindCoordinatorRequest {
  std::string_view key;
  int8_t key_type = 0;  // 0 group, 1 transaction
};
FindCoordinatorRequest read_find_coordinator(Reader& r, int16_t version);

struct JoinGroupRequest {
  std::string_view group_id;
  int32_t session_timeout_ms = 0;
  int32_t rebalance_timeout_ms = -1;  // v1+; before v1 the session timeout
  std::string_view member_id;
  std::optional<std::string_view> group_instance_id;  // v5+ (static membership: not supported)
  std::string_view protocol_type;
  std::vector<std::pair<std::string_view, std::span<const uint8_t>>> protocols;
};
JoinGroupRequest read_join_group(Reader& r, int16_t version);

struct SyncGroupRequest {
  std::string_view group_id;
  int32_t generation_id = -1;
  std::string_view member_id;
  std::vector<std::pair<std::string_view, std::span<const uint8_t>>> assignments;
};
SyncGroupRequest read_sync_group(Reader& r, int16_t version);

struct HeartbeatRequest {
  std::string_view group_id;
  int32_t generation_id = -1;
  std::string_view member_id;
};
HeartbeatRequest read_heartbeat(Reader& r, int16_t version);

struct LeaveGroupRequest {
  std::string_view group_id;
  std::string_view member_id;
};
LeaveGroupRequest read_leave_group(Reader& r, int16_t version);

struct OffsetCommitRequest {
  std::string_view group_id;
  int32_t generation_id = -1;
  std::string_view member_id;
  struct Partition {
    int32_t index = 0;
    int64_t offset = 0;
    std::optional<std::string_view> metadata;
  };
  struct Topic {
    std::string_view name;
    std::vector<Partition> partitions;
  };
  std::vector<Topic> topics;
};
OffsetCommitRequest read_offset_commit(Reader& r, int16_t version);

struct OffsetFetchRequest {
  std::string_view group_id;
  struct Topic {
    std::string_view name;
    std::vector<int32_t> partitions;
  };
  std::optional<std::vector<Topic>> topics;  // nullopt (v2+): every committed offset
};
OffsetFetchRequest read_offset_fetch(Reader& r, int16_t version);

struct DescribeGroupsRequest {
  std::vector<std::string_view> groups;
};
DescribeGroupsRequest read_describe_groups(Reader& r, int16_t version);

void read_list_groups(Reader& r, int16_t version);

// SaslHandshake v0–1: the mechanism the client wants.
std::string_view read_sasl_handshake(Reader& r, int16_t version);
// SaslAuthenticate v0–1: the mechanism's bytes (for PLAIN: authzid NUL username NUL password).
std::span<const uint8_t> read_sasl_authenticate(Reader& r, int16_t version);

struct DescribeConfigsRequest {
  struct Resource {
    int8_t type = 0;  // 2 topic, 4 broker
    std::string_view name;
    std::optional<std::vector<std::string_view>> keys;  // nullopt: every config
  };
  std::vector<Resource> resources;
  bool include_synonyms = false;  // v1+
};
DescribeConfigsRequest read_describe_configs(Reader& r, int16_t version);

}  // namespace wasmq::kafka
