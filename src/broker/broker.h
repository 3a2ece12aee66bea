// The produce/consume service: what the data API does, without HTTP. The inline ETL pipelines
// run here, between a produce request and storage: a request whose topic has pipelines goes to
// the ETL workers, and what they decide (outputs, routed outputs, dead letters, error records)
// is stored before the request is answered.
//
// One way through, one owner per stage: the calling thread (an I/O thread) parses, checks and
// admits; the ETL workers only transform; the thread that has the records last encodes their
// batches and queues them for the appender (storage/appender.h), which alone writes the logs
// (and syncs them with fsync "always") and calls back; the answer goes back to the I/O thread
// through the caller's callback. Neither I/O threads nor ETL workers wait for the disk: topic
// creation and consumers' reads run on the disk threads (storage/disk_tasks.h), and a request
// that needs a topic created goes on from there.
//
// Threads: every method may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/message.h"
#include "common/mutex.h"
#include "common/status.h"
#include "etl/orchestrator.h"
#include "storage/appender.h"
#include "storage/disk_tasks.h"
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
  std::shared_ptr<const std::string> topic_name;  // the topic's own (Topic::shared_name)
  uint32_t partition = 0;
  int64_t offset = 0;

  const std::string& topic() const { return *topic_name; }
};

// Where one input's records went: nearly always one, kept inline, so that an outcome costs no
// allocation in the usual case.
class StoredRecords {
 public:
  void push_back(StoredRecord r) {
    if (size_ == 0) {
      first_ = std::move(r);
    } else {
      more_.push_back(std::move(r));
    }
    ++size_;
  }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const StoredRecord& operator[](size_t i) const { return i == 0 ? first_ : more_[i - 1]; }
  const StoredRecord& at(size_t i) const {
    if (i >= size_) throw std::out_of_range("StoredRecords::at");
    return (*this)[i];
  }

 private:
  StoredRecord first_;
  std::vector<StoredRecord> more_;
  size_t size_ = 0;
};

// The outcome for one input message, in input order (http-api.md, produce).
struct ProduceOutcome {
  enum class Kind {
    kStored,        // `records`: every record written for it (routed and split ones included)
    kFiltered,      // a module dropped it: `pipeline_id`, `module_id`
    kDeadLettered,  // `records` in the dead-letter topic; `error` says why
    kFailed,        // nothing reliable was stored; `error` says why; the producer may retry
  } kind = Kind::kStored;
  StoredRecords records;
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

  // Stores the records of one request, without ETL, and waits until they are written. The
  // whole request is checked first (topic name, partition numbers): a bad request is refused
  // with kInvalidArgument/kNotFound and nothing is stored. Records for the same partition are
  // appended in input order, in batches bounded by kMaxAppendRecords and kMaxAppendBytes; when
  // one fails, its records and the later ones of that partition are reported failed (the
  // earlier ones stay stored).
  Result<std::vector<ProduceOutcome>> produce(std::string_view topic,
                                              std::vector<ProduceRecord> records);

  // Produces through the topic's inline pipelines, if any, without waiting: a refused request
  // (bad name or partition, kUnavailable when the ETL workers have too much produce work
  // admitted, etl::Workers::admit) is answered at once with the refusal, and nothing is stored
  // or created. Otherwise it returns nullopt: the records go to the ETL workers when pipelines
  // apply to the topic, then (or at once) their batches are encoded and queued for the
  // appender, and `done` is called once, from the appender thread, when everything is written.
  // Neither this thread nor an ETL worker waits for the disk. The stored batches (outputs and
  // dead letters) are compressed with `codec`: a Kafka producer's batch comes back as it went.
  std::optional<Result<std::vector<ProduceOutcome>>> produce(
      std::string topic, std::vector<ProduceRecord> records, ProduceDone done,
      storage::Codec codec = storage::Codec::kNone);

