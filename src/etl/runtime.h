// State the ETL workers share while running pipelines: compiled modules per instance settings,
// circuit breakers, the workers' module result caches, per-module concurrency bounds, and the
// [etl] defaults.
//
// Threads: every class here is safe to use from any number of threads at once.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <coroutine>
#include <deque>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/message.h"
#include "common/mutex.h"
#include "common/status.h"
#include "etl/figures.h"
#include "etl/module_registry.h"
#include "etl/result_cache.h"
#include "etl/task.h"
#include "wasm/sandbox.h"

namespace wasmq::etl {

// The [etl] settings the executor applies where a pipeline does not say otherwise.
struct EtlDefaults {
  uint64_t memory_limit_bytes = 64ull << 20;
  uint64_t execution_timeout_ms = 5000;
  uint64_t max_output_bytes = 16ull << 20;
  uint32_t max_batch_size = 256;
  uint32_t max_concurrent_executions = 100;
  bool enable_error_topic = true;
  std::string error_topic_prefix = "etl-errors";
  uint64_t max_error_message_size = 1 << 20;
  // Logging ([etl] enable_debug_logging, log_execution_times, cpu_warning_threshold_percent).
  bool log_calls = false;           // each guest call at debug level on the "etl" target
  bool log_execution_times = true;  // durations in those lines and in the slow-call warnings
  uint32_t cpu_warning_threshold_percent = 90;  // warn when a call uses more of its time limit
  bool log_memory_usage = true;  // the instance's memory in the call lines and memory warnings
  uint32_t memory_warning_threshold_percent = 80;  // warn when an instance uses more of its limit
  // Module result caches, over all workers (etl.result_cache_max_bytes).
  uint64_t result_cache_max_bytes = 64ull << 20;
};

// Modules compiled for given instance settings (memory limit, output limit, init config): one
// compilation per distinct combination, shared by every worker. Compilation happens once, on
// the compile thread (compiler.h) when one is set, else on the calling worker's sandbox;
// concurrent requests for the same key wait for it.
//
// Bounded (etl.module_cache_size, etl.module_cache_ttl_seconds): beyond `max_entries` compiled
// modules the least recently used one that no published pipeline uses is dropped (modules in
// use, set_in_use(), are never dropped by this bound: a topic whose plan uses more modules than
// the bound would otherwise compile them again on every batch); collect() drops those unused
// for `ttl`, in use or not. A dropped module is compiled again when next needed; calls holding
// it finish with it, and each worker's pool forgets its instances once nobody holds it
// (wasm::InstancePool::collect).
class ModuleCompiler;

class ModuleCache {
 public:
  using Clock = std::chrono::steady_clock;

  explicit ModuleCache(size_t max_entries = 50,
                       std::chrono::seconds ttl = std::chrono::seconds(3600))
      : max_entries_(std::max<size_t>(max_entries, 1)), ttl_(ttl) {}
  // Replaces the bounds (before the workers start).
  void set_limits(size_t max_entries, std::chrono::seconds ttl);
  // Compiles on `compiler` from now on (null: on the caller's sandbox). `compiler` must
  // outlive every get().
  void set_compiler(ModuleCompiler* compiler);
  // The module ids (ModuleRecord::id) the published configuration uses: exempt from the LRU
  // bound. Replaces the previous set; the bound applies to the rest at once.
  void set_in_use(std::set<std::string, std::less<>> module_ids);

  // `now` is when the module is used (tests pass their own time).
  Result<std::shared_ptr<const wasm::Module>> get(const ModuleRecord& record,
                                                  const wasm::InstanceSettings& settings,
                                                  wasm::Sandbox& sandbox,
                                                  Clock::time_point now = Clock::now());
  // Drops compiled modules of records no longer in `registry`.
  void prune(const ModuleRegistry& registry);
  // Drops compiled modules unused since `now - ttl`; returns how many.
  size_t collect(Clock::time_point now = Clock::now());
  // The compiled modules of `module_id` in the cache now.
  std::vector<std::shared_ptr<const wasm::Module>> modules_of(std::string_view module_id) const;
  size_t size() const;

