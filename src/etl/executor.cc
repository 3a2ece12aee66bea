#include "etl/executor.h"

#include <algorithm>
#include <boost/json.hpp>
#include <mutex>
#include <optional>
#include <limits>
#include <random>
#include <unordered_map>

#include "common/log.h"
#include "common/message_json.h"
#include "common/utf8.h"

namespace wasmq::etl {
namespace {

using Clock = std::chrono::steady_clock;
namespace json = boost::json;

// The outcome of one module on one message.
struct CallOutcome {
  bool ok = false;
  ProcessResult result;
  std::string error;
  std::string resolved_id;
  double time_ms = 0;
};

std::string route_error(std::string_view topic) {
  return "routing to topic \"" + std::string(topic) +
         "\" refused: not in the pipeline's allowed_output_topics";
}

// The call warnings (memory near its limit, a slow call) happen at call rate when a module is
// always near its limit: at most one line per module and kind per kCallWarningInterval, for the
// whole process; the lines suppressed meanwhile are counted and reported with the next one.
// The lock is taken only on the warning path, never on an ordinary call.
constexpr auto kCallWarningInterval = std::chrono::seconds(10);

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

CallWarnings& call_warnings() {
  static CallWarnings warnings;
  return warnings;
}

// ", N more since the last one (at most one per 10 s)" when some were suppressed.
std::string suppressed_note(uint64_t suppressed) {
  if (suppressed == 0) return {};
  return fmt::format(" ({} more like it suppressed: at most one per {} s)", suppressed,
                     kCallWarningInterval.count());
}

}  // namespace

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

  // --- module calls ----------------------------------------------------------------------

  // The logs of one guest call: a debug line per call (enable_debug_logging), and a warning
  // when it used more than cpu_warning_threshold_percent of its time limit or its instance more
  // than memory_warning_threshold_percent of its memory limit; the warnings at most once per
  // module and kind per 10 s (CallWarnings).
  void log_call(const ModuleRecord& record, size_t messages, double ms, uint32_t limit_ms, bool ok,
                uint64_t memory_bytes, uint64_t memory_limit_bytes) {
    const EtlDefaults& d = runtime().defaults;
    auto& logger = log::get("etl");
    uint64_t suppressed = 0;
    // The memory an instance has grown to, against its limit (memory_warning_threshold_percent).
    if (memory_bytes > 0 && memory_limit_bytes > 0 &&
        memory_bytes * 100 > memory_limit_bytes * d.memory_warning_threshold_percent &&
        call_warnings().allow(record.id, 'm', &suppressed)) {
      if (d.log_memory_usage) {
        logger.warn("{}: an instance uses {} of its {} bytes of memory{}", record.id, memory_bytes,
                    memory_limit_bytes, suppressed_note(suppressed));
      } else {
        logger.warn("{}: an instance uses more than {}% of its memory limit{}", record.id,
                    d.memory_warning_threshold_percent, suppressed_note(suppressed));
      }
    }
    const bool slow = ms * 100.0 > static_cast<double>(limit_ms) * d.cpu_warning_threshold_percent;
    if (slow && call_warnings().allow(record.id, 't', &suppressed)) {
      if (d.log_execution_times) {
        logger.warn("{}: a call on {} message(s) took {:.1f} ms of its {} ms limit{}", record.id,
                    messages, ms, limit_ms, suppressed_note(suppressed));
      } else {
        logger.warn("{}: a call on {} message(s) used more than {}% of its {} ms limit{}",
                    record.id, messages, d.cpu_warning_threshold_percent, limit_ms,
                    suppressed_note(suppressed));
      }
    }
    if (!d.log_calls || !logger.should_log(spdlog::level::debug)) return;
    std::string line = fmt::format("{} on topic {}: {} message(s), {}", record.id, topic, messages,
                                   ok ? "ok" : "failed");
    if (d.log_execution_times) line += fmt::format(", {:.3f} ms", ms);
    if (d.log_memory_usage && memory_bytes > 0)
      line += fmt::format(", memory {} bytes", memory_bytes);
    logger.debug("{}", line);
  }

