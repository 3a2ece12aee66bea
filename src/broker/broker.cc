#include "broker/broker.h"

#include <algorithm>

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
      return invalid_argument("messages[" + std::to_string(i) + "].partition: " +
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

void Broker::store(std::vector<Placement> placements, std::vector<ProduceOutcome>& outcomes) {
  // Group by topic and partition, keeping order within each.
  struct Target {
    std::shared_ptr<storage::Topic> topic;
    std::vector<std::vector<size_t>> by_partition;
  };
  std::map<std::string, Target, std::less<>> targets;
  auto fail = [&](size_t input, const std::string& error) {
    ProduceOutcome& out = outcomes[input];
    out.kind = ProduceOutcome::Kind::kFailed;
    if (out.error.empty()) out.error = error;
  };
  for (size_t i = 0; i < placements.size(); ++i) {
    Placement& p = placements[i];
    auto it = targets.find(p.topic);
    if (it == targets.end()) {
      auto topic = target_topic(p.topic, p.dead_letter);
      if (!topic.is_ok()) {
        fail(p.input, topic.status().message());
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
  std::vector<Message> batch;
  for (auto& [name, t] : targets) {
    for (uint32_t partition = 0; partition < t.by_partition.size(); ++partition) {
      const auto& members = t.by_partition[partition];
      bool appended_any = false;
      // Bounded batches: a read at any offset decodes at most one batch's worth of records.
      for (size_t first = 0; first < members.size();) {
        size_t end = first;
        size_t bytes = 0;
        batch.clear();
        while (end < members.size() && batch.size() < kMaxAppendRecords) {
          const size_t size = bincode::encoded_size(placements[members[end]].message);
          if (!batch.empty() && bytes + size > kMaxAppendBytes) break;
          bytes += size;
          batch.push_back(std::move(placements[members[end]].message));
          ++end;
        }
        auto appended = t.topic->partition(partition).append(batch);
        for (size_t k = first; k < end; ++k) {
          const Placement& p = placements[members[k]];
          if (appended.is_ok()) {
            outcomes[p.input].records.push_back(
                {t.topic->name(), partition,
                 appended->base_offset + static_cast<int64_t>(k - first)});
          } else {
            fail(p.input, appended.status().message());
          }
        }
        if (!appended.is_ok()) {
          // The rest is not appended either: a later batch stored after a failed one would
          // reorder the partition.
          for (size_t k = end; k < members.size(); ++k) {
            fail(placements[members[k]].input, appended.status().message());
          }
          break;
        }
        appended_any = true;
        first = end;
      }
      if (appended_any) notify(t.topic->name(), partition);
    }
  }
}

Result<std::vector<ProduceOutcome>> Broker::produce(std::string_view topic_name,
                                                    std::vector<ProduceRecord> records) {
  auto topic = check(topic_name, records);
  if (!topic.is_ok()) return topic.status();
  std::vector<ProduceOutcome> outcomes(records.size());
  std::vector<Placement> placements(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    placements[i].input = i;
    placements[i].topic = (*topic)->name();
    placements[i].partition = records[i].partition;
    placements[i].message = std::move(records[i].message);
  }
  store(std::move(placements), outcomes);
  return outcomes;
}

std::optional<Result<std::vector<ProduceOutcome>>> Broker::produce(
    std::string topic_name, std::vector<ProduceRecord> records, ProduceDone done) {
  if (!etl_) return produce(topic_name, std::move(records));
  auto configuration = etl_->configuration();
  auto plan = configuration->plan_for(topic_name);
  if (plan->empty()) return produce(topic_name, std::move(records));
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
                  auto outcomes = store_etl_result(topic_name, std::move(result));
                  held->release();  // before the answer: a client may send the next at once
                  done(std::move(outcomes));
                });
  return std::nullopt;
}

std::vector<ProduceOutcome> Broker::store_etl_result(const std::string& topic,
                                                     etl::BatchResult result,
                                                     const std::string& destination) {
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
      placements.push_back(
          {i, std::move(routed.topic), routed.partition, std::move(routed.message), false});
    }
    for (auto& routed : in.dead_letters) {
      placements.push_back(
          {i, std::move(routed.topic), std::nullopt, std::move(routed.message), true});
    }
  }
  store(std::move(placements), outcomes);
  // Error records answer for no input: a failure to write them is logged, not reported.
  if (!result.error_records.empty()) {
    std::vector<ProduceOutcome> ignored(1);
    std::vector<Placement> records;
    for (auto& r : result.error_records) {
      records.push_back({0, std::move(r.topic), std::nullopt, std::move(r.message), true});
    }
    store(std::move(records), ignored);
    if (ignored[0].kind == ProduceOutcome::Kind::kFailed) {
      log::get("broker").warn("error records of topic {} not written: {}", topic, ignored[0].error);
    }
  }
  return outcomes;
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
  uint64_t id;
  {
    std::lock_guard lock(waiters_mutex_);
    id = next_waiter_id_++;
    waiters_.emplace(id, Waiter{topic_name, partition, std::move(callback)});
  }
  // Checked after registering, so that an append between the check and the registration
  // cannot be missed.
  auto topic = store_.find(topic_name);
  if (topic && partition < topic->partition_count() &&
      topic->partition(partition).next_offset() > offset) {
    std::function<void()> ready;
    {
      std::lock_guard lock(waiters_mutex_);
      auto it = waiters_.find(id);
      if (it != waiters_.end()) {
        ready = std::move(it->second.callback);
        waiters_.erase(it);
      }
    }
    if (ready) ready();
    return 0;
  }
  return id;
}

bool Broker::cancel_wait(uint64_t id) {
  std::lock_guard lock(waiters_mutex_);
  return waiters_.erase(id) > 0;
}

void Broker::notify(const std::string& topic, uint32_t partition) {
  std::vector<std::function<void()>> ready;
  {
    std::lock_guard lock(waiters_mutex_);
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if (it->second.partition == partition && it->second.topic == topic) {
        ready.push_back(std::move(it->second.callback));
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& callback : ready) callback();
}

}  // namespace wasmq::broker
