#include "etl/executor.h"

#include <algorithm>
#include <boost/json.hpp>

#include "common/log.h"
#include "common/message_json.h"
#include "etl/executor_run.h"

namespace wasmq::etl {
namespace {

namespace json = boost::json;

}  // namespace

Task<> Executor::Run::run_pipeline(const TopicPlan::Pipeline& plan) {
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
  groups.reserve(items.size());
  std::vector<Item> passing;
  std::vector<Item> entering;
  entering.reserve(items.size());
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
    stage_figures.latency.record(stage_ms, active);
  }
  // Stopped groups go on as they entered; dead-lettered groups leave the flow.
  std::vector<Item> after = std::move(passing);
  after.reserve(after.size() + items.size() + groups.size());
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
  figures.latency.record(ms, entered);
  figures.count_throughput(entered);
  figures.merge_conflicts.fetch_add(result.counts.merge_conflicts - conflicts_before,
                                    std::memory_order_relaxed);
  if (result.counts.module_failures == failures_before && entered > 0) {
    figures.last_success_ms.store(now_ms(), std::memory_order_relaxed);
  }
  // Keep input order (stable by input index); most batches are in order already.
  auto by_input = [](const Item& a, const Item& b) { return a.input < b.input; };
  if (!std::is_sorted(after.begin(), after.end(), by_input)) {
    std::stable_sort(after.begin(), after.end(), by_input);
  }
  items = std::move(after);
}

Task<BatchResult> Executor::Run::go(const TopicPlan& plan) {
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
    if (pipeline.key_prefix.empty()) {
      slot->pipeline = runtime_.figures.pipeline(pipeline.spec.pipeline_id);
    } else {
      // A dry run counts apart: its messages are not the live pipeline's traffic.
      slot->pipeline = std::make_shared<PipelineFigures>();
      slot->pipeline->pipeline_id = pipeline.spec.pipeline_id;
    }
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
