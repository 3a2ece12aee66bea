#include "kafka/requests.h"

namespace wasmq::kafka {
namespace {

// The body must be read to its end: bytes left over mean the version's layout was not the
// client's, and answering would guess.
void expect_end(Reader& r) {
  if (r.ok() && r.remaining() != 0) r.fail("bytes left after the request");
}

// Smallest encodings, so that counts are checked against what is left (Reader::array_length).
constexpr size_t kMinString = 2;
constexpr size_t kMinPartitionOfProduce = 4 + 4;

// An array of (STRING, BYTES): JoinGroup's protocols, SyncGroup's assignments.
void read_named_bytes(Reader& r, std::vector<std::pair<std::string_view, std::span<const uint8_t>>>* out) {
  int32_t n = r.array_length(kMinString + 4);
  out->reserve(static_cast<size_t>(n));
  for (int32_t i = 0; i < n && r.ok(); ++i) {
    std::string_view name = r.string();
    out->emplace_back(name, r.bytes());
  }
}

// An array of topics, each a name and an array of partitions that `read_partition(partition)`
// reads; `min_partition` is the smallest encoding of one partition.
template <typename Topic, typename ReadPartition>
void read_topics(Reader& r, size_t min_partition, std::vector<Topic>* topics,
                 ReadPartition read_partition) {
  int32_t n = r.array_length(kMinString + 4);
  topics->reserve(static_cast<size_t>(n));
  for (int32_t t = 0; t < n && r.ok(); ++t) {
    auto& topic = topics->emplace_back();
    topic.name = r.string();
    int32_t partitions = r.array_length(min_partition);
    topic.partitions.reserve(static_cast<size_t>(partitions));
    for (int32_t i = 0; i < partitions && r.ok(); ++i) read_partition(topic.partitions.emplace_back());
  }
}

}  // namespace

MetadataRequest read_metadata(Reader& r, int16_t version) {
  MetadataRequest m;
  int32_t n = r.i32();
  if (n >= 0 && static_cast<size_t>(n) > r.remaining() / kMinString) r.fail("array length larger than the request");
  if (n < -1) r.fail("negative array length");
  if (r.ok() && (n > 0 || (n == 0 && version >= 1))) {
    m.topics.emplace();
    m.topics->reserve(static_cast<size_t>(n));
    for (int32_t i = 0; i < n && r.ok(); ++i) m.topics->push_back(r.string());
  }
  if (n == -1 && version == 0) r.fail("null topic list in Metadata v0");
  if (version >= 4) m.allow_auto_topic_creation = r.boolean();
  expect_end(r);
  return m;
}

ProduceRequest read_produce(Reader& r, int16_t version) {
  ProduceRequest p;
  if (version >= 3) p.transactional_id = r.nullable_string();
  p.acks = r.i16();
  p.timeout_ms = r.i32();
  read_topics(r, kMinPartitionOfProduce, &p.topics, [&](ProduceRequest::Partition& part) {
    part.index = r.i32();
    part.records = r.nullable_bytes();
  });
  expect_end(r);
  return p;
}

FetchRequest read_fetch(Reader& r, int16_t version) {
  FetchRequest f;
  r.i32();  // replica_id: -1 for consumers
  f.max_wait_ms = r.i32();
  f.min_bytes = r.i32();
  f.max_bytes = r.i32();
  f.isolation_level = r.i8();
  if (version >= 7) {
    f.session_id = r.i32();
    f.session_epoch = r.i32();
  }
  const size_t min_partition = 4 + (version >= 9 ? 4 : 0) + 8 + (version >= 5 ? 8 : 0) + 4;
  read_topics(r, min_partition, &f.topics, [&](FetchRequest::Partition& part) {
    part.index = r.i32();
    if (version >= 9) r.i32();  // current_leader_epoch
    part.fetch_offset = r.i64();
    if (version >= 5) r.i64();  // log_start_offset (of a follower)
    part.max_bytes = r.i32();
  });
  if (version >= 7) {
    int32_t forgotten = r.array_length(kMinString + 4);
    for (int32_t t = 0; t < forgotten && r.ok(); ++t) {
      r.string();
      int32_t partitions = r.array_length(4);
      for (int32_t i = 0; i < partitions && r.ok(); ++i) r.i32();
    }
  }
  if (version >= 11) r.string();  // rack_id
  expect_end(r);
  return f;
}

ListOffsetsRequest read_list_offsets(Reader& r, int16_t version) {
  ListOffsetsRequest l;
  r.i32();                    // replica_id
  if (version >= 2) r.i8();   // isolation_level
  const size_t min_partition = 4 + 8 + (version == 0 ? 4 : 0);
  read_topics(r, min_partition, &l.topics, [&](ListOffsetsRequest::Partition& part) {
    part.index = r.i32();
    part.timestamp = r.i64();
    if (version == 0) r.i32();  // max_num_offsets
  });
  expect_end(r);
  return l;
}

CreateTopicsRequest read_create_topics(Reader& r, int16_t version) {
  CreateTopicsRequest c;
  int32_t topics = r.array_length(kMinString + 4 + 2 + 4 + 4);
  c.topics.reserve(static_cast<size_t>(topics));
  for (int32_t t = 0; t < topics && r.ok(); ++t) {
    auto& topic = c.topics.emplace_back();
    topic.name = r.string();
    topic.num_partitions = r.i32();
    topic.replication_factor = r.i16();
    int32_t assignments = r.array_length(4 + 4);
    topic.has_assignments = assignments > 0;
    for (int32_t a = 0; a < assignments && r.ok(); ++a) {
      r.i32();
      int32_t brokers = r.array_length(4);
      for (int32_t b = 0; b < brokers && r.ok(); ++b) r.i32();
    }
    int32_t configs = r.array_length(kMinString + 2);
    topic.configs.reserve(static_cast<size_t>(configs));
    for (int32_t k = 0; k < configs && r.ok(); ++k) {
      std::string_view name = r.string();
      topic.configs.emplace_back(name, r.nullable_string());
    }
  }
  c.timeout_ms = r.i32();
  if (version >= 1) c.validate_only = r.boolean();
  expect_end(r);
  return c;
}

DeleteTopicsRequest read_delete_topics(Reader& r, int16_t version) {
  (void)version;  // v0-v3 share one layout
  DeleteTopicsRequest d;
  int32_t n = r.array_length(kMinString);
  d.names.reserve(static_cast<size_t>(n));
  for (int32_t i = 0; i < n && r.ok(); ++i) d.names.push_back(r.string());
  d.timeout_ms = r.i32();
  expect_end(r);
  return d;
}

InitProducerIdRequest read_init_producer_id(Reader& r, int16_t version) {
  (void)version;  // v0-v1 share one layout
  InitProducerIdRequest i;
  i.transactional_id = r.nullable_string();
  i.transaction_timeout_ms = r.i32();
  expect_end(r);
  return i;
}

FindCoordinatorRequest read_find_coordinator(Reader& r, int16_t version) {
  FindCoordinatorRequest f;
  f.key = r.string();
  if (version >= 1) f.key_type = r.i8();
  expect_end(r);
  return f;
}

JoinGroupRequest read_join_group(Reader& r, int16_t version) {
  JoinGroupRequest j;
  j.group_id = r.string();
  j.session_timeout_ms = r.i32();
  j.rebalance_timeout_ms = version >= 1 ? r.i32() : j.session_timeout_ms;
  j.member_id = r.string();
  if (version >= 5) j.group_instance_id = r.nullable_string();
  j.protocol_type = r.string();
  read_named_bytes(r, &j.protocols);
  expect_end(r);
  return j;
}

SyncGroupRequest read_sync_group(Reader& r, int16_t version) {
  SyncGroupRequest s;
  s.group_id = r.string();
  s.generation_id = r.i32();
  s.member_id = r.string();
  if (version >= 3) r.nullable_string();  // group_instance_id
  read_named_bytes(r, &s.assignments);
  expect_end(r);
  return s;
}

HeartbeatRequest read_heartbeat(Reader& r, int16_t version) {
  HeartbeatRequest h;
  h.group_id = r.string();
  h.generation_id = r.i32();
  h.member_id = r.string();
  if (version >= 3) r.nullable_string();  // group_instance_id
  expect_end(r);
  return h;
}

LeaveGroupRequest read_leave_group(Reader& r, int16_t version) {
  (void)version;  // v0-v1 share one layout
  LeaveGroupRequest l;
  l.group_id = r.string();
  l.member_id = r.string();
  expect_end(r);
  return l;
}

OffsetCommitRequest read_offset_commit(Reader& r, int16_t version) {
  OffsetCommitRequest c;
  c.group_id = r.string();
  if (version >= 1) {
    c.generation_id = r.i32();
    c.member_id = r.string();
  }
  if (version >= 7) r.nullable_string();           // group_instance_id
  if (version >= 2 && version <= 4) r.i64();       // retention_time_ms
  const size_t min_partition = 4 + 8 + (version == 1 ? 8 : 0) + (version >= 6 ? 4 : 0) + 2;
  read_topics(r, min_partition, &c.topics, [&](OffsetCommitRequest::Partition& part) {
    part.index = r.i32();
    part.offset = r.i64();
    if (version >= 6) r.i32();  // committed_leader_epoch
    if (version == 1) r.i64();  // commit_timestamp
    part.metadata = r.nullable_string();
  });
  expect_end(r);
  return c;
}

OffsetFetchRequest read_offset_fetch(Reader& r, int16_t version) {
  OffsetFetchRequest f;
  f.group_id = r.string();
  int32_t n = r.i32();
  if (n == -1 && version >= 2) {
    expect_end(r);
    return f;
  }
  if (n < 0 || static_cast<size_t>(n) > r.remaining() / (kMinString + 4)) {
    r.fail("array length larger than the request");
    return f;
  }
  f.topics.emplace();
  f.topics->reserve(static_cast<size_t>(n));
  for (int32_t t = 0; t < n && r.ok(); ++t) {
    auto& topic = f.topics->emplace_back();
    topic.name = r.string();
    int32_t partitions = r.array_length(4);
    topic.partitions.reserve(static_cast<size_t>(partitions));
    for (int32_t i = 0; i < partitions && r.ok(); ++i) topic.partitions.push_back(r.i32());
  }
  expect_end(r);
  return f;
}

DescribeGroupsRequest read_describe_groups(Reader& r, int16_t version) {
  DescribeGroupsRequest d;
  int32_t n = r.array_length(kMinString);
  d.groups.reserve(static_cast<size_t>(n));
  for (int32_t i = 0; i < n && r.ok(); ++i) d.groups.push_back(r.string());
  if (version >= 3) r.boolean();  // include_authorized_operations
  expect_end(r);
  return d;
}

void read_list_groups(Reader& r, int16_t version) {
  (void)version;
  expect_end(r);
}

std::string_view read_sasl_handshake(Reader& r, int16_t version) {
  (void)version;
  std::string_view mechanism = r.string();
  expect_end(r);
  return mechanism;
}

std::span<const uint8_t> read_sasl_authenticate(Reader& r, int16_t version) {
  (void)version;
  std::span<const uint8_t> bytes = r.bytes();
  expect_end(r);
  return bytes;
}

DescribeConfigsRequest read_describe_configs(Reader& r, int16_t version) {
  DescribeConfigsRequest d;
  int32_t n = r.array_length(1 + kMinString + 4);
  d.resources.reserve(static_cast<size_t>(n));
  for (int32_t i = 0; i < n && r.ok(); ++i) {
    auto& resource = d.resources.emplace_back();
    resource.type = r.i8();
    resource.name = r.string();
    int32_t keys = r.i32();
    if (keys < -1) r.fail("negative array length");
    if (keys >= 0 && static_cast<size_t>(keys) > r.remaining() / kMinString) {
      r.fail("array length larger than the request");
    }
    if (r.ok() && keys >= 0) {
      resource.keys.emplace();
      for (int32_t k = 0; k < keys && r.ok(); ++k) resource.keys->push_back(r.string());
    }
  }
  if (version >= 1) d.include_synonyms = r.boolean();
  expect_end(r);
  return d;
}

}  // namespace wasmq::kafka
