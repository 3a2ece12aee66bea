// The status API's ETL endpoints (status_api.h): ETL status, capabilities and health, filter
// performance, and per pipeline metrics and health.
#include <boost/json.hpp>
#include <cctype>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "common/message_json.h"
#include "common/mutex.h"
#include "etl/pipeline.h"
#include "http/json_response.h"
#include "http/status_api_internal.h"
#include "wasm/binary.h"

namespace wasmq::http::status_api_internal {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// "idle" before any call; "optimal" when at least 90 % of calls found an instance ready and
// none waited for the creation rate limit; "degraded" otherwise.
const char* pool_health(const wasm::PoolModuleStats& pool) {
  if (pool.reused + pool.created_for_calls == 0) return "idle";
  return pool.hit_ratio() >= 0.9 && pool.creation_waits == 0 ? "optimal" : "degraded";
}

}  // namespace

awaitable<Response> StatusApi::etl_status(Request&) {
  const etl::Runtime& r = c_.etl->runtime();
  const uint64_t hits = r.results.hits(), misses = r.results.misses();
  co_return json_response(
      HttpStatus::ok,
      json::object{{"enabled", c_.etl->enabled()},
                   {"memory_limit_bytes", r.defaults.memory_limit_bytes},
                   {"execution_timeout_ms", r.defaults.execution_timeout_ms},
                   {"max_concurrent_executions", r.defaults.max_concurrent_executions},
                   {"active_modules", c_.etl->modules().list().size()},
                   {"active_pipelines", active_pipelines()},
                   {"total_executions", load(r.figures.module_calls)},
                   {"running_executions", r.limits.running()},
                   {"cache_hit_rate", ratio(hits, hits + misses)},
                   {"average_execution_time_ms", r.figures.call_latency.average_ms()}});
}

awaitable<Response> StatusApi::capabilities(Request&) {
  json::array wasi;
  for (const auto& f : wasm::supported_wasi_functions()) {
    wasi.push_back(json::string(std::string(wasm::kWasiModule) + "." + f.name));
  }
  json::array filters, conditions, operators, strategies;
  for (auto t : kFilterTypes) filters.push_back(json::string(etl::filter_type_name(t)));
  for (auto t : {etl::ConditionType::kHeaderValue, etl::ConditionType::kPayloadField,
                 etl::ConditionType::kMessageSize, etl::ConditionType::kMessageAge}) {
    conditions.push_back(json::string(etl::condition_type_name(t)));
  }
  for (int o = 0; o <= static_cast<int>(etl::Operator::kMatches); ++o) {
    operators.push_back(json::string(etl::operator_name(static_cast<etl::Operator>(o))));
  }
  for (auto e : {etl::ErrorHandling::kStopPipeline, etl::ErrorHandling::kSkipModule,
                 etl::ErrorHandling::kRetryWithBackoff, etl::ErrorHandling::kSendToDeadLetter}) {
    strategies.push_back(json::string(etl::error_handling_name(e)));
  }
  const etl::EtlDefaults& d = c_.etl->runtime().defaults;
  co_return json_response(
      HttpStatus::ok,
      json::object{
          {"abi_versions", json::array{"rustmq-bincode-1"}},
          {"abi_extensions", json::array{"process_batch", "wasmq.topic routing"}},
          {"required_exports", json::array{"memory", "alloc", "dealloc", "process_message"}},
          {"optional_exports", json::array{"init_module", "process_batch", "_initialize"}},
          {"wasi_imports", std::move(wasi)},
          {"filter_types", std::move(filters)},
          {"condition_types", std::move(conditions)},
          {"operators", std::move(operators)},
          {"error_strategies", std::move(strategies)},
          {"pipeline_modes", json::array{"inline", "stream"}},
          {"limits", json::object{{"memory_limit_bytes", d.memory_limit_bytes},
                                  {"max_memory_limit_bytes", 4ull << 30},
                                  {"execution_timeout_ms", d.execution_timeout_ms},
                                  {"max_output_bytes", d.max_output_bytes},
                                  {"max_batch_size", d.max_batch_size},
                                  {"max_concurrent_executions", d.max_concurrent_executions},
                                  {"max_module_bytes", 50ull << 20}}}});
}

awaitable<Response> StatusApi::etl_health(Request&) {
  size_t healthy = 0, degraded = 0, failed = 0;
  for (const auto& entry : c_.etl->pipelines()) {
    if (!entry.spec.enabled) continue;
    std::string s = pipeline_status_word(entry.spec);
    (s == "healthy" ? healthy : s == "degraded" ? degraded : failed) += 1;
  }
  const char* overall = !c_.etl->enabled() ? "disabled"
                        : failed           ? "unhealthy"
                        : degraded         ? "degraded"
                                           : "healthy";
  co_return json_response(HttpStatus::ok,
                          json::object{{"status", overall},
                                       {"enabled", c_.etl->enabled()},
                                       {"workers", c_.etl->workers().size()},
                                       {"queued_batches", c_.etl->workers().queued()},
                                       {"modules_deployed", c_.etl->modules().list().size()},
                                       {"pipelines", json::object{{"healthy", healthy},
                                                                  {"degraded", degraded},
                                                                  {"unhealthy", failed}}}});
}

