// Stream pipelines (pipelines.md, "Where pipelines run"): a pipeline with mode "stream" consumes
// its source_topic from a committed position and appends its output to destination_topic,
// leaving the source as it is.
//
// One runner thread per enabled stream pipeline: read a batch from each source partition, run
// it through the pipeline on the ETL workers, store the outputs (dead letters and error records
// too), then commit the positions to <data_dir>/streams/<pipeline_id>.json. After a crash a
// runner resumes from its last commit: at-least-once, duplicates only for the batch in flight.
// A new pipeline (or one whose source topic changed) starts where start_from says: "earliest",
// "latest", an offset, or "@<timestamp_ms>" (the first record at or after that time).
//
// A supervisor thread follows the ETL configuration: it starts runners for enabled stream
// pipelines, stops those disabled (their position stays committed, so start resumes there),
// and restarts those whose document changed.
//
// Threads: status() from any thread; the constructor and destructor from one controlling thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "broker/broker.h"
#include "common/mutex.h"

namespace wasmq::broker {

// What a stream pipeline's runner reports.
struct StreamStatus {
  bool running = false;
  std::map<uint32_t, int64_t> positions;  // partition -> next offset to read
  int64_t lag = 0;                        // records in the source past the positions
  uint64_t batches = 0;
  uint64_t messages_in = 0;
  uint64_t records_out = 0;
  std::string last_error;
};

class StreamPipelines {
 public:
  // Starts following `etl`'s configuration. `broker` (and its etl) must outlive this object.
  explicit StreamPipelines(Broker& broker);
  // Stops every runner after its batch in flight (committed), then the supervisor.
  ~StreamPipelines();
  StreamPipelines(const StreamPipelines&) = delete;
  StreamPipelines& operator=(const StreamPipelines&) = delete;

  // The status of a stream pipeline's runner; nullopt when none has run since the start. A
  // pipeline the broker stopped (etl::Orchestrator::stop_reason) has the reason as last_error.
  std::optional<StreamStatus> status(const std::string& pipeline_id) const;

 private:
  struct Runner;
  void supervise();
  void reconcile();

  Broker& broker_;
  std::atomic<bool> stopping_{false};
  std::shared_ptr<const etl::Configuration> seen_;  // supervisor thread only
  mutable Mutex mutex_;
  std::map<std::string, std::unique_ptr<Runner>> runners_ GUARDED_BY(mutex_);
  std::map<std::string, StreamStatus> finished_ GUARDED_BY(mutex_);  // stopped runners
  Mutex wake_mutex_;
  CondVar wake_;
  std::thread supervisor_;
};

}  // namespace wasmq::broker
