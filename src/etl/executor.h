// Runs the pipelines of a topic plan on one batch of produced messages, on one ETL worker
// (pipelines.md: stages by priority, sequential and parallel stages with the merge rule,
// should_continue, splitting, routing, the error strategies, retries, dead letters, error
// records, timeouts at every level, circuit breakers, result caching).
//
// The executor decides what becomes of each input message; it stores nothing. Its result lists,
// per input, the messages to store (with their topic), the dead-letter records, or who filtered
// it, plus the error-topic records the batch produced; the broker writes them.
//
// Threads: an Executor belongs to one worker thread (it uses that thread's Sandbox). The Runtime
// it shares with the other workers is thread-safe. Several runs may be under way on one
// executor: a run that waits is suspended (etl/task.h) and the worker runs others meanwhile, so
// nothing a run holds across a wait may be taken from under it (bound uses are shared_ptrs).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/message.h"
#include "etl/plan.h"
#include "etl/runtime.h"
#include "etl/task.h"
#include "wasm/sandbox.h"

namespace wasmq::etl {

// The header a module sets to store an output in another topic (module-abi.md, routing).
inline constexpr std::string_view kRouteHeader = "wasmq.topic";

// The header every error record (value "error_record") and dead letter (value "dead_letter")
// carries. A stream pipeline that fails on a record carrying it (its input was such a record,
// or was made from one) writes no error record and no dead letter for that failure: the failure
// is counted and logged, at most one line per pipeline per 10 s. So no message can go round
// through an error or dead-letter topic that a stream pipeline reads (docs/etl.md). The outputs
// of a stream pipeline whose input carries it carry it too, whatever the module returned.
inline constexpr std::string_view kFailureRecordHeader = "etl.failure_record";

struct InputMessage {
  Message message;
  std::optional<uint32_t> partition;  // the producer's explicit partition, if any
};

struct RoutedMessage {
  std::string topic;
  std::optional<uint32_t> partition;  // kept for outputs that stay in the input's topic
  Message message;
};

// What became of one input message.
struct InputOutcome {
  enum class Kind {
    kPass,          // `outputs` are to be stored (dead_letters may hold split parts that failed)
    kFiltered,      // no output: `pipeline_id`/`module_id` name the module that filtered it
    kDeadLettered,  // no output; `dead_letters` are to be stored; `error` says why
  };
  Kind kind = Kind::kPass;
  std::vector<RoutedMessage> outputs;
  std::vector<RoutedMessage> dead_letters;
  std::string pipeline_id;
  std::string module_id;
  std::string error;
};

// One step of a dry run's trace (pipelines.md, "Dry run").
struct TraceStep {
  std::string pipeline_id;
  uint32_t stage_priority = 0;
  std::string module_id;    // as the pipeline names it
  std::string resolved_id;  // the module version that ran, when it ran
  bool matched = false;
  std::string decided_by;  // "topic_filters[0]", "no topic_filters", "conditional_rules[1] ..."
  bool ran = false;
  std::vector<Message> output;
  bool should_continue = true;
  std::string error;
  std::string action;  // on error: "skipped", "stopped pipeline", "dead-lettered", ...
  double time_ms = 0;
};

struct Trace {
  std::vector<std::vector<TraceStep>> per_input;  // one list per input message
};

// Counts of one batch, for the figures.
struct ExecutionCounts {
  uint64_t calls = 0;            // guest entry points called
  uint64_t module_failures = 0;  // failures of a module on a message, whatever the cause
  uint64_t retries = 0;
  uint64_t merge_conflicts = 0;
  uint64_t cache_hits = 0;
  uint64_t breaker_rejections = 0;
  // Failures on failure records in a stream pipeline, which wrote no error record and no dead
  // letter (kFailureRecordHeader).
  uint64_t failure_records_not_repeated = 0;
};

struct BatchResult {
  std::vector<InputOutcome> outcomes;        // one per input, in input order
  std::vector<RoutedMessage> error_records;  // for the error topic (enable_error_topic)
  ExecutionCounts counts;
};

// The instance settings `module` of `pipeline` runs with: its instance_config over the [etl]
// defaults. The module cache compiles one module object per distinct setting; the pool
// endpoints warm the same ones.
wasm::InstanceSettings instance_settings_for(const PipelineSpec& pipeline, const ModuleSpec& module,
                                             const EtlDefaults& defaults);

class Executor {
 public:
  Executor(wasm::Sandbox& sandbox, Runtime& runtime)
      : sandbox_(sandbox), runtime_(runtime), results_(runtime.results.create()) {}

