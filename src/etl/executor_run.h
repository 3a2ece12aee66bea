// Internal to the executor: the state of one run (Executor::Run), which executor.cc,
// module_call.cc, stage_runner.cc and failure_policy.cc define between them; what a run calls
// per message stays inline here.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/message_json.h"
#include "common/mutex.h"
#include "etl/executor.h"

namespace wasmq::etl {

using Clock = std::chrono::steady_clock;

// The outcome of one module on one message.
struct CallOutcome {
  bool ok = false;
  ProcessResult result;
  std::string error;
  std::string resolved_id;
  double time_ms = 0;
  bool module_error = false;  // the failure is the module's own `error` result
  bool not_deployed = false;  // the failure is that no module of that name is deployed
};

// The call warnings (memory near its limit, a slow call) happen at call rate when a module is
// always near its limit: at most one line per module and kind per kCallWarningInterval, for the
// whole process; the lines suppressed meanwhile are counted and reported with the next one.
// The lock is taken only on the warning path, never on an ordinary call.
inline constexpr auto kCallWarningInterval = std::chrono::seconds(10);

class CallWarnings {
 public:
  // True when a warning of `kind` for `module_id` may be logged now; then `*suppressed` is the
  // number of such warnings that were not logged since the last one.
  bool allow(const std::string& module_id, char kind, uint64_t* suppressed) {
    const Clock::time_point now = Clock::now();
    MutexLock lock(mutex_);
    Entry& e = entries_[module_id + '\0' + kind];
    if (e.logged && now - *e.logged < kCallWarningInterval) {
      ++e.suppressed;
      return false;
    }
    e.logged = now;
    *suppressed = e.suppressed;
    e.suppressed = 0;
    return true;
  }

 private:
  struct Entry {
    std::optional<Clock::time_point> logged;
    uint64_t suppressed = 0;
  };
  Mutex mutex_;
  std::unordered_map<std::string, Entry> entries_ GUARDED_BY(mutex_);
};

// The call warnings of the whole process.
CallWarnings& call_warnings();

// ", N more since the last one (at most one per 10 s)" when some were suppressed.
std::string suppressed_note(uint64_t suppressed);

// Why a module's output may not go to `topic` (Run::route).
std::string route_error(std::string_view topic);

// The state of one run: the inputs, the items moving through the current pipeline, and the
// outcome being built for each input.
struct Executor::Run {
  Executor& executor;
  const std::string& topic;
  std::vector<InputMessage>& inputs;
  Trace* trace;
  Scheduler& scheduler;  // where the run continues after it waited
  BatchResult result;
  int64_t now_wall_ms = now_ms();

  // A message moving through the pipelines; `group` is the message it came from as it entered
  // the current pipeline.
  struct Item {
    size_t input = 0;
    size_t group = 0;
    Message message;
    std::optional<std::string> route;
    bool finished = false;  // should_continue was false: no later stage or pipeline
  };
  struct Group {
    size_t input = 0;
    Item entry;
    enum class State { kActive, kStopped, kDeadLettered } state = State::kActive;
    std::string error, module_id;
    uint32_t stage_priority = 0;
    bool not_repeated = false;  // a failure record: dead-lettered without a new dead letter
  };
  std::vector<Item> items;
  std::vector<Group> groups;
  // Who filtered each input last (for a kFiltered outcome).
  std::vector<std::pair<std::string, std::string>> filtered_by;
  // Per input: it carries kFailureRecordHeader. guards_failure_records: the plan is a stream
  // pipeline's, whose failures on such inputs write nothing new.
  std::vector<std::optional<std::string>> failure_input;  // its value
  bool guards_failure_records = false;

  Run(Executor& e, const std::string& t, std::vector<InputMessage>& in, Trace* tr, Scheduler& s)
      : executor(e), topic(t), inputs(in), trace(tr), scheduler(s) {}

  Runtime& runtime() { return executor.runtime_; }

