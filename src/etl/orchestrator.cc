#include "etl/orchestrator.h"

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <iterator>
#include <random>
#include <set>
#include <thread>

#include "common/file.h"
#include "common/json_merge_patch.h"
#include "common/log.h"

namespace wasmq::etl {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

// The refusal of an API change to a pipeline of the configuration file (config.md).
Status file_pipeline_conflict(std::string_view id) {
  return Status(StatusCode::kConflict, "pipeline \"" + std::string(id) +
                                           "\" is defined in the configuration file: change it "
                                           "there and reload");
}

// The refusal of a change that would make stream pipelines feed each other in a cycle.
std::optional<Status> cycle_refusal(
    const std::map<std::string, std::shared_ptr<const CompiledPipeline>, std::less<>>& compiled) {
  std::vector<std::shared_ptr<const CompiledPipeline>> all;
  for (const auto& [id, pipeline] : compiled) all.push_back(pipeline);
  auto cycle = find_stream_cycle(all);
  if (!cycle) return std::nullopt;
  return Status(StatusCode::kConflict,
                "stream pipelines would form a cycle, and one message would go round it for "
                "ever: " +
                    *cycle);
}

using ParsedPipelines =
    std::vector<std::pair<PipelineSpec, std::shared_ptr<const CompiledPipeline>>>;

// Parses and compiles the configuration file's pipelines (etl.pipelines), in order; an error
// names the element ("etl.pipelines[2]: stages[0]...: ...").
Result<ParsedPipelines> parse_file_pipelines(const json::array& file_pipelines) {
  ParsedPipelines parsed;
  std::set<std::string, std::less<>> ids;
  for (size_t i = 0; i < file_pipelines.size(); ++i) {
    const std::string where = "etl.pipelines[" + std::to_string(i) + "]";
    PipelineSpec spec;
    if (Status error =
            parse_pipeline(file_pipelines[i], "pipeline-" + std::to_string(i + 1), &spec);
        !error.is_ok()) {
      return error.with_context(where);
    }
    if (!ids.insert(spec.pipeline_id).second) {
      return invalid_argument(where + ": pipeline_id \"" + spec.pipeline_id +
                              "\" is used by another pipeline of the file");
    }
    auto compiled = compile_pipeline(spec);
    if (!compiled.is_ok()) return compiled.status().with_context(where);
    parsed.emplace_back(std::move(spec), *compiled);
  }
  return parsed;
}

// Prefix of the ModuleUse keys of dry runs (breakers and figures apart from the live ones).
constexpr std::string_view kDryRunKeyPrefix = "dry-run:";

}  // namespace

