// The produce/consume service: what the data API does, without HTTP. The inline ETL pipelines
// run here, between a produce request and storage: a request whose topic has pipelines goes to
// the ETL workers, and what they decide (outputs, routed outputs, dead letters, error records)
// is stored from the worker thread before the request is answered.
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
#include "etl/orchestrator.h"
#include "storage/topic_store.h"

namespace wasmq::broker {

// The largest batch the broker appends: a request's records for one partition are split into
// batches of at most kMaxAppendRecords records and kMaxAppendBytes bytes (bincode sizes; a single
// larger message is a batch of its own), so that a read at any offset decodes a bounded amount.
inline constexpr size_t kMaxAppendRecords = 1000;
inline constexpr size_t kMaxAppendBytes = 1 << 20;

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

// The outcome for one input message, in input order (http-api.md, produce).
struct ProduceOutcome {
  enum class Kind {
    kStored,        // `records`: every record written for it (routed and split ones included)
    kFiltered,      // a module dropped it: `pipeline_id`, `module_id`
    kDeadLettered,  // `records` in the dead-letter topic; `error` says why
    kFailed,        // nothing reliable was stored; `error` says why; the producer may retry
  } kind = Kind::kStored;
  std::vector<StoredRecord> records;
  std::string error;
  std::string pipeline_id;
  std::string module_id;
};

using ProduceDone = std::function<void(Result<std::vector<ProduceOutcome>>)>;

struct ConsumeRequest {
  uint32_t partition = 0;
  int64_t offset = 0;
  size_t max_messages = 100;
  size_t max_bytes = 1 << 20;
};

class Broker {
 public:
  // `etl` (may be null: no pipelines) must outlive the broker.
  Broker(storage::TopicStore& store, BrokerOptions options, etl::Orchestrator* etl = nullptr);

  // Stores the records of one request, without ETL. The whole request is checked first (topic
  // name, partition numbers): a bad request is refused with kInvalidArgument/kNotFound and
  // nothing is stored. Records for the same partition are appended in input order, in batches
  // bounded by kMaxAppendRecords and kMaxAppendBytes; when one fails, its records and the later
  // ones of that partition are reported failed (the earlier ones stay stored).
  Result<std::vector<ProduceOutcome>> produce(std::string_view topic,
                                              std::vector<ProduceRecord> records);

  // Produces through the topic's inline pipelines. When no pipeline applies to the topic (or the
  // request is refused), the work is done on this thread and the result returned; otherwise it
  // returns nullopt and `done` is called once, from an ETL worker thread, after the outputs are
  // stored. When the ETL workers have too much produce work admitted (etl::Workers::admit) the
  // request is refused with kUnavailable and nothing is stored or created.
  std::optional<Result<std::vector<ProduceOutcome>>> produce(std::string topic,
                                                             std::vector<ProduceRecord> records,
                                                             ProduceDone done);

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

  // Stores what the ETL workers decided for a batch of `topic` and reports per input. With a
  // `destination` (stream pipelines), outputs that stay in `topic` go there instead. Dead
  // letters and error records are stored too. Blocks for disk I/O; any thread.
  std::vector<ProduceOutcome> store_etl_result(const std::string& topic, etl::BatchResult result,
                                               const std::string& destination = "");

  storage::TopicStore& store() { return store_; }
  etl::Orchestrator* etl() { return etl_; }

 private:
  // A message to append, and which input it answers for.
  struct Placement {
    size_t input = 0;
    std::string topic;
    std::optional<uint32_t> partition;
    Message message;
    bool dead_letter = false;
  };

  // The checks of a request: the topic (created when allowed) and the partitions.
  Result<std::shared_ptr<storage::Topic>> check(std::string_view topic,
                                                const std::vector<ProduceRecord>& records);
  // A topic for outputs, dead letters or error records; created when absent (outputs only when
  // auto_create_topics is on).
  Result<std::shared_ptr<storage::Topic>> target_topic(const std::string& name, bool always_create);
  // Appends every placement, in bounded batches per partition in order, and adds each stored
  // record (or the failure) to the outcome of its input.
  void store(std::vector<Placement> placements, std::vector<ProduceOutcome>& outcomes);
  void notify(const std::string& topic, uint32_t partition);

  storage::TopicStore& store_;
  const BrokerOptions options_;
  etl::Orchestrator* const etl_;

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