  // The figures of the pipeline running now (set by run_pipeline) and of its modules.
  std::shared_ptr<Executor::BoundFigures> bound_figures;
  std::shared_ptr<PipelineFigures> pipeline_figures;
  StageFigures& figures_of_stage(const CompiledStage& stage) {
    StageFigures*& slot = bound_figures->stages[stage.spec->priority];
    if (!slot) slot = &pipeline_figures->stage(stage.spec->priority);
    return *slot;
  }
  ModuleFigures& figures_of(const CompiledStage& stage, const ModuleUse& use) {
    ModuleFigures*& slot = bound_figures->modules[use.serial];
    if (!slot) slot = &pipeline_figures->module(stage.spec->priority, use.index, use.spec->module_id);
    return *slot;
  }

  void step(size_t input, TraceStep s) {
    if (trace) trace->per_input[input].push_back(std::move(s));
  }

  // --- module calls (module_call.cc) -----------------------------------------------------

  // The logs of one guest call: a debug line per call (enable_debug_logging), and a warning
  // when it used more than cpu_warning_threshold_percent of its time limit or its instance more
  // than memory_warning_threshold_percent of its memory limit; the warnings at most once per
  // module and kind per 10 s (CallWarnings).
  // A breaker that opened or closed, at warn/info (a breaker changes at most once per open_ms).
  void log_breaker(const CompiledPipeline& pipeline, const ModuleRecord& record,
                   CircuitBreakers::Transition change, const std::string& last_error);
  void log_call(const ModuleRecord& record, size_t messages, double ms, uint32_t limit_ms, bool ok,
                uint64_t memory_bytes, uint64_t memory_limit_bytes);

  // Runs `use` on `messages`; one outcome per message. `stage_deadline`/`global_deadline`
  // bound every call; `retry` retries failed messages (RetryWithBackoff).
  Task<std::vector<CallOutcome>> call_module(const CompiledPipeline& pipeline,
                                             const CompiledStage& stage, const ModuleUse& use,
                                             const std::vector<const Message*>& messages,
                                             Clock::time_point stage_deadline,
                                             Clock::time_point global_deadline, bool retry);

  // --- failures (failure_policy.cc) ------------------------------------------------------

  // Whether a failure of `pipeline` on input `input` may write no error record or dead letter:
  // a stream pipeline whose input is itself one (or made from one). Counts and logs it.
  bool failure_record_not_repeated(const CompiledPipeline& pipeline, size_t input,
                                   const std::string& error);

  void error_record(const CompiledPipeline& pipeline, uint32_t stage, const std::string& module,
                    const Message& message, const std::string& error);

  // Applies the pipeline's error handling to a failure of `use` on `item`; returns the action
  // taken (for traces) and whether the item keeps going unchanged.
  // A failure because the module is not deployed counts (ModuleFigures::not_deployed) and is
  // logged, but writes no error record: pipeline status says the pipeline waits for it.
  std::string fail(const CompiledPipeline& pipeline, const CompiledStage& stage,
                   const ModuleUse& use, const Item& item, const std::string& error, bool retried,
                   bool not_deployed = false);
  std::string apply_failure(const CompiledPipeline& pipeline, const CompiledStage& stage,
                            const ModuleUse& use, const Item& item, const std::string& error,
                            bool retried, bool not_deployed);
  // The rate-limited warning of a live failure (dry runs log nothing).
  void log_failure(const CompiledPipeline& pipeline, const ModuleUse& use,
                   const std::string& error, std::string_view action, bool not_deployed);

  std::string dead_letter_topic(const CompiledPipeline& pipeline) const;

  // False when the dead-letter topic's name would be too long for any topic (a long source
  // topic): such dead letters are counted apart (dead_letters_unwritable), not as dead-lettered.
  bool dead_letter_topic_fits(const CompiledPipeline& pipeline) const;

  void dead_letter(const CompiledPipeline& pipeline, Group& g);

  // --- stages (stage_runner.cc; the per-message helpers here) ----------------------------