  // What a worker works out once for a module use (a module of a stage of a configuration)
  // rather than per call: the module version its reference resolves to, its instance settings
  // (the configuration serialized once), the compiled module, its breaker key and result-cache
  // salt. Bound again when the registry changes (a version uploaded or deleted), and looked up
  // again in the module cache once a second (so that its LRU and TTL see the use).
  struct BoundUse {
    uint64_t registry_generation = 0;
    std::chrono::steady_clock::time_point bound_at;
    std::string error;  // why the use cannot run now ("not deployed", "cannot load"), or empty
    std::shared_ptr<const ModuleRecord> record;
    wasm::InstanceSettings settings;
    std::shared_ptr<const wasm::Module> module;
    // A breaker per module version: a new version of a followed name starts closed instead of
    // inheriting the failures of the version it replaces.
    std::string breaker_key;  // "<use key>@<module id>"
    std::shared_ptr<CircuitBreakers::Breaker> breaker;
    uint64_t cache_salt = 0;
  };
  std::shared_ptr<const BoundUse> bind(const CompiledPipeline& pipeline, const ModuleUse& use);
  // The figures this worker writes for a pipeline and its stages and module uses, found once
  // (Figures' mutexes) instead of per batch; dropped with the sweep of bound uses every 10 s.
  struct BoundFigures {
    std::shared_ptr<PipelineFigures> pipeline;
    std::unordered_map<uint32_t, StageFigures*> stages;    // by priority
    std::unordered_map<uint64_t, ModuleFigures*> modules;  // by ModuleUse::serial
  };
  std::shared_ptr<BoundFigures> figures_for(const CompiledPipeline& pipeline);

  // Drops everything bound (after a module was deleted: a bound use holds its compiled module).
  // Uses not bound again for 10 s are dropped by bind() anyway.
  void forget_bound() { bound_.clear(); }

  // Runs `plan` (the pipelines that apply to `topic`) on `inputs`. With `trace`, records every
  // module considered. A run that must wait (a retry's backoff, a concurrency permit) is
  // suspended and `scheduler` resumes it; `plan` and `trace` must outlive the task.
  Task<BatchResult> run_task(const TopicPlan& plan, std::string topic,
                             std::vector<InputMessage> inputs, Trace* trace,
                             Scheduler& scheduler);
  // The same on a thread that is not a worker (tests, tools): waits for the run to end,
  // sleeping through its waits.
  BatchResult run(const TopicPlan& plan, const std::string& topic, std::vector<InputMessage> inputs,
                  Trace* trace = nullptr);

  // The worker's scheduler (Workers sets it), for the runs it spawns.
  void set_scheduler(Scheduler* scheduler) { scheduler_ = scheduler; }
  Scheduler& scheduler() { return *scheduler_; }
  // Starts `task` on this worker: it runs until it first waits or ends; the scheduler resumes it
  // after each wait. Exceptions it throws are logged.
  void spawn(Task<> task);
  // Tasks spawned here that have not ended (some suspended). The worker's thread only.
  size_t live_runs() const { return live_runs_; }

 private:
  struct Run;
  wasm::Sandbox& sandbox_;
  Runtime& runtime_;
  std::shared_ptr<ResultCache> results_;  // this worker's
  std::unordered_map<uint64_t, std::shared_ptr<BoundUse>> bound_;  // by ModuleUse::serial
  std::unordered_map<uint64_t, std::shared_ptr<BoundFigures>> figures_;  // by pipeline serial
  Scheduler* scheduler_ = nullptr;
  size_t live_runs_ = 0;
  std::chrono::steady_clock::time_point last_sweep_{};
};

}  // namespace wasmq::etl