  // Runs `use` on `messages`; one outcome per message. `stage_deadline`/`global_deadline`
  // bound every call; `retry` retries failed messages (RetryWithBackoff).
  Task<std::vector<CallOutcome>> call_module(const CompiledPipeline& pipeline,
                                             const CompiledStage& stage, const ModuleUse& use,
                                             const std::vector<const Message*>& messages,
                                             Clock::time_point stage_deadline,
                                             Clock::time_point global_deadline, bool retry) {
    std::vector<CallOutcome> out(messages.size());
    ModuleFigures& figures = figures_of(stage, use);
    const uint64_t retries_before = result.counts.retries;
    const uint64_t hits_before = result.counts.cache_hits;
    const uint64_t rejections_before = result.counts.breaker_rejections;
    auto fail_all = [&](const std::string& why) {
      for (auto& o : out) {
        o.ok = false;
        o.error = why;
      }
      return out;
    };
    const ModuleSpec& spec = *use.spec;
    // Held for the call: while it waits, the worker's other runs may bind again.
    const std::shared_ptr<const Executor::BoundUse> bound_use = executor.bind(pipeline, use);
    const Executor::BoundUse& bound = *bound_use;
    if (!bound.error.empty()) co_return fail_all(bound.error);
    const std::shared_ptr<const ModuleRecord>& record = bound.record;
    for (auto& o : out) o.resolved_id = record->id;
    const wasm::InstanceSettings& settings = bound.settings;
    const std::shared_ptr<const wasm::Module>* module = &bound.module;

    const CircuitBreakerConfig& breaker = pipeline.spec.circuit_breaker;
    const auto open_for = std::chrono::milliseconds(breaker.open_ms);
    const bool caching = spec.instance_config.enable_caching;
    const auto ttl = std::chrono::seconds(spec.instance_config.cache_ttl_seconds);
    size_t max_batch = runtime().defaults.max_batch_size;
    if (pipeline.spec.configuration.batch_size) {
      max_batch = std::min<size_t>(max_batch, *pipeline.spec.configuration.batch_size);
    }
    max_batch = std::max<size_t>(max_batch, 1);
    const uint32_t per_module = spec.instance_config.max_concurrent_instances.value_or(UINT32_MAX);

    // The time a call may take now, or 0 when a budget is spent (with the reason in `why`).
    auto budget = [&](std::string* why) -> uint32_t {
      auto now = Clock::now();
      auto left = [&](Clock::time_point deadline) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
      };
      int64_t ms = static_cast<int64_t>(settings.timeout_ms);
      if (left(global_deadline) < ms) ms = left(global_deadline);
      if (left(stage_deadline) < ms) ms = left(stage_deadline);
      if (ms <= 0) {
        *why = left(global_deadline) <= 0
                   ? "pipeline global_timeout_ms (" +
                         std::to_string(pipeline.spec.global_timeout_ms) + " ms) exceeded"
                   : "stage_timeout_ms exceeded";
        return 0;
      }
      return static_cast<uint32_t>(ms);
    };