Result<std::unique_ptr<Orchestrator>> Orchestrator::open(OrchestratorOptions options,
                                                         const json::array& file_pipelines,
                                                         std::vector<std::string>* warnings) {
  std::unique_ptr<Orchestrator> o(new Orchestrator(std::move(options)));
  auto registry = ModuleRegistry::open(o->options_.modules_path, warnings);
  if (!registry.is_ok()) return registry.status();
  o->registry_ = std::move(*registry);
  o->runtime_.defaults = o->options_.defaults;
  o->runtime_.registry = o->registry_.get();
  o->runtime_.modules.set_limits(o->options_.module_cache_size, o->options_.module_cache_ttl);

  auto parsed = parse_file_pipelines(file_pipelines);
  if (!parsed.is_ok()) return parsed.status();
  for (auto& [spec, compiled] : *parsed) {
    // The id is copied first: in `map[key] = value` the value is evaluated (and spec moved
    // from) before the key.
    std::string id = spec.pipeline_id;
    o->compiled_[id] = compiled;
    o->entries_[id] = PipelineEntry{std::move(spec), PipelineOrigin::kFile};
  }

  std::error_code ec;
  fs::create_directories(o->options_.pipelines_path, ec);
  if (ec) {
    return Status(StatusCode::kIo,
                  "cannot create " + o->options_.pipelines_path.string() + ": " + ec.message());
  }
  for (const auto& file : fs::directory_iterator(o->options_.pipelines_path, ec)) {
    if (file.path().extension() != ".json") continue;
    auto skip = [&](const std::string& why) {
      if (warnings)
        warnings->push_back("pipeline file " + file.path().string() + " skipped: " + why);
    };
    auto text = read_file(file.path(), 16 << 20);
    if (!text.is_ok()) {
      skip(text.status().message());
      continue;
    }
    boost::system::error_code jec;
    json::value doc = json::parse(*text, jec);
    if (jec) {
      skip("not JSON: " + jec.message());
      continue;
    }
    PipelineSpec spec;
    if (Status error = parse_pipeline(doc, file.path().stem().string(), &spec); !error.is_ok()) {
      skip(error.message());
      continue;
    }
    // delete_pipeline() removes <id>.json: a document under another name would come back.
    if (spec.pipeline_id != file.path().stem().string()) {
      skip("its pipeline_id \"" + spec.pipeline_id + "\" does not match the file name");
      continue;
    }
    if (o->entries_.count(spec.pipeline_id)) {
      skip("the configuration file defines a pipeline with the same id");
      continue;
    }
    auto compiled = compile_pipeline(spec);
    if (!compiled.is_ok()) {
      skip(compiled.status().message());
      continue;
    }
    // The id is copied first: in `map[key] = value` the value is evaluated (and spec moved
    // from) before the key.
    std::string id = spec.pipeline_id;
    o->compiled_[id] = *compiled;
    o->entries_[id] = PipelineEntry{std::move(spec), PipelineOrigin::kApi};
  }
  if (cycle_refusal(o->compiled_)) {
    // The configuration file's own pipelines: a configuration error, as at a reload.
    std::map<std::string, std::shared_ptr<const CompiledPipeline>, std::less<>> file_only;
    for (const auto& [id, entry] : o->entries_) {
      if (entry.origin == PipelineOrigin::kFile) file_only[id] = o->compiled_[id];
    }
    if (auto in_file = cycle_refusal(file_only)) return in_file->with_context("etl.pipelines");
    // With pipelines of the API (persisted before the file gained the rest of the cycle, or
    // before cycles were refused): the broker starts, and those API pipelines stay stopped.
    o->stop_api_pipelines_in_cycles(warnings);
  }
  {
    MutexLock lock(o->mutex_);
    o->publish_locked();
  }
  size_t count = o->options_.workers;
  if (count == 0) count = std::max(1u, std::thread::hardware_concurrency());
  if (!o->options_.enabled) count = 1;
  // A compile thread per worker: a worker waits for one compilation at most, so none waits
  // behind another's (a module slow to compile holds only the worker that needs it).
  auto compiler = ModuleCompiler::start(count);
  if (!compiler.is_ok()) return compiler.status();
  o->compiler_ = std::move(*compiler);
  o->runtime_.modules.set_compiler(o->compiler_.get());
  o->runtime_.results.configure(o->runtime_.defaults.result_cache_max_bytes, count);
  auto workers = Workers::start(count, o->runtime_, o->options_.pools.pool);
  if (!workers.is_ok()) return workers.status();
  o->workers_ = std::move(*workers);
  Orchestrator* self = o.get();
  o->pools_ = std::make_unique<InstancePools>(o->options_.pools, *o->workers_, o->runtime_,
                                              [self] { return self->configuration(); });
  return o;
}

Orchestrator::~Orchestrator() {
  pools_.reset();     // stops the background cleanup
  workers_.reset();   // runs the queued jobs, then joins
  compiler_.reset();  // runs the queued uploads, then joins
}

