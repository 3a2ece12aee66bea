// The instance pool of one Sandbox: instances of each module kept between calls, bounded and
// evicted by the rules of [etl.instance_pool] (docs/configuration.md), with figures that other
// threads may read while the sandbox runs.
//
// What a pool holds, per module object (a Module: a module id compiled with given instance
// settings) — a PoolSlot:
//   - idle instances, most recently returned last; a call takes the most recently returned
//     one (LIFO), so that the least recently used ones age out;
//   - at most `max_pool_size` idle instances: one returned to a full pool is dropped (evicted,
//     reason kPoolFull). 0 keeps none: every call creates an instance;
//   - `warmup_instances` created at the slot's first call (and by warm()), kept against the idle
//     timeout and the collection's trim;
// and per module id (all its module objects together): a token bucket for `creation_rate_limit`
// (instances created for calls per second; capacity one second's worth, at least one) and the
// figures (PoolModuleStats).
//
// Across modules: at most `max_instances` live instances (idle and busy): a call that needs a new
// instance at the bound first drops the least recently used idle instance of any module (reason
// kInstanceLimit); warm-ups stop at the bound. And the memory of every live instance (idle and
// busy, as their owner last measured it) is kept under `max_memory_bytes`. When a returned instance
// takes it above, the least recently used idle instances of any module are dropped first
// (`lru_eviction`; reason kMemory), or, without LRU eviction, the returned instance itself.
// Warm-ups stop at the budget.
//
// collect() (the background cleanup) drops instances idle longer than `idle_timeout` beyond
// `warmup_instances`, trims each slot's idle list to max(max_idle_instances, warmup_instances),
// and drops the slots of modules that no longer exist.
//
// Threads: an InstancePool belongs to its owner's thread (the Sandbox's). PoolFigures, reached
// through figures(), may be read from any thread; PoolClock::now() is called from both.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "wasm/engine.h"

namespace wasmq::wasm {

using PoolTime = std::chrono::steady_clock::time_point;

// Time as a pool sees it. Tests inject a clock they advance themselves.
class PoolClock {
 public:
  virtual ~PoolClock() = default;
  // Any thread.
  virtual PoolTime now() = 0;
  // Blocks the calling thread until `t` (waits for the creation rate limit).
  virtual void sleep_until(PoolTime t) = 0;
  // std::chrono::steady_clock and std::this_thread::sleep_until.
  static std::shared_ptr<PoolClock> steady();
};

// The pool settings of one module on one sandbox: [etl.instance_pool], or a module's override.
struct PoolSettings {
  uint32_t max_pool_size = 50;           // idle instances kept per module object; 0: none
  uint32_t warmup_instances = 0;         // created at first use; kept against idle eviction
  double creation_rate_limit = 0;        // instances created for calls per second; 0: no limit
  std::chrono::seconds idle_timeout{0};  // idle longer than this: dropped; 0: never

  bool operator==(const PoolSettings&) const = default;
};

// The most live instances (idle and busy, every module) one process may hold, and why: with the
// trap handler (EngineOptions::trap_handler) V8 reserves 10 GiB of address space for every wasm
// memory (8 GiB for any 32-bit index and offset, plus a 2 GiB guard region), and x86-64 Linux
// gives a process 128 TiB (2^47 bytes) of address space: 13,107 memories at most, after which
// every instantiation of every module fails ("Out of memory: wasm memory"). Fewer than half of
// that, so that the heap, the compiled code, the stacks and sandboxes outside the ETL workers
// (the CLI, uploads) always find room. The ETL gives each worker an equal share.
inline constexpr uint64_t kMaxLiveInstancesPerProcess = 6'000;

struct PoolOptions {
  PoolSettings defaults;
  // Live instances of the pool (idle and busy, every module); see kMaxLiveInstancesPerProcess.
  uint64_t max_instances = kMaxLiveInstancesPerProcess;
  // A collection keeps at most this many idle instances per module object (but never fewer
  // than warmup_instances).
  uint32_t max_idle_instances = UINT32_MAX;
  // Memory of all live instances of the pool (idle and busy), in bytes.
  uint64_t max_memory_bytes = UINT64_MAX;
  // Over the memory budget: drop the least recently used idle instances of any module (true),
  // or the instance being returned (false).
  bool lru_eviction = true;
  std::shared_ptr<PoolClock> clock;  // null: PoolClock::steady()
};

enum class EvictionReason {
  kPoolFull,       // returned to a pool holding max_pool_size idle instances
  kIdleTimeout,    // idle longer than idle_timeout (a collection)
  kMaxIdle,        // beyond max_idle_instances at a collection
  kMemory,         // the memory budget
  kCleanup,        // evict_idle() (the cleanup endpoint)
  kResize,         // a smaller max_pool_size
  kUnloaded,       // the module object is gone (module deleted, or its compilation evicted)
  kInstanceLimit,  // max_instances reached: room made for a new instance, or a lower bound set
};
inline constexpr size_t kEvictionReasons = 8;

// "pool_full", "idle_timeout", "max_idle", "memory", "cleanup", "resize", "unloaded",
// "max_instances".
const char* eviction_reason_name(EvictionReason reason);

// Figures of one module id: of one pool, or merged over several.
struct PoolModuleStats {
  std::string module_id;
  uint64_t module_objects = 0;  // module objects (instance settings) with instances or a slot
  uint64_t size = 0;            // live instances: idle + busy
  uint64_t idle = 0;
  uint64_t busy = 0;               // in a call now
  uint64_t memory_bytes = 0;       // of the live instances' memories, as measured after each call
  uint64_t created = 0;            // every instance created, warm-ups included
  uint64_t created_for_calls = 0;  // created because a call found no idle instance
  uint64_t reused = 0;             // calls served by an idle instance
  uint64_t discarded = 0;          // dropped after a failed call
  std::array<uint64_t, kEvictionReasons> evicted_by{};
  uint64_t creation_waits = 0;    // calls that waited for the creation rate limit
  uint64_t creation_wait_ns = 0;  // and how long, in total
  uint64_t busy_ns = 0;           // instance time spent in calls
  uint64_t live_ns = 0;           // instance time alive (busy or idle)
  PoolSettings settings;