    // What is left of the stage's and the pipeline's budgets (at least 1 ms: budget() has
    // refused a call when nothing is).
    auto run_budget_ms = [&]() -> uint32_t {
      const auto now = Clock::now();
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::min(global_deadline, stage_deadline) - now);
      return static_cast<uint32_t>(
          std::clamp<int64_t>(left.count(), 1, std::numeric_limits<int32_t>::max()));
    };

    // One guest call on `indexes` (a batch when more than one), filling their outcomes. A run of
    // single calls (no process_batch) may stop after a failure: `ran` then says how many of
    // `indexes` ran.
    size_t ran = 0;
    auto call = [&](const std::vector<size_t>& indexes) -> Task<bool> {
      ran = indexes.size();
      std::string why;
      const uint32_t before = budget(&why);
      if (before == 0) {
        for (size_t i : indexes) out[i].error = why;
        co_return false;
      }
      // The run waits, suspended, for the instance pool's creation_rate_limit, rather than the
      // call inside it, which would put the worker to sleep. A wait longer than the call may
      // take is left to the call, which fails at once naming the limit.
      if (auto at = executor.sandbox_.instance_ready_at(*module);
          at && *at - Clock::now() <= std::chrono::milliseconds(before)) {
        co_await sleep_until(scheduler, *at);
      }
      // A run that finds the limits reached is suspended until a place is free, its worker
      // serving other jobs meanwhile; the budget is taken again after the waits.
      auto permit = co_await runtime().limits.acquire(
          scheduler, record->id, per_module, runtime().defaults.max_concurrent_executions);
      uint32_t ms = budget(&why);
      if (ms == 0) {
        for (size_t i : indexes) out[i].error = why;
        co_return false;
      }
      auto start = Clock::now();
      ++result.counts.calls;
      bool whole_ok = true;
      if (indexes.size() > 1 && !(*module)->info().has_process_batch) {
        // Single calls, one entry into the engine for the run: each message has the module's
        // time limit, the run what is left of the stage's and pipeline's budgets.
        std::vector<const Message*> run;
        run.reserve(indexes.size());
        for (size_t i : indexes) run.push_back(messages[i]);
        // A failure ends the run, so that the breaker is asked again before the rest.
        auto r = executor.sandbox_.process_each(*module, run, settings.timeout_ms,
                                                run_budget_ms(), /*stop_at_failure=*/true);
        ran = r.size();
        for (size_t k = 0; k < r.size(); ++k) {
          CallOutcome& o = out[indexes[k]];
          if (r[k].is_ok()) {
            o.ok = true;
            o.result = std::move(*r[k]);
          } else {
            o.error = r[k].status().message();
            whole_ok = false;
          }
        }
      } else if (indexes.size() == 1) {
        auto r = executor.sandbox_.process(*module, *messages[indexes[0]], ms);
        CallOutcome& o = out[indexes[0]];
        if (r.is_ok()) {
          o.ok = true;
          o.result = std::move(*r);
        } else {
          o.error = r.status().message();
          whole_ok = false;
        }
      } else {
        std::vector<const Message*> batch;
        batch.reserve(indexes.size());
        for (size_t i : indexes) batch.push_back(messages[i]);
        auto r =
            executor.sandbox_.process_batch(*module, std::span<const Message* const>(batch), ms);
        if (r.is_ok()) {
          for (size_t k = 0; k < indexes.size(); ++k) {
            out[indexes[k]].ok = true;
            out[indexes[k]].result = std::move((*r)[k]);
          }
        } else {
          for (size_t i : indexes) out[i].error = r.status().message();
          whole_ok = false;
        }
      }
      const double call_ms =
          std::chrono::duration<double, std::milli>(Clock::now() - start).count();
      runtime().figures.module_calls.fetch_add(1, std::memory_order_relaxed);
      runtime().figures.call_latency.record(call_ms);
      log_call(*record, indexes.size(), call_ms, ms, whole_ok,
               whole_ok ? executor.sandbox_.stats().last_call_memory_bytes : 0,
               (*module)->info().memory_max_pages.value_or(0) * wasm::kWasmPageSize);
      double ms_taken = call_ms / std::max<size_t>(ran, 1);
      for (size_t k = 0; k < ran; ++k) out[indexes[k]].time_ms += ms_taken;
      co_return whole_ok;
    };

    // A module's own error result is a failure of that message too.
    auto settle = [&](size_t i) {
      CallOutcome& o = out[i];
      if (o.ok && o.result.error) {
        o.ok = false;
        o.error = "module error: " + *o.result.error;
      }
      if (o.ok) o.result.error.reset();
    };

    std::vector<size_t> pending;
    ResultCache& cache = *executor.results_;
    ResultCache::Keys cache_keys;
    const auto cache_now = caching ? Clock::now() : Clock::time_point{};
    if (caching) ResultCache::make_keys(bound.cache_salt, messages, &cache_keys);
    for (size_t i = 0; i < messages.size(); ++i) {
      if (caching &&
          cache.find(cache_keys, i, messages[i]->timestamp, cache_now, &out[i].result)) {
        out[i].ok = true;
        ++result.counts.cache_hits;
        continue;
      }
      pending.push_back(i);
    }

    auto run_pending = [&](std::vector<size_t> todo) -> Task<> {
      const bool batched = (*module)->info().has_process_batch;
      size_t pos = 0;
      while (pos < todo.size()) {
        auto admission = bound.breaker->admit(Clock::now());
        if (admission == CircuitBreakers::Admission::kOpen) {
          for (; pos < todo.size(); ++pos) {
            out[todo[pos]].error = "circuit breaker open for module " + record->id;
            ++result.counts.breaker_rejections;
          }
          break;
        }
        // Modules without process_batch run a chunk too, as single calls (process_each).
        size_t n = admission == CircuitBreakers::Admission::kTrial
                       ? 1
                       : std::min(max_batch, todo.size() - pos);
        std::vector<size_t> chunk(todo.begin() + pos, todo.begin() + pos + n);
        const bool called_ok = co_await call(chunk);
        if (ran < chunk.size()) chunk.resize(ran);  // the rest goes round again
        pos += chunk.size();
        if (!called_ok && chunk.size() > 1 && batched) {
          // A batch fails as a whole: call its messages one by one, so that one poison message
          // does not fail its neighbours.
          for (size_t i : chunk) {
            out[i].error.clear();
            const std::vector<size_t> one{i};
            (void)co_await call(one);
          }
        }
        for (size_t i : chunk) {
          settle(i);
          bound.breaker->record(out[i].ok, breaker.failure_threshold, open_for,
                                    Clock::now());
        }
      }
    };
    co_await run_pending(pending);

    if (retry) {
      const uint32_t max_retries = pipeline.spec.effective_max_retries();
      const RetryConfig config = pipeline.spec.retry_config.value_or(RetryConfig{});
      thread_local std::mt19937_64 random{std::random_device{}()};
      double delay = static_cast<double>(config.initial_delay_ms);
      for (uint32_t attempt = 0; attempt < max_retries; ++attempt) {
        std::vector<size_t> failed;
        for (size_t i : pending) {
          if (!out[i].ok) failed.push_back(i);
        }
        if (failed.empty()) break;
        double wait = std::min(delay, static_cast<double>(config.max_delay_ms));
        if (config.jitter) wait = std::uniform_real_distribution<double>(0, wait)(random);
        auto wake = Clock::now() + std::chrono::microseconds(static_cast<int64_t>(wait * 1000));
        if (wake >= global_deadline || wake >= stage_deadline) break;
        // The run waits, its worker does not: it serves other jobs until the backoff is over.
        co_await sleep_until(scheduler, wake);
        delay *= config.backoff_multiplier;
        result.counts.retries += failed.size();
        for (size_t i : failed) {
          out[i] = CallOutcome{};
          out[i].resolved_id = record->id;
        }
        co_await run_pending(failed);
      }
    }

    if (caching) {
      for (size_t i : pending) {
        if (out[i].ok) cache.offer(cache_keys, i, messages[i]->timestamp, out[i].result, ttl, cache_now);
      }
    }
    for (const CallOutcome& o : out) {
      if (!o.ok) continue;  // failures are counted where they are handled (fail())
      figures.processed.fetch_add(1, std::memory_order_relaxed);
      if (o.result.transformed_messages.empty())
        figures.filtered.fetch_add(1, std::memory_order_relaxed);
      figures.latency.record(o.time_ms);
    }
    figures.retried.fetch_add(result.counts.retries - retries_before, std::memory_order_relaxed);
    figures.cache_hits.fetch_add(result.counts.cache_hits - hits_before, std::memory_order_relaxed);
    figures.breaker_rejections.fetch_add(result.counts.breaker_rejections - rejections_before,
                                         std::memory_order_relaxed);
    pipeline_figures->retried.fetch_add(result.counts.retries - retries_before,
                                        std::memory_order_relaxed);
    co_return out;
  }

  // --- failures ----------------------------------------------------------------------------

  // Whether a failure of `pipeline` on input `input` may write no error record or dead letter:
  // a stream pipeline whose input is itself one (or made from one). Counts and logs it.
  bool failure_record_not_repeated(const CompiledPipeline& pipeline, size_t input,
                                   const std::string& error) {
    if (!guards_failure_records || !failure_input[input].has_value()) return false;
    ++result.counts.failure_records_not_repeated;
    pipeline_figures->failure_records_not_repeated.fetch_add(1, std::memory_order_relaxed);
    uint64_t suppressed = 0;
    if (call_warnings().allow(pipeline.spec.pipeline_id, 'r', &suppressed)) {
      log::get("etl").warn(
          "stream pipeline {}: failed on a record that is an error record or a dead letter ({} "
          "header): no new error record or dead letter is written for it, so that it cannot go "
          "round: {}{}",
          pipeline.spec.pipeline_id, kFailureRecordHeader, error, suppressed_note(suppressed));
    }
    return true;
  }

  void error_record(const CompiledPipeline& pipeline, uint32_t stage, const std::string& module,
                    const Message& message, const std::string& error) {
    const EtlDefaults& d = runtime().defaults;
    if (!d.enable_error_topic) return;
    Message copy = message;
    if (copy.value.size() > d.max_error_message_size) copy.value.resize(d.max_error_message_size);
    json::object record{{"pipeline_id", pipeline.spec.pipeline_id},
                        {"module_id", module},
                        {"stage", stage},
                        {"topic", topic},
                        {"error", error},
                        {"timestamp", now_ms()},
                        {"message", message_to_json(copy)}};
    if (copy.value.size() < message.value.size()) {
      record["value_truncated_from_bytes"] = message.value.size();
    }
    RoutedMessage r;
    r.topic = pipeline.spec.error_topic.empty() ? d.error_topic_prefix : pipeline.spec.error_topic;
    r.message.key = pipeline.spec.pipeline_id;
    r.message.value = json::serialize(record);
    r.message.headers = {{"content-type", "application/json"},
                         {std::string(kFailureRecordHeader), "error_record"}};
    r.message.timestamp = now_ms();
    result.error_records.push_back(std::move(r));
  }

  // Applies the pipeline's error handling to a failure of `use` on `item`; returns the action
  // taken (for traces) and whether the item keeps going unchanged.
  std::string fail(const CompiledPipeline& pipeline, const CompiledStage& stage,
                   const ModuleUse& use, const Item& item, const std::string& error, bool retried) {
    // Every failure counts, whatever its cause: the call's, a refused route, a missing module.
    ++result.counts.module_failures;
    ModuleFigures& figures = figures_of(stage, use);
    figures.failed.fetch_add(1, std::memory_order_relaxed);
    figures_of_stage(stage).failed.fetch_add(1, std::memory_order_relaxed);
    pipeline_figures->failed.fetch_add(1, std::memory_order_relaxed);
    pipeline_figures->last_failure_ms.store(now_ms(), std::memory_order_relaxed);
    {
      MutexLock lock(pipeline_figures->mutex);
      pipeline_figures->last_error = use.spec->module_id + ": " + error;
    }
    // A failure record that fails again is counted and logged, but writes nothing new: an error
    // record of it, or a dead letter, could come back to this pipeline for ever.
    const bool not_repeated = failure_record_not_repeated(pipeline, item.input, error);
    if (!not_repeated) {
      error_record(pipeline, stage.spec->priority, use.spec->module_id, item.message, error);
    }
    auto skipped = [&](const char* why) {
      figures.skipped.fetch_add(1, std::memory_order_relaxed);
      pipeline_figures->skipped.fetch_add(1, std::memory_order_relaxed);
      return std::string(why);
    };
    if (stage.spec->continue_on_error) return skipped("skipped (continue_on_error)");
    Group& group = groups[item.group];
    auto stop = [&] {
      if (group.state == Group::State::kActive) group.state = Group::State::kStopped;
      return std::string("stopped the pipeline: the message goes on as it entered");
    };
    auto dead_letter = [&] {
      if (group.state != Group::State::kDeadLettered) {
        if (dead_letter_topic_fits(pipeline)) {
          figures.dead_lettered.fetch_add(1, std::memory_order_relaxed);
        }
        group.state = Group::State::kDeadLettered;
        group.not_repeated = not_repeated;
        group.error = error;
        group.module_id = use.spec->module_id;
        group.stage_priority = stage.spec->priority;
      }
      return std::string("dead-lettered");
    };
    switch (pipeline.spec.error_handling) {
      case ErrorHandling::kSkipModule:
        return skipped("skipped (SkipModule)");
      case ErrorHandling::kStopPipeline:
        return stop();
      case ErrorHandling::kRetryWithBackoff:
        (void)retried;
        return pipeline.spec.dead_letter_config ? dead_letter() : stop();
      case ErrorHandling::kSendToDeadLetter:
        return dead_letter();
    }
    return "skipped";
  }

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
                       const ModuleUse& use) {
    TraceStep s;
    s.pipeline_id = pipeline.spec.pipeline_id;
    s.stage_priority = stage.spec->priority;
    s.module_id = use.spec->module_id;
    return s;
  }

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
                     const ModuleUse& use, const CallOutcome& o) {
    TraceStep s = trace_step(pipeline, stage, use);
    s.matched = true;
    s.decided_by = topic_decision(use);
    s.ran = true;
    s.resolved_id = o.resolved_id;
    s.time_ms = o.time_ms;
    return s;
  }

  std::string topic_decision(const ModuleUse& use) {
    int f = use.topics.matching_filter(topic);
    if (f == TopicMatcher::kEveryTopic) return "no topic_filters (every topic)";
    return "topic_filters[" + std::to_string(f) + "] matches";
  }

  // --- stages --------------------------------------------------------------------------------

  Task<> run_sequential(const CompiledPipeline& pipeline, const TopicPlan::Stage& stage,
                        Clock::time_point stage_deadline, Clock::time_point global_deadline) {
    for (const ModuleUse* use : stage.modules) {
      std::vector<size_t> targets;
      std::vector<const Message*> messages;
      for (size_t i = 0; i < items.size(); ++i) {
        const Item& item = items[i];
        if (item.finished || groups[item.group].state != Group::State::kActive) continue;
        if (!rules_hold(pipeline, *stage.stage, *use, item)) continue;
        targets.push_back(i);
        messages.push_back(&item.message);
      }
      if (targets.empty()) continue;
      const bool retry = pipeline.spec.error_handling == ErrorHandling::kRetryWithBackoff &&
                         !stage.stage->spec->continue_on_error;
      auto outcomes = co_await call_module(pipeline, *stage.stage, *use, messages,
                                           stage_deadline, global_deadline, retry);
      std::vector<Item> next;
      next.reserve(items.size());
      size_t t = 0;
      for (size_t i = 0; i < items.size(); ++i) {
        if (t >= targets.size() || targets[t] != i) {
          next.push_back(std::move(items[i]));
          continue;
        }
        CallOutcome& o = outcomes[t++];
        Item& item = items[i];
        TraceStep s = trace ? ran_step(pipeline, *stage.stage, *use, o) : TraceStep{};
        std::vector<std::optional<std::string>> routes;
        if (o.ok && !route(pipeline, o.result.transformed_messages, &routes, &o.error))
          o.ok = false;
        if (!o.ok) {
          s.error = o.error;
          s.action = fail(pipeline, *stage.stage, *use, item, o.error, false);
          step(item.input, std::move(s));
          next.push_back(std::move(item));
          continue;
        }
        if (trace) {
          s.output = o.result.transformed_messages;
          s.should_continue = o.result.should_continue;
          step(item.input, std::move(s));
        }
        if (o.result.transformed_messages.empty()) {
          filtered_by[item.input] = {pipeline.spec.pipeline_id, use->spec->module_id};
        }
        for (size_t k = 0; k < o.result.transformed_messages.size(); ++k) {
          Item out;
          out.input = item.input;
          out.group = item.group;
          out.message = std::move(o.result.transformed_messages[k]);
          out.route = routes[k] ? routes[k] : item.route;
          out.finished = !o.result.should_continue;
          next.push_back(std::move(out));
        }
      }
      items = std::move(next);
    }
  }

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
                      Clock::time_point stage_deadline, Clock::time_point global_deadline) {
    const size_t n_modules = stage.modules.size();
    // outcomes[m][k]: module m on its k-th target; target_of[m]: item indexes.
    std::vector<std::vector<CallOutcome>> outcomes(n_modules);
    std::vector<std::vector<size_t>> targets(n_modules);
    for (size_t m = 0; m < n_modules; ++m) {
      const ModuleUse* use = stage.modules[m];
      std::vector<const Message*> messages;
      for (size_t i = 0; i < items.size(); ++i) {
        const Item& item = items[i];
        if (item.finished || groups[item.group].state != Group::State::kActive) continue;
        if (!rules_hold(pipeline, *stage.stage, *use, item)) continue;
        targets[m].push_back(i);
        messages.push_back(&item.message);
      }
      if (messages.empty()) continue;
      const bool retry = pipeline.spec.error_handling == ErrorHandling::kRetryWithBackoff &&
                         !stage.stage->spec->continue_on_error;
      outcomes[m] = co_await call_module(pipeline, *stage.stage, *use, messages, stage_deadline,
                                         global_deadline, retry);
    }
    uint64_t runs = 0;
    for (const auto& t : targets) runs += t.size();
    figures_of_stage(*stage.stage).concurrent_modules.fetch_add(runs, std::memory_order_relaxed);
    std::vector<size_t> cursor(n_modules, 0);
    std::vector<Item> next;
    next.reserve(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      Item& item = items[i];
      Message merged = item.message;
      bool filtered = false, finished = item.finished, touched = false;
      std::optional<std::string> route_to = item.route;
      int changed_by_earlier = 0;
      for (size_t m = 0; m < n_modules; ++m) {
        if (cursor[m] >= targets[m].size() || targets[m][cursor[m]] != i) continue;
        CallOutcome& o = outcomes[m][cursor[m]++];
        touched = true;
        const ModuleUse* use = stage.modules[m];
        TraceStep s = trace ? ran_step(pipeline, *stage.stage, *use, o) : TraceStep{};
        std::vector<std::optional<std::string>> routes;
        if (o.ok && o.result.transformed_messages.size() > 1) {
          o.ok = false;
          o.error = "module returned " + std::to_string(o.result.transformed_messages.size()) +
                    " messages in a parallel stage (at most one is allowed)";
        }
        if (o.ok && !route(pipeline, o.result.transformed_messages, &routes, &o.error))
          o.ok = false;
        if (!o.ok) {
          s.error = o.error;
          s.action = fail(pipeline, *stage.stage, *use, item, o.error, false);
          step(item.input, std::move(s));
          continue;
        }
        if (trace) {
          s.output = o.result.transformed_messages;
          s.should_continue = o.result.should_continue;
          step(item.input, std::move(s));
        }
        if (!o.result.should_continue) finished = true;
        if (o.result.transformed_messages.empty()) {
          filtered = true;
          filtered_by[item.input] = {pipeline.spec.pipeline_id, use->spec->module_id};
          continue;
        }
        int changed = apply_changes(item.message, o.result.transformed_messages[0], merged);
        int conflicts = changed & changed_by_earlier;
        result.counts.merge_conflicts +=
            ((conflicts & 1) != 0) + ((conflicts & 2) != 0) + ((conflicts & 4) != 0);
        changed_by_earlier |= changed;
        if (routes[0]) route_to = routes[0];
      }
      if (!touched) {
        next.push_back(std::move(item));
        continue;
      }
      if (filtered || groups[item.group].state != Group::State::kActive) {
        if (!filtered) next.push_back(std::move(item));
        continue;
      }
      item.message = std::move(merged);
      item.route = std::move(route_to);
      item.finished = finished;
      next.push_back(std::move(item));
    }
    items = std::move(next);
  }

  Task<> run_pipeline(const TopicPlan::Pipeline& plan) {
    const CompiledPipeline& pipeline = *plan.pipeline;
    const auto start = Clock::now();
    const auto global_deadline = start + std::chrono::milliseconds(pipeline.spec.global_timeout_ms);
    // Every item that may still change enters as a group of its own. Only StopPipeline and
    // dead-lettering (RetryWithBackoff ends in one of them) go back to a group's entry message;
    // SkipModule never does.
    const bool keeps_entries = pipeline.spec.error_handling != ErrorHandling::kSkipModule;
    bound_figures = executor.figures_for(pipeline);
    pipeline_figures = bound_figures->pipeline;
    groups.clear();
    std::vector<Item> passing;
    std::vector<Item> entering;
    for (auto& item : items) {
      if (item.finished) {
        passing.push_back(std::move(item));
        continue;
      }
      item.group = groups.size();
      Group g;
      g.input = item.input;
      // The message as it entered is needed only by strategies that fall back to it.
      if (keeps_entries) g.entry = item;
      groups.push_back(std::move(g));
      entering.push_back(std::move(item));
    }
    items = std::move(entering);
    PipelineFigures& figures = *pipeline_figures;
    const uint64_t entered = groups.size();
    figures.messages_in.fetch_add(entered, std::memory_order_relaxed);
    const uint64_t failures_before = result.counts.module_failures;
    const uint64_t conflicts_before = result.counts.merge_conflicts;
    for (const auto& stage : plan.stages) {
      const auto stage_start = Clock::now();
      auto stage_deadline =
          stage.stage->spec->stage_timeout_ms
              ? stage_start + std::chrono::milliseconds(*stage.stage->spec->stage_timeout_ms)
              : Clock::time_point::max();
      uint64_t active = 0;
      for (const Item& item : items) {
        if (!item.finished && groups[item.group].state == Group::State::kActive) ++active;
      }
      if (stage.stage->spec->parallel_execution) {
        co_await run_parallel(pipeline, stage, stage_deadline, global_deadline);
      } else {
        co_await run_sequential(pipeline, stage, stage_deadline, global_deadline);
      }
      StageFigures& stage_figures = figures_of_stage(*stage.stage);
      stage_figures.processed.fetch_add(active, std::memory_order_relaxed);
      const double stage_ms =
          std::chrono::duration<double, std::milli>(Clock::now() - stage_start).count();
      for (uint64_t k = 0; k < active; ++k) stage_figures.latency.record(stage_ms);
    }
    // Stopped groups go on as they entered; dead-lettered groups leave the flow.
    std::vector<Item> after = std::move(passing);
    std::vector<size_t> outputs_of(groups.size(), 0);
    for (auto& item : items) {
      Group& g = groups[item.group];
      if (g.state == Group::State::kActive) {
        ++outputs_of[item.group];
        after.push_back(std::move(item));
      }
    }
    uint64_t out = 0, filtered = 0, stopped = 0, dead = 0, unwritable = 0;
    for (size_t gi = 0; gi < groups.size(); ++gi) {
      Group& g = groups[gi];
      if (g.state == Group::State::kStopped) {
        after.push_back(std::move(g.entry));
        ++stopped;
        ++out;
      } else if (g.state == Group::State::kDeadLettered) {
        dead_letter(pipeline, g);
        ++(dead_letter_topic_fits(pipeline) ? dead : unwritable);
      } else if (outputs_of[gi] == 0) {
        ++filtered;
      } else {
        out += outputs_of[gi];
      }
    }
    figures.messages_out.fetch_add(out, std::memory_order_relaxed);
    figures.filtered.fetch_add(filtered, std::memory_order_relaxed);
    figures.stopped.fetch_add(stopped, std::memory_order_relaxed);
    figures.dead_lettered.fetch_add(dead, std::memory_order_relaxed);
    figures.dead_letters_unwritable.fetch_add(unwritable, std::memory_order_relaxed);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    for (uint64_t k = 0; k < entered; ++k) figures.latency.record(ms);
    figures.count_throughput(entered);
    figures.merge_conflicts.fetch_add(result.counts.merge_conflicts - conflicts_before,
                                      std::memory_order_relaxed);
    if (result.counts.module_failures == failures_before && entered > 0) {
      figures.last_success_ms.store(now_ms(), std::memory_order_relaxed);
    }
    // Keep input order (stable by input index).
    std::stable_sort(after.begin(), after.end(),
                     [](const Item& a, const Item& b) { return a.input < b.input; });
    items = std::move(after);
  }

  std::string dead_letter_topic(const CompiledPipeline& pipeline) const {
    const DeadLetterConfig config = pipeline.spec.dead_letter_config.value_or(DeadLetterConfig{});
    return config.topic_prefix + "." + topic;
  }

  // False when the dead-letter topic's name would be too long for any topic (a long source
  // topic): such dead letters are counted apart (dead_letters_unwritable), not as dead-lettered.
  bool dead_letter_topic_fits(const CompiledPipeline& pipeline) const {
    return dead_letter_topic(pipeline).size() <= kMaxTopicLength;
  }

  void dead_letter(const CompiledPipeline& pipeline, Group& g) {
    const DeadLetterConfig config = pipeline.spec.dead_letter_config.value_or(DeadLetterConfig{});
    RoutedMessage r;
    r.topic = dead_letter_topic(pipeline);
    // No topic can take it: storing it fails, and the producer is told the real cause (the
    // broker keeps the first error of a message).
    const bool topic_too_long = !dead_letter_topic_fits(pipeline);
    r.message = std::move(g.entry.message);
    if (r.message.value.size() > config.max_message_size) {
      r.message.set_header("etl.truncated_from_bytes", std::to_string(r.message.value.size()));
      r.message.value.resize(config.max_message_size);
    }
    if (config.include_error_context) {
      r.message.set_header("etl.error", g.error);
      r.message.set_header("etl.pipeline_id", pipeline.spec.pipeline_id);
      r.message.set_header("etl.module_id", g.module_id);
      r.message.set_header("etl.stage_priority", std::to_string(g.stage_priority));
      r.message.set_header("etl.source_topic", topic);
      r.message.set_header("etl.failed_at", std::to_string(now_ms()));
    }
    InputOutcome& outcome = result.outcomes[g.input];
    if (g.not_repeated) {
      // The record stays where it was read (a stream pipeline leaves its source as it is), in an
      // error or dead-letter topic or made from a record there: it is not lost.
      outcome.error = g.error;
      outcome.pipeline_id = pipeline.spec.pipeline_id;
      outcome.module_id = g.module_id;
      return;
    }
    r.message.set_header(std::string(kFailureRecordHeader), "dead_letter");
    outcome.error = topic_too_long
                        ? "dead-letter topic \"" + r.topic + "\" would be " +
                              std::to_string(r.topic.size()) + " characters, more than " +
                              std::to_string(kMaxTopicLength) + " (the module failed: " + g.error +
                              ")"
                        : g.error;
    outcome.dead_letters.push_back(std::move(r));
    outcome.pipeline_id = pipeline.spec.pipeline_id;
    outcome.module_id = g.module_id;
  }

  Task<BatchResult> go(const TopicPlan& plan) {
    result.outcomes.resize(inputs.size());
    filtered_by.resize(inputs.size());
    if (trace) trace->per_input.assign(inputs.size(), {});
    items.reserve(inputs.size());
    guards_failure_records = !plan.pipelines.empty() &&
                             plan.pipelines.front().pipeline->spec.mode == PipelineMode::kStream;
    failure_input.assign(inputs.size(), std::nullopt);
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (const std::string* v = inputs[i].message.header(kFailureRecordHeader)) {
        failure_input[i] = *v;
      }
    }
    for (size_t i = 0; i < inputs.size(); ++i) {
      Item item;
      item.input = i;
      item.message = std::move(inputs[i].message);
      items.push_back(std::move(item));
    }
    for (const auto& pipeline : plan.pipelines) co_await run_pipeline(pipeline);
    for (auto& item : items) {
      RoutedMessage r;
      r.topic = item.route ? *item.route : topic;
      if (!item.route) r.partition = inputs[item.input].partition;
      r.message = std::move(item.message);
      // What a stream pipeline makes of a failure record is one too, whatever the module kept.
      if (guards_failure_records && failure_input[item.input] &&
          !r.message.header(kFailureRecordHeader)) {
        r.message.set_header(std::string(kFailureRecordHeader), *failure_input[item.input]);
      }
      result.outcomes[item.input].outputs.push_back(std::move(r));
    }
    for (size_t i = 0; i < inputs.size(); ++i) {
      InputOutcome& o = result.outcomes[i];
      if (!o.outputs.empty()) {
        o.kind = InputOutcome::Kind::kPass;
      } else if (!o.dead_letters.empty() || !o.error.empty()) {
        // error without dead letters: a failure record whose dead letter was not repeated.
        o.kind = InputOutcome::Kind::kDeadLettered;
      } else {
        o.kind = InputOutcome::Kind::kFiltered;
        o.pipeline_id = filtered_by[i].first;
        o.module_id = filtered_by[i].second;
      }
    }
    co_return std::move(result);
  }
};