  struct Stats {
    size_t size = 0;
    size_t max_entries = 0;
    uint64_t ttl_seconds = 0;
    uint64_t hits = 0;          // a compiled module was there
    uint64_t compilations = 0;  // it was not
    uint64_t evicted_lru = 0;   // beyond max_entries
    uint64_t evicted_ttl = 0;   // unused for ttl
  };
  Stats stats() const;

 private:
  struct Entry {
    std::shared_ptr<const wasm::Module> module;
    Status error;
    bool ready = false;
    Clock::time_point last_used{};
    std::list<std::string>::iterator lru;  // valid once ready
  };
  void evict_locked() REQUIRES(mutex_);

  mutable Mutex mutex_;
  CondVar compiled_;
  std::map<std::string, std::shared_ptr<Entry>> entries_ GUARDED_BY(mutex_);
  std::list<std::string> lru_ GUARDED_BY(mutex_);  // keys of ready entries, most recent first
  size_t max_entries_ GUARDED_BY(mutex_);
  std::chrono::seconds ttl_ GUARDED_BY(mutex_);
  ModuleCompiler* compiler_ GUARDED_BY(mutex_) = nullptr;
  std::set<std::string, std::less<>> in_use_ GUARDED_BY(mutex_);
  uint64_t hits_ GUARDED_BY(mutex_) = 0;
  uint64_t compilations_ GUARDED_BY(mutex_) = 0;
  uint64_t evicted_lru_ GUARDED_BY(mutex_) = 0;
  uint64_t evicted_ttl_ GUARDED_BY(mutex_) = 0;
};

// Per-module circuit breakers (pipelines.md, "Circuit breaker"). The executor keys them by
// ModuleUse::key and the id of the module version that runs ("<use key>@<name>-vX.Y.Z"), and
// holds a handle (get()) per bound module use, so that a call takes no map lookup and, while
// the breaker is closed and the module succeeds, no lock.
class CircuitBreakers {
 public:
  enum class Admission { kClosed, kTrial, kOpen };
  // What a reported outcome did to the breaker (for the log).
  enum class Transition { kNone, kOpened, kReopened, kClosed };
  // A breaker as the status API shows it.
  struct Snapshot {
    std::string_view state;  // "closed" | "open" | "half_open" (open, its trial may run now)
    uint32_t consecutive_failures = 0;
    int64_t open_remaining_ms = 0;  // open: until a trial may run
    uint64_t times_opened = 0;
  };

  class Breaker {
   public:
    // Whether a call may go ahead now: kClosed (normal), kTrial (the one half-open call: report
    // its outcome), kOpen (refused).
    Admission admit(std::chrono::steady_clock::time_point now);
    // Reports one message's outcome; opens the breaker after `threshold` consecutive failures,
    // or at once after a failed trial, and closes it after a successful trial. While the
    // breaker is open and no trial runs, outcomes (of calls admitted before it opened) change
    // nothing.
    Transition record(bool success, uint32_t threshold, std::chrono::milliseconds open_for,
                      std::chrono::steady_clock::time_point now);
    bool is_open(std::chrono::steady_clock::time_point now) const;
    Snapshot snapshot(std::chrono::steady_clock::time_point now) const;
    // Closed, no failures.
    void reset();

   private:
    mutable Mutex mutex_;
    uint32_t consecutive_failures_ GUARDED_BY(mutex_) = 0;
    std::chrono::steady_clock::time_point open_until_ GUARDED_BY(mutex_){};
    bool trial_running_ GUARDED_BY(mutex_) = false;
    uint64_t times_opened_ GUARDED_BY(mutex_) = 0;
    std::atomic<bool> open_{false};                      // written under mutex_
    // Closed with no failure counted: a success changes nothing (read without the lock).
    std::atomic<bool> quiet_{true};  // written under mutex_
  };

