#include "http/status_api.h"

#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/mutex.h"
#include "http/admin_api.h"
#include "http/json_response.h"
#include "http/status_api_internal.h"

namespace wasmq::http {
namespace status_api_internal {

json::object latency_json(const etl::LatencyHistogram& h) {
  return json::object{{"count", h.count()},
                      {"avg_ms", h.average_ms()},
                      {"p50_ms", h.quantile_ms(0.5)},
                      {"p99_ms", h.quantile_ms(0.99)}};
}

double StatusApi::uptime_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - c_.started).count();
}

size_t StatusApi::active_pipelines() const {
  size_t n = 0;
  for (const auto& p : c_.etl->pipelines()) n += p.spec.enabled ? 1 : 0;
  return n;
}

StatusApi::ModuleHealth StatusApi::stage_health(const etl::PipelineSpec& spec,
                                                const etl::StageSpec& stage,
                                                const etl::PipelineFigures* figures) const {
  ModuleHealth h;
  const auto now = std::chrono::steady_clock::now();
  for (size_t m = 0; m < stage.modules.size(); ++m) {
    const auto& module = stage.modules[m];
    auto record = c_.etl->modules().resolve(module.module_id);
    const std::string key = spec.pipeline_id + "/" + std::to_string(stage.priority) + "/" +
                            std::to_string(m) + "@" + (record ? record->id : "");
    if (!record || c_.etl->runtime().breakers.is_open(key, now)) {
      ++h.failed;
      continue;
    }
    uint64_t processed = 0, failed = 0;
    if (figures) {
      MutexLock lock(figures->mutex);
      auto it = figures->stages.find(stage.priority);
      if (it != figures->stages.end() && m < it->second->modules.size()) {
        processed = load(it->second->modules[m]->processed);
        failed = load(it->second->modules[m]->failed);
      }
    }
    if (ratio(failed, processed + failed) > 0.05) {
      ++h.degraded;
    } else {
      ++h.healthy;
    }
  }
  return h;
}

// --- broker ---

// Storage trouble an operator must see (docs/storage.md): topic directories not loaded at
// start, and offset ranges lost to corrupt batches (quarantined).
json::object StatusApi::storage_status() const {
  const auto& store = c_.broker->store();
  json::array unloaded;
  for (const auto& u : store.unloaded()) {
    unloaded.push_back(json::object{{"directory", u.directory}, {"reason", u.reason}});
  }
  json::array corrupt;
  for (const auto& t : store.list()) {
    for (uint32_t p = 0; p < t->partition_count(); ++p) {
      for (const auto& range : t->partition(p).corrupt_ranges()) {
        corrupt.push_back(json::object{{"topic", t->name()},
                                       {"partition", p},
                                       {"first_offset", range.first_offset},
                                       {"end_offset", range.end_offset}});
      }
    }
  }
  return json::object{{"unloaded_topics", std::move(unloaded)},
                      {"corrupt_ranges", std::move(corrupt)},
                      {"open_files", store.files().cached()},
                      {"max_open_files", store.files().capacity()}};
}

awaitable<Response> StatusApi::status(Request&) {
  auto topics = c_.broker->store().list();
  uint64_t records = 0;
  for (const auto& t : topics) {
    for (uint32_t p = 0; p < t->partition_count(); ++p) {
      records +=
          static_cast<uint64_t>(t->partition(p).next_offset() - t->partition(p).start_offset());
    }
  }
  co_return json_response(
      HttpStatus::ok,
      json::object{{"version", c_.version},
                   {"uptime_seconds", uptime_seconds()},
                   {"topics", topics.size()},
                   {"records", records},
                   {"storage", storage_status()},
                   {"etl", json::object{{"enabled", c_.etl->enabled()},
                                        {"active_modules", c_.etl->modules().list().size()},
                                        {"active_pipelines", active_pipelines()},
                                        {"workers", c_.etl->workers().size()},
                                        {"queued_batches", c_.etl->workers().queued()},
                                        {"total_executions",
                                         load(c_.etl->runtime().figures.module_calls)}}}});
}