std::shared_ptr<const Executor::BoundUse> Executor::bind(const CompiledPipeline& pipeline,
                                                         const ModuleUse& use) {
  using Clock = std::chrono::steady_clock;
  const auto now = Clock::now();
  // Uses of configurations and dry runs that are gone: dropped once unused for 10 s (a use in
  // service is bound again every second).
  if (now - last_sweep_ > std::chrono::seconds(10) || bound_.size() > 4096) {
    std::erase_if(bound_, [&](const auto& entry) {
      return now - entry.second->bound_at > std::chrono::seconds(10);
    });
    if (bound_.size() > 4096) bound_.clear();
    // Found again at next use: a pipeline deleted meanwhile leaves no figures behind here.
    figures_.clear();
    last_sweep_ = now;
  }
  std::shared_ptr<BoundUse>& slot = bound_[use.serial];
  const uint64_t generation = runtime_.registry ? runtime_.registry->generation() : 0;
  if (slot && slot->registry_generation == generation &&
      now - slot->bound_at < std::chrono::seconds(1)) {
    return slot;
  }
  auto b = std::make_shared<BoundUse>();
  b->registry_generation = generation;
  b->bound_at = now;
  const ModuleSpec& spec = *use.spec;
  b->record = runtime_.registry ? runtime_.registry->resolve(spec.module_id) : nullptr;
  if (!b->record) {
    b->error = "module \"" + spec.module_id + "\" is not deployed";
  } else {
    b->settings = slot && slot->record == b->record
                      ? slot->settings
                      : instance_settings_for(pipeline.spec, spec, runtime_.defaults);
    auto module = runtime_.modules.get(*b->record, b->settings, sandbox_);
    if (module.is_ok()) {
      b->module = std::move(*module);
    } else {
      b->error = "cannot load module " + b->record->id + ": " + module.status().message();
    }
    b->breaker_key = use.key + '@' + b->record->id;
    b->breaker = runtime_.breakers.get(b->breaker_key);
    b->cache_salt = ResultCache::salt_for(*b->record, b->settings.config_json);
  }
  slot = std::move(b);
  return slot;
}