  // The same for messages read as views (a request's JSON document), which need to live only
  // during the call: when the topic exists and no pipeline applies to it, they are checked and
  // encoded into their batches before this returns, with no copy; otherwise they are copied
  // into Messages and go the way of the produce() above. `partitions` has one entry per message.
  std::optional<Result<std::vector<ProduceOutcome>>> produce(
      std::string topic, std::span<const MessageView> messages,
      std::span<const std::optional<uint32_t>> partitions, ProduceDone done);

  // Whether inline pipelines apply to `topic` now. The Kafka front end stores a client's batch
  // as it came when none does, and otherwise produces its records through produce().
  bool has_pipelines(const std::string& topic) const { return route_for(topic).plan != nullptr; }

  // Appends a client's RecordBatch (checked by the caller: whole, CRC right, records that
  // decode) to `topic`/`partition` as it is; the appender writes its base offset in. `done` is
  // called on the appender thread; consumers waiting on the partition are woken.
  using BatchDone = std::function<void(Result<storage::AppendResult>)>;
  void append_batch(std::shared_ptr<storage::Topic> topic, uint32_t partition,
                    storage::EncodedBatch batch, BatchDone done);

  // Reads from one partition; kNotFound for an unknown topic or partition, kOutOfRange (field
  // "offset") for an offset out of range (the message names the valid range). Reads the disk on
  // the calling thread.
  Result<storage::ReadResult> consume(std::string_view topic, const ConsumeRequest& request) const;
  using ConsumeDone = std::function<void(Result<storage::ReadResult>)>;
  // The same on a disk thread, which calls `done` (I/O threads read this way).
  void consume(std::string topic, ConsumeRequest request, ConsumeDone done) const;

  // Calls `callback` once, from the thread that appends, when `topic`/`partition` receives data
  // (or immediately, on this thread, when its high watermark is already above `offset`).
  // Returns an id for cancel_wait; 0 when the callback already ran.
  uint64_t wait_for_data(const std::string& topic, uint32_t partition, int64_t offset,
                         std::function<void()> callback);
  // Removes a waiting callback; false when it already ran or never existed.
  bool cancel_wait(uint64_t id);

  using StoreDone = std::function<void(std::vector<ProduceOutcome>)>;

  // Stores what the ETL workers decided for a batch of `topic` and reports per input to `done`,
  // on the appender thread, once everything is written. With a `destination` (stream
  // pipelines), outputs that stay in `topic` go there instead. Dead letters and error records
  // are stored too. Any thread; does not wait for the disk.
  // The outputs and dead letters are stored in batches compressed with `codec`.
  void store_etl_result(const std::string& topic, etl::BatchResult result,
                        const std::string& destination, StoreDone done,
                        storage::Codec codec = storage::Codec::kNone);
  // The same, waiting for the outcomes (stream pipeline runners).
  std::vector<ProduceOutcome> store_etl_result(const std::string& topic, etl::BatchResult result,
                                               const std::string& destination = "");

  // Returns once every write queued so far is done (before storage closes).
  void drain_appends();

  storage::TopicStore& store() { return store_; }
  // The threads for storage work other than appending (storage/disk_tasks.h): topic creation
  // and removal, consumers' reads.
  storage::DiskTasks& disk_tasks() { return disk_tasks_; }
  etl::Orchestrator* etl() { return etl_; }

 private:
  // A message to append, and which input it answers for.
  struct Placement {
    size_t input = 0;
    // Views a name that outlives store()'s synchronous part (a topic's, or one in the ETL
    // result being stored).
    std::string_view topic;
    std::optional<uint32_t> partition;
    Message message;
    bool dead_letter = false;
  };