void Orchestrator::stop_api_pipelines_in_cycles(std::vector<std::string>* warnings) {
  while (true) {
    std::vector<std::shared_ptr<const CompiledPipeline>> all;
    for (const auto& [id, pipeline] : compiled_) all.push_back(pipeline);
    auto cycle = find_stream_cycle_of(all);
    if (!cycle) return;
    bool stopped_one = false, with_file = false;
    for (const std::string& id : cycle->pipeline_ids) {
      if (entries_.at(id).origin == PipelineOrigin::kFile) with_file = true;
    }
    for (const std::string& id : cycle->pipeline_ids) {
      PipelineEntry& entry = entries_.at(id);
      if (entry.origin != PipelineOrigin::kApi) continue;
      entry.spec.enabled = false;
      // The spec compiled before; with enabled false it compiles the same.
      auto compiled = compile_pipeline(entry.spec);
      if (compiled.is_ok()) compiled_[id] = *compiled;
      const std::string reason =
          std::string("stopped at start: stream pipelines") +
          (with_file ? " of the API and of the configuration file" : "") +
          " would form a cycle, and one message would go round it for ever: " + cycle->description +
          "; start it again once the cycle is gone";
      // Persisted as a stop over the API would be: it is started again by someone who saw why.
      Status persisted = write_file_atomically(options_.pipelines_path / (id + ".json"),
                                               json::serialize(pipeline_to_json(entry.spec)));
      stop_reasons_[id] = reason;
      log::get("etl").warn("pipeline {} {}", id, reason);
      if (warnings) {
        warnings->push_back(
            "pipeline " + id + " " + reason +
            (persisted.is_ok() ? "" : " (not persisted: " + persisted.message() + ")"));
      }
      stopped_one = true;
    }
    if (!stopped_one) return;  // not reached: a cycle of file pipelines alone fails the start
  }
}

std::optional<std::string> Orchestrator::stop_reason(std::string_view id) const {
  MutexLock lock(mutex_);
  auto it = stop_reasons_.find(id);
  if (it == stop_reasons_.end()) return std::nullopt;
  return it->second;
}

void Orchestrator::publish_locked() {
  std::vector<std::shared_ptr<const CompiledPipeline>> pipelines;
  if (options_.enabled) {
    for (const auto& [id, compiled] : compiled_) pipelines.push_back(compiled);
  }
  configuration_.store(
      std::make_shared<const Configuration>(std::move(pipelines), &runtime_.figures.filters()));
  refresh_in_use_locked();
}

std::string Orchestrator::new_pipeline_id_locked() const {
  thread_local std::mt19937_64 random{std::random_device{}()};
  while (true) {
    char id[32];
    std::snprintf(id, sizeof id, "pipeline-%08llx",
                  static_cast<unsigned long long>(random() & 0xffffffffull));
    if (!entries_.count(id)) return id;
  }
}

