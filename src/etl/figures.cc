#include "etl/figures.h"

#include <algorithm>
#include <cmath>
#include <thread>

namespace wasmq::etl {
namespace {

constexpr double kFirstBoundMs = 0.001;  // 1 µs
constexpr double kGrowth = 1.25;

int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

const std::vector<double>& LatencyHistogram::bucket_bounds_ms() {
  static const std::vector<double> bounds = [] {
    std::vector<double> b(kBuckets);
    double bound = kFirstBoundMs;
    for (size_t i = 0; i < kBuckets; ++i) {
      b[i] = bound;
      bound *= kGrowth;
    }
    return b;
  }();
  return bounds;
}

namespace figure_lanes {
namespace {
thread_local size_t lane = 0;
}  // namespace

size_t count() {
  static const size_t lanes =
      std::clamp<size_t>(std::thread::hardware_concurrency(), 1, kMaxLanes);
  return lanes;
}

size_t current() { return lane; }

void set_current(size_t worker_index) { lane = worker_index % count(); }

}  // namespace figure_lanes

uint64_t Counter::load(std::memory_order) const {
  uint64_t total = 0;
  for (size_t i = 0, n = figure_lanes::count(); i < n; ++i) {
    total += lanes_[i].value.load(std::memory_order_relaxed);
  }
  return total;
}

void LatencyHistogram::record(double ms, uint64_t n) {
  if (n == 0) return;
  if (!(ms >= 0)) ms = 0;
  const auto& bounds = bucket_bounds_ms();
  size_t i = std::lower_bound(bounds.begin(), bounds.end(), ms) - bounds.begin();
  if (i >= kBuckets) i = kBuckets - 1;
  Lane& lane = lanes_[figure_lanes::current()];
  lane.buckets[i].fetch_add(n, std::memory_order_relaxed);
  lane.count.fetch_add(n, std::memory_order_relaxed);
  lane.sum_us.fetch_add(static_cast<uint64_t>(ms * 1000.0) * n, std::memory_order_relaxed);
}

uint64_t LatencyHistogram::count() const {
  uint64_t total = 0;
  for (size_t i = 0, n = figure_lanes::count(); i < n; ++i) {
    total += lanes_[i].count.load(std::memory_order_relaxed);
  }
  return total;
}

uint64_t LatencyHistogram::bucket_count(size_t b) const {
  uint64_t total = 0;
  for (size_t i = 0, n = figure_lanes::count(); i < n; ++i) {
    total += lanes_[i].buckets[b].load(std::memory_order_relaxed);
  }
  return total;
}

double LatencyHistogram::sum_ms() const {
  uint64_t us = 0;
  for (size_t i = 0, n = figure_lanes::count(); i < n; ++i) {
    us += lanes_[i].sum_us.load(std::memory_order_relaxed);
  }
  return static_cast<double>(us) / 1000.0;
}

double LatencyHistogram::average_ms() const {
  uint64_t n = count();
  return n == 0 ? 0.0 : sum_ms() / static_cast<double>(n);
}

double LatencyHistogram::quantile_ms(double q) const {
  uint64_t total = 0;
  std::array<uint64_t, kBuckets> counts;
  for (size_t i = 0; i < kBuckets; ++i) total += counts[i] = bucket_count(i);
  if (total == 0) return 0.0;
  const uint64_t rank = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * total)));
  uint64_t seen = 0;
  const auto& bounds = bucket_bounds_ms();
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += counts[i];
    if (seen >= rank) return bounds[i];
  }
  return bounds.back();
}

void PipelineFigures::count_throughput(uint64_t messages) {
  const int64_t second = now_seconds();
  auto& slot_second = second_of_[static_cast<size_t>(second % kWindowSeconds)];
  auto& slot = per_second_[static_cast<size_t>(second % kWindowSeconds)];
  int64_t seen = slot_second.load(std::memory_order_relaxed);
  if (seen != second && slot_second.compare_exchange_strong(seen, second)) {
    slot.store(0, std::memory_order_relaxed);
  }
  slot.fetch_add(messages, std::memory_order_relaxed);
}

double PipelineFigures::throughput_per_second() const {
  const int64_t now = now_seconds();
  uint64_t total = 0;
  for (size_t i = 0; i < kWindowSeconds; ++i) {
    int64_t second = second_of_[i].load(std::memory_order_relaxed);
    // The current second is still filling: count the last full minute before it.
    if (second < now && now - second <= kWindowSeconds) total += per_second_[i].load();
  }
  const double age =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - created).count();
  const double window = std::clamp(age - 1.0, 1.0, static_cast<double>(kWindowSeconds));
  return static_cast<double>(total) / window;
}

StageFigures& PipelineFigures::stage(uint32_t priority) {
  MutexLock lock(mutex);
  auto& slot = stages[priority];
  if (!slot) {
    slot = std::make_unique<StageFigures>();
    slot->priority = priority;
  }
  return *slot;
}

ModuleFigures& PipelineFigures::module(uint32_t priority, size_t module_index,
                                       const std::string& module_id) {
  StageFigures& s = stage(priority);
  MutexLock lock(mutex);
  while (s.modules.size() <= module_index) s.modules.push_back(std::make_unique<ModuleFigures>());
  ModuleFigures& m = *s.modules[module_index];
  if (m.module_id != module_id) m.module_id = module_id;
  return m;
}

std::shared_ptr<PipelineFigures> Figures::pipeline(const std::string& pipeline_id) {
  MutexLock lock(mutex_);
  auto& slot = pipelines_[pipeline_id];
  if (!slot) {
    slot = std::make_shared<PipelineFigures>();
    slot->pipeline_id = pipeline_id;
  }
  return slot;
}

std::shared_ptr<PipelineFigures> Figures::find(std::string_view pipeline_id) const {
  MutexLock lock(mutex_);
  auto it = pipelines_.find(pipeline_id);
  return it == pipelines_.end() ? nullptr : it->second;
}

void Figures::forget(std::string_view pipeline_id) {
  MutexLock lock(mutex_);
  if (auto it = pipelines_.find(pipeline_id); it != pipelines_.end()) pipelines_.erase(it);
}

std::vector<std::shared_ptr<PipelineFigures>> Figures::all() const {
  MutexLock lock(mutex_);
  std::vector<std::shared_ptr<PipelineFigures>> out;
  for (const auto& [id, p] : pipelines_) out.push_back(p);
  return out;
}

}  // namespace wasmq::etl
