// The produce/consume service: what the data API does, without HTTP. Later the ETL pipelines
// run here, between a produce request and storage.
//
// Threads: every method may be called from any thread (typically the I/O threads). Storage calls
// block for disk I/O (and fsync with FsyncPolicy::kAlways).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/message.h"
#include "common/status.h"
#include "storage/topic_store.h"

namespace wasmq::broker {

struct BrokerOptions {
  bool auto_create_topics = true;
};

// One message of a produce request.
struct ProduceRecord {
  Message message;
  std::optional<uint32_t> partition;  // default: by key, or spread
};

// Where a stored message went.
struct StoredRecord {
  std::string topic;
  uint32_t partition = 0;
  int64_t offset = 0;
};

// The outcome for one input message, in input order.
struct ProduceOutcome {
  enum class Kind { kStored, kFailed } kind = Kind::kStored;
  std::vector<StoredRecord> records;
  std::string error;
};

struct ConsumeRequest {
  uint32_t partition = 0;
  int64_t offset = 0;
  size_t max_messages = 100;
  size_t max_bytes = 1 << 20;
};

class Broker {
 public:
  Broker(storage::TopicStore& store, BrokerOptions options);

  // Stores the records of one request. The whole request is checked first (topic name, partition
  // numbers): a bad request is refused with kInvalidArgument/kNotFound and nothing is stored.
  // Records for the same partition are appended as one batch, in input order.
  Result<std::vector<ProduceOutcome>> produce(std::string_view topic,
                                              std::vector<ProduceRecord> records);

  // Reads from one partition; kNotFound for an unknown topic or partition or an offset out of
  // range (the message names the valid range).
  Result<storage::ReadResult> consume(std::string_view topic, const ConsumeRequest& request) const;

  // Calls `callback` once, from the thread that appends, when `topic`/`partition` receives data
  // (or immediately, on this thread, when its high watermark is already above `offset`).
  // Returns an id for cancel_wait; 0 when the callback already ran.
  uint64_t wait_for_data(const std::string& topic, uint32_t partition, int64_t offset,
                         std::function<void()> callback);
  // Removes a waiting callback; false when it already ran or never existed.
  bool cancel_wait(uint64_t id);

  storage::TopicStore& store() { return store_; }

 private:
  void notify(const std::string& topic, uint32_t partition);

  storage::TopicStore& store_;
  const BrokerOptions options_;

  struct Waiter {
    std::string topic;
    uint32_t partition;
    std::function<void()> callback;
  };
  std::mutex waiters_mutex_;
  std::map<uint64_t, Waiter> waiters_;  // guarded by waiters_mutex_
  uint64_t next_waiter_id_ = 1;         // guarded by waiters_mutex_
};

}  // namespace wasmq::broker
