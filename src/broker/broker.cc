#include "broker/broker.h"

#include <algorithm>

namespace wasmq::broker {

Broker::Broker(storage::TopicStore& store, BrokerOptions options)
    : store_(store), options_(options) {}

Result<std::vector<ProduceOutcome>> Broker::produce(std::string_view topic_name,
                                                    std::vector<ProduceRecord> records) {
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

  // Group by partition, keeping input order within each.
  std::vector<uint32_t> target(records.size());
  std::vector<std::vector<size_t>> by_partition(partitions);
  for (size_t i = 0; i < records.size(); ++i) {
    target[i] = records[i].partition ? *records[i].partition
                                     : topic->choose_partition(records[i].message.key);
    by_partition[target[i]].push_back(i);
  }
  std::vector<ProduceOutcome> outcomes(records.size());
  std::vector<Message> batch;
  for (uint32_t p = 0; p < partitions; ++p) {
    if (by_partition[p].empty()) continue;
    batch.clear();
    for (size_t i : by_partition[p]) batch.push_back(std::move(records[i].message));
    auto appended = topic->partition(p).append(batch);
    for (size_t k = 0; k < by_partition[p].size(); ++k) {
      ProduceOutcome& out = outcomes[by_partition[p][k]];
      if (appended.is_ok()) {
        out.records.push_back({topic->name(), p, appended->base_offset + static_cast<int64_t>(k)});
      } else {
        out.kind = ProduceOutcome::Kind::kFailed;
        out.error = appended.status().message();
      }
    }
    if (appended.is_ok()) notify(topic->name(), p);
  }
  return outcomes;
}

Result<storage::ReadResult> Broker::consume(std::string_view topic_name,
                                            const ConsumeRequest& request) const {
  std::shared_ptr<storage::Topic> topic = store_.find(topic_name);
  if (!topic) {
    return Status(StatusCode::kNotFound, "topic \"" + std::string(topic_name) + "\" does not exist");
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
