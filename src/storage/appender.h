// The thread that writes every partition: producers (the HTTP I/O threads, the ETL workers, the
// Kafka front end) encode their batches themselves, queue them here and go on; they never wait
// for a write or an fsync. The appender takes everything queued at once, appends each
// partition's batches in the order they were queued (PartitionLog::append_batches: one lock,
// and with fsync "always" one fsync for all of them: group commit), then calls each job's
// callback.
//
// Order: jobs for one partition are appended in the order append() was called.
// Threads: append() from any thread; callbacks run on the appender thread and must not block.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "storage/partition_log.h"

namespace wasmq::storage {

class Appender {
 public:
  using Done = std::function<void(std::vector<Result<AppendResult>>)>;

  Appender();
  // Appends what is queued, calls its callbacks, then stops.
  ~Appender();
  Appender(const Appender&) = delete;
  Appender& operator=(const Appender&) = delete;

  // Queues `batches` for `log` (kept alive by `owner` until done). `done` gets one result per
  // batch (PartitionLog::append_batches).
  void append(PartitionLog& log, std::shared_ptr<const void> owner,
              std::vector<EncodedBatch> batches, Done done);

  // Appends everything queued so far before returning (for tests and shutdown).
  void drain();

 private:
  struct Job {
    PartitionLog* log;
    std::shared_ptr<const void> owner;
    std::vector<EncodedBatch> batches;
    Done done;
  };
  void run();

  Mutex mutex_;
  CondVar wake_, drained_;
  std::vector<Job> queue_ GUARDED_BY(mutex_);
  uint64_t queued_ GUARDED_BY(mutex_) = 0;  // jobs ever queued
  uint64_t finished_ GUARDED_BY(mutex_) = 0;  // jobs done
  bool stopping_ GUARDED_BY(mutex_) = false;
  std::thread thread_;
};

}  // namespace wasmq::storage
