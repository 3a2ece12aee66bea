// The ETL service of a broker: the module registry, the pipelines (from the configuration file
// and from the API, persisted), the compiled configuration they make, the ETL workers, and the
// entry points the broker and the admin API use.
//
// Every pipeline change is checked whole, persisted, and then published as a new Configuration
// snapshot; a rejected change leaves everything as it was. Work in flight finishes on the
// snapshot it started with.
//
// Threads: every method may be called from any thread. Methods that run WebAssembly or compile
// modules take a callback and return at once; the callback runs on an ETL worker thread.
#pragma once

#include <atomic>
#include <boost/json/array.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "etl/compile_check.h"
#include "etl/compiler.h"
#include "etl/executor.h"
#include "etl/instance_pools.h"
#include "etl/module_registry.h"
#include "etl/pipeline.h"
#include "etl/plan.h"
#include "etl/runtime.h"
#include "etl/workers.h"

namespace wasmq::etl {

// Uploads that may wait for the upload thread besides the one it checks.
inline constexpr size_t kMaxWaitingUploads = 4;

struct OrchestratorOptions {
  bool enabled = true;
  EtlDefaults defaults;
  size_t workers = 0;  // 0: one per hardware thread
  std::filesystem::path modules_path;
  std::filesystem::path pipelines_path;
  uint32_t max_pipelines = 50;
  // Every worker's instance pool and the background cleanup ([etl.instance_pool],
  // etl.gc_interval_ms, etl.max_idle_instances).
  PoolServiceOptions pools;
  // Compiled modules kept (etl.module_cache_size, etl.module_cache_ttl_seconds).
  size_t module_cache_size = 50;
  std::chrono::seconds module_cache_ttl{3600};
  // The compile check of uploads (etl.module_compile_timeout_ms,
  // etl.module_compile_max_memory_bytes; the broker sets the executable).
  CompileBounds compile_bounds;
};

enum class PipelineOrigin { kFile, kApi };

struct PipelineEntry {
  PipelineSpec spec;
  PipelineOrigin origin = PipelineOrigin::kApi;
};

class Orchestrator {
 public:
  // Loads the modules under options.modules_path, the pipelines of the configuration file
  // (`file_pipelines`, as cli::Config keeps them) and those persisted under
  // options.pipelines_path, and starts the workers. A file pipeline that does not parse fails
  // the start with "etl.pipelines[i]: <field>: <what>"; damaged persisted files are skipped
  // with a line in `warnings`.
  static Result<std::unique_ptr<Orchestrator>> open(OrchestratorOptions options,
                                                    const boost::json::array& file_pipelines,
                                                    std::vector<std::string>* warnings) NO_THREAD_SAFETY_ANALYSIS;
  ~Orchestrator();

  bool enabled() const { return options_.enabled; }
  const OrchestratorOptions& options() const { return options_; }

  // --- modules ---
  using ModuleDone = std::function<void(Result<std::shared_ptr<const ModuleRecord>>)>;
  // Validates (the ABI checks, then a full compilation within options.compile_bounds, in a
  // child process) and stores a module; `signed_by` is the id of the key whose signature the
  // upload carried (empty: none). Runs on the upload thread (compiler.h), one upload at a time,
  // never on an ETL worker; `done` is called there. When kMaxWaitingUploads uploads wait
  // already, `done` is called at once with kLimitExceeded ("too many uploads in progress").
  void upload_module(std::string name, std::string version, std::vector<uint8_t> binary,
                     std::string signed_by, ModuleDone done);
  // Removes a module; kConflict while an enabled pipeline pins it by full id. Everything the
  // broker compiled of it goes: the module cache's entries, every worker's module objects and
  // instances (collected at once, not at some later garbage collection).
  Status delete_module(std::string_view id);
  ModuleRegistry& modules() { return *registry_; }
  // The pipelines whose modules resolve to `record` now, or pin it.
  std::vector<std::string> used_by(const ModuleRecord& record) const;

