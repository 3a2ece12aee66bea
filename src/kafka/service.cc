#include "kafka/service.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <memory>

#include "common/handoff.h"
#include "common/log.h"
#include "kafka/produce_batch.h"
#include "kafka/requests.h"
#include "kafka/service_internal.h"
#include "storage/record_batch.h"

namespace wasmq::kafka {
namespace {

using boost::asio::awaitable;
using Clock = std::chrono::steady_clock;
using namespace service_internal;

// Fetch waits at most this long, whatever the client asks (its request timeout is longer).
constexpr int32_t kMaxFetchWaitMs = 60'000;

// "topic a, b": what a request names, for an audit line.
template <typename Topics, typename Name>
std::string topics_text(const Topics& topics, Name name) {
  std::string out = "topic ";
  size_t n = 0;
  for (const auto& t : topics) {
    if (n++) out += ", ";
    if (out.size() > 200) {
      out += "…";
      break;
    }
    out += name(t);
  }
  return out;
}

}  // namespace

Service::Service(broker::Broker& broker, ServiceOptions options, broker::GroupCoordinator* groups)
    : broker_(broker), options_(std::move(options)), groups_(groups) {}

awaitable<Result<Response>> Service::handle(Session& s, std::span<const uint8_t> frame) {
  if (s.sasl == Session::Sasl::kRawToken) co_return raw_sasl_token(s, frame);
  Reader r(frame);
  RequestHeader h = read_request_header(r);
  if (!r.ok()) co_return invalid_argument("request header: " + std::string(r.error()));
  if (h.api_key == static_cast<int16_t>(ApiKey::kApiVersions)) co_return co_await api_versions(h);
  auto range = supported_range(h.api_key);
  if (!range) co_return invalid_argument("API key " + std::to_string(h.api_key) + " is not served");
  if (h.api_version < range->min || h.api_version > range->max) {
    co_return invalid_argument(std::string(api_name(h.api_key)) + " v" +
                               std::to_string(h.api_version) + " is not served (versions " +
                               std::to_string(range->min) + " to " + std::to_string(range->max) + ")");
  }
  const auto key = static_cast<ApiKey>(h.api_key);
  if (options_.security && s.sasl != Session::Sasl::kDone && key != ApiKey::kSaslHandshake &&
      key != ApiKey::kSaslAuthenticate) {
    const std::string why = std::string(api_name(h.api_key)) +
                            " before SASL authentication: this listener requires SASL/PLAIN";
    audit(s, api_name(h.api_key), "", AuditEvent::Result::kRefused, why);
    co_return invalid_argument(why);
  }
  switch (key) {
    case ApiKey::kSaslHandshake: co_return co_await sasl_handshake(s, h, r);
    case ApiKey::kSaslAuthenticate: co_return co_await sasl_authenticate(s, h, r);
    case ApiKey::kDescribeConfigs: co_return co_await describe_configs(s, h, r);
    case ApiKey::kMetadata: co_return co_await metadata(s, h, r);
    case ApiKey::kProduce: co_return co_await produce(s, h, r);
    case ApiKey::kFetch: co_return co_await fetch(s, h, r);
    case ApiKey::kListOffsets: co_return co_await list_offsets(s, h, r);
    case ApiKey::kCreateTopics: co_return co_await create_topics(s, h, r);
    case ApiKey::kDeleteTopics: co_return co_await delete_topics(s, h, r);
    case ApiKey::kInitProducerId: co_return co_await init_producer_id(s, h, r);
    case ApiKey::kFindCoordinator: co_return co_await find_coordinator(s, h, r);
    case ApiKey::kJoinGroup: co_return co_await join_group(s, h, r);
    case ApiKey::kSyncGroup: co_return co_await sync_group(s, h, r);
    case ApiKey::kHeartbeat: co_return co_await heartbeat(s, h, r);
    case ApiKey::kLeaveGroup: co_return co_await leave_group(s, h, r);
    case ApiKey::kOffsetCommit: co_return co_await offset_commit(s, h, r);
    case ApiKey::kOffsetFetch: co_return co_await offset_fetch(s, h, r);
    case ApiKey::kDescribeGroups: co_return co_await describe_groups(s, h, r);
    case ApiKey::kListGroups: co_return co_await list_groups(s, h, r);
    default: break;
  }
  co_return invalid_argument("API key " + std::to_string(h.api_key) + " is not served");
}

awaitable<Result<Response>> Service::api_versions(const RequestHeader& h) {
  // Kafka's rule: a version it does not know is answered in v0 with UNSUPPORTED_VERSION and the
  // ranges, so that the client can pick one. The request body is not read (v3 carries only the
  // client's name and version).
  const auto range = *supported_range(h.api_key);
  const bool unsupported = h.api_version < range.min || h.api_version > range.max;
  const int16_t v = unsupported ? 0 : h.api_version;
  std::string out;
  Writer w(&out);
  w.i32(h.correlation_id);
  w.i16(unsupported ? error::kUnsupportedVersion : error::kNone);
  const auto apis = supported_apis();
  if (v >= 3) {
    w.compact_array_length(apis.size());
  } else {
    w.array_length(apis.size());
  }
  for (const auto& api : apis) {
    w.i16(static_cast<int16_t>(api.key));
    w.i16(api.min);
    w.i16(api.max);
    if (v >= 3) w.empty_tagged_fields();
  }
  if (v >= 1) w.i32(0);  // throttle_time_ms
  if (v >= 3) w.empty_tagged_fields();
  co_return Response(std::move(out));
}

awaitable<Result<Response>> Service::metadata(Session& s, const RequestHeader& h, Reader& r) {
  const int16_t v = h.api_version;
  MetadataRequest req = read_metadata(r, v);
  if (!r.ok()) co_return malformed(h, r);

  struct TopicInfo {
    std::string name;
    int16_t error = error::kNone;
    uint32_t partitions = 0;
  };
  std::vector<TopicInfo> topics;
  const bool describe =
      req.topics && req.topics->empty()
          ? true
          : permit(s, Need::kDescribeTopics, "Metadata", [&] {
              return req.topics ? topics_text(*req.topics, [](std::string_view n) { return n; })
                                : std::string("every topic");
            });
  // Topics are created only for a caller who may create them.
  const bool may_create = options_.auto_create_topics && req.allow_auto_topic_creation &&
                          (!options_.security || (s.caller && options_.security->allows(*s.caller, Need::kCreateTopics)));
  if (!describe && req.topics) {
    for (std::string_view name : *req.topics) {
      topics.push_back({std::string(name), error::kTopicAuthorizationFailed, 0});
    }
  } else if (!describe) {
    // Every topic, for a caller who may see none: no topic.
  } else if (!req.topics) {
    for (const auto& t : broker_.store().list()) topics.push_back({t->name(), error::kNone, t->partition_count()});
  } else {
    std::vector<std::string> to_create;
    std::vector<size_t> created_at;  // where each of to_create is in `topics`
    for (std::string_view name : *req.topics) {
      TopicInfo info{std::string(name)};
      if (!storage::validate_topic_name(name).is_ok()) {
        info.error = error::kInvalidTopic;
      } else if (auto t = broker_.store().find(name)) {
        info.partitions = t->partition_count();
      } else if (may_create) {
        to_create.push_back(info.name);
        created_at.push_back(topics.size());
      } else {
        info.error = error::kUnknownTopicOrPartition;
      }
      topics.push_back(std::move(info));
    }
    if (!to_create.empty()) {
      // Created on a disk thread (mkdir, fsyncs); a topic created meanwhile by someone else is
      // found.
      using Created = std::vector<Result<std::shared_ptr<storage::Topic>>>;
      std::function<Created()> create = [store = &broker_.store(), to_create] {
        Created created;
        for (const auto& name : to_create) created.push_back(store->find_or_create(name));
        return created;
      };
      auto created = co_await run_on(broker_.disk_tasks(), std::move(create));
      if (!created.is_ok()) co_return created.status();
      for (size_t k = 0; k < created_at.size(); ++k) {
        TopicInfo& info = topics[created_at[k]];
        auto& topic = (*created)[k];
        if (topic.is_ok()) {
          info.partitions = (*topic)->partition_count();
          audit(s, "Metadata", "topic " + info.name, AuditEvent::Result::kOk, "");
        } else {
          info.error = topic.status().code() == StatusCode::kInvalidArgument
                           ? error::kInvalidTopic
                           : error::kUnknownTopicOrPartition;
          log::get("kafka").warn("Metadata: cannot create topic \"{}\": {}", info.name,
                                 topic.status().message());
        }
      }
    }
  }

  std::string out;
  Writer w(&out);
  w.i32(h.correlation_id);
  if (v >= 3) w.i32(0);  // throttle_time_ms
  w.array_length(1);     // brokers: this one
  w.i32(kNodeId);
  w.string(options_.advertised_host);
  w.i32(options_.advertised_port);
  if (v >= 1) w.nullable_string(std::nullopt);  // rack
  if (v >= 2) w.nullable_string(options_.cluster_id);
  if (v >= 1) w.i32(kNodeId);  // controller: admin requests go to it
  w.array_length(topics.size());
  for (const auto& t : topics) {
    w.i16(t.error);
    w.string(t.name);
    if (v >= 1) w.boolean(false);  // is_internal
    w.array_length(t.partitions);
    for (uint32_t p = 0; p < t.partitions; ++p) {
      w.i16(error::kNone);
      w.i32(static_cast<int32_t>(p));
      w.i32(kNodeId);  // leader
      w.array_length(1);
      w.i32(kNodeId);  // replicas
      w.array_length(1);
      w.i32(kNodeId);  // in-sync replicas
      if (v >= 5) w.array_length(0);  // offline replicas
    }
  }
  co_return Response(std::move(out));
}

awaitable<Result<Response>> Service::produce(Session& s, const RequestHeader& h, Reader& r) {
  const int16_t v = h.api_version;
  ProduceRequest req = read_produce(r, v);
  if (!r.ok()) co_return malformed(h, r);

  struct PartitionResult {
    int32_t index = 0;
    int16_t error = error::kNone;
    int64_t base_offset = -1;
    int64_t log_start_offset = -1;
  };
  std::vector<std::vector<PartitionResult>> results(req.topics.size());
  // Appends under way, each answered through its own handoff, awaited in request order.
  struct Pending {
    size_t topic, partition;
    HandoffReceiver<PartitionResult> receiver;
  };
  std::vector<Pending> pending;

  const bool acks_ok = req.acks == -1 || req.acks == 0 || req.acks == 1;
  const bool may = permit(s, Need::kProduce, "Produce",
                          [&] { return topics_text(req.topics, [](const auto& t) { return t.name; }); });
  for (size_t t = 0; t < req.topics.size(); ++t) {
    const auto& topic_req = req.topics[t];
    auto topic = storage::validate_topic_name(topic_req.name).is_ok()
                     ? broker_.store().find(topic_req.name)
                     : nullptr;
    const bool pipelines = topic && broker_.has_pipelines(topic->name());
    for (const auto& part : topic_req.partitions) {
      PartitionResult& res = results[t].emplace_back();
      res.index = part.index;
      if (!may) {
        res.error = error::kTopicAuthorizationFailed;
        continue;
      }
      if (v < 3) {
        // Message formats v0 and v1: not stored here (RecordBatch v2 only).
        res.error = error::kUnsupportedForMessageFormat;
        continue;
      }
      if (req.transactional_id) {
        res.error = error::kTransactionalIdAuthorizationFailed;
        continue;
      }
      if (!acks_ok) {
        res.error = error::kInvalidRequiredAcks;
        continue;
      }
      if (!storage::validate_topic_name(topic_req.name).is_ok()) {
        res.error = error::kInvalidTopic;
        continue;
      }
      if (!partition_of(topic, part.index)) {
        res.error = error::kUnknownTopicOrPartition;
        continue;
      }
      const uint32_t partition = static_cast<uint32_t>(part.index);
      CheckedBatch checked = check_produce_batch(part.records, pipelines);
      if (checked.error != error::kNone) {
        res.error = checked.error;
        log::get("kafka").debug("Produce to {}/{} refused: {}", topic->name(), partition, checked.why);
        continue;
      }
      // An idempotent producer's batch: a retry of one stored is answered with its offset.
      const ProducerBatch producer = producer_batch(checked.header);
      if (producer.producer_id >= 0) {
        auto seen = producers_.check(topic->name(), partition, producer);
        if (seen.verdict == ProducerStates::Verdict::kDuplicate) {
          res.base_offset = seen.base_offset;
          res.log_start_offset = topic->partition(partition).start_offset();
          continue;
        }
        if (seen.verdict != ProducerStates::Verdict::kNew) {
          res.error = seen.verdict == ProducerStates::Verdict::kStaleEpoch
                          ? error::kInvalidProducerEpoch
                          : error::kOutOfOrderSequenceNumber;
          continue;
        }
      }
      auto [sender, receiver] = make_handoff<PartitionResult>();
      pending.push_back({t, results[t].size() - 1, std::move(receiver)});
      const PartitionResult base = res;
      ProducerStates* producers = producer.producer_id >= 0 ? &producers_ : nullptr;
      if (!pipelines) {
        // No pipeline: stored as it came, its base offset written in by the appender.
        broker_.append_batch(
            topic, partition, std::move(checked.batch),
            [sender = sender, base, log = &topic->partition(partition), producers, producer,
             name = topic->shared_name(), partition](Result<storage::AppendResult> appended) {
              PartitionResult out = base;
              if (appended.is_ok()) {
                out.base_offset = appended->base_offset;
                if (producers) producers->record(*name, partition, producer, out.base_offset);
              } else {
                out.error = error_for(appended.status());
              }
              out.log_start_offset = log->start_offset();
              sender.send(out);
            });
        continue;
      }
      // Through the topic's pipelines, as an HTTP produce of the same messages would go.
      std::vector<broker::ProduceRecord> records;
      records.reserve(checked.records.size());
      for (auto& rec : checked.records) records.push_back({std::move(rec.message), partition});
      std::shared_ptr<const std::string> name = topic->shared_name();
      auto done = [sender = sender, base, name, partition, producers, producer,
                   log = &topic->partition(partition)](
                      Result<std::vector<broker::ProduceOutcome>> outcomes) {
        PartitionResult out = base;
        out.log_start_offset = log->start_offset();
        if (!outcomes.is_ok()) {
          out.error = error_for(outcomes.status());
          sender.send(out);
          return;
        }
        int64_t first = -1;
        for (const auto& o : *outcomes) {
          if (o.kind == broker::ProduceOutcome::Kind::kFailed) out.error = error::kInvalidRecord;
          for (size_t i = 0; i < o.records.size(); ++i) {
            const auto& rec = o.records[i];
            if (rec.partition == partition && rec.topic() == *name &&
                (first < 0 || rec.offset < first)) {
              first = rec.offset;
            }
          }
        }
        out.base_offset = first >= 0 ? first : log->next_offset();
        if (producers && out.error == error::kNone) {
          producers->record(*name, partition, producer, out.base_offset);
        }
        sender.send(out);
      };
      // Stored with the producer's codec, as the batch came.
      auto refused = broker_.produce(topic->name(), std::move(records), done,
                                     static_cast<storage::Codec>(storage::batch_codec(checked.header)));
      if (refused) done(std::move(*refused));
    }
  }
  for (auto& p : pending) {
    auto got = co_await p.receiver.receive();
    PartitionResult& res = results[p.topic][p.partition];
    if (got.is_ok()) {
      res = *got;
    } else {
      res.error = error::kUnknownServerError;
    }
  }
  if (req.acks == 0) co_return Response();

  std::string out;
  Writer w(&out);
  w.i32(h.correlation_id);
  w.array_length(req.topics.size());
  for (size_t t = 0; t < req.topics.size(); ++t) {
    w.string(req.topics[t].name);
    w.array_length(results[t].size());
    for (const auto& res : results[t]) {
      w.i32(res.index);
      w.i16(res.error);
      w.i64(res.base_offset);
      if (v >= 2) w.i64(-1);  // log_append_time_ms: records keep the producer's CreateTime
      if (v >= 5) w.i64(res.log_start_offset);
    }
  }
  if (v >= 1) w.i32(0);  // throttle_time_ms
  co_return Response(std::move(out));
}

awaitable<Result<Response>> Service::fetch(Session& s, const RequestHeader& h, Reader& r) {
  const int16_t v = h.api_version;
  FetchRequest req = read_fetch(r, v);
  if (!r.ok()) co_return malformed(h, r);

  struct PartitionRead {
    int32_t index = 0;
    int16_t error = error::kNone;
    int64_t high_watermark = -1;
    int64_t log_start_offset = -1;
    std::string records;
  };
  struct TopicRead {
    std::string name;
    std::vector<PartitionRead> partitions;
  };
  // What one pass reads, on a disk thread: for each partition from its fetch offset, bounded by
  // its max_bytes and by what the request's max_bytes leaves; the first batch found is returned
  // whole whatever its size, so that a client always makes progress. The task owns a copy of
  // what it reads: this coroutine may be gone (its connection closed) when it runs.
  struct Wanted {
    std::string name;
    std::vector<FetchRequest::Partition> partitions;
  };
  auto wanted = std::make_shared<std::vector<Wanted>>();
  for (const auto& t : req.topics) wanted->push_back({std::string(t.name), t.partitions});
  std::function<std::vector<TopicRead>()> read_all = [store = &broker_.store(), wanted,
                                                      max_bytes = req.max_bytes] {
    std::vector<TopicRead> out;
    int64_t left = std::max(0, max_bytes);
    bool any = false;
    for (const auto& want : *wanted) {
      TopicRead& topic_read = out.emplace_back();
      topic_read.name = want.name;
      auto topic = store->find(want.name);
      for (const auto& part : want.partitions) {
        PartitionRead& pr = topic_read.partitions.emplace_back();
        pr.index = part.index;
        const storage::PartitionLog* found = partition_of(topic, part.index);
        if (!found) {
          pr.error = error::kUnknownTopicOrPartition;
          continue;
        }
        const auto& log = *found;
        int64_t limit = std::min<int64_t>(std::max(0, part.max_bytes), left);
        if (any && limit <= 0) {
          pr.high_watermark = log.next_offset();
          pr.log_start_offset = log.start_offset();
          continue;
        }
        auto read = log.read_batches(part.fetch_offset, static_cast<size_t>(std::max<int64_t>(limit, 1)));
        if (!read.is_ok()) {
          pr.error = error_for(read.status());
          pr.high_watermark = log.next_offset();
          pr.log_start_offset = log.start_offset();
          continue;
        }
        pr.high_watermark = read->high_watermark;
        pr.log_start_offset = read->log_start_offset;
        pr.records = std::move(read->bytes);
        left -= static_cast<int64_t>(pr.records.size());
        any |= !pr.records.empty();
      }
    }
    return out;
  };

  const auto deadline =
      Clock::now() + std::chrono::milliseconds(std::clamp(req.max_wait_ms, 0, kMaxFetchWaitMs));
  std::vector<TopicRead> reads;
  const bool may = permit(s, Need::kConsume, "Fetch",
                          [&] { return topics_text(req.topics, [](const auto& t) { return t.name; }); });
  if (!may) {
    for (const auto& want : *wanted) {
      TopicRead& refused = reads.emplace_back();
      refused.name = want.name;
      for (const auto& part : want.partitions) {
        refused.partitions.push_back({part.index, error::kTopicAuthorizationFailed, -1, -1, {}});
      }
    }
  }
  while (may) {
    auto pass = co_await run_on(broker_.disk_tasks(), read_all);
    if (!pass.is_ok()) co_return pass.status();
    reads = std::move(*pass);
    size_t bytes = 0;
    bool errors = false;
    for (const auto& t : reads) {
      for (const auto& p : t.partitions) {
        bytes += p.records.size();
        errors |= p.error != error::kNone;
      }
    }
    if (errors || bytes >= static_cast<size_t>(std::max(1, req.min_bytes)) || Clock::now() >= deadline) break;
    // Wait for an append to any of the partitions, or the deadline.
    auto [sender, receiver] = make_handoff<bool>();
    std::vector<uint64_t> waits;
    bool ready = false;
    for (const auto& t : reads) {
      for (const auto& p : t.partitions) {
        uint64_t id = broker_.wait_for_data(t.name, static_cast<uint32_t>(p.index), p.high_watermark,
                                            [sender = sender] { sender.send(true); });
        if (id == 0) ready = true;
        waits.push_back(id);
      }
    }
    if (!ready) {
      auto woke = co_await receiver.receive_for(deadline - Clock::now());
      if (!woke.is_ok() && woke.status().code() != StatusCode::kTimeout) {
        for (uint64_t id : waits) broker_.cancel_wait(id);
        co_return woke.status();
      }
    }
    for (uint64_t id : waits) {
      if (id) broker_.cancel_wait(id);
    }
  }

  std::string out;
  Writer w(&out);
  w.i32(h.correlation_id);
  w.i32(0);  // throttle_time_ms
  if (v >= 7) {
    w.i16(error::kNone);
    w.i32(0);  // session_id: no incremental fetch sessions
  }
  w.array_length(reads.size());
  for (const auto& t : reads) {
    w.string(t.name);
    w.array_length(t.partitions.size());
    for (const auto& p : t.partitions) {
      w.i32(p.index);
      w.i16(p.error);
      w.i64(p.high_watermark);
      w.i64(p.high_watermark);  // last_stable_offset: no transactions
      if (v >= 5) w.i64(p.log_start_offset);
      w.array_length(0);  // aborted_transactions
      if (v >= 11) w.i32(-1);  // preferred_read_replica
      w.bytes(p.records);
    }
  }
  co_return Response(std::move(out));
}

awaitable<Result<Response>> Service::list_offsets(Session& s, const RequestHeader& h, Reader& r) {
  const int16_t v = h.api_version;
  ListOffsetsRequest req = read_list_offsets(r, v);
  if (!r.ok()) co_return malformed(h, r);

  struct Found {
    int32_t index = 0;
    int16_t error = error::kNone;
    int64_t timestamp = -1;
    int64_t offset = -1;
  };
  using Topics = std::vector<std::vector<Found>>;
  // On a disk thread (a lookup by time reads batch headers), with its own copy of the request.
  struct Wanted {
    std::string name;
    std::vector<ListOffsetsRequest::Partition> partitions;
  };
  auto wanted = std::make_shared<std::vector<Wanted>>();
  for (const auto& t : req.topics) wanted->push_back({std::string(t.name), t.partitions});
  std::function<Topics()> look = [store = &broker_.store(), wanted] {
    Topics out;
    for (const auto& t : *wanted) {
      auto& parts = out.emplace_back();
      auto topic = store->find(t.name);
      for (const auto& p : t.partitions) {
        Found& f = parts.emplace_back();
        f.index = p.index;
        const storage::PartitionLog* found = partition_of(topic, p.index);
        if (!found) {
          f.error = error::kUnknownTopicOrPartition;
          continue;
        }
        const auto& log = *found;
        if (p.timestamp == -1) {
          f.offset = log.next_offset();
        } else if (p.timestamp == -2) {
          f.offset = log.start_offset();
        } else {
          auto at = log.offset_for_time(p.timestamp);
          if (!at.is_ok()) {
            f.error = error_for(at.status());
          } else if (*at) {
            f.offset = at->value().offset;
            f.timestamp = at->value().timestamp;
          }
        }
      }
    }
    return out;
  };
  Result<Topics> found = Topics{};
  if (permit(s, Need::kConsume, "ListOffsets",
             [&] { return topics_text(req.topics, [](const auto& t) { return t.name; }); })) {
    found = co_await run_on(broker_.disk_tasks(), look);
    if (!found.is_ok()) co_return found.status();
  } else {
    for (const auto& t : req.topics) {
      auto& parts = found->emplace_back();
      for (const auto& p : t.partitions) parts.push_back({p.index, error::kTopicAuthorizationFailed, -1, -1});
    }
  }

  std::string out;
  Writer w(&out);
  w.i32(h.correlation_id);
  if (v >= 2) w.i32(0);  // throttle_time_ms
  w.array_length(req.topics.size());
  for (size_t t = 0; t < req.topics.size(); ++t) {
    w.string(req.topics[t].name);
    w.array_length((*found)[t].size());
    for (const auto& f : (*found)[t]) {
      w.i32(f.index);
      w.i16(f.error);
      if (v == 0) {
        w.array_length(f.offset >= 0 ? 1 : 0);
        if (f.offset >= 0) w.i64(f.offset);
      } else {
        w.i64(f.timestamp);
        w.i64(f.offset);
      }
    }
  }
  co_return Response(std::move(out));
}

awaitable<Result<Response>> Service::create_topics(Session& s, const RequestHeader& h, Reader& r) {
  const int16_t v = h.api_version;
  CreateTopicsRequest req = read_create_topics(r, v);
  if (!r.ok()) co_return malformed(h, r);

  struct Created {
    std::string name;
    int16_t error = error::kNone;
    std::string message;
  };
  // Checked here, created on a disk thread.
  std::vector<Created> results;
  std::vector<std::pair<size_t, storage::TopicSettings>> to_create;
  const auto& store_options = broker_.store().options();
  for (const auto& t : req.topics) {
    Created& c = results.emplace_back();
    c.name = std::string(t.name);
    storage::TopicSettings settings;
    settings.name = c.name;
    if (!permit(s, Need::kCreateTopics, "CreateTopics", "topic " + c.name, &c.message)) {
      c.error = error::kTopicAuthorizationFailed;
      continue;
    }
    if (Status invalid = storage::validate_topic_name(t.name); !invalid.is_ok()) {
      c.error = error::kInvalidTopic;
      c.message = invalid.message();
      continue;
    }
    if (t.replication_factor != -1 && t.replication_factor != 1) {
      c.error = error::kInvalidReplicationFactor;
      c.message = "replication factor must be 1 (or -1): wasmq is one broker";
      continue;
    }
    if (t.has_assignments) {
      c.error = error::kInvalidRequest;
      c.message = "manual replica assignments are not supported";
      continue;
    }
    if (t.num_partitions == 0 || t.num_partitions < -1 ||
        t.num_partitions > static_cast<int32_t>(store_options.max_partitions)) {
      c.error = error::kInvalidPartitions;
      c.message = "partitions must be from 1 to " + std::to_string(store_options.max_partitions);
      continue;
    }
    if (t.num_partitions > 0) settings.partitions = static_cast<uint32_t>(t.num_partitions);
    for (const auto& config : t.configs) {
      // Named, not a structured binding: clang 14 cannot capture one in the lambda below.
      const std::string_view key = config.first;
      const std::optional<std::string_view> value = config.second;
      auto number = [&](std::optional<int64_t>* into) {
        try {
          size_t used = 0;
          int64_t n = std::stoll(std::string(value.value_or("")), &used);
          if (used != value->size() || n < -1) throw std::invalid_argument("range");
          *into = n;
          return true;
        } catch (const std::exception&) {
          return false;
        }
      };
      bool ok = key == "retention.ms"      ? value && number(&settings.retention_ms)
                : key == "retention.bytes" ? value && number(&settings.retention_bytes)
                                           : false;
      if (!ok) {
        c.error = error::kInvalidRequest;
        c.message = "config \"" + std::string(key) +
                    "\" is not supported here (retention.ms and retention.bytes are, as integers >= -1)";
        break;
      }
    }
    if (c.error != error::kNone) continue;
    if (broker_.store().find(t.name)) {
      c.error = error::kTopicAlreadyExists;
      c.message = "topic \"" + c.name + "\" already exists";
      continue;
    }
    if (!req.validate_only) to_create.emplace_back(results.size() - 1, std::move(settings));
  }
  if (!to_create.empty()) {
    using Outcomes = std::vector<Status>;
    std::function<Outcomes()> create = [store = &broker_.store(), to_create] {
      Outcomes outcomes;
      for (const auto& [i, settings] : to_create) {
        auto created = store->create(settings);
        outcomes.push_back(created.is_ok() ? Status::ok() : created.status());
      }
      return outcomes;
    };
    auto outcomes = co_await run_on(broker_.disk_tasks(), create);
    if (!outcomes.is_ok()) co_return outcomes.status();
    for (size_t k = 0; k < to_create.size(); ++k) {
      const Status& outcome = (*outcomes)[k];
      if (outcome.is_ok()) continue;
      Created& c = results[to_create[k].first];
      c.error = outcome.code() == StatusCode::kAlreadyExists     ? error::kTopicAlreadyExists
                : outcome.code() == StatusCode::kInvalidArgument ? error::kInvalidRequest
                : outcome.code() == StatusCode::kConflict        ? error::kPolicyViolation
                                                                 : error::kKafkaStorageError;
      c.message = outcome.message();
    }
  }
  // Every attempt at creating a topic is audited, as on HTTP (refusals were, by permit()).
  for (const auto& c : results) {
    if (c.error == error::kTopicAuthorizationFailed) continue;
    audit(s, "CreateTopics", "topic " + c.name,
          c.error == error::kNone ? AuditEvent::Result::kOk : AuditEvent::Result::kFailed, c.message);
  }

  std::string out;
  Writer w(&out);
  w.i32(h.correlation_id);
  if (v >= 2) w.i32(0);  // throttle_time_ms
  w.array_length(results.size());
  for (const auto& c : results) {
    w.string(c.name);
    w.i16(c.error);
    if (v >= 1) {
      w.nullable_string(c.error == error::kNone ? std::nullopt
                                                : std::optional<std::string_view>(c.message));
    }
  }
  co_return Response(std::move(out));
}

awaitable<Result<Response>> Service::delete_topics(Session& s, const RequestHeader& h, Reader& r) {
  const int16_t v = h.api_version;
  DeleteTopicsRequest req = read_delete_topics(r, v);
  if (!r.ok()) co_return malformed(h, r);
  std::vector<std::string> names(req.names.begin(), req.names.end());
  std::vector<bool> refused(names.size(), false);
  std::vector<std::string> permitted;
  for (size_t i = 0; i < names.size(); ++i) {
    refused[i] = !permit(s, Need::kDeleteTopics, "DeleteTopics", "topic " + names[i]);
    if (!refused[i]) permitted.push_back(names[i]);
  }
  using Outcomes = std::vector<Status>;
  std::function<Outcomes()> remove = [store = &broker_.store(), permitted] {
    Outcomes outcomes;
    for (const auto& name : permitted) outcomes.push_back(store->remove(name));
    return outcomes;
  };
  Result<Outcomes> outcomes = Outcomes{};
  if (!permitted.empty()) {
    outcomes = co_await run_on(broker_.disk_tasks(), remove);
    if (!outcomes.is_ok()) co_return outcomes.status();
  }

  std::string out;
  Writer w(&out);
  w.i32(h.correlation_id);
  if (v >= 1) w.i32(0);  // throttle_time_ms
  w.array_length(names.size());
  size_t next = 0;  // in outcomes
  for (size_t i = 0; i < names.size(); ++i) {
    w.string(names[i]);
    if (refused[i]) {
      w.i16(error::kTopicAuthorizationFailed);
      continue;
    }
    const Status& outcome = (*outcomes)[next++];
    audit(s, "DeleteTopics", "topic " + names[i],
          outcome.is_ok() ? AuditEvent::Result::kOk : AuditEvent::Result::kFailed, outcome.message());
    w.i16(outcome.is_ok() ? error::kNone
          : outcome.code() == StatusCode::kNotFound ? error::kUnknownTopicOrPartition
                                                    : error_for(outcome));
  }
  co_return Response(std::move(out));
}

awaitable<Result<Response>> Service::init_producer_id(Session& s, const RequestHeader& h, Reader& r) {
  InitProducerIdRequest req = read_init_producer_id(r, h.api_version);
  if (!r.ok()) co_return malformed(h, r);
  std::string out;
  Writer w(&out);
  w.i32(h.correlation_id);
  w.i32(0);  // throttle_time_ms
  if (!permit(s, Need::kProduce, "InitProducerId", "")) {
    w.i16(error::kClusterAuthorizationFailed);
    w.i64(-1);
    w.i16(-1);
  } else if (req.transactional_id) {
    // Transactions are not offered: a non-retriable error, so that the client fails at once.
    w.i16(error::kTransactionalIdAuthorizationFailed);
    w.i64(-1);
    w.i16(-1);
  } else {
    w.i16(error::kNone);
    w.i64(producers_.next_producer_id());
    w.i16(0);
  }
  co_return Response(std::move(out));
}

}  // namespace wasmq::kafka