std::shared_ptr<Executor::BoundFigures> Executor::figures_for(const CompiledPipeline& pipeline) {
  std::shared_ptr<BoundFigures>& slot = figures_[pipeline.serial];
  if (!slot) {
    slot = std::make_shared<BoundFigures>();
    slot->pipeline = runtime_.figures.pipeline(pipeline.spec.pipeline_id);
  }
  return slot;
}

wasm::InstanceSettings instance_settings_for(const PipelineSpec& pipeline, const ModuleSpec& spec,
                                             const EtlDefaults& defaults) {
  wasm::InstanceSettings settings;
  settings.memory_limit_bytes =
      spec.instance_config.memory_limit_bytes.value_or(defaults.memory_limit_bytes);
  settings.max_output_bytes = defaults.max_output_bytes;
  if (!spec.instance_config.custom_config.is_null()) {
    settings.config_json = json::serialize(spec.instance_config.custom_config);
  }
  const uint64_t timeout_ms = spec.instance_config.execution_timeout_ms.value_or(
      pipeline.configuration.timeout_ms.value_or(defaults.execution_timeout_ms));
  settings.timeout_ms = static_cast<uint32_t>(std::min<uint64_t>(timeout_ms, UINT32_MAX));
  return settings;
}

Task<BatchResult> Executor::run_task(const TopicPlan& plan, std::string topic,
                                     std::vector<InputMessage> inputs, Trace* trace,
                                     Scheduler& scheduler) {
  Run run(*this, topic, inputs, trace, scheduler);
  co_return co_await run.go(plan);
}

BatchResult Executor::run(const TopicPlan& plan, const std::string& topic,
                          std::vector<InputMessage> inputs, Trace* trace) {
  wasm::Sandbox::Scope scope(sandbox_);
  BlockingScheduler scheduler;
  return scheduler.run(run_task(plan, topic, std::move(inputs), trace, scheduler));
}

namespace {

// A task nobody awaits: it starts at once, and its frame goes when it ends.
struct Detached {
  struct promise_type {
    Detached get_return_object() { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() {}
    void unhandled_exception() noexcept {}
  };
};

Detached drive(Task<> task, size_t* live) {
  ++*live;
  try {
    co_await std::move(task);
  } catch (const std::exception& e) {
    // Runs report failures as values; this is a bug or memory exhaustion. The worker goes on.
    log::get("etl").error("ETL run failed: {}", e.what());
  }
  --*live;
}

}  // namespace

void Executor::spawn(Task<> task) { drive(std::move(task), &live_runs_); }

}  // namespace wasmq::etl