std::string StatusApi::pipeline_status_word(const etl::PipelineSpec& spec) const {
  auto figures = c_.etl->runtime().figures.find(spec.pipeline_id);
  size_t failed = 0, degraded = 0;
  for (const auto& stage : spec.stages) {
    auto h = stage_health(spec, stage, figures.get());
    failed += h.failed;
    degraded += h.degraded;
  }
  return failed ? "unhealthy" : degraded ? "degraded" : "healthy";
}

// The pools of the module versions `spec` runs now, merged over modules and workers.
wasm::PoolModuleStats StatusApi::pool_of(const etl::PipelineSpec& spec) const {
  wasm::PoolModuleStats pool;
  std::set<std::string> ids;
  for (const auto& stage : spec.stages) {
    for (const auto& m : stage.modules) {
      if (auto record = c_.etl->modules().resolve(m.module_id)) ids.insert(record->id);
    }
  }
  for (const auto& module : c_.etl->pools().report().modules) {
    if (ids.count(module.module_id)) pool.merge(module.total);
  }
  return pool;
}

std::optional<etl::PipelineEntry> StatusApi::find(Request& req, Response* missing) {
  auto entry = c_.etl->find_pipeline(req.path_param("id"));
  if (!entry) {
    *missing =
        error_response(HttpStatus::not_found, "not_found",
                       "pipeline \"" + std::string(req.path_param("id")) + "\" does not exist");
  }
  return entry;
}

awaitable<Response> StatusApi::pipeline_metrics(Request& req) {
  Response missing;
  auto entry = find(req, &missing);
  if (!entry) co_return missing;
  auto f = c_.etl->runtime().figures.pipeline(entry->spec.pipeline_id);
  json::object by_stage;
  uint64_t concurrent = 0, parallel_processed = 0;
  {
    MutexLock lock(f->mutex);
    for (const auto& [priority, stage] : f->stages) {
      json::object modules;
      for (const auto& m : stage->modules) {
        modules[m->module_id] = json::object{{"processed", load(m->processed)},
                                             {"filtered", load(m->filtered)},
                                             {"failed", load(m->failed)},
                                             {"skipped", load(m->skipped)},
                                             {"retried", load(m->retried)},
                                             {"dead_lettered", load(m->dead_lettered)},
                                             {"not_matched", load(m->not_matched)},
                                             {"cache_hits", load(m->cache_hits)},
                                             {"breaker_rejections", load(m->breaker_rejections)},
                                             {"not_deployed", load(m->not_deployed)},
                                             {"latency", latency_json(m->latency)}};
      }
      json::object s{
          {"processed", load(stage->processed)},        {"failed", load(stage->failed)},
          {"avg_time_ms", stage->latency.average_ms()}, {"p50_ms", stage->latency.quantile_ms(0.5)},
          {"p99_ms", stage->latency.quantile_ms(0.99)}, {"modules", std::move(modules)}};
      by_stage[std::to_string(priority)] = std::move(s);
      if (load(stage->concurrent_modules) > 0) {
        concurrent += load(stage->concurrent_modules);
        parallel_processed += load(stage->processed);
      }
    }
  }
  const etl::FilterFigures& filters = c_.etl->runtime().figures.filters();
  json::object filter_performance;
  uint64_t evaluations = 0, total_ns = 0;
  for (auto t : kFilterTypes) {
    size_t i = static_cast<size_t>(t);
    filter_performance[lower(etl::filter_type_name(t)) + "_matches"] = load(filters.matches[i]);
    evaluations += load(filters.evaluations[i]);
    total_ns += load(filters.total_ns[i]);
  }
  filter_performance["exact_matches"] = load(filters.matches[0]);
  filter_performance["filter_evaluation_time_us"] =
      evaluations ? static_cast<double>(total_ns) / evaluations / 1000.0 : 0.0;
  filter_performance["plan_cache_hit_ratio"] =
      ratio(load(filters.plan_hits), load(filters.plan_hits) + load(filters.plan_misses));
  const wasm::PoolModuleStats pool = pool_of(entry->spec);
  const uint64_t processed = load(f->messages_in);
  json::object o{
      {"pipeline_id", entry->spec.pipeline_id},
      {"total_messages_processed", processed},
      {"messages_processed", processed},
      {"messages_out", load(f->messages_out)},
      {"messages_filtered", load(f->filtered)},
      {"messages_failed", load(f->failed)},
      {"messages_by_stage", std::move(by_stage)},
      {"filter_performance", std::move(filter_performance)},
      {"instance_pool_stats", json::object{{"pool_hit_ratio", pool.hit_ratio()},
                                           {"instances_created", pool.created},
                                           {"instances_reused", pool.reused},
                                           {"instances_evicted", pool.evicted()},
                                           {"avg_pool_utilization", pool.utilization()},
                                           {"memory_bytes", pool.memory_bytes}}},
      {"parallel_execution_stats",
       json::object{{"concurrent_modules_avg", ratio(concurrent, parallel_processed)},
                    {"merge_conflicts", load(f->merge_conflicts)}}},
      {"error_handling",
       json::object{{"modules_skipped", load(f->skipped)},
                    {"retries_attempted", load(f->retried)},
                    {"dead_letter_messages", load(f->dead_lettered)},
                    {"dead_letters_unwritable", load(f->dead_letters_unwritable)},
                    {"failure_records_not_repeated", load(f->failure_records_not_repeated)},
                    {"pipeline_stops", load(f->stopped)}}},
      {"throughput_msgs_per_sec", f->throughput_per_second()},
      {"avg_pipeline_latency_ms", f->latency.average_ms()},
      {"avg_processing_time_ms", f->latency.average_ms()},
      {"latency_ms",
       json::object{{"p50", f->latency.quantile_ms(0.5)}, {"p99", f->latency.quantile_ms(0.99)}}}};
  co_return json_response(HttpStatus::ok, o);
}

