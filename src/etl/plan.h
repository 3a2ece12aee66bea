// A configuration of pipelines compiled for execution, and the per-topic plan derived from it.
//
// A Configuration is an immutable snapshot: the enabled inline pipelines in the order they
// apply (ascending priority, ties by pipeline_id), each with its stages in priority order and
// every module's topic filters and conditional rules compiled. Changing any pipeline builds a
// new snapshot; work in flight keeps the one it started with.
//
// Which modules can run on a topic depends only on the topic, so plan_for(topic) computes the
// applicable modules once per topic and caches the plan in the snapshot (pipelines.md, "Which
// modules run on a message"); a new snapshot starts with an empty cache.
//
// Threads: a Configuration is shared by every thread; plan_for() is safe from any number of
// threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "etl/figures.h"
#include "etl/match.h"
#include "etl/pipeline.h"

namespace wasmq::etl {

// One module of a stage, compiled.
struct ModuleUse {
  const ModuleSpec* spec = nullptr;
  TopicMatcher topics;
  RuleSet rules;
  size_t index = 0;  // position in its stage
  // "<key_prefix><pipeline_id>/<stage priority>/<index>": keys breakers, caches and figures.
  std::string key;
  // Unique in the process, never reused: what workers key what they bound for it by.
  uint64_t serial = 0;
};

struct CompiledStage {
  const StageSpec* spec = nullptr;
  std::vector<ModuleUse> modules;
};

struct CompiledPipeline {
  uint64_t serial = 0;  // unique in the process: a worker keys what it binds for it by this
  PipelineSpec spec;
  std::vector<CompiledStage> stages;
  TopicMatcher allowed_outputs;  // Wildcard filters of spec.allowed_output_topics
  // compile_pipeline's key_prefix: not empty for a copy compiled for another purpose (a dry
  // run), whose figures are its own and never the live pipeline's.
  std::string key_prefix;
};

// ModuleUse::key of module `index` of stage `priority` of pipeline `pipeline_id`. A use's
// breakers are keyed "<key>@<module id>" (Executor::bind).
std::string module_use_key(std::string_view key_prefix, std::string_view pipeline_id,
                           uint32_t priority, size_t index);

// Compiles one pipeline; kInvalidArgument naming the field (as parse_pipeline does) when a
// pattern does not compile. `key_prefix` is put before every ModuleUse::key, so that a copy
// compiled for another purpose (a dry run) keeps breakers and figures apart from the live one.
Result<std::shared_ptr<const CompiledPipeline>> compile_pipeline(PipelineSpec spec,
                                                                 std::string_view key_prefix = {});

// A cycle among the enabled stream pipelines of `pipelines` (pipelines.md, "Where pipelines
// run"): one message would go round it for ever. A stream pipeline feeds every other enabled
// stream pipeline whose source_topic is its destination_topic, or, when it routes outputs
// (allowed_output_topics not empty), matches one of its allowed_output_topics (routing to its
// own source_topic goes to its destination instead). Returns the cycle as
// "<pipeline_id>: <topic> → <topic> → ... → <first topic>" (the source topics in order, from
// the pipeline with the smallest id on it), or nullopt when there is none.
std::optional<std::string> find_stream_cycle(
    const std::vector<std::shared_ptr<const CompiledPipeline>>& pipelines);

// The same cycle with the ids of the pipelines on it (in the order of `description`).
struct StreamCycle {
  std::vector<std::string> pipeline_ids;
  std::string description;  // what find_stream_cycle returns
};
std::optional<StreamCycle> find_stream_cycle_of(
    const std::vector<std::shared_ptr<const CompiledPipeline>>& pipelines);

// The modules that can run on one topic.
struct TopicPlan {
  struct Stage {
    const CompiledStage* stage = nullptr;
    std::vector<const ModuleUse*> modules;  // whose topic filters match, in listed order
  };
  struct Pipeline {
    const CompiledPipeline* pipeline = nullptr;
    std::vector<Stage> stages;  // only stages with at least one module
  };
  std::vector<Pipeline> pipelines;  // only pipelines with at least one stage

  bool empty() const { return pipelines.empty(); }
};

class Configuration {
 public:
  // `pipelines` in any order; disabled and stream pipelines are kept (for lookups) but take no
  // part in plans.
  // `filter_figures` (may be null) receives the topic-filter evaluations of plan computations
  // and the plan cache's hits and misses.
  explicit Configuration(std::vector<std::shared_ptr<const CompiledPipeline>> pipelines,
                         FilterFigures* filter_figures = nullptr);

  // The plan for `topic`, cached. It points into this snapshot: valid while it lives.
  std::shared_ptr<const TopicPlan> plan_for(std::string_view topic) const;

  // Every pipeline of the snapshot, in application order.
  const std::vector<std::shared_ptr<const CompiledPipeline>>& pipelines() const {
    return pipelines_;
  }
  // A pipeline by id, or nullptr.
  std::shared_ptr<const CompiledPipeline> find(std::string_view pipeline_id) const;

  // A plan for one pipeline alone, whether enabled or not (dry runs); with `figures`, each
  // filter evaluation is timed and counted there.
  static TopicPlan plan_of(const CompiledPipeline& pipeline, std::string_view topic);
  static TopicPlan plan_of(const CompiledPipeline& pipeline, std::string_view topic,
                           FilterFigures* figures);

 private:
  std::vector<std::shared_ptr<const CompiledPipeline>> pipelines_;
  FilterFigures* const filter_figures_;
  mutable SharedMutex cache_mutex_;
  struct TopicHash {
    using is_transparent = void;
    size_t operator()(std::string_view topic) const { return std::hash<std::string_view>()(topic); }
  };
  mutable std::unordered_map<std::string, std::shared_ptr<const TopicPlan>, TopicHash,
                             std::equal_to<>>
      cache_ GUARDED_BY(cache_mutex_);
};

}  // namespace wasmq::etl
