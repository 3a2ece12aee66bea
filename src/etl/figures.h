// The ETL figures: counters and latency histograms per pipeline, stage and module, and the
// topic-filter evaluation figures, all measured where the work happens (executor, plans).
// Served by the admin API as JSON and as Prometheus text.
//
// Figures are kept by pipeline id and survive configuration changes (a pipeline replaced keeps
// its history; a deleted pipeline's figures are dropped with it).
//
// Threads: every counter and histogram has a lane per ETL worker (up to kMaxLanes): a worker
// adds to its own lane, on cache lines no other worker writes, and a read sums the lanes. So the
// workers never contend for a figure; threads that are not workers share lane 0 (each lane is
// atomic, so that stays correct). Finding or creating an entry takes a mutex; the executor does
// it once per pipeline and module use it binds, not per batch. Any thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/mutex.h"
#include "etl/pipeline.h"

namespace wasmq::etl {

// The lanes of the figures: one per ETL worker, up to kMaxLanes (workers beyond share them).
namespace figure_lanes {
inline constexpr size_t kMaxLanes = 16;
// The lanes each figure has: the machine's hardware threads (as many workers as the default
// etl.workers), 1 to kMaxLanes; fixed for the process.
size_t count();
// The lane the calling thread adds to (0 unless set). A worker sets its index at start.
size_t current();
void set_current(size_t worker_index);
}  // namespace figure_lanes

// A counter with a lane per worker (see Threads above).
class Counter {
 public:
  Counter() : lanes_(std::make_unique<Lane[]>(figure_lanes::count())) {}
  void fetch_add(uint64_t n, std::memory_order = std::memory_order_relaxed) {
    lanes_[figure_lanes::current()].value.fetch_add(n, std::memory_order_relaxed);
  }
  uint64_t load(std::memory_order = std::memory_order_relaxed) const;

 private:
  struct alignas(64) Lane {
    std::atomic<uint64_t> value{0};
  };
  std::unique_ptr<Lane[]> lanes_;
};

// Durations in log-spaced buckets from 1 µs to ~100 s; percentiles are read from the buckets
// (each bucket spans a factor of 1.25, so a percentile is within 25 % of the true value).
class LatencyHistogram {
 public:
  LatencyHistogram() : lanes_(std::make_unique<Lane[]>(figure_lanes::count())) {}
  // Records `n` calls (or messages) of `ms` each: a batch whose messages shared one time is
  // counted at once.
  void record(double ms, uint64_t n = 1);
  uint64_t count() const;
  double sum_ms() const;
  double average_ms() const;
  // The `q`-quantile (0..1) in ms; 0 when empty.
  double quantile_ms(double q) const;

  // Upper bounds (ms) of the buckets, for Prometheus' cumulative buckets.
  static const std::vector<double>& bucket_bounds_ms();
  uint64_t bucket_count(size_t i) const;
  static constexpr size_t kBuckets = 84;

 private:
  struct alignas(64) Lane {
    std::array<std::atomic<uint64_t>, kBuckets> buckets{};
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> sum_us{0};
  };
  std::unique_ptr<Lane[]> lanes_;
};

// What one module use (a module of a stage) did.
struct ModuleFigures {
  std::string module_id;                   // as the pipeline names it
  Counter processed;      // messages it was run on (successfully)
  Counter filtered;       // of those, returned no message
  Counter failed;         // messages on which it failed (after retries)
  Counter skipped;        // failures skipped (continue_on_error, SkipModule)
  Counter retried;        // retry calls
  Counter dead_lettered;  // messages dead-lettered after its failure
  Counter not_matched;    // messages whose rules did not hold
  Counter cache_hits;
  Counter breaker_rejections;
  Counter not_deployed;  // of the failures, those because no such module is deployed
  LatencyHistogram latency;  // per message
};

struct StageFigures {
  uint32_t priority = 0;
  Counter processed;           // messages that entered the stage
  Counter failed;              // module failures in the stage
  Counter concurrent_modules;  // parallel stages: modules run per message, summed
  LatencyHistogram latency;                     // per message, the whole stage
  std::vector<std::unique_ptr<ModuleFigures>> modules;
};

struct PipelineFigures {
  std::string pipeline_id;
  Counter messages_in;   // messages that entered the pipeline
  Counter messages_out;  // messages that left it (splits count each)
  Counter filtered;      // inputs a module dropped
  Counter failed;        // module failures
  Counter skipped;
  Counter retried;
  Counter dead_lettered;
  // Messages to dead-letter whose dead-letter topic name would pass 249 characters (a long
  // source topic): no topic can take them, so they count here and the producer is told why.
  Counter dead_letters_unwritable;
  Counter stopped;  // messages that went on as they entered (StopPipeline)
  Counter merge_conflicts;
  // Failures on error records or dead letters (a stream pipeline reading them) that wrote no new
  // error record or dead letter (executor.h, kFailureRecordHeader).
  Counter failure_records_not_repeated;
  std::atomic<int64_t> last_success_ms{0};
  std::atomic<int64_t> last_failure_ms{0};
  LatencyHistogram latency;  // per message through the whole pipeline
  std::chrono::steady_clock::time_point created = std::chrono::steady_clock::now();

  mutable Mutex mutex;
  std::string last_error GUARDED_BY(mutex);
  // By stage priority; entries are never removed, so references stay valid.
  std::map<uint32_t, std::unique_ptr<StageFigures>> stages GUARDED_BY(mutex);

  // Messages per second over the last minute (from a ring of per-second counts).
  double throughput_per_second() const;
  void count_throughput(uint64_t messages);

  // The figures of a stage and of a module of it (by its position), created on first use.
  StageFigures& stage(uint32_t priority);
  ModuleFigures& module(uint32_t priority, size_t module_index, const std::string& module_id);

 private:
  static constexpr int kWindowSeconds = 60;
  std::array<std::atomic<uint64_t>, kWindowSeconds> per_second_{};
  std::array<std::atomic<int64_t>, kWindowSeconds> second_of_{};
};

// Topic-filter figures: filters are evaluated when a topic's plan is computed (a cache miss);
// plan lookups that hit the cache are counted too.
struct FilterFigures {
  std::array<std::atomic<uint64_t>, 6> evaluations{};  // by FilterType
  std::array<std::atomic<uint64_t>, 6> matches{};
  std::array<std::atomic<uint64_t>, 6> total_ns{};
  std::atomic<uint64_t> plan_hits{0};
  std::atomic<uint64_t> plan_misses{0};
};

class Figures {
 public:
  // The figures of a pipeline, created on first use.
  std::shared_ptr<PipelineFigures> pipeline(const std::string& pipeline_id);
  // The figures of a pipeline, or nullptr.
  std::shared_ptr<PipelineFigures> find(std::string_view pipeline_id) const;
  void forget(std::string_view pipeline_id);
  std::vector<std::shared_ptr<PipelineFigures>> all() const;

  FilterFigures& filters() { return filters_; }
  const FilterFigures& filters() const { return filters_; }

  // Totals over every pipeline.
  Counter module_calls;
  LatencyHistogram call_latency;  // per guest call

 private:
  mutable Mutex mutex_;
  std::map<std::string, std::shared_ptr<PipelineFigures>, std::less<>> pipelines_
      GUARDED_BY(mutex_);
  FilterFigures filters_;
};

}  // namespace wasmq::etl