  // --- pipelines ---
  // A refused change is kInvalidArgument (with the bad field's path in Status::field),
  // kNotFound, kAlreadyExists, kConflict or kIo.
  Result<PipelineSpec> create_pipeline(const boost::json::value& document);
  // A document without pipeline_id gets the id its name gives (pipeline_id_from_name), else a
  // random one. Two pipelines may not have the same name (kAlreadyExists). A replace or patch
  // that leaves the pipeline as it is changes nothing and sets `*changed` false.
  Result<PipelineSpec> replace_pipeline(std::string_view id, const boost::json::value& document,
                                        bool* changed = nullptr);
  Result<PipelineSpec> patch_pipeline(std::string_view id, const boost::json::value& patch,
                                      bool* changed = nullptr);
  Status delete_pipeline(std::string_view id);
  Result<PipelineSpec> set_enabled(std::string_view id, bool enabled);
  std::vector<PipelineEntry> pipelines() const;
  // Replaces the pipelines of the configuration file (a reload) in one step: every document is
  // checked first; any error (kInvalidArgument "etl.pipelines[i]: ...", or an id an API pipeline
  // already has) changes nothing. Returns how many file pipelines were added, changed or removed.
  Result<size_t> replace_file_pipelines(const boost::json::array& file_pipelines);
  std::optional<PipelineEntry> find_pipeline(std::string_view id) const;
  // Why the broker stopped pipeline `id` (an API pipeline on a cycle of stream pipelines with
  // those of the configuration file, at start); nullopt when it did not, or when the pipeline
  // changed since (started, replaced, patched).
  std::optional<std::string> stop_reason(std::string_view id) const;

  // --- running ---
  // The configuration in force.
  std::shared_ptr<const Configuration> configuration() const { return configuration_.load(); }

  using BatchDone = std::function<void(BatchResult)>;
  // Runs `plan` (from `configuration`, which the job keeps alive) on `inputs` on a worker.
  void process(std::shared_ptr<const Configuration> configuration,
               std::shared_ptr<const TopicPlan> plan, std::string topic,
               std::vector<InputMessage> inputs, BatchDone done);

  using DryRunDone = std::function<void(Result<std::pair<BatchResult, Trace>>)>;
  // Runs one pipeline (enabled or not) on `inputs` as if produced to `topic`, storing nothing.
  void dry_run(std::string_view pipeline_id, std::string topic, std::vector<InputMessage> inputs,
               DryRunDone done);

  Runtime& runtime() { return runtime_; }
  Workers& workers() { return *workers_; }
  // The workers' instance pools: figures, warm-up, cleanup, per-module settings.
  InstancePools& pools() { return *pools_; }

 private:
  explicit Orchestrator(OrchestratorOptions options) : options_(std::move(options)) {}
  // Builds and publishes a configuration from entries_. Caller holds mutex_.
  void publish_locked() REQUIRES(mutex_);
  // A dry run's run on a worker, its trace completed with the modules the topic filters left out.
  static Task<> dry_run_trace(Executor& executor, std::shared_ptr<const CompiledPipeline> pipeline,
                              std::string topic, std::vector<InputMessage> inputs,
                              DryRunDone done);
  // Tells the module cache which modules the enabled pipelines use now (their references
  // resolved). Caller holds mutex_.
  void refresh_in_use_locked() REQUIRES(mutex_);
  // Checks `document` as the new version of pipeline `id` (empty: a new pipeline) and applies
  // it: persisted, published. Caller holds mutex_.
  // `*changed` (when given) is false when the pipeline was already as the document says.
  Result<PipelineSpec> apply_locked(const boost::json::value& document,
                                    std::string_view replacing_id, bool* changed = nullptr)
      REQUIRES(mutex_);
  std::string new_pipeline_id_locked() const REQUIRES(mutex_);
  // At start (before anything runs): while the enabled stream pipelines form a cycle, stops the
  // API pipelines on it (persisted as disabled, the reason in stop_reasons_ and `warnings`).
  // The file pipelines alone must form no cycle.
  void stop_api_pipelines_in_cycles(std::vector<std::string>* warnings) REQUIRES(mutex_);
  // Why the API may not change pipeline `id` (found at `it`): unknown (kNotFound), or defined in
  // the configuration file (kConflict); ok when it may. Caller holds mutex_.
  Status api_may_change_locked(
      std::string_view id,
      std::map<std::string, PipelineEntry, std::less<>>::const_iterator it) const REQUIRES(mutex_);

  const OrchestratorOptions options_;
  Runtime runtime_;
  std::unique_ptr<ModuleRegistry> registry_;
  std::unique_ptr<ModuleCompiler> compiler_;  // outlives workers_ (the cache compiles on it)
  std::unique_ptr<Workers> workers_;
  std::unique_ptr<InstancePools> pools_;  // after workers_: destroyed before them

  mutable Mutex mutex_;                                   // serialises changes to pipelines
  std::map<std::string, PipelineEntry, std::less<>> entries_ GUARDED_BY(mutex_);
  std::map<std::string, std::shared_ptr<const CompiledPipeline>, std::less<>> compiled_
      GUARDED_BY(mutex_);
  std::map<std::string, std::string, std::less<>> stop_reasons_ GUARDED_BY(mutex_);
  std::atomic<std::shared_ptr<const Configuration>> configuration_;
};

}  // namespace wasmq::etl
