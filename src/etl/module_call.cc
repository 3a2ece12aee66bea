// Executor::Run, the module call: one module on a run's messages, through the result cache,
// the circuit breaker, the concurrency permit and retries with backoff; the call logs.
#include "etl/executor_run.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "common/log.h"

namespace wasmq::etl {

CallWarnings& call_warnings() {
  static CallWarnings warnings;
  return warnings;
}

std::string suppressed_note(uint64_t suppressed) {
  if (suppressed == 0) return {};
  return fmt::format(" ({} more like it suppressed: at most one per {} s)", suppressed,
                     kCallWarningInterval.count());
}

void Executor::Run::log_call(const ModuleRecord& record, size_t messages, double ms,
                             uint32_t limit_ms, bool ok, uint64_t memory_bytes,
                             uint64_t memory_limit_bytes) {
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

void Executor::Run::log_breaker(const CompiledPipeline& pipeline, const ModuleRecord& record,
                                CircuitBreakers::Transition change,
                                const std::string& last_error) {
  auto& logger = log::get("etl");
  const CircuitBreakerConfig& c = pipeline.spec.circuit_breaker;
  switch (change) {
    case CircuitBreakers::Transition::kOpened:
      logger.warn(
          "pipeline {}: circuit breaker for module {} opened after {} consecutive failures "
          "(last: {}); its messages fail without a call for {} ms, then one trial call decides",
          pipeline.spec.pipeline_id, record.id, c.failure_threshold, last_error, c.open_ms);
      break;
    case CircuitBreakers::Transition::kReopened:
      logger.warn("pipeline {}: circuit breaker for module {} stays open: the trial call failed "
                  "({}); next trial in {} ms",
                  pipeline.spec.pipeline_id, record.id, last_error, c.open_ms);
      break;
    case CircuitBreakers::Transition::kClosed:
      logger.info("pipeline {}: circuit breaker for module {} closed: the trial call succeeded",
                  pipeline.spec.pipeline_id, record.id);
      break;
    case CircuitBreakers::Transition::kNone:
      break;
  }
}

Task<std::vector<CallOutcome>> Executor::Run::call_module(
    const CompiledPipeline& pipeline, const CompiledStage& stage, const ModuleUse& use,
    const std::vector<const Message*>& messages, Clock::time_point stage_deadline,
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
  if (!bound.error.empty()) {
    fail_all(bound.error);
    for (auto& o : out) o.not_deployed = bound.record == nullptr;
    co_return out;
  }
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

  // A module's own error result is a failure of that message too; of the module (for its
  // breaker) only when circuit_breaker.count_module_errors says so.
  auto settle = [&](size_t i) {
    CallOutcome& o = out[i];
    if (o.ok && o.result.error) {
      o.ok = false;
      o.module_error = true;
      o.error = "module error: " + *o.result.error;
    }
    if (o.ok) o.result.error.reset();
  };
  auto report = [&](size_t i) {
    const CallOutcome& o = out[i];
    const bool healthy = o.ok || (o.module_error && !breaker.count_module_errors);
    const auto change =
        bound.breaker->record(healthy, breaker.failure_threshold, open_for, Clock::now());
    if (change != CircuitBreakers::Transition::kNone && trace == nullptr) {
      log_breaker(pipeline, *record, change, o.error);
    }
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
        report(i);
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

}  // namespace wasmq::etl