Result<PipelineSpec> Orchestrator::apply_locked(const json::value& document,
                                                std::string_view replacing_id, bool* changed) {
  if (changed != nullptr) *changed = true;
  if (!document.is_object()) {
    return Status(StatusCode::kInvalidArgument, "the pipeline must be a JSON object");
  }
  const bool replacing = !replacing_id.empty();
  PipelineSpec spec;
  std::string fallback_id = std::string(replacing_id);
  if (!replacing) fallback_id = pipeline_id_from_name(document.get_object());
  if (fallback_id.empty()) fallback_id = new_pipeline_id_locked();
  if (Status error = parse_pipeline(document, fallback_id, &spec); !error.is_ok()) return error;
  if (replacing && spec.pipeline_id != replacing_id) {
    return Status(StatusCode::kInvalidArgument,
                        "pipeline_id: \"" + spec.pipeline_id + "\" does not match the path's \"" +
                            std::string(replacing_id) + "\"",
                        "pipeline_id");
  }
  auto existing = entries_.find(spec.pipeline_id);
  if (!replacing && existing != entries_.end()) {
    const bool derived = !document.get_object().contains("pipeline_id");
    return Status(StatusCode::kAlreadyExists,
                  "pipeline \"" + spec.pipeline_id + "\"" +
                      (derived ? " (the id its name gives)" : "") +
                      " already exists: replace it with PUT /api/v1/etl/pipelines/" +
                      spec.pipeline_id + " (wasmq pipeline apply does)",
                  "pipeline_id");
  }
  for (const auto& [other_id, other] : entries_) {
    if (other_id != spec.pipeline_id && other.spec.name == spec.name) {
      return Status(StatusCode::kAlreadyExists,
                    "a pipeline named \"" + spec.name + "\" already exists: \"" + other_id +
                        "\" (pipeline names are unique)",
                    "name");
    }
  }
  if (replacing && existing == entries_.end()) {
    return Status(StatusCode::kNotFound,
                        "pipeline \"" + spec.pipeline_id + "\" does not exist");
  }
  if (existing != entries_.end() && existing->second.origin == PipelineOrigin::kFile) {
    return file_pipeline_conflict(spec.pipeline_id);
  }
  if (!replacing && entries_.size() >= options_.max_pipelines) {
    return Status(StatusCode::kConflict,
                        "at most " + std::to_string(options_.max_pipelines) +
                            " pipelines (etl_management.max_pipelines_per_broker)");
  }
  if (replacing && existing->second.spec == spec) {
    if (changed != nullptr) *changed = false;
    return spec;
  }
  auto compiled = compile_pipeline(spec);
  if (!compiled.is_ok()) {
    return Status(StatusCode::kInvalidArgument, compiled.status().message());
  }
  {
    auto candidate = compiled_;
    candidate[spec.pipeline_id] = *compiled;
    if (auto refused = cycle_refusal(candidate)) {
      return Status(refused->code(), refused->message(),
                    spec.mode == PipelineMode::kStream ? "destination_topic" : "");
    }
  }
  const std::string text = json::serialize(pipeline_to_json(spec));
  if (Status s =
          write_file_atomically(options_.pipelines_path / (spec.pipeline_id + ".json"), text);
      !s.is_ok()) {
    log::get("etl").error("{}", s.message());
    Status safe = without_path(s, "cannot store pipeline " + spec.pipeline_id);
    return Status(safe.code(), safe.message());
  }
  compiled_[spec.pipeline_id] = *compiled;
  entries_[spec.pipeline_id] = PipelineEntry{spec, PipelineOrigin::kApi};
  stop_reasons_.erase(spec.pipeline_id);  // changed (or started) since
  publish_locked();
  log::get("etl").info("pipeline {} {}", spec.pipeline_id, replacing ? "updated" : "created");
  return spec;
}

Result<PipelineSpec> Orchestrator::create_pipeline(const json::value& document) {
  MutexLock lock(mutex_);
  return apply_locked(document, {});
}

Status Orchestrator::api_may_change_locked(
    std::string_view id,
    std::map<std::string, PipelineEntry, std::less<>>::const_iterator it) const {
  if (it == entries_.end()) {
    return Status(StatusCode::kNotFound,
                        "pipeline \"" + std::string(id) + "\" does not exist");
  }
  // Refused whatever the request says: a file pipeline is not the API's to change.
  if (it->second.origin == PipelineOrigin::kFile) {
    return file_pipeline_conflict(id);
  }
  return Status::ok();
}

Result<PipelineSpec> Orchestrator::replace_pipeline(std::string_view id,
                                                    const json::value& document, bool* changed) {
  MutexLock lock(mutex_);
  auto it = entries_.find(id);
  if (Status refused = api_may_change_locked(id, it); !refused.is_ok()) return refused;
  if (document.is_object() && !document.get_object().contains("pipeline_id")) {
    json::value with_id = document;
    with_id.get_object()["pipeline_id"] = id;
    return apply_locked(with_id, id, changed);
  }
  return apply_locked(document, id, changed);
}

Result<PipelineSpec> Orchestrator::patch_pipeline(std::string_view id, const json::value& patch,
                                                  bool* changed) {
  MutexLock lock(mutex_);
  auto it = entries_.find(id);
  if (Status refused = api_may_change_locked(id, it); !refused.is_ok()) return refused;
  if (!patch.is_object()) {
    return Status(StatusCode::kInvalidArgument, "a merge patch must be a JSON object");
  }
  json::value document = pipeline_to_json(it->second.spec);
  merge_patch(document, patch);
  return apply_locked(document, id, changed);
}

