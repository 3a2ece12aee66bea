#include "etl/plan.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>

namespace wasmq::etl {

std::string module_use_key(std::string_view key_prefix, std::string_view pipeline_id,
                           uint32_t priority, size_t index) {
  return std::string(key_prefix) + std::string(pipeline_id) + "/" + std::to_string(priority) +
         "/" + std::to_string(index);
}

Result<std::shared_ptr<const CompiledPipeline>> compile_pipeline(PipelineSpec spec,
                                                                 std::string_view key_prefix) {
  auto pipeline = std::make_shared<CompiledPipeline>();
  static std::atomic<uint64_t> pipeline_serials{0};
  pipeline->serial = ++pipeline_serials;
  pipeline->spec = std::move(spec);
  pipeline->key_prefix = key_prefix;
  const PipelineSpec& p = pipeline->spec;
  for (size_t s = 0; s < p.stages.size(); ++s) {
    CompiledStage stage;
    stage.spec = &p.stages[s];
    for (size_t m = 0; m < stage.spec->modules.size(); ++m) {
      const ModuleSpec& module = stage.spec->modules[m];
      const std::string where =
          "stages[" + std::to_string(s) + "].modules[" + std::to_string(m) + "]";
      auto topics = TopicMatcher::compile(module.topic_filters);
      if (!topics.is_ok()) return topics.status().with_context(where);
      auto rules = RuleSet::compile(module.conditional_rules);
      if (!rules.is_ok()) return rules.status().with_context(where);
      ModuleUse use;
      use.spec = &module;
      use.topics = std::move(*topics);
      use.rules = std::move(*rules);
      use.index = m;
      static std::atomic<uint64_t> serials{0};
      use.serial = ++serials;
      use.key = module_use_key(key_prefix, p.pipeline_id, stage.spec->priority, m);
      stage.modules.push_back(std::move(use));
    }
    pipeline->stages.push_back(std::move(stage));
  }
  std::vector<TopicFilterSpec> outputs;
  for (const auto& pattern : p.allowed_output_topics) {
    outputs.push_back({FilterType::kWildcard, pattern, true, false});
  }
  auto allowed = TopicMatcher::compile(outputs);
  if (!allowed.is_ok()) return allowed.status().with_context("allowed_output_topics");
  pipeline->allowed_outputs = std::move(*allowed);
  return std::shared_ptr<const CompiledPipeline>(std::move(pipeline));
}

Configuration::Configuration(std::vector<std::shared_ptr<const CompiledPipeline>> pipelines,
                             FilterFigures* filter_figures)
    : pipelines_(std::move(pipelines)), filter_figures_(filter_figures) {
  std::sort(pipelines_.begin(), pipelines_.end(), [](const auto& a, const auto& b) {
    if (a->spec.priority != b->spec.priority) return a->spec.priority < b->spec.priority;
    return a->spec.pipeline_id < b->spec.pipeline_id;
  });
}

namespace {

// Whether `topics` matches `topic`, each filter timed and counted by type into `figures`.
bool measured_match(const TopicMatcher& topics, std::string_view topic, FilterFigures& figures) {
  if (topics.size() == 0) return true;
  bool any = false;
  for (size_t i = 0; i < topics.size(); ++i) {
    const auto start = std::chrono::steady_clock::now();
    const bool matched = topics.filter_matches(i, topic);
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::steady_clock::now() - start)
                        .count();
    const size_t type = static_cast<size_t>(topics.filter_type(i));
    figures.evaluations[type].fetch_add(1, std::memory_order_relaxed);
    figures.total_ns[type].fetch_add(static_cast<uint64_t>(ns), std::memory_order_relaxed);
    if (matched) figures.matches[type].fetch_add(1, std::memory_order_relaxed);
    any = any || matched;
  }
  return any;
}

}  // namespace

TopicPlan Configuration::plan_of(const CompiledPipeline& pipeline, std::string_view topic) {
  return plan_of(pipeline, topic, nullptr);
}

TopicPlan Configuration::plan_of(const CompiledPipeline& pipeline, std::string_view topic,
                                 FilterFigures* figures) {
  TopicPlan plan;
  TopicPlan::Pipeline p;
  p.pipeline = &pipeline;
  for (const auto& stage : pipeline.stages) {
    TopicPlan::Stage s;
    s.stage = &stage;
    for (const auto& module : stage.modules) {
      const bool matched =
          figures ? measured_match(module.topics, topic, *figures) : module.topics.matches(topic);
      if (matched) s.modules.push_back(&module);
    }
    if (!s.modules.empty()) p.stages.push_back(std::move(s));
  }
  if (!p.stages.empty()) plan.pipelines.push_back(std::move(p));
  return plan;
}