awaitable<Response> StatusApi::cluster_health(Request&) {
  std::vector<std::string> problems;
  size_t degraded_pipelines = 0;
  for (const auto& entry : c_.etl->pipelines()) {
    if (!entry.spec.enabled) continue;
    auto figures = c_.etl->runtime().figures.find(entry.spec.pipeline_id);
    // Every stage counts: a pipeline's problem is the sum over its stages.
    size_t failed = 0, degraded = 0;
    for (const auto& stage : entry.spec.stages) {
      auto h = stage_health(entry.spec, stage, figures.get());
      failed += h.failed;
      degraded += h.degraded;
    }
    if (failed || degraded) {
      ++degraded_pipelines;
      problems.push_back("pipeline " + entry.spec.pipeline_id + ": " + std::to_string(failed) +
                         " module(s) failed, " + std::to_string(degraded) + " degraded");
    }
  }
  const auto& store = c_.broker->store();
  bool storage_ok = store.unloaded().empty();
  if (!storage_ok) {
    problems.push_back("storage: " + std::to_string(store.unloaded().size()) +
                       " topic director(ies) not loaded (see /api/v1/status)");
  }
  for (const auto& t : store.list()) {
    for (uint32_t p = 0; p < t->partition_count(); ++p) {
      if (!t->partition(p).corrupt_ranges().empty()) {
        storage_ok = false;
        problems.push_back("storage: topic " + t->name() + " partition " + std::to_string(p) +
                           " has corrupt batches (quarantined; see /api/v1/status)");
      }
    }
  }
  json::array list;
  for (const auto& p : problems) list.push_back(json::string(p));
  co_return json_response(
      HttpStatus::ok,
      json::object{{"status", problems.empty() ? "healthy" : "degraded"},
                   {"nodes", 1},
                   {"node", json::object{{"role", "broker"},
                                         {"uptime_seconds", uptime_seconds()},
                                         {"storage", storage_ok ? "ok" : "degraded"},
                                         {"etl_workers", c_.etl->workers().size()},
                                         {"queued_batches", c_.etl->workers().queued()}}},
                   {"degraded_pipelines", degraded_pipelines},
                   {"problems", std::move(list)}});
}

awaitable<Response> StatusApi::features(Request&) {
  co_return json_response(HttpStatus::ok,
                          json::object{{"etl", c_.etl->enabled()},
                                       {"etl_pipelines", true},
                                       {"stream_pipelines", true},
                                       {"dry_run", true},
                                       {"process_batch", true},
                                       {"routing", true},
                                       {"prometheus_metrics", true},
                                       {"config_reload", static_cast<bool>(c_.reload)},
                                       {"consumer_groups", c_.groups != nullptr},
                                       {"kafka_api", c_.kafka_figures &&
                                                         !c_.kafka_figures().empty()}});
}

awaitable<Response> StatusApi::config(Request&) {
  co_return json_response(HttpStatus::ok,
                          c_.effective_config ? c_.effective_config() : json::object{});
}

awaitable<Response> StatusApi::reload(Request& req) {
  if (!req.body().empty()) {
    JsonBody body = parse_json_body(req.body());
    if (!body.is_ok()) co_return std::move(*body.error);
    if (!body.value.is_object()) {
      co_return error_response(HttpStatus::bad_request, "invalid_argument",
                               "the body must be a JSON object such as {\"component\": \"etl\", "
                               "\"graceful\": true}");
    }
    for (const auto& [key, value] : body.value.get_object()) {
      if (key == "component") {
        if (!value.is_string() || (value.get_string() != "etl" && value.get_string() != "all")) {
          co_return error_response(HttpStatus::bad_request, "invalid_argument",
                                   "component: expected \"etl\" or \"all\"", "component");
        }
      } else if (key == "graceful") {
        if (!value.is_bool()) {
          co_return error_response(HttpStatus::bad_request, "invalid_argument",
                                   "graceful: expected a boolean", "graceful");
        }
      } else {
        co_return error_response(HttpStatus::bad_request, "invalid_argument",
                                 std::string(key) + ": unknown field", key);
      }
    }
  }
  if (!c_.reload) {
    co_return error_response(HttpStatus::conflict, "conflict",
                             "this broker was started without a configuration file to reload");
  }
  ReloadOutcome outcome = c_.reload();
  if (!outcome.status.is_ok()) co_return status_response(outcome.status);
  json::array applied, restart;
  for (const auto& a : outcome.applied) applied.push_back(json::string(a));
  for (const auto& r : outcome.restart_required) restart.push_back(json::string(r));
  co_return json_response(HttpStatus::ok, json::object{{"status", "reloaded"},
                                                       {"graceful", true},
                                                       {"applied", std::move(applied)},
                                                       {"restart_required", std::move(restart)}});
}

// --- metrics ---

