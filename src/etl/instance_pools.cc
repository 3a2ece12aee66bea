#include "etl/instance_pools.h"

#include <algorithm>

#include "common/log.h"
#include "etl/executor.h"

namespace wasmq::etl {
namespace {

// What the workers of one broadcast add up, under a lock (they finish in any order).
class Tally {
 public:
  // Starts from `start` (the module id and settings the change is about).
  explicit Tally(PoolChange start = {}) : change_(std::move(start)) {}

  void add(const wasm::PoolSweep& sweep) {
    MutexLock lock(mutex_);
    change_.created += sweep.created;
    change_.evicted += sweep.evicted;
    change_.bytes_freed += sweep.bytes_freed;
  }
  void error(size_t worker, const std::string& what) {
    MutexLock lock(mutex_);
    change_.errors.push_back("worker " + std::to_string(worker) + ": " + what);
  }
  // The sum, moved out: by the broadcast's `done`, once every worker has added its part.
  PoolChange take() {
    MutexLock lock(mutex_);
    return std::move(change_);
  }

 private:
  Mutex mutex_;
  PoolChange change_ GUARDED_BY(mutex_);
};

std::string settings_key(const wasm::InstanceSettings& s) {
  return std::to_string(s.memory_limit_bytes) + '\0' + std::to_string(s.max_output_bytes) + '\0' +
         s.config_json;
}

}  // namespace

InstancePools::InstancePools(PoolServiceOptions options, Workers& workers, Runtime& runtime,
                             std::function<std::shared_ptr<const Configuration>()> configuration)
    : options_(std::move(options)),
      max_instances_per_worker_(std::min<uint64_t>(
          options_.pool.max_instances,
          std::max<uint64_t>(
              1, wasm::kMaxLiveInstancesPerProcess / std::max<size_t>(1, workers.size())))),
      workers_(workers),
      runtime_(runtime),
      configuration_(std::move(configuration)) {
  workers_.broadcast(
      [bound = max_instances_per_worker_](size_t, wasm::Sandbox& sandbox, Executor&) {
        sandbox.set_max_instances(bound);
      },
      [] {});
  background_ = std::thread([this] { background(); });
}

Status InstancePools::check_instance_bound(std::string_view field, uint64_t n) const {
  if (n <= max_instances_per_worker_) return Status::ok();
  return Status(StatusCode::kLimitExceeded,
                std::string(field) + ": " + std::to_string(n) + " is above the bound of " +
                    std::to_string(max_instances_per_worker_) + " live instances per worker (" +
                    std::to_string(wasm::kMaxLiveInstancesPerProcess) + " per process shared by " +
                    std::to_string(workers_.size()) +
                    " worker(s): every instance's memory reserves 10 GiB of address space)",
                std::string(field));
}

InstancePools::~InstancePools() {
  {
    MutexLock lock(background_mutex_);
    stopping_ = true;
  }
  background_wake_.notify_all();
  background_.join();
}

void InstancePools::background() {
  background_mutex_.lock();
  while (true) {
    const auto deadline = std::chrono::steady_clock::now() + options_.gc_interval;
    while (!stopping_ && background_wake_.wait_until(background_mutex_, deadline)) {
    }
    if (stopping_) break;
    background_mutex_.unlock();
    if (size_t dropped = runtime_.modules.collect(); dropped > 0) {
      log::get("etl").info("module cache: {} compiled module(s) unused for {} s dropped", dropped,
                           runtime_.modules.stats().ttl_seconds);
    }
    if (options_.background_cleanup) collect();
    background_mutex_.lock();
  }
  background_mutex_.unlock();
}

void InstancePools::collect(std::function<void(PoolChange)> done) {
  // One collection at a time: a worker stuck in a long call must not pile them up.
  if (collecting_->exchange(true)) {
    if (done) done(PoolChange{});
    return;
  }
  auto tally = std::make_shared<Tally>();
  workers_.broadcast(
      [tally](size_t, wasm::Sandbox& sandbox, Executor&) { tally->add(sandbox.collect_idle()); },
      [tally, flag = collecting_, done = std::move(done)] {
        flag->store(false);
        PoolChange change = tally->take();
        if (change.evicted > 0) {
          log::get("etl").debug("instance pools: {} idle instance(s) evicted, {} bytes freed",
                                change.evicted, change.bytes_freed);
        }
        if (done) done(std::move(change));
      });
}

std::shared_ptr<const ModuleRecord> InstancePools::resolve(std::string_view module_id,
                                                           Status* error) const {
  auto record = runtime_.registry ? runtime_.registry->resolve(module_id) : nullptr;
  if (!record) {
    *error = Status(StatusCode::kNotFound, "module " + std::string(module_id) + " does not exist");
  }
  return record;
}

std::vector<wasm::InstanceSettings> InstancePools::variants_of(const ModuleRecord& record) const {
  std::vector<wasm::InstanceSettings> out;
  std::vector<std::string> keys;
  auto add = [&](wasm::InstanceSettings s) {
    std::string key = settings_key(s);
    if (std::find(keys.begin(), keys.end(), key) != keys.end()) return;
    keys.push_back(std::move(key));
    out.push_back(std::move(s));
  };
  if (auto configuration = configuration_ ? configuration_() : nullptr) {
    for (const auto& pipeline : configuration->pipelines()) {
      if (!pipeline->spec.enabled) continue;
      for (const auto& stage : pipeline->stages) {
        for (const auto& use : stage.modules) {
          auto resolved = runtime_.registry->resolve(use.spec->module_id);
          if (!resolved || resolved->id != record.id) continue;
          add(instance_settings_for(pipeline->spec, *use.spec, runtime_.defaults));
        }
      }
    }
  }
  if (out.empty()) {
    wasm::InstanceSettings s;
    s.memory_limit_bytes = runtime_.defaults.memory_limit_bytes;
    s.max_output_bytes = runtime_.defaults.max_output_bytes;
    s.timeout_ms = static_cast<uint32_t>(
        std::min<uint64_t>(runtime_.defaults.execution_timeout_ms, UINT32_MAX));
    out.push_back(std::move(s));
  }
  return out;
}

wasm::PoolSettings InstancePools::settings(std::string_view module_id) const {
  MutexLock lock(mutex_);
  auto it = overrides_.find(module_id);
  return it == overrides_.end() ? options_.pool.defaults : it->second;
}

PoolReport InstancePools::report() const {
  PoolReport report;
  report.workers = workers_.size();
  report.module_cache = runtime_.modules.stats();
  std::map<std::string, PoolModuleReport, std::less<>> modules;
  auto entry = [&](const std::string& id) -> PoolModuleReport& {
    PoolModuleReport& m = modules[id];
    if (m.module_id.empty()) {
      m.module_id = id;
      m.workers.resize(report.workers);
      for (auto& w : m.workers) w.module_id = id;
    }
    return m;
  };
  if (runtime_.registry) {
    for (const auto& record : runtime_.registry->list()) entry(record->id);
  }
  const auto& figures = workers_.pool_figures();
  for (size_t w = 0; w < figures.size(); ++w) {
    for (auto& stats : figures[w]->snapshot()) {
      PoolModuleReport& m = entry(stats.module_id);
      m.workers[w] = std::move(stats);
    }
  }
  {
    MutexLock lock(mutex_);
    for (auto& [id, m] : modules) {
      auto it = overrides_.find(id);
      m.overridden = it != overrides_.end();
      m.total.module_id = id;
      m.total.settings = m.overridden ? it->second : options_.pool.defaults;
      for (auto& w : m.workers) {
        w.settings = m.total.settings;
        m.total.merge(w);
      }
    }
  }
  report.totals.module_id = "*";
  report.totals.settings = options_.pool.defaults;
  for (auto& [id, m] : modules) {
    report.totals.merge(m.total);
    report.modules.push_back(std::move(m));
  }
  return report;
}

uint64_t InstancePools::memory_usage_bytes() const {
  uint64_t total = 0;
  for (const auto& figures : workers_.pool_figures()) total += figures->memory_bytes();
  return total;
}

void InstancePools::warm_up(std::string_view module_id, uint32_t instance_count, Done done) {
  Status error;
  auto record = resolve(module_id, &error);
  if (!record) {
    done(error);
    return;
  }
  if (Status bound = check_instance_bound("instance_count", instance_count); !bound.is_ok()) {
    done(bound);
    return;
  }
  auto variants = std::make_shared<std::vector<wasm::InstanceSettings>>(variants_of(*record));
  PoolChange start;
  start.module_id = record->id;
  start.settings = settings(record->id);
  start.module_objects = variants->size();
  auto tally = std::make_shared<Tally>(std::move(start));
  Runtime& runtime = runtime_;
  workers_.broadcast(
      [record, variants, tally, instance_count, &runtime](size_t worker, wasm::Sandbox& sandbox,
                                                          Executor&) {
        for (const auto& settings : *variants) {
          auto module = runtime.modules.get(*record, settings, sandbox);
          if (!module.is_ok()) {
            tally->error(worker,
                         "cannot load module " + record->id + ": " + module.status().message());
            continue;
          }
          uint64_t created = 0;
          Status s = sandbox.warm_up(*module, instance_count, &created);
          wasm::PoolSweep sweep;
          sweep.created = created;
          tally->add(sweep);
          if (!s.is_ok()) tally->error(worker, s.message());
        }
      },
      [tally, done = std::move(done)] {
        PoolChange change = tally->take();
        if (!change.errors.empty() && change.created == 0) {
          done(Status(StatusCode::kModuleFailed, change.errors.front()));
          return;
        }
        done(std::move(change));
      });
}

void InstancePools::clean_up(std::string_view module_id, Done done) {
  PoolChange start;
  if (!module_id.empty()) {
    Status error;
    auto record = resolve(module_id, &error);
    if (!record) {
      done(error);
      return;
    }
    start.module_id = record->id;
    start.settings = settings(record->id);
  } else {
    start.settings = options_.pool.defaults;
  }
  std::string id = start.module_id;
  auto tally = std::make_shared<Tally>(std::move(start));
  workers_.broadcast([tally, id = std::move(id)](size_t, wasm::Sandbox& sandbox,
                                                 Executor&) { tally->add(sandbox.evict_idle(id)); },
                     [tally, done = std::move(done)] { done(tally->take()); });
}

void InstancePools::resize(std::string_view module_id, const PoolSettingsChange& change,
                           Done done) {
  Status error;
  auto record = resolve(module_id, &error);
  if (!record) {
    done(error);
    return;
  }
  MutexLock lock(mutex_);
  auto it = overrides_.find(record->id);
  wasm::PoolSettings next = it == overrides_.end() ? options_.pool.defaults : it->second;
  if (change.max_pool_size) next.max_pool_size = *change.max_pool_size;
  if (change.warmup_instances) next.warmup_instances = *change.warmup_instances;
  if (change.creation_rate_limit) next.creation_rate_limit = *change.creation_rate_limit;
  if (change.idle_timeout_seconds) {
    next.idle_timeout = std::chrono::seconds(*change.idle_timeout_seconds);
  }
  // Only what this change sets: the configuration's own values are bounded by the pools anyway.
  for (auto [field, n] :
       {std::pair{std::string_view("max_pool_size"), change.max_pool_size},
        std::pair{std::string_view("warmup_instances"), change.warmup_instances}}) {
    if (!n) continue;
    if (Status bound = check_instance_bound(field, *n); !bound.is_ok()) {
      done(bound);
      return;
    }
  }
  if (next.warmup_instances > next.max_pool_size) {
    done(field_error("warmup_instances", std::to_string(next.warmup_instances) +
                                             " is above max_pool_size (" +
                                             std::to_string(next.max_pool_size) + ") of module " +
                                             record->id));
    return;
  }
  overrides_[record->id] = next;
  PoolChange start;
  start.module_id = record->id;
  start.settings = next;
  auto tally = std::make_shared<Tally>(std::move(start));
  log::get("etl").info(
      "instance pool of {}: max_pool_size {}, warmup_instances {}, creation_rate_limit {}/s, "
      "idle_timeout_seconds {}",
      record->id, next.max_pool_size, next.warmup_instances, next.creation_rate_limit,
      next.idle_timeout.count());
  // Broadcast under the lock: workers apply concurrent changes in the order they were made.
  workers_.broadcast(
      [tally, id = record->id, next](size_t worker, wasm::Sandbox& sandbox, Executor&) {
        wasm::PoolSweep sweep = sandbox.set_pool_settings(id, next);
        tally->add(sweep);
        if (!sweep.status.is_ok()) tally->error(worker, sweep.status.message());
      },
      [tally, done = std::move(done)] { done(tally->take()); });
}

void InstancePools::forget(const std::string& module_id) {
  MutexLock lock(mutex_);
  overrides_.erase(module_id);
  workers_.broadcast(
      [module_id](size_t, wasm::Sandbox& sandbox, Executor&) { sandbox.forget(module_id); });
}

}  // namespace wasmq::etl