  // A produce request admitted so far: with a plan (and its admission) when it goes through
  // the ETL workers.
  struct Request {
    std::string topic;
    std::vector<ProduceRecord> records;
    ProduceDone done;
    std::shared_ptr<const etl::Configuration> configuration;
    std::shared_ptr<const etl::TopicPlan> plan;
    std::shared_ptr<etl::Admission> admission;
    storage::Codec codec = storage::Codec::kNone;  // of the stored batches
  };
  // The pipelines a produce request for a topic runs: none (null) without ETL or when no
  // pipeline applies.
  struct Route {
    std::shared_ptr<const etl::Configuration> configuration;
    std::shared_ptr<const etl::TopicPlan> plan;
  };
  // Looks the plan up (after the name is checked: plans are cached per topic name).
  Route route_for(const std::string& topic) const;
  // Every produce(): checks and admits the request, then dispatches it at once when its topic
  // exists, or from a disk thread once it is created. A refusal before that is returned.
  std::optional<Result<std::vector<ProduceOutcome>>> admit(
      std::string topic, std::vector<ProduceRecord> records, ProduceDone done, Route route,
      storage::Codec codec = storage::Codec::kNone);
  // Checks the partitions, then sends the records to the ETL workers or to store().
  std::optional<Result<std::vector<ProduceOutcome>>> dispatch(const storage::Topic& topic,
                                                              Request request);
  // Whether message `i` of a request may ask for `partition` of `topic`.
  static Status check_partition(const storage::Topic& topic, size_t i,
                                std::optional<uint32_t> partition);
  static Status not_created(std::string_view topic);
  // Placements to store together, and whom to tell.
  struct StoreJob {
    std::vector<Placement> placements;
    std::vector<ProduceOutcome> outcomes;
    StoreDone done;
    storage::Codec codec = storage::Codec::kNone;  // of its batches
  };
  // Stores each job in order (store_one). When a topic must be created first (outputs when
  // auto_create_topics is on, dead letters and error records always), all of them go on from a
  // disk thread, in the same order.
  void store(std::vector<StoreJob> jobs);
  // The topics the jobs' placements name, by name (null when absent), into `found`; true when
  // one of them is absent and store_one would create it.
  using Topics = std::map<std::string_view, std::shared_ptr<storage::Topic>>;
  bool find_topics(const std::vector<StoreJob>& jobs, Topics* found) const;
  // Encodes every placement, in bounded batches per partition in order, and queues them
  // (queue_appends). `found`: topics already looked up (others are looked up here).
  void store_one(StoreJob job, const Topics& found);
  // One partition's encoded batches, and per batch the input each record answers for.
  struct AppendJob {
    std::shared_ptr<storage::Topic> topic;
    uint32_t partition;
    std::vector<storage::EncodedBatch> batches;
    std::vector<std::vector<size_t>> inputs;
  };
  // Queues the jobs for the appender, adds each stored record (or the failure) to the outcome of
  // its input, and calls `done` with the outcomes when every partition is written (at once when
  // nothing is queued).
  void queue_appends(std::vector<AppendJob> jobs, std::vector<ProduceOutcome> outcomes,
                     StoreDone done);
  void notify(const std::string& topic, uint32_t partition);

  storage::TopicStore& store_;
  const BrokerOptions options_;
  etl::Orchestrator* const etl_;

  // Removes waiter `id` and returns its callback (empty when it is gone).
  std::function<void()> take_waiter(uint64_t id);

  // Waiting consumers by partition: an append wakes those of its partition only.
  using WaitKey = std::pair<std::string, uint32_t>;
  Mutex waiters_mutex_;
  std::map<WaitKey, std::map<uint64_t, std::function<void()>>> waiters_ GUARDED_BY(waiters_mutex_);
  std::map<uint64_t, WaitKey> waiter_keys_ GUARDED_BY(waiters_mutex_);  // id -> partition
  uint64_t next_waiter_id_ GUARDED_BY(waiters_mutex_) = 1;

  // Destroyed first, after writing what is queued (its callbacks use the members above).
  storage::Appender appender_;
  // Destroyed before the appender, after running what is queued (its tasks may append).
  mutable storage::DiskTasks disk_tasks_;
};

}  // namespace wasmq::broker