std::shared_ptr<const TopicPlan> Configuration::plan_for(std::string_view topic) const {
  {
    ReaderLock lock(cache_mutex_);
    auto it = cache_.find(topic);
    if (it != cache_.end()) {
      if (filter_figures_) filter_figures_->plan_hits.fetch_add(1, std::memory_order_relaxed);
      return it->second;
    }
  }
  if (filter_figures_) filter_figures_->plan_misses.fetch_add(1, std::memory_order_relaxed);
  auto plan = std::make_shared<TopicPlan>();
  for (const auto& pipeline : pipelines_) {
    if (!pipeline->spec.enabled || pipeline->spec.mode != PipelineMode::kInline) continue;
    TopicPlan one = plan_of(*pipeline, topic, filter_figures_);
    for (auto& p : one.pipelines) plan->pipelines.push_back(std::move(p));
  }
  WriterLock lock(cache_mutex_);
  auto [it, inserted] = cache_.emplace(std::string(topic), std::move(plan));
  return it->second;
}

std::shared_ptr<const CompiledPipeline> Configuration::find(std::string_view pipeline_id) const {
  for (const auto& p : pipelines_) {
    if (p->spec.pipeline_id == pipeline_id) return p;
  }
  return nullptr;
}

}  // namespace wasmq::etl

namespace wasmq::etl {

std::optional<std::string> find_stream_cycle(
    const std::vector<std::shared_ptr<const CompiledPipeline>>& pipelines) {
  auto cycle = find_stream_cycle_of(pipelines);
  if (!cycle) return std::nullopt;
  return std::move(cycle->description);
}

std::optional<StreamCycle> find_stream_cycle_of(
    const std::vector<std::shared_ptr<const CompiledPipeline>>& pipelines) {
  std::vector<const CompiledPipeline*> streams;
  for (const auto& p : pipelines) {
    if (p->spec.enabled && p->spec.mode == PipelineMode::kStream) streams.push_back(p.get());
  }
  // By id, so that the cycle reported starts at the same pipeline whatever the order given.
  std::sort(streams.begin(), streams.end(),
            [](const auto* a, const auto* b) { return a->spec.pipeline_id < b->spec.pipeline_id; });
  auto feeds = [](const CompiledPipeline& from, const CompiledPipeline& to) {
    const std::string& source = to.spec.source_topic;
    if (source == from.spec.destination_topic) return true;
    return !from.spec.allowed_output_topics.empty() && source != from.spec.source_topic &&
           from.allowed_outputs.matches(source);
  };
  const size_t n = streams.size();
  // Depth-first search; state 0 unvisited, 1 on the current path, 2 done.
  std::vector<int> state(n, 0);
  std::vector<size_t> path;
  std::optional<StreamCycle> found;
  std::function<bool(size_t)> visit = [&](size_t i) {
    state[i] = 1;
    path.push_back(i);
    for (size_t j = 0; j < n; ++j) {
      if (!feeds(*streams[i], *streams[j])) continue;
      if (state[j] == 1) {
        std::vector<size_t> cycle(std::find(path.begin(), path.end(), j), path.end());
        // streams is sorted by id: the smallest index is the smallest id.
        std::rotate(cycle.begin(), std::min_element(cycle.begin(), cycle.end()), cycle.end());
        StreamCycle c;
        c.description = streams[cycle[0]]->spec.pipeline_id + ": ";
        for (size_t k : cycle) {
          c.description += streams[k]->spec.source_topic + " \u2192 ";
          c.pipeline_ids.push_back(streams[k]->spec.pipeline_id);
        }
        c.description += streams[cycle[0]]->spec.source_topic;
        found = std::move(c);
        return true;
      }
      if (state[j] == 0 && visit(j)) return true;
    }
    path.pop_back();
    state[i] = 2;
    return false;
  };
  for (size_t i = 0; i < n && !found; ++i) {
    if (state[i] == 0) visit(i);
  }
  return found;
}

}  // namespace wasmq::etl