awaitable<Response> StatusApi::pipeline_health(Request& req) {
  Response missing;
  auto entry = find(req, &missing);
  if (!entry) co_return missing;
  const etl::PipelineSpec& spec = entry->spec;
  auto f = c_.etl->runtime().figures.find(spec.pipeline_id);
  json::array stages;
  size_t failed_total = 0, degraded_total = 0;
  for (const auto& stage : spec.stages) {
    auto h = stage_health(spec, stage, f.get());
    failed_total += h.failed;
    degraded_total += h.degraded;
    stages.push_back(json::object{{"priority", stage.priority},
                                  {"status", h.failed     ? "unhealthy"
                                             : h.degraded ? "degraded"
                                                          : "healthy"},
                                  {"modules_healthy", h.healthy},
                                  {"modules_degraded", h.degraded},
                                  {"modules_failed", h.failed}});
  }
  const uint64_t in = f ? load(f->messages_in) : 0;
  const uint64_t failures = f ? load(f->failed) : 0;
  json::object o{{"status", !spec.enabled    ? "stopped"
                            : failed_total   ? "unhealthy"
                            : degraded_total ? "degraded"
                                             : "healthy"},
                 {"pipeline_id", spec.pipeline_id},
                 {"enabled", spec.enabled},
                 {"error_rate_percent", 100.0 * ratio(failures, in)},
                 {"avg_latency_ms", f ? f->latency.average_ms() : 0.0},
                 {"instance_pool_health", pool_health(pool_of(spec))},
                 {"stages", std::move(stages)}};
  if (f && f->last_success_ms.load(std::memory_order_relaxed) > 0) {
    o["last_successful_execution"] = rfc3339_ms(f->last_success_ms.load());
  } else {
    o["last_successful_execution"] = nullptr;
  }
  if (f) {
    MutexLock lock(f->mutex);
    if (!f->last_error.empty()) o["last_error"] = f->last_error;
  }
  co_return json_response(HttpStatus::ok, o);
}

awaitable<Response> StatusApi::filters_performance(Request&) {
  const etl::FilterFigures& f = c_.etl->runtime().figures.filters();
  auto avg = [&](std::initializer_list<etl::FilterType> types) {
    uint64_t n = 0, ns = 0;
    for (auto t : types) {
      n += load(f.evaluations[static_cast<size_t>(t)]);
      ns += load(f.total_ns[static_cast<size_t>(t)]);
    }
    return n ? static_cast<double>(ns) / n : 0.0;
  };
  json::object by_type;
  uint64_t total = 0;
  for (auto t : kFilterTypes) {
    size_t i = static_cast<size_t>(t);
    total += load(f.evaluations[i]);
    by_type[etl::filter_type_name(t)] = json::object{{"evaluations", load(f.evaluations[i])},
                                                     {"matches", load(f.matches[i])},
                                                     {"avg_time_ns", avg({t})}};
  }
  const uint64_t hits = load(f.plan_hits), misses = load(f.plan_misses);
  co_return json_response(HttpStatus::ok,
                          json::object{{"exact_match_time_ns", avg({etl::FilterType::kExact})},
                                       {"wildcard_time_ns", avg({etl::FilterType::kWildcard})},
                                       {"regex_time_ns", avg({etl::FilterType::kRegex})},
                                       {"prefix_suffix_time_ns",
                                        avg({etl::FilterType::kPrefix, etl::FilterType::kSuffix})},
                                       {"contains_time_ns", avg({etl::FilterType::kContains})},
                                       {"total_evaluations", total},
                                       {"cache_hit_ratio", ratio(hits, hits + misses)},
                                       {"plan_lookups", hits + misses},
                                       {"by_type", std::move(by_type)}});
}

}  // namespace wasmq::http::status_api_internal
