// Executor::Run, the stages: a sequential stage (outputs split into items of their own), a
// parallel stage (outputs merged), the trace steps of the modules considered. Routing, the rules
// and the merge of one output, called per message, are inline in executor_run.h.
#include "etl/executor_run.h"

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wasmq::etl {

std::string route_error(std::string_view topic) {
  return "routing to topic \"" + std::string(topic) +
         "\" refused: not in the pipeline's allowed_output_topics";
}

TraceStep Executor::Run::trace_step(const CompiledPipeline& pipeline, const CompiledStage& stage,
                                    const ModuleUse& use) {
  TraceStep s;
  s.pipeline_id = pipeline.spec.pipeline_id;
  s.stage_priority = stage.spec->priority;
  s.module_id = use.spec->module_id;
  return s;
}

TraceStep Executor::Run::ran_step(const CompiledPipeline& pipeline, const CompiledStage& stage,
                                  const ModuleUse& use, const CallOutcome& o) {
  TraceStep s = trace_step(pipeline, stage, use);
  s.matched = true;
  s.decided_by = topic_decision(use);
  s.ran = true;
  s.resolved_id = o.resolved_id;
  s.time_ms = o.time_ms;
  return s;
}

bool Executor::Run::take_outcome(const CompiledPipeline& pipeline, const CompiledStage& stage,
                                 const ModuleUse& use, Item& item, CallOutcome& o,
                                 std::vector<std::optional<std::string>>* routes) {
  TraceStep s = trace ? ran_step(pipeline, stage, use, o) : TraceStep{};
  if (o.ok && !route(pipeline, o.result.transformed_messages, routes, &o.error)) o.ok = false;
  if (!o.ok) {
    s.error = o.error;
    s.action = fail(pipeline, stage, use, item, o.error, false, o.not_deployed);
    step(item.input, std::move(s));
    return false;
  }
  if (trace) {
    s.output = o.result.transformed_messages;
    s.should_continue = o.result.should_continue;
    step(item.input, std::move(s));
  }
  return true;
}

std::string Executor::Run::topic_decision(const ModuleUse& use) {
  int f = use.topics.matching_filter(topic);
  if (f == TopicMatcher::kEveryTopic) return "no topic_filters (every topic)";
  return "topic_filters[" + std::to_string(f) + "] matches";
}

Task<> Executor::Run::run_sequential(const CompiledPipeline& pipeline,
                                     const TopicPlan::Stage& stage,
                                     Clock::time_point stage_deadline,
                                     Clock::time_point global_deadline) {
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
    std::vector<std::optional<std::string>> routes;  // per item, reused
    size_t t = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      if (t >= targets.size() || targets[t] != i) {
        next.push_back(std::move(items[i]));
        continue;
      }
      CallOutcome& o = outcomes[t++];
      Item& item = items[i];
      if (!take_outcome(pipeline, *stage.stage, *use, item, o, &routes)) {
        next.push_back(std::move(item));
        continue;
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

Task<> Executor::Run::run_parallel(const CompiledPipeline& pipeline, const TopicPlan::Stage& stage,
                                   Clock::time_point stage_deadline,
                                   Clock::time_point global_deadline) {
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
  std::vector<std::optional<std::string>> routes;  // per module outcome, reused
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
      if (o.ok && o.result.transformed_messages.size() > 1) {
        o.ok = false;
        o.error = "module returned " + std::to_string(o.result.transformed_messages.size()) +
                  " messages in a parallel stage (at most one is allowed)";
      }
      if (!take_outcome(pipeline, *stage.stage, *use, item, o, &routes)) continue;
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

}  // namespace wasmq::etl