  // Checks and applies routing on a module's outputs: false (with `error`) when a `wasmq.topic`
  // names a topic the pipeline does not allow.
  bool route(const CompiledPipeline& pipeline, std::vector<Message>& outputs,
             std::vector<std::optional<std::string>>* routes, std::string* error) {
    routes->assign(outputs.size(), std::nullopt);
    for (size_t k = 0; k < outputs.size(); ++k) {
      const std::string* target = outputs[k].header(kRouteHeader);
      if (!target) continue;
      if (pipeline.spec.allowed_output_topics.empty() ||
          !pipeline.allowed_outputs.matches(*target)) {
        *error = route_error(*target);
        return false;
      }
      (*routes)[k] = *target;
    }
    for (size_t k = 0; k < outputs.size(); ++k) {
      if ((*routes)[k]) {
        auto& h = outputs[k].headers;
        h.erase(std::remove_if(h.begin(), h.end(),
                               [](const Header& x) { return x.first == kRouteHeader; }),
                h.end());
      }
    }
    return true;
  }

  TraceStep trace_step(const CompiledPipeline& pipeline, const CompiledStage& stage,
                       const ModuleUse& use);

  // Which modules hold on `message` (rules); records the rule decisions in the trace.
  bool rules_hold(const CompiledPipeline& pipeline, const CompiledStage& stage,
                  const ModuleUse& use, const Item& item) {
    int failing = use.rules.first_failing(item.message, now_wall_ms);
    if (failing >= 0) figures_of(stage, use).not_matched.fetch_add(1, std::memory_order_relaxed);
    if (failing >= 0 && trace) {
      TraceStep s = trace_step(pipeline, stage, use);
      s.matched = false;
      s.decided_by = "conditional_rules[" + std::to_string(failing) + "] does not hold";
      step(item.input, std::move(s));
    }
    return failing < 0;
  }

  // The trace step of a module that ran (its outcome is filled in by the caller).
  TraceStep ran_step(const CompiledPipeline& pipeline, const CompiledStage& stage,
                     const ModuleUse& use, const CallOutcome& o);

  std::string topic_decision(const ModuleUse& use);

  // Takes one call's outcome for `item`, in both stage runners: routes its outputs (into
  // `routes`) and traces the call; when the call or its routing failed, applies the pipeline's
  // error strategy to `item` and returns false.
  bool take_outcome(const CompiledPipeline& pipeline, const CompiledStage& stage,
                    const ModuleUse& use, Item& item, CallOutcome& o,
                    std::vector<std::optional<std::string>>* routes);

  Task<> run_sequential(const CompiledPipeline& pipeline, const TopicPlan::Stage& stage,
                        Clock::time_point stage_deadline, Clock::time_point global_deadline);

  // Applies `output`'s changes relative to `input` onto `merged` (pipelines.md, "A stage").
  // Returns a bit per field changed: 1 key, 2 value, 4 timestamp.
  static int apply_changes(const Message& input, const Message& output, Message& merged) {
    int changed = 0;
    if (output.key != input.key) {
      merged.key = output.key;
      changed |= 1;
    }
    if (output.value != input.value) {
      merged.value = output.value;
      changed |= 2;
    }
    if (output.timestamp != input.timestamp) {
      merged.timestamp = output.timestamp;
      changed |= 4;
    }
    for (const auto& [name, value] : output.headers) {
      const std::string* before = input.header(name);
      if (!before || *before != value) merged.set_header(name, value);
    }
    for (const Header& header : input.headers) {
      const std::string& name = header.first;
      if (!output.header(name)) {
        auto& h = merged.headers;
        h.erase(
            std::remove_if(h.begin(), h.end(), [&](const Header& x) { return x.first == name; }),
            h.end());
      }
    }
    return changed;
  }

  Task<> run_parallel(const CompiledPipeline& pipeline, const TopicPlan::Stage& stage,
                      Clock::time_point stage_deadline, Clock::time_point global_deadline);

  // --- the run (executor.cc) -------------------------------------------------------------

  Task<> run_pipeline(const TopicPlan::Pipeline& plan);

  Task<BatchResult> go(const TopicPlan& plan);
};

}  // namespace wasmq::etl