Result<PipelineSpec> Orchestrator::set_enabled(std::string_view id, bool enabled) {
  json::object patch{{"enabled", enabled}};
  return patch_pipeline(id, patch);
}

Status Orchestrator::delete_pipeline(std::string_view id) {
  MutexLock lock(mutex_);
  auto it = entries_.find(id);
  if (it == entries_.end()) {
    return Status(StatusCode::kNotFound, "pipeline \"" + std::string(id) + "\" does not exist");
  }
  if (it->second.origin == PipelineOrigin::kFile) return file_pipeline_conflict(id);
  std::error_code ec;
  fs::remove(options_.pipelines_path / (std::string(id) + ".json"), ec);
  if (ec)
    return Status(StatusCode::kIo,
                  "cannot remove pipeline " + std::string(id) + ": " + ec.message());
  entries_.erase(it);
  compiled_.erase(std::string(id));
  stop_reasons_.erase(std::string(id));
  runtime_.figures.forget(id);
  publish_locked();
  log::get("etl").info("pipeline {} deleted", id);
  return Status::ok();
}

Result<size_t> Orchestrator::replace_file_pipelines(const json::array& file_pipelines) {
  auto read = parse_file_pipelines(file_pipelines);
  if (!read.is_ok()) return read.status();
  const ParsedPipelines& parsed = *read;
  std::set<std::string> ids;
  for (const auto& [spec, compiled] : parsed) ids.insert(spec.pipeline_id);
  MutexLock lock(mutex_);
  for (const auto& [spec, compiled] : parsed) {
    auto it = entries_.find(spec.pipeline_id);
    if (it != entries_.end() && it->second.origin == PipelineOrigin::kApi) {
      return Status(StatusCode::kConflict, "etl.pipelines: pipeline_id \"" + spec.pipeline_id +
                                               "\" is already a pipeline created over the API");
    }
  }
  {
    auto candidate = compiled_;
    for (const auto& [id, entry] : entries_) {
      if (entry.origin == PipelineOrigin::kFile && !ids.count(id)) candidate.erase(id);
    }
    for (const auto& [spec, compiled] : parsed) candidate[spec.pipeline_id] = compiled;
    if (auto refused = cycle_refusal(candidate)) return refused->with_context("etl.pipelines");
  }
  size_t changes = 0;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.origin == PipelineOrigin::kFile && !ids.count(it->first)) {
      runtime_.figures.forget(it->first);
      compiled_.erase(it->first);
      it = entries_.erase(it);
      ++changes;
    } else {
      ++it;
    }
  }
  for (auto& [spec, compiled] : parsed) {
    auto it = entries_.find(spec.pipeline_id);
    if (it != entries_.end() && it->second.spec == spec) continue;  // unchanged: keep its snapshot
    const std::string id = spec.pipeline_id;
    compiled_[id] = compiled;
    entries_[id] = PipelineEntry{std::move(spec), PipelineOrigin::kFile};
    ++changes;
  }
  if (changes > 0) publish_locked();
  log::get("etl").info("configuration pipelines reloaded: {} change(s)", changes);
  return changes;
}

std::vector<PipelineEntry> Orchestrator::pipelines() const {
  MutexLock lock(mutex_);
  std::vector<PipelineEntry> out;
  for (const auto& [id, entry] : entries_) out.push_back(entry);
  return out;
}

