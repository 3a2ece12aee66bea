#include "wasm/instance_pool.h"

#include <algorithm>
#include <cmath>
#include <thread>

namespace wasmq::wasm {
namespace {

class SteadyPoolClock final : public PoolClock {
 public:
  PoolTime now() override { return std::chrono::steady_clock::now(); }
  void sleep_until(PoolTime t) override { std::this_thread::sleep_until(t); }
};

int64_t ns_of(PoolTime t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

uint64_t ns_between(PoolTime from, PoolTime to) {
  return to > from ? static_cast<uint64_t>(
                         std::chrono::duration_cast<std::chrono::nanoseconds>(to - from).count())
                   : 0;
}

// The counters have one writer (the pool's thread): a relaxed load and store is enough, and
// costs what a plain add costs.
void add(std::atomic<uint64_t>& counter, uint64_t n) {
  counter.store(counter.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}
void sub(std::atomic<uint64_t>& counter, uint64_t n) {
  uint64_t v = counter.load(std::memory_order_relaxed);
  counter.store(v >= n ? v - n : 0, std::memory_order_relaxed);
}

double bucket_capacity(double rate) { return std::max(1.0, rate); }

}  // namespace

std::shared_ptr<PoolClock> PoolClock::steady() {
  static const std::shared_ptr<PoolClock> clock = std::make_shared<SteadyPoolClock>();
  return clock;
}

const char* eviction_reason_name(EvictionReason reason) {
  switch (reason) {
    case EvictionReason::kPoolFull:
      return "pool_full";
    case EvictionReason::kIdleTimeout:
      return "idle_timeout";
    case EvictionReason::kMaxIdle:
      return "max_idle";
    case EvictionReason::kMemory:
      return "memory";
    case EvictionReason::kCleanup:
      return "cleanup";
    case EvictionReason::kResize:
      return "resize";
    case EvictionReason::kUnloaded:
      return "unloaded";
    case EvictionReason::kInstanceLimit:
      return "max_instances";
  }
  return "?";
}

uint64_t PoolModuleStats::evicted() const {
  uint64_t n = 0;
  for (uint64_t e : evicted_by) n += e;
  return n;
}

double PoolModuleStats::hit_ratio() const {
  const uint64_t calls = reused + created_for_calls;
  return calls == 0 ? 0.0 : static_cast<double>(reused) / static_cast<double>(calls);
}

double PoolModuleStats::utilization() const {
  return live_ns == 0 ? 0.0
                      : std::min(1.0, static_cast<double>(busy_ns) / static_cast<double>(live_ns));
}

void PoolModuleStats::merge(const PoolModuleStats& o) {
  module_objects += o.module_objects;
  size += o.size;
  idle += o.idle;
  busy += o.busy;
  memory_bytes += o.memory_bytes;
  created += o.created;
  created_for_calls += o.created_for_calls;
  reused += o.reused;
  discarded += o.discarded;
  for (size_t i = 0; i < kEvictionReasons; ++i) evicted_by[i] += o.evicted_by[i];
  creation_waits += o.creation_waits;
  creation_wait_ns += o.creation_wait_ns;
  busy_ns += o.busy_ns;
  live_ns += o.live_ns;
}

struct PoolFigures::Counters {
  std::atomic<uint64_t> module_objects{0}, size{0}, idle{0}, busy{0}, memory_bytes{0};
  std::atomic<uint64_t> created{0}, created_for_calls{0}, reused{0}, discarded{0};
  std::atomic<uint64_t> creation_waits{0}, creation_wait_ns{0}, busy_ns{0}, live_ns{0};
  std::atomic<int64_t> live_since_ns{0};  // clock time up to which live_ns is counted
  std::array<std::atomic<uint64_t>, kEvictionReasons> evicted{};

  // Counts the instance time since the last change, before `size` changes. Owner thread.
  void advance(PoolTime now) {
    const int64_t t = ns_of(now);
    const int64_t since = live_since_ns.load(std::memory_order_relaxed);
    if (since != 0 && t > since) {
      add(live_ns, size.load(std::memory_order_relaxed) * static_cast<uint64_t>(t - since));
    }
    live_since_ns.store(t, std::memory_order_relaxed);
  }
};

std::vector<PoolModuleStats> PoolFigures::snapshot() const {
  const int64_t now = clock_ ? ns_of(clock_->now()) : 0;
  MutexLock lock(mutex_);
  std::vector<PoolModuleStats> out;
  out.reserve(modules_.size());
  for (const auto& [id, entry] : modules_) {
    const Counters* c = entry.counters.get();
    constexpr auto r = std::memory_order_relaxed;
    PoolModuleStats s;
    s.module_id = id;
    s.module_objects = c->module_objects.load(r);
    s.size = c->size.load(r);
    s.idle = c->idle.load(r);
    s.busy = c->busy.load(r);
    s.memory_bytes = c->memory_bytes.load(r);
    s.created = c->created.load(r);
    s.created_for_calls = c->created_for_calls.load(r);
    s.reused = c->reused.load(r);
    s.discarded = c->discarded.load(r);
    for (size_t i = 0; i < kEvictionReasons; ++i) s.evicted_by[i] = c->evicted[i].load(r);
    s.creation_waits = c->creation_waits.load(r);
    s.creation_wait_ns = c->creation_wait_ns.load(r);
    s.busy_ns = c->busy_ns.load(r);
    s.live_ns = c->live_ns.load(r);
    const int64_t since = c->live_since_ns.load(r);
    if (since != 0 && now > since) s.live_ns += s.size * static_cast<uint64_t>(now - since);
    s.settings = entry.settings;
    out.push_back(std::move(s));
  }
  return out;
}

uint64_t PoolFigures::memory_bytes() const {
  MutexLock lock(mutex_);
  uint64_t total = 0;
  for (const auto& [id, entry] : modules_) {
    total += entry.counters->memory_bytes.load(std::memory_order_relaxed);
  }
  return total;
}

// What a pool keeps per module id.
struct PoolSlot::ModuleState {
  std::string module_id;
  PoolSettings settings;
  bool overridden = false;
  double tokens = 0;  // creation rate limit bucket
  PoolTime refilled{};
  std::shared_ptr<PoolFigures::Counters> counters = std::make_shared<PoolFigures::Counters>();
  bool registered = false;  // counters visible in the figures (once an instance existed)
  size_t slots = 0;

  void refill(PoolTime now) {
    const double rate = settings.creation_rate_limit;
    if (rate <= 0) return;
    if (now > refilled) {
      tokens = std::min(bucket_capacity(rate),
                        tokens + rate * std::chrono::duration<double>(now - refilled).count());
    }
    refilled = now;
  }
};

InstancePool::InstancePool(PoolOptions options)
    : options_(std::move(options)), figures_(std::make_shared<PoolFigures>()) {
  if (!options_.clock) options_.clock = PoolClock::steady();
  figures_->clock_ = options_.clock;
}

InstancePool::~InstancePool() { clear(); }

void InstancePool::clear() {
  slots_.clear();
  memory_bytes_ = 0;
  live_instances_ = 0;
}

PoolSlot::ModuleState& InstancePool::state_for(const std::string& module_id) {
  auto& state = states_[module_id];
  if (!state) {
    state = std::make_unique<PoolSlot::ModuleState>();
    state->module_id = module_id;
    state->settings = options_.defaults;
    state->tokens = bucket_capacity(state->settings.creation_rate_limit);
    state->refilled = clock().now();
  }
  return *state;
}

PoolSlot& InstancePool::slot(const std::shared_ptr<const Module>& module) {
  auto& slot = slots_[module->serial()];
  if (!slot) {
    slot = std::make_unique<PoolSlot>();
    slot->module_id_ = module->id();
    slot->module_ = module;
    slot->serial_ = module->serial();
    slot->state_ = &state_for(module->id());
    ++slot->state_->slots;
    add(slot->state_->counters->module_objects, 1);
  }
  return *slot;
}

PoolSlot* InstancePool::find(uint64_t serial) {
  auto it = slots_.find(serial);
  return it == slots_.end() ? nullptr : it->second.get();
}

void InstancePool::adopt(PoolSlot& slot, PooledInstance& instance, bool for_call, PoolTime now) {
  PoolSlot::ModuleState& state = *slot.state_;
  PoolFigures::Counters& c = *state.counters;
  if (!state.registered) {
    MutexLock lock(figures_->mutex_);
    figures_->modules_[state.module_id] = PoolFigures::Entry{state.counters, state.settings};
    state.registered = true;
  }
  c.advance(now);
  instance.accounted_bytes = instance.memory_bytes;
  instance.last_used = now;
  instance.acquired = now;
  memory_bytes_ += instance.memory_bytes;
  ++live_instances_;
  slot.instance_bytes_ = instance.memory_bytes;
  add(c.memory_bytes, instance.memory_bytes);
  add(c.size, 1);
  add(c.created, 1);
  if (for_call) {
    add(c.created_for_calls, 1);
    add(c.busy, 1);
  } else {
    add(c.idle, 1);
  }
}

void InstancePool::account(PoolSlot& slot, PooledInstance& instance) {
  if (instance.memory_bytes == instance.accounted_bytes) return;
  PoolFigures::Counters& c = *slot.state_->counters;
  memory_bytes_ = memory_bytes_ - instance.accounted_bytes + instance.memory_bytes;
  sub(c.memory_bytes, instance.accounted_bytes);
  add(c.memory_bytes, instance.memory_bytes);
  instance.accounted_bytes = instance.memory_bytes;
}

// Drops an instance that is neither idle nor busy any more (the caller adjusted those gauges).
void InstancePool::drop(PoolSlot& slot, std::unique_ptr<PooledInstance> instance,
                        EvictionReason reason, PoolSweep* sweep) {
  PoolFigures::Counters& c = *slot.state_->counters;
  c.advance(clock().now());
  sub(c.size, 1);
  sub(c.memory_bytes, instance->accounted_bytes);
  memory_bytes_ -= std::min(memory_bytes_, instance->accounted_bytes);
  live_instances_ -= std::min<uint64_t>(live_instances_, 1);
  add(c.evicted[static_cast<size_t>(reason)], 1);
  if (sweep) {
    ++sweep->evicted;
    sweep->bytes_freed += instance->accounted_bytes;
  }
  instance.reset();
}

void InstancePool::drop_oldest_idle(PoolSlot& slot, EvictionReason reason, PoolSweep* sweep) {
  std::unique_ptr<PooledInstance> oldest = std::move(slot.idle_.front());
  slot.idle_.pop_front();
  sub(slot.state_->counters->idle, 1);
  drop(slot, std::move(oldest), reason, sweep);
}

Result<std::unique_ptr<PooledInstance>> InstancePool::acquire(PoolSlot& slot,
                                                              std::chrono::milliseconds time_limit,
                                                              const Create& create,
                                                              AcquireInfo* info) {
  AcquireInfo ignored;
  if (!info) info = &ignored;
  *info = AcquireInfo{};
  PoolSlot::ModuleState& state = *slot.state_;
  PoolFigures::Counters& c = *state.counters;
  if (!slot.used_) {
    slot.used_ = true;
    if (state.settings.warmup_instances > 0) {
      auto warmed = warm(slot, state.settings.warmup_instances, create);
      if (!warmed.is_ok()) return warmed.status();
    }
  }
  PoolTime now = clock().now();
  if (!slot.idle_.empty()) {
    std::unique_ptr<PooledInstance> instance = std::move(slot.idle_.back());
    slot.idle_.pop_back();
    instance->acquired = now;
    sub(c.idle, 1);
    add(c.busy, 1);
    add(c.reused, 1);
    info->reused = true;
    return instance;
  }
  if (live_instances_ >= options_.max_instances &&
      !drop_least_recently_used(EvictionReason::kInstanceLimit, nullptr)) {
    return Status(StatusCode::kLimitExceeded,
                  "no instance of " + slot.module_id_ + ": the pool holds its bound of " +
                      std::to_string(options_.max_instances) + " live instances");
  }
  const double rate = state.settings.creation_rate_limit;
  if (rate > 0) {
    state.refill(now);
    if (state.tokens < 1.0) {
      const auto wait = std::chrono::duration_cast<PoolTime::duration>(
          std::chrono::duration<double>((1.0 - state.tokens) / rate));
      const PoolTime at = now + wait;
      if (wait > time_limit) {
        char rate_text[32];
        std::snprintf(rate_text, sizeof rate_text, "%g", rate);
        return Status(StatusCode::kTimeout,
                      "no instance of " + slot.module_id_ +
                          " within the call's time limit: creation_rate_limit (" + rate_text +
                          " per second) reached");
      }
      clock().sleep_until(at);
      now = clock().now();
      add(c.creation_waits, 1);
      info->waited = now - (at - wait);
      add(c.creation_wait_ns, ns_between(at - wait, now));
      state.refill(now);
      state.tokens = std::max(state.tokens, 1.0);  // the wait was for this token
    }
    state.tokens -= 1.0;
  }
  auto made = create(slot);
  if (!made.is_ok()) return made.status();
  std::unique_ptr<PooledInstance> instance = std::move(*made);
  adopt(slot, *instance, /*for_call=*/true, clock().now());
  return instance;
}

std::optional<PoolTime> InstancePool::next_creation_at(PoolSlot& slot) {
  PoolSlot::ModuleState& state = *slot.state_;
  const double rate = state.settings.creation_rate_limit;
  if (rate <= 0 || !slot.idle_.empty()) return std::nullopt;
  if (!slot.used_ && state.settings.warmup_instances > 0) return std::nullopt;
  const PoolTime now = clock().now();
  state.refill(now);
  if (state.tokens >= 1.0) return std::nullopt;
  return now + std::chrono::duration_cast<PoolTime::duration>(
                   std::chrono::duration<double>((1.0 - state.tokens) / rate));
}

void InstancePool::release(PoolSlot& slot, std::unique_ptr<PooledInstance> instance) {
  PoolFigures::Counters& c = *slot.state_->counters;
  const PoolTime now = clock().now();
  c.advance(now);
  sub(c.busy, 1);
  add(c.busy_ns, ns_between(instance->acquired, now));
  account(slot, *instance);
  instance->last_used = now;
  if (slot.idle_.size() >= slot.state_->settings.max_pool_size) {
    drop(slot, std::move(instance), EvictionReason::kPoolFull, nullptr);
    return;
  }
  slot.idle_.push_back(std::move(instance));
  add(c.idle, 1);
  keep_memory_budget(slot);
}

void InstancePool::discard(PoolSlot& slot, std::unique_ptr<PooledInstance> instance) {
  PoolFigures::Counters& c = *slot.state_->counters;
  const PoolTime now = clock().now();
  c.advance(now);
  sub(c.busy, 1);
  add(c.busy_ns, ns_between(instance->acquired, now));
  sub(c.size, 1);
  sub(c.memory_bytes, instance->accounted_bytes);
  memory_bytes_ -= std::min(memory_bytes_, instance->accounted_bytes);
  live_instances_ -= std::min<uint64_t>(live_instances_, 1);
  add(c.discarded, 1);
}

void InstancePool::keep_memory_budget(PoolSlot& returned_to) {
  while (memory_bytes_ > options_.max_memory_bytes) {
    if (!options_.lru_eviction) {
      if (returned_to.idle_.empty()) return;
      std::unique_ptr<PooledInstance> newest = std::move(returned_to.idle_.back());
      returned_to.idle_.pop_back();
      sub(returned_to.state_->counters->idle, 1);
      drop(returned_to, std::move(newest), EvictionReason::kMemory, nullptr);
      return;
    }
    if (!drop_least_recently_used(EvictionReason::kMemory, nullptr)) return;  // all busy
  }
}

bool InstancePool::drop_least_recently_used(EvictionReason reason, PoolSweep* sweep) {
  PoolSlot* victim = nullptr;
  for (auto& [serial, slot] : slots_) {
    if (slot->idle_.empty()) continue;
    if (!victim || slot->idle_.front()->last_used < victim->idle_.front()->last_used) {
      victim = slot.get();
    }
  }
  if (!victim) return false;
  drop_oldest_idle(*victim, reason, sweep);
  return true;
}

PoolSweep InstancePool::set_max_instances(uint64_t max_instances) {
  options_.max_instances = max_instances;
  PoolSweep sweep;
  while (live_instances_ > max_instances &&
         drop_least_recently_used(EvictionReason::kInstanceLimit, &sweep)) {
  }
  return sweep;
}

Result<uint64_t> InstancePool::warm(PoolSlot& slot, uint64_t count, const Create& create) {
  const uint64_t target = std::min<uint64_t>(count, slot.state_->settings.max_pool_size);
  uint64_t created = 0;
  while (slot.idle_.size() < target) {
    if (memory_bytes_ + slot.instance_bytes_ > options_.max_memory_bytes) break;
    if (live_instances_ >= options_.max_instances) break;
    auto made = create(slot);
    if (!made.is_ok()) return made.status();
    std::unique_ptr<PooledInstance> instance = std::move(*made);
    adopt(slot, *instance, /*for_call=*/false, clock().now());
    slot.idle_.push_back(std::move(instance));
    ++created;
  }
  return created;
}

void InstancePool::remove_slot(uint64_t serial, EvictionReason reason, PoolSweep* sweep) {
  auto it = slots_.find(serial);
  if (it == slots_.end()) return;
  PoolSlot& slot = *it->second;
  while (!slot.idle_.empty()) drop_oldest_idle(slot, reason, sweep);
  PoolSlot::ModuleState* state = slot.state_;
  sub(state->counters->module_objects, 1);
  slots_.erase(it);
  if (--state->slots == 0 && !state->overridden && !state->registered) {
    states_.erase(state->module_id);
  }
}

PoolSweep InstancePool::forget_vanished() {
  PoolSweep sweep;
  std::vector<uint64_t> vanished;
  for (auto& [serial, slot] : slots_) {
    if (slot->module_.expired()) vanished.push_back(serial);
  }
  for (uint64_t serial : vanished) remove_slot(serial, EvictionReason::kUnloaded, &sweep);
  return sweep;
}

PoolSweep InstancePool::collect() {
  PoolSweep sweep = forget_vanished();
  const PoolTime now = clock().now();
  for (auto& [serial, slot] : slots_) {
    const PoolSettings& s = slot->state_->settings;
    if (s.idle_timeout.count() > 0) {
      while (slot->idle_.size() > s.warmup_instances &&
             slot->idle_.front()->last_used + s.idle_timeout <= now) {
        drop_oldest_idle(*slot, EvictionReason::kIdleTimeout, &sweep);
      }
    }
    const size_t keep = std::max<size_t>(options_.max_idle_instances, s.warmup_instances);
    while (slot->idle_.size() > keep) drop_oldest_idle(*slot, EvictionReason::kMaxIdle, &sweep);
  }
  for (auto& [id, state] : states_) state->counters->advance(now);
  return sweep;
}

PoolSweep InstancePool::evict_idle(std::string_view module_id) {
  PoolSweep sweep;
  for (auto& [serial, slot] : slots_) {
    if (!module_id.empty() && slot->module_id_ != module_id) continue;
    while (!slot->idle_.empty()) drop_oldest_idle(*slot, EvictionReason::kCleanup, &sweep);
  }
  return sweep;
}

PoolSweep InstancePool::set_settings(const std::string& module_id, const PoolSettings& settings,
                                     const Create& create) {
  PoolSlot::ModuleState& state = state_for(module_id);
  state.refill(clock().now());
  state.settings = settings;
  state.overridden = true;
  state.tokens = std::min(state.tokens, bucket_capacity(settings.creation_rate_limit));
  {
    MutexLock lock(figures_->mutex_);
    // The figures show the module once an instance existed (adopt copies the settings then).
    auto it = figures_->modules_.find(module_id);
    if (it != figures_->modules_.end()) it->second.settings = settings;
  }
  PoolSweep sweep;
  for (auto& [serial, slot] : slots_) {
    if (slot->module_id_ != module_id) continue;
    while (slot->idle_.size() > settings.max_pool_size) {
      drop_oldest_idle(*slot, EvictionReason::kResize, &sweep);
    }
  }
  for (auto& [serial, slot] : slots_) {
    if (slot->module_id_ != module_id || slot->module_.expired()) continue;
    auto warmed = warm(*slot, settings.warmup_instances, create);
    if (!warmed.is_ok()) {
      sweep.status = warmed.status();
      break;
    }
    sweep.created += *warmed;
  }
  return sweep;
}

PoolSettings InstancePool::settings(std::string_view module_id) const {
  auto it = states_.find(std::string(module_id));
  return it == states_.end() ? options_.defaults : it->second->settings;
}

void InstancePool::forget(uint64_t serial) {
  remove_slot(serial, EvictionReason::kUnloaded, nullptr);
}

void InstancePool::forget(std::string_view module_id) {
  std::vector<uint64_t> serials;
  for (auto& [serial, slot] : slots_) {
    if (slot->module_id_ == module_id) serials.push_back(serial);
  }
  for (uint64_t serial : serials) remove_slot(serial, EvictionReason::kUnloaded, nullptr);
  states_.erase(std::string(module_id));
  MutexLock lock(figures_->mutex_);
  auto it = figures_->modules_.find(module_id);
  if (it != figures_->modules_.end()) figures_->modules_.erase(it);
}

}  // namespace wasmq::wasm
