// The ETL figures: counters and latency histograms per pipeline, stage and module, and the
// topic-filter evaluation figures, all measured where the work happens (executor, plans).
// Served by the admin API as JSON and as Prometheus text.
//
// Figures are kept by pipeline id and survive configuration changes (a pipeline replaced keeps
// its history; a deleted pipeline's figures are dropped with it).
//
// Threads: recording is lock-free on the hot path (atomics) once a pipeline's entry exists;
// finding or creating an entry takes a mutex. Any thread.
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

#include "etl/pipeline.h"

namespace wasmq::etl {

// Durations in log-spaced buckets from 1 µs to ~100 s; percentiles are read from the buckets
// (each bucket spans a factor of 1.25, so a percentile is within 25 % of the true value).
class LatencyHistogram {
 public:
  void record(double ms);
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  double sum_ms() const;
  double average_ms() const;
  // The `q`-quantile (0..1) in ms; 0 when empty.
  double quantile_ms(double q) const;

  // Upper bounds (ms) of the buckets, for Prometheus' cumulative buckets.
  static const std::vector<double>& bucket_bounds_ms();
  uint64_t bucket_count(size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }
  static constexpr size_t kBuckets = 84;

 private:
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_us_{0};
};

// What one module use (a module of a stage) did.
struct ModuleFigures {
  std::string module_id;                   // as the pipeline names it
  std::atomic<uint64_t> processed{0};      // messages it was run on (successfully)
  std::atomic<uint64_t> filtered{0};       // of those, returned no message
  std::atomic<uint64_t> failed{0};         // messages on which it failed (after retries)
  std::atomic<uint64_t> skipped{0};        // failures skipped (continue_on_error, SkipModule)
  std::atomic<uint64_t> retried{0};        // retry calls
  std::atomic<uint64_t> dead_lettered{0};  // messages dead-lettered after its failure
  std::atomic<uint64_t> not_matched{0};    // messages whose rules did not hold
  std::atomic<uint64_t> cache_hits{0};
  std::atomic<uint64_t> breaker_rejections{0};
  LatencyHistogram latency;  // per message
};

struct StageFigures {
  uint32_t priority = 0;
  std::atomic<uint64_t> processed{0};           // messages that entered the stage
  std::atomic<uint64_t> failed{0};              // module failures in the stage
  std::atomic<uint64_t> concurrent_modules{0};  // parallel stages: modules run per message, summed
  LatencyHistogram latency;                     // per message, the whole stage
  std::vector<std::unique_ptr<ModuleFigures>> modules;
};

struct PipelineFigures {
  std::string pipeline_id;
  std::atomic<uint64_t> messages_in{0};   // messages that entered the pipeline
  std::atomic<uint64_t> messages_out{0};  // messages that left it (splits count each)
  std::atomic<uint64_t> filtered{0};      // inputs a module dropped
  std::atomic<uint64_t> failed{0};        // module failures
  std::atomic<uint64_t> skipped{0};
  std::atomic<uint64_t> retried{0};
  std::atomic<uint64_t> dead_lettered{0};
  // Messages to dead-letter whose dead-letter topic name would pass 249 characters (a long
  // source topic): no topic can take them, so they count here and the producer is told why.
  std::atomic<uint64_t> dead_letters_unwritable{0};
  std::atomic<uint64_t> stopped{0};  // messages that went on as they entered (StopPipeline)
  std::atomic<uint64_t> merge_conflicts{0};
  // Failures on error records or dead letters (a stream pipeline reading them) that wrote no new
  // error record or dead letter (executor.h, kFailureRecordHeader).
  std::atomic<uint64_t> failure_records_not_repeated{0};
  std::atomic<int64_t> last_success_ms{0};
  std::atomic<int64_t> last_failure_ms{0};
  LatencyHistogram latency;  // per message through the whole pipeline
  std::chrono::steady_clock::time_point created = std::chrono::steady_clock::now();

  mutable std::mutex mutex;
  std::string last_error;  // guarded by mutex
  // By stage priority; entries are never removed, so references stay valid.
  std::map<uint32_t, std::unique_ptr<StageFigures>> stages;  // guarded by mutex

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
  std::atomic<uint64_t> module_calls{0};
  LatencyHistogram call_latency;  // per guest call

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<PipelineFigures>, std::less<>> pipelines_;  // guarded
  FilterFigures filters_;
};

}  // namespace wasmq::etl