std::optional<PipelineEntry> Orchestrator::find_pipeline(std::string_view id) const {
  MutexLock lock(mutex_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

namespace {

// A produce batch's run on a worker; what it uses lives in its frame until it ends.
Task<> process_run(Executor& executor, std::shared_ptr<const Configuration> configuration,
                   std::shared_ptr<const TopicPlan> plan, std::string topic,
                   std::vector<InputMessage> inputs, Orchestrator::BatchDone done) {
  BatchResult result = co_await executor.run_task(*plan, std::move(topic), std::move(inputs),
                                                  nullptr, executor.scheduler());
  done(std::move(result));
}

}  // namespace

void Orchestrator::process(std::shared_ptr<const Configuration> configuration,
                           std::shared_ptr<const TopicPlan> plan, std::string topic,
                           std::vector<InputMessage> inputs, BatchDone done) {
  workers_->submit([configuration = std::move(configuration), plan = std::move(plan),
                    topic = std::move(topic), inputs = std::move(inputs),
                    done = std::move(done)](wasm::Sandbox&, Executor& executor) mutable {
    executor.spawn(process_run(executor, std::move(configuration), std::move(plan),
                               std::move(topic), std::move(inputs), std::move(done)));
  });
}

void Orchestrator::dry_run(std::string_view pipeline_id, std::string topic,
                           std::vector<InputMessage> inputs, DryRunDone done) {
  std::shared_ptr<const CompiledPipeline> live;
  {
    MutexLock lock(mutex_);
    auto it = compiled_.find(pipeline_id);
    if (it != compiled_.end()) live = it->second;
  }
  if (!live) {
    done(Status(StatusCode::kNotFound,
                "pipeline \"" + std::string(pipeline_id) + "\" does not exist"));
    return;
  }
  // A copy with keys of its own: the circuit breakers of a dry run are not the live pipeline's,
  // so test messages that fail cannot open the breaker real traffic goes through.
  auto compiled = compile_pipeline(live->spec, kDryRunKeyPrefix);
  if (!compiled.is_ok()) {
    done(compiled.status());
    return;
  }
  std::shared_ptr<const CompiledPipeline> pipeline = *compiled;
  workers_->submit([this, pipeline, topic = std::move(topic), inputs = std::move(inputs),
                    done = std::move(done)](wasm::Sandbox&, Executor& executor) mutable {
    // Each dry run starts with closed breakers; within the run they behave as the pipeline
    // configures them.
    runtime_.breakers.reset(std::string(kDryRunKeyPrefix) + pipeline->spec.pipeline_id + "/");
    executor.spawn(dry_run_trace(executor, std::move(pipeline), std::move(topic),
                                 std::move(inputs), std::move(done)));
  });
}

Task<> Orchestrator::dry_run_trace(Executor& executor,
                                   std::shared_ptr<const CompiledPipeline> pipeline,
                                   std::string topic, std::vector<InputMessage> inputs,
                                   DryRunDone done) {
  TopicPlan plan = Configuration::plan_of(*pipeline, topic);
  Trace trace;
  BatchResult result = co_await executor.run_task(plan, topic, std::move(inputs), &trace,
                                                  executor.scheduler());
  // Modules whose topic filters do not match the topic were never considered by the run: their
  // steps are added first in their stage, and the steps kept in stage order (the run's steps
  // already are).
  for (auto& steps : trace.per_input) {
    std::vector<TraceStep> all;
    for (const auto& stage : pipeline->stages) {
      for (const auto& use : stage.modules) {
        if (use.topics.matches(topic)) continue;
        TraceStep s;
        s.pipeline_id = pipeline->spec.pipeline_id;
        s.stage_priority = stage.spec->priority;
        s.module_id = use.spec->module_id;
        s.decided_by = "topic_filters: none matches topic \"" + topic + "\"";
        all.push_back(std::move(s));
      }
    }
    all.insert(all.end(), std::make_move_iterator(steps.begin()),
               std::make_move_iterator(steps.end()));
    std::stable_sort(all.begin(), all.end(), [](const TraceStep& a, const TraceStep& b) {
      return a.stage_priority < b.stage_priority;
    });
    steps = std::move(all);
  }
  done(std::make_pair(std::move(result), std::move(trace)));
}

}  // namespace wasmq::etl