  // The breaker of `key`, made closed when new. The handle stays valid (and reset() resets it
  // in place).
  std::shared_ptr<Breaker> get(const std::string& key);

  // The same by key.
  Admission admit(const std::string& key, std::chrono::steady_clock::time_point now) {
    return get(key)->admit(now);
  }
  void record(const std::string& key, bool success, uint32_t threshold,
              std::chrono::milliseconds open_for, std::chrono::steady_clock::time_point now) {
    get(key)->record(success, threshold, open_for, now);
  }
  // Closes every breaker whose key starts with `key_prefix`.
  void reset(std::string_view key_prefix);
  // The breakers whose key starts with `key_prefix`, by key.
  std::vector<std::pair<std::string, Snapshot>> list(std::string_view key_prefix,
                                                     std::chrono::steady_clock::time_point now) const;
  bool is_open(const std::string& key, std::chrono::steady_clock::time_point now) const;

 private:
  mutable Mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<Breaker>> breakers_ GUARDED_BY(mutex_);
};

// Bounds how many calls of one module run at once (max_concurrent_instances) and of all
// modules (max_concurrent_executions). A Permit is held for one call. A run that finds the
// limit reached is not put to sleep: it suspends, its worker serves other jobs, and the permit
// is handed to it (in the order the runs asked) when a call ends; its scheduler resumes it.
class ConcurrencyLimits {
 public:
  class Permit {
   public:
    Permit() = default;
    Permit(ConcurrencyLimits* limits, std::string key) : limits_(limits), key_(std::move(key)) {}
    Permit(Permit&& o) noexcept : limits_(o.limits_), key_(std::move(o.key_)) {
      o.limits_ = nullptr;
    }
    Permit& operator=(Permit&&) = delete;
    ~Permit();

   private:
    ConcurrencyLimits* limits_ = nullptr;
    std::string key_;
  };

  // `co_await acquire(...)` gives a Permit once fewer than `per_module` calls of `key` and fewer
  // than `total` calls overall run (each at least 1); until then the awaiting run is suspended
  // and `scheduler` resumes it. `key` must outlive the co_await.
  auto acquire(Scheduler& scheduler, const std::string& key, uint32_t per_module,
               uint32_t total) {
    struct Awaiter {
      ConcurrencyLimits& limits;
      Scheduler& scheduler;
      const std::string& key;
      uint32_t per_module, total;
      bool await_ready() const noexcept { return false; }
      // Does not suspend (false) when a place is free.
      bool await_suspend(std::coroutine_handle<> h) {
        MutexLock lock(limits.mutex_);
        if (limits.try_take(key, per_module, total)) return false;
        limits.waiters_.push_back(Waiter{key, per_module, total, &scheduler, h});
        return true;
      }
      Permit await_resume() { return Permit(&limits, key); }
    };
    return Awaiter{*this, scheduler, key, per_module, total};
  }

  uint32_t running() const;
  // Runs suspended for a permit.
  size_t waiting() const;

 private:
  struct Waiter {
    std::string key;
    uint32_t per_module, total;
    Scheduler* scheduler;
    std::coroutine_handle<> handle;
  };
  // Takes a permit when the limits allow it. Under mutex_.
  bool try_take(const std::string& key, uint32_t per_module, uint32_t total) REQUIRES(mutex_);
  void release(const std::string& key);
  mutable Mutex mutex_;
  std::unordered_map<std::string, uint32_t> running_ GUARDED_BY(mutex_);
  uint32_t total_running_ GUARDED_BY(mutex_) = 0;
  std::deque<Waiter> waiters_ GUARDED_BY(mutex_);  // oldest first
};

// What every worker shares.
struct Runtime {
  EtlDefaults defaults;
  ModuleRegistry* registry = nullptr;
  ModuleCache modules;
  CircuitBreakers breakers;
  ResultCaches results;  // one cache per worker (result_cache.h)
  ConcurrencyLimits limits;
  Figures figures;
};

}  // namespace wasmq::etl