  uint64_t evicted() const;
  // reused / (reused + created_for_calls): the share of calls that found an instance ready;
  // 0 before any call.
  double hit_ratio() const;
  // busy_ns / live_ns: the share of instance time spent in calls; 0 before any instance.
  double utilization() const;
  // Adds `other`'s counts and gauges (settings and module_id stay).
  void merge(const PoolModuleStats& other);
};

// The figures of one pool, readable from any thread while the pool's owner works: counters the
// owner writes (single writer, relaxed atomics) and readers copy. Each figure is exact; read
// together they may be one call apart.
class PoolFigures {
 public:
  PoolFigures() = default;
  PoolFigures(const PoolFigures&) = delete;
  PoolFigures& operator=(const PoolFigures&) = delete;

  // One entry per module id the pool has created an instance of, by id. Any thread.
  std::vector<PoolModuleStats> snapshot() const;
  // Memory of every live instance of the pool. Any thread.
  uint64_t memory_bytes() const;

  struct Counters;  // of one module id (instance_pool.cc)

 private:
  friend class InstancePool;
  // A module's counters and the settings in force for it (copied from the owner's on each
  // change).
  struct Entry {
    std::shared_ptr<Counters> counters;
    PoolSettings settings;
  };
  mutable Mutex mutex_;
  std::map<std::string, Entry, std::less<>> modules_ GUARDED_BY(mutex_);
  std::shared_ptr<PoolClock> clock_;
};

// An instance as a pool keeps it. The owner derives its instances from it and keeps
// `memory_bytes` current: the size of the instance's memory, read from the live memory after
// the instance was created and after each call.
struct PooledInstance {
  virtual ~PooledInstance() = default;
  uint64_t memory_bytes = 0;

 private:
  friend class InstancePool;
  uint64_t accounted_bytes = 0;  // what the pool's figures hold for it
  PoolTime last_used{};
  PoolTime acquired{};
};

// The pool of one module object.
class PoolSlot {
 public:
  // What the owner keeps with the slot (e.g. its per-isolate module object).
  struct Extra {
    virtual ~Extra() = default;
  };

  const std::string& module_id() const { return module_id_; }
  std::shared_ptr<const Module> module() const { return module_.lock(); }
  size_t idle() const { return idle_.size(); }

  std::unique_ptr<Extra> extra;

 private:
  friend class InstancePool;
  struct ModuleState;
  std::string module_id_;
  std::weak_ptr<const Module> module_;
  uint64_t serial_ = 0;
  bool used_ = false;                                 // a call has run on it
  std::deque<std::unique_ptr<PooledInstance>> idle_;  // most recently returned last
  uint64_t instance_bytes_ = 0;                       // initial memory of its last new instance
  ModuleState* state_ = nullptr;                      // of its module id
};

// What a maintenance operation did.
struct PoolSweep {
  uint64_t evicted = 0;
  uint64_t bytes_freed = 0;  // memory of the evicted instances
  uint64_t created = 0;
  Status status;  // the first creation failure, if any (the rest was done)
};

class InstancePool {
 public:
  // Creates one instance for `slot` (the owner instantiates its module).
  using Create = std::function<Result<std::unique_ptr<PooledInstance>>(PoolSlot&)>;

  explicit InstancePool(PoolOptions options = {});
  ~InstancePool();
  InstancePool(const InstancePool&) = delete;
  InstancePool& operator=(const InstancePool&) = delete;

  // The slot of `module`, created empty when new.
  PoolSlot& slot(const std::shared_ptr<const Module>& module);
  PoolSlot* find(uint64_t serial);

