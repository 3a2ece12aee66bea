#include "broker/broker.h"

#include <algorithm>
#include <future>

#include "common/bincode.h"
#include "common/log.h"

namespace wasmq::broker {

Broker::Broker(storage::TopicStore& store, BrokerOptions options, etl::Orchestrator* etl)
    : store_(store), options_(options), etl_(etl) {}

Result<std::shared_ptr<storage::Topic>> Broker::check(std::string_view topic_name,
                                                      const std::vector<ProduceRecord>& records) {
  if (Status s = storage::validate_topic_name(topic_name); !s.is_ok()) return s;
  if (records.empty()) return invalid_argument("no messages to produce");
  std::shared_ptr<storage::Topic> topic = store_.find(topic_name);
  if (!topic) {
    if (!options_.auto_create_topics) {
      return Status(StatusCode::kNotFound, "topic \"" + std::string(topic_name) +
                                               "\" does not exist (auto_create_topics is off)");
    }
    auto created = store_.find_or_create(topic_name);
    if (!created.is_ok()) return created.status();
    topic = *created;
  }
  const uint32_t partitions = topic->partition_count();
  for (size_t i = 0; i < records.size(); ++i) {
    if (records[i].partition && *records[i].partition >= partitions) {
      return field_error("messages[" + std::to_string(i) + "].partition",
                         std::to_string(*records[i].partition) + " is out of range (topic \"" +
                             topic->name() + "\" has " + std::to_string(partitions) +
                             " partition" + (partitions == 1 ? "" : "s") + ")");
    }
  }
  return topic;
}

Result<std::shared_ptr<storage::Topic>> Broker::target_topic(const std::string& name,
                                                             bool always_create) {
  if (auto topic = store_.find(name)) return topic;
  if (!always_create && !options_.auto_create_topics) {
    return Status(StatusCode::kNotFound,
                  "topic \"" + name + "\" does not exist (auto_create_topics is off)");
  }
  return store_.find_or_create(name);
}

void Broker::store(std::vector<Placement> placements, std::vector<ProduceOutcome> outcomes,
                   StoreDone done) {
  // What the partitions' appends share: the outcomes, filled as each partition's batches are
  // written, and how many partitions are still to come.
  struct Pending {
    Mutex mutex;
    std::vector<ProduceOutcome> outcomes;  // guarded by mutex
    size_t partitions_left = 0;  // guarded by mutex
    StoreDone done;
  };
  auto pending = std::make_shared<Pending>();
  auto fail = [](ProduceOutcome& out, const std::string& error) {
    out.kind = ProduceOutcome::Kind::kFailed;
    if (out.error.empty()) out.error = error;
  };
  // Group by topic and partition, keeping order within each.
  struct Target {
    std::shared_ptr<storage::Topic> topic;
    std::vector<std::vector<size_t>> by_partition;
  };
  std::map<std::string, Target, std::less<>> targets;
  for (size_t i = 0; i < placements.size(); ++i) {
    Placement& p = placements[i];
    auto it = targets.find(p.topic);
    if (it == targets.end()) {
      auto topic = target_topic(std::string(p.topic), p.dead_letter);
      if (!topic.is_ok()) {
        fail(outcomes[p.input], topic.status().message());
        continue;
      }
      Target t;
      t.topic = *topic;
      t.by_partition.resize(t.topic->partition_count());
      it = targets.emplace(p.topic, std::move(t)).first;
    }
    Target& t = it->second;
    uint32_t partition = p.partition && *p.partition < t.topic->partition_count()
                             ? *p.partition
                             : t.topic->choose_partition(p.message.key);
    t.by_partition[partition].push_back(i);
  }
  // One append job per partition: its records in bounded batches (a read at any offset decodes
  // at most one batch's worth of records), encoded here, outside any lock.
  struct Job {
    std::shared_ptr<storage::Topic> topic;
    uint32_t partition;
    std::vector<storage::EncodedBatch> batches;
    std::vector<std::vector<size_t>> inputs;  // per batch, the input of each record
  };
  std::vector<Job> jobs;
  std::vector<Message> batch;
  for (auto& [name, t] : targets) {
    for (uint32_t partition = 0; partition < t.by_partition.size(); ++partition) {
      const auto& members = t.by_partition[partition];
      if (members.empty()) continue;
      Job job{t.topic, partition, {}, {}};
      for (size_t first = 0; first < members.size();) {
        size_t end = first;
        size_t bytes = 0;
        batch.clear();
        std::vector<size_t> inputs;
        while (end < members.size() && batch.size() < kMaxAppendRecords) {
          const size_t size = bincode::encoded_size(placements[members[end]].message);
          if (!batch.empty() && bytes + size > kMaxAppendBytes) break;
          bytes += size;
          batch.push_back(std::move(placements[members[end]].message));
          inputs.push_back(placements[members[end]].input);
          ++end;
        }
        storage::EncodedBatch encoded;
        storage::encode_batch(0, batch, &encoded.bytes);
        encoded.records = static_cast<uint32_t>(batch.size());
        job.batches.push_back(std::move(encoded));
        job.inputs.push_back(std::move(inputs));
        first = end;
      }
      jobs.push_back(std::move(job));
    }
  }
  pending->outcomes = std::move(outcomes);
  pending->done = std::move(done);
  pending->partitions_left = jobs.size();
  if (jobs.empty()) {
    pending->done(std::move(pending->outcomes));
    return;
  }
  for (Job& job : jobs) {
    storage::PartitionLog& log = job.topic->partition(job.partition);
    auto topic = job.topic;
    const uint32_t partition = job.partition;
    appender_.append(
        log, topic, std::move(job.batches),
        [this, pending, topic, partition, fail, inputs = std::move(job.inputs)](
            std::vector<Result<storage::AppendResult>> results) {
          bool appended_any = false;
          bool last = false;
          {
            MutexLock lock(pending->mutex);
            for (size_t k = 0; k < results.size(); ++k) {
              for (size_t r = 0; r < inputs[k].size(); ++r) {
                ProduceOutcome& out = pending->outcomes[inputs[k][r]];
                if (results[k].is_ok()) {
                  out.records.push_back({topic->shared_name(), partition,
                                         results[k]->base_offset + static_cast<int64_t>(r)});
                } else {
                  fail(out, results[k].status().message());
                }
              }
              appended_any |= results[k].is_ok();
            }
            last = --pending->partitions_left == 0;
          }
          if (appended_any) notify(topic->name(), partition);
          if (last) pending->done(std::move(pending->outcomes));
        });
  }
}

void Broker::drain_appends() { appender_.drain(); }

Result<std::vector<ProduceOutcome>> Broker::produce(std::string_view topic_name,
                                                    std::vector<ProduceRecord> records) {
  std::promise<Result<std::vector<ProduceOutcome>>> stored;
  auto future = stored.get_future();
  auto immediate = produce_without_etl(topic_name, std::move(records),
                                       [&stored](Result<std::vector<ProduceOutcome>> outcomes) {
                                         stored.set_value(std::move(outcomes));
                                       });
  if (immediate) return std::move(*immediate);
  return future.get();
}

std::optional<Result<std::vector<ProduceOutcome>>> Broker::produce_without_etl(
    std::string_view topic_name, std::vector<ProduceRecord> records, ProduceDone done) {
  auto topic = check(topic_name, records);
  if (!topic.is_ok()) return Result<std::vector<ProduceOutcome>>(topic.status());
  std::vector<ProduceOutcome> outcomes(records.size());
  std::vector<Placement> placements(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    placements[i].input = i;
    placements[i].topic = (*topic)->name();
    placements[i].partition = records[i].partition;
    placements[i].message = std::move(records[i].message);
  }
  store(std::move(placements), std::move(outcomes),
        [done = std::move(done)](std::vector<ProduceOutcome> stored) { done(std::move(stored)); });
  return std::nullopt;
}

std::optional<Result<std::vector<ProduceOutcome>>> Broker::produce(
    std::string topic_name, std::vector<ProduceRecord> records, ProduceDone done) {
  // The name is checked before any plan is looked up: plans are cached per topic name.
  if (Status s = storage::validate_topic_name(topic_name); !s.is_ok()) {
    return Result<std::vector<ProduceOutcome>>(s);
  }
  if (!etl_) return produce_without_etl(topic_name, std::move(records), std::move(done));
  auto configuration = etl_->configuration();
  auto plan = configuration->plan_for(topic_name);
  if (plan->empty()) return produce_without_etl(topic_name, std::move(records), std::move(done));
  // Admitted before anything is created or queued: a refusal (503) changes nothing.
  uint64_t bytes = 0;
  for (const auto& r : records) bytes += bincode::encoded_size(r.message);
  auto admission = etl_->workers().admit(bytes);
  if (!admission.is_ok()) return Result<std::vector<ProduceOutcome>>(admission.status());
  auto topic = check(topic_name, records);
  if (!topic.is_ok()) return Result<std::vector<ProduceOutcome>>(topic.status());
  std::vector<etl::InputMessage> inputs(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    inputs[i].message = std::move(records[i].message);
    inputs[i].partition = records[i].partition;
  }
  // Held until the outputs are stored and reported.
  auto held = std::make_shared<etl::Admission>(std::move(*admission));
  etl_->process(std::move(configuration), std::move(plan), topic_name, std::move(inputs),
                [this, topic_name, done = std::move(done), held](etl::BatchResult result) {
                  // The worker queues the writes and goes on; the appender answers.
                  store_etl_result(topic_name, std::move(result), "",
                                   [done, held](std::vector<ProduceOutcome> outcomes) {
                                     // Before the answer: a client may send the next at once.
                                     held->release();
                                     done(std::move(outcomes));
                                   });
                });
  return std::nullopt;
}

std::vector<ProduceOutcome> Broker::store_etl_result(const std::string& topic,
                                                     etl::BatchResult result,
                                                     const std::string& destination) {
  std::promise<std::vector<ProduceOutcome>> stored;
  auto future = stored.get_future();
  store_etl_result(topic, std::move(result), destination,
                   [&stored](std::vector<ProduceOutcome> outcomes) {
                     stored.set_value(std::move(outcomes));
                   });
  return future.get();
}

void Broker::store_etl_result(const std::string& topic, etl::BatchResult result,
                              const std::string& destination, StoreDone done) {
  std::vector<ProduceOutcome> outcomes(result.outcomes.size());
  std::vector<Placement> placements;
  for (size_t i = 0; i < result.outcomes.size(); ++i) {
    etl::InputOutcome& in = result.outcomes[i];
    ProduceOutcome& out = outcomes[i];
    switch (in.kind) {
      case etl::InputOutcome::Kind::kPass:
        out.kind = ProduceOutcome::Kind::kStored;
        break;
      case etl::InputOutcome::Kind::kFiltered:
        out.kind = ProduceOutcome::Kind::kFiltered;
        break;
      case etl::InputOutcome::Kind::kDeadLettered:
        out.kind = ProduceOutcome::Kind::kDeadLettered;
        out.error = in.error;
        break;
    }
    out.pipeline_id = std::move(in.pipeline_id);
    out.module_id = std::move(in.module_id);
    for (auto& routed : in.outputs) {
      if (!destination.empty() && routed.topic == topic) {
        placements.push_back({i, destination, std::nullopt, std::move(routed.message), false});
        continue;
      }
      placements.push_back({i, routed.topic, routed.partition, std::move(routed.message), false});
    }
    for (auto& routed : in.dead_letters) {
      placements.push_back({i, routed.topic, std::nullopt, std::move(routed.message), true});
    }
  }
  // Error records answer for no input: a failure to write them is logged, not reported.
  if (!result.error_records.empty()) {
    std::vector<Placement> records;
    for (auto& r : result.error_records) {
      records.push_back({0, r.topic, std::nullopt, std::move(r.message), true});
    }
    store(std::move(records), std::vector<ProduceOutcome>(1),
          [topic](std::vector<ProduceOutcome> written) {
            if (written[0].kind == ProduceOutcome::Kind::kFailed) {
              log::get("broker").warn("error records of topic {} not written: {}", topic,
                                      written[0].error);
            }
          });
  }
  store(std::move(placements), std::move(outcomes), std::move(done));
}

Result<storage::ReadResult> Broker::consume(std::string_view topic_name,
                                            const ConsumeRequest& request) const {
  std::shared_ptr<storage::Topic> topic = store_.find(topic_name);
  if (!topic) {
    return Status(StatusCode::kNotFound,
                  "topic \"" + std::string(topic_name) + "\" does not exist");
  }
  if (request.partition >= topic->partition_count()) {
    return Status(StatusCode::kNotFound,
                  "partition " + std::to_string(request.partition) + " does not exist (topic \"" +
                      topic->name() + "\" has " + std::to_string(topic->partition_count()) + ")");
  }
  return topic->partition(request.partition)
      .read(request.offset, request.max_messages, request.max_bytes);
}

uint64_t Broker::wait_for_data(const std::string& topic_name, uint32_t partition, int64_t offset,
                               std::function<void()> callback) {
  const WaitKey key{topic_name, partition};
  uint64_t id;
  {
    MutexLock lock(waiters_mutex_);
    id = next_waiter_id_++;
    waiters_[key].emplace(id, std::move(callback));
    waiter_keys_.emplace(id, key);
  }
  // Checked after registering, so that an append between the check and the registration
  // cannot be missed.
  auto topic = store_.find(topic_name);
  if (topic && partition < topic->partition_count() &&
      topic->partition(partition).next_offset() > offset) {
    std::function<void()> ready = take_waiter(id);
    if (ready) ready();
    return 0;
  }
  return id;
}

std::function<void()> Broker::take_waiter(uint64_t id) {
  MutexLock lock(waiters_mutex_);
  auto key = waiter_keys_.find(id);
  if (key == waiter_keys_.end()) return {};
  auto partition = waiters_.find(key->second);
  std::function<void()> callback;
  if (partition != waiters_.end()) {
    auto it = partition->second.find(id);
    if (it != partition->second.end()) {
      callback = std::move(it->second);
      partition->second.erase(it);
    }
    if (partition->second.empty()) waiters_.erase(partition);
  }
  waiter_keys_.erase(key);
  return callback;
}

bool Broker::cancel_wait(uint64_t id) { return static_cast<bool>(take_waiter(id)); }

void Broker::notify(const std::string& topic, uint32_t partition) {
  std::map<uint64_t, std::function<void()>> ready;
  {
    MutexLock lock(waiters_mutex_);
    auto it = waiters_.find(WaitKey{topic, partition});
    if (it == waiters_.end()) return;
    ready = std::move(it->second);
    waiters_.erase(it);
    for (const auto& [id, callback] : ready) waiter_keys_.erase(id);
  }
  for (auto& [id, callback] : ready) callback();
}

}  // namespace wasmq::broker
