// The instance pools of every ETL worker as one service ([etl.instance_pool], the instance-pool
// endpoints of http-api.md): the figures of all workers merged per module, warm-ups, cleanups
// and per-module settings applied on every worker, and the background cleanup that runs every
// `gc_interval_ms` (the pools' collection on every worker, the module cache's TTL).
//
// Each worker's sandbox owns its pool (wasm::InstancePool) and only that worker may touch it, so
// every change is a job broadcast to all workers (Workers::broadcast), finished when the last
// worker has run it. Figures are read without the workers (wasm::PoolFigures), so a report
// never waits for a worker busy in a long call.
//
// Live instances: each worker's pool holds at most max_instances_per_worker() (an equal share of
// wasm::kMaxLiveInstancesPerProcess, the address-space bound); warm-ups and pool sizes above it
// are refused.
//
// Module ids are full ids ("name-vX.Y.Z"); a bare name means its newest version. Settings set
// through resize() are kept in memory: a restart starts from [etl.instance_pool] again.
//
// Threads: every method may be called from any thread; the callbacks run on a worker thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "etl/plan.h"
#include "etl/runtime.h"
#include "etl/workers.h"
#include "wasm/instance_pool.h"

namespace wasmq::etl {

struct PoolServiceOptions {
  wasm::PoolOptions pool;  // every worker's pool
  // Run the pools' collection every gc_interval (etl.instance_pool.enable_background_cleanup);
  // the module cache's TTL is applied on the same schedule either way.
  bool background_cleanup = true;
  std::chrono::milliseconds gc_interval{60'000};
};

// A partial change of a module's pool settings (PATCH): what is not set stays.
struct PoolSettingsChange {
  std::optional<uint32_t> max_pool_size;
  std::optional<uint32_t> warmup_instances;
  std::optional<double> creation_rate_limit;
  std::optional<uint64_t> idle_timeout_seconds;
};

struct PoolModuleReport {
  std::string module_id;
  wasm::PoolModuleStats total;                 // merged over the workers
  std::vector<wasm::PoolModuleStats> workers;  // by worker index
  bool overridden = false;                     // settings changed through resize()
};

struct PoolReport {
  std::vector<PoolModuleReport> modules;  // every deployed module (and any other with instances)
  wasm::PoolModuleStats totals;           // over every module
  size_t workers = 0;
  ModuleCache::Stats module_cache;
};

// What a warm-up, cleanup or resize did, over every worker.
struct PoolChange {
  std::string module_id;  // the full id; empty for a cleanup of every module
  uint64_t created = 0;
  uint64_t evicted = 0;
  uint64_t bytes_freed = 0;
  uint64_t module_objects = 0;      // module objects (instance settings) warmed per worker
  wasm::PoolSettings settings;      // in force for module_id
  std::vector<std::string> errors;  // "worker 1: ..." for each failure
};

class InstancePools {
 public:
  // `workers` and `runtime` must outlive this object; `configuration` gives the configuration in
  // force (the pipelines whose module settings a warm-up uses). Starts the background task.
  InstancePools(PoolServiceOptions options, Workers& workers, Runtime& runtime,
                std::function<std::shared_ptr<const Configuration>()> configuration);
  // Stops the background task (jobs already handed to workers still run).
  ~InstancePools();
  InstancePools(const InstancePools&) = delete;
  InstancePools& operator=(const InstancePools&) = delete;

  // The figures of every worker now, merged per module.
  PoolReport report() const;
  // Memory of every live instance of every worker (etl.memory_usage_bytes).
  uint64_t memory_usage_bytes() const;
  // The settings in force for `module_id` (a full id).
  wasm::PoolSettings settings(std::string_view module_id) const;
  // The bound on live instances of each worker's pool: wasm::kMaxLiveInstancesPerProcess shared
  // equally by the workers (at least 1), or PoolOptions::max_instances when lower.
  uint64_t max_instances_per_worker() const { return max_instances_per_worker_; }

  using Done = std::function<void(Result<PoolChange>)>;
  // Creates instances of the module on every worker until `instance_count` (bounded by its
  // max_pool_size and the memory budget) are idle, for each instance setting the enabled
  // pipelines run it with (the [etl] defaults when none uses it). kNotFound for an unknown
  // module; kLimitExceeded (naming instance_count) above max_instances_per_worker(), nothing
  // done; a change with errors when some worker failed, an error when none succeeded.
  void warm_up(std::string_view module_id, uint32_t instance_count, Done done);
  // Drops the idle instances of the module (of every module when `module_id` is empty) on every
  // worker.
  void clean_up(std::string_view module_id, Done done);
  // Changes the module's pool settings and applies them on every worker (a smaller
  // max_pool_size drops the excess, a larger warmup_instances creates instances).
  // kInvalidArgument (naming warmup_instances) when the result has warmup_instances above
  // max_pool_size, kLimitExceeded (naming the field) when max_pool_size or warmup_instances is
  // above max_instances_per_worker(); nothing changes then.
  void resize(std::string_view module_id, const PoolSettingsChange& change, Done done);
  // A deleted module: its pools, settings and figures go on every worker.
  void forget(const std::string& module_id);
  // One collection on every worker now (what the background task does every gc_interval).
  void collect(std::function<void(PoolChange)> done = {});

 private:
  std::shared_ptr<const ModuleRecord> resolve(std::string_view module_id, Status* error) const;
  std::vector<wasm::InstanceSettings> variants_of(const ModuleRecord& record) const;
  void background();

  // kLimitExceeded naming `field` when `n` is above max_instances_per_worker(); ok otherwise.
  Status check_instance_bound(std::string_view field, uint64_t n) const;

  const PoolServiceOptions options_;
  const uint64_t max_instances_per_worker_;
  Workers& workers_;
  Runtime& runtime_;
  std::function<std::shared_ptr<const Configuration>()> configuration_;

  mutable Mutex mutex_;  // orders changes of settings (and their broadcasts)
  std::map<std::string, wasm::PoolSettings, std::less<>> overrides_ GUARDED_BY(mutex_);

  std::shared_ptr<std::atomic<bool>> collecting_ = std::make_shared<std::atomic<bool>>(false);
  Mutex background_mutex_;
  CondVar background_wake_;
  bool stopping_ GUARDED_BY(background_mutex_) = false;
  std::thread background_;
};

}  // namespace wasmq::etl