  // An instance for one call on `slot`, taken out of the pool (give it back with release() or
  // discard()). At the slot's first call, warms it up to warmup_instances first. Takes an idle
  // instance when there is one; otherwise creates one (at max_instances, after dropping the
  // least recently used idle instance of any module; kLimitExceeded when none is idle), after
  // waiting for the creation rate limit when its bucket is empty. A call whose wait would last
  // longer than `time_limit` fails with kTimeout at once (nothing waited, nothing created); a
  // creation failure is returned as it is. `info`, when given, says how the call was served;
  // `waited` is set before `create` runs.
  struct AcquireInfo {
    bool reused = false;
    std::chrono::nanoseconds waited{0};
  };
  Result<std::unique_ptr<PooledInstance>> acquire(PoolSlot& slot,
                                                  std::chrono::milliseconds time_limit,
                                                  const Create& create,
                                                  AcquireInfo* info = nullptr);
  // When a call on `slot` could take an instance without waiting for the creation rate limit:
  // nullopt when it can now (an idle instance, a token, a warm-up due, or no limit), else the
  // time the next token comes. So that a caller that must not sleep (an ETL worker) can wait
  // elsewhere and call then; acquire() itself waits as above.
  std::optional<PoolTime> next_creation_at(PoolSlot& slot);
  // Gives back an instance after a successful call (memory_bytes measured): kept idle, or
  // dropped when the slot is full or the memory budget says so.
  void release(PoolSlot& slot, std::unique_ptr<PooledInstance> instance);
  // Drops an instance after a failed call.
  void discard(PoolSlot& slot, std::unique_ptr<PooledInstance> instance);

  // Creates instances until `count` (at most max_pool_size) are idle on `slot`, or the memory
  // budget or max_instances is reached. Not rate limited. Returns how many it created; on a
  // creation failure, the error (the instances created before it stay).
  Result<uint64_t> warm(PoolSlot& slot, uint64_t count, const Create& create);

  // The background cleanup: idle timeout, max_idle_instances, slots of vanished modules.
  PoolSweep collect();
  // Drops every idle instance of `module_id`, or of every module when empty.
  PoolSweep evict_idle(std::string_view module_id = {});
  // Replaces the settings of `module_id` (an override of the defaults) and applies them now:
  // idle instances beyond the new max_pool_size are dropped (kResize), and each slot whose
  // module still exists is warmed up to the new warmup_instances (stopping at the first
  // creation failure, reported in the sweep's status).
  PoolSweep set_settings(const std::string& module_id, const PoolSettings& settings,
                         const Create& create);
  // The settings in force for `module_id`.
  PoolSettings settings(std::string_view module_id) const;

  // Drops a slot and its idle instances (instances out in a call are dropped when given back).
  void forget(uint64_t serial);
  // Drops every slot of `module_id`, its settings override and its figures.
  void forget(std::string_view module_id);
  // Drops the slots of modules that no longer exist (kUnloaded).
  PoolSweep forget_vanished();
  // Drops every slot and instance (before the owner's engine goes away).
  void clear();

  // Replaces options().max_instances; idle instances beyond it are dropped (kInstanceLimit),
  // least recently used first.
  PoolSweep set_max_instances(uint64_t max_instances);
  // Live instances: idle and busy.
  uint64_t live_instances() const { return live_instances_; }

  // Memory of every live instance, as measured.
  uint64_t memory_bytes() const { return memory_bytes_; }
  const PoolOptions& options() const { return options_; }
  PoolClock& clock() { return *options_.clock; }
  std::shared_ptr<const PoolFigures> figures() const { return figures_; }

 private:
  PoolSlot::ModuleState& state_for(const std::string& module_id);
  void drop(PoolSlot& slot, std::unique_ptr<PooledInstance> instance, EvictionReason reason,
            PoolSweep* sweep);
  void drop_oldest_idle(PoolSlot& slot, EvictionReason reason, PoolSweep* sweep);
  void account(PoolSlot& slot, PooledInstance& instance);
  void keep_memory_budget(PoolSlot& returned_to);
  // Drops the least recently used idle instance of any slot; false when none is idle.
  bool drop_least_recently_used(EvictionReason reason, PoolSweep* sweep);
  void adopt(PoolSlot& slot, PooledInstance& instance, bool for_call, PoolTime now);
  void remove_slot(uint64_t serial, EvictionReason reason, PoolSweep* sweep);

  PoolOptions options_;
  std::shared_ptr<PoolFigures> figures_;
  std::unordered_map<uint64_t, std::unique_ptr<PoolSlot>> slots_;
  std::unordered_map<std::string, std::unique_ptr<PoolSlot::ModuleState>> states_;
  uint64_t memory_bytes_ = 0;
  uint64_t live_instances_ = 0;
};

}  // namespace wasmq::wasm