namespace {

json::object pipeline_totals(const etl::PipelineFigures& f) {
  return json::object{{"messages_in", load(f.messages_in)},
                      {"messages_out", load(f.messages_out)},
                      {"filtered", load(f.filtered)},
                      {"failed", load(f.failed)},
                      {"skipped", load(f.skipped)},
                      {"retried", load(f.retried)},
                      {"dead_lettered", load(f.dead_lettered)},
                      {"dead_letters_unwritable", load(f.dead_letters_unwritable)},
                      {"failure_records_not_repeated", load(f.failure_records_not_repeated)},
                      {"merge_conflicts", load(f.merge_conflicts)},
                      {"throughput_msgs_per_sec", f.throughput_per_second()},
                      {"latency", latency_json(f.latency)}};
}

}  // namespace

awaitable<Response> StatusApi::metrics_json(Request&) {
  const etl::Runtime& r = c_.etl->runtime();
  json::object pipelines;
  for (const auto& f : r.figures.all()) pipelines[f->pipeline_id] = pipeline_totals(*f);
  json::object topics;
  for (const auto& t : c_.broker->store().list()) {
    uint64_t bytes = 0;
    int64_t records = 0;
    for (uint32_t p = 0; p < t->partition_count(); ++p) {
      bytes += t->partition(p).size_bytes();
      records += t->partition(p).next_offset() - t->partition(p).start_offset();
    }
    topics[t->name()] = json::object{
        {"partitions", t->partition_count()}, {"records", records}, {"size_bytes", bytes}};
  }
  json::object kafka;
  if (c_.kafka_figures) {
    for (const auto& f : c_.kafka_figures()) {
      const std::string key = f.name.rfind("kafka_", 0) == 0 ? f.name.substr(6) : f.name;
      if (f.label.empty()) {
        kafka[key] = f.samples.empty() ? 0.0 : f.samples.front().second;
      } else {
        json::object by_label;
        for (const auto& [label, value] : f.samples) by_label[label] = value;
        kafka[key] = std::move(by_label);
      }
    }
  }
  json::object groups;
  if (c_.groups) {
    for (const auto& g : c_.groups->list()) {
      const int64_t lag =
          broker::total_lag(broker::group_lag(c_.groups->committed(g.group_id), c_.broker->store()));
      groups[g.group_id] =
          json::object{{"state", g.state}, {"members", g.members.size()}, {"lag", lag}};
    }
  }
  co_return json_response(
      HttpStatus::ok,
      json::object{
          {"uptime_seconds", uptime_seconds()},
          {"broker", json::object{{"topics", std::move(topics)}}},
          {"groups", std::move(groups)},
          {"kafka", std::move(kafka)},
          {"etl", json::object{{"memory_usage_bytes", c_.etl->pools().memory_usage_bytes()},
                               {"total_executions", load(r.figures.module_calls)},
                               {"call_latency", latency_json(r.figures.call_latency)},
                               {"running_executions", r.limits.running()},
                               {"queued_batches", c_.etl->workers().queued()},
                               {"result_cache_hits", r.results.hits()},
                               {"result_cache_misses", r.results.misses()},
                               {"pipelines", std::move(pipelines)}}}});
}

}  // namespace status_api_internal

Status add_status_api(Router& router, StatusContext context) {
  using status_api_internal::StatusApi;
  auto api = std::make_shared<StatusApi>(std::move(context));
  return add_admin_routes<StatusApi>(
      router, api,
      {
          {Verb::get, "/api/v1/status", &StatusApi::status},
          {Verb::get, "/api/v1/cluster/health", &StatusApi::cluster_health},
          {Verb::get, "/api/v1/features", &StatusApi::features},
          {Verb::get, "/api/v1/config", &StatusApi::config},
          {Verb::post, "/api/v1/config/reload", &StatusApi::reload},
          {Verb::get, "/api/v1/metrics", &StatusApi::metrics_json},
          {Verb::get, "/metrics", &StatusApi::metrics_prometheus},
          {Verb::get, "/api/v1/etl/status", &StatusApi::etl_status},
          {Verb::get, "/api/v1/etl/capabilities", &StatusApi::capabilities},
          {Verb::get, "/api/v1/etl/health", &StatusApi::etl_health},
          {Verb::get, "/api/v1/etl/filters/performance", &StatusApi::filters_performance},
          {Verb::get, "/api/v1/etl/pipelines/{id}/metrics", &StatusApi::pipeline_metrics},
          {Verb::get, "/api/v1/etl/pipelines/{id}/health", &StatusApi::pipeline_health},
      });
}

}  // namespace wasmq::http
