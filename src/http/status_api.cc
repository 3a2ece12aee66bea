#include "http/status_api.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <cmath>
#include <set>

#include "common/message_json.h"
#include "http/admin_api.h"
#include "http/json_response.h"
#include "wasm/binary.h"

namespace wasmq::http {
namespace {

namespace json = boost::json;
using boost::asio::awaitable;

constexpr std::array<etl::FilterType, 6> kFilterTypes = {
    etl::FilterType::kExact,  etl::FilterType::kWildcard, etl::FilterType::kRegex,
    etl::FilterType::kPrefix, etl::FilterType::kSuffix,   etl::FilterType::kContains};

uint64_t load(const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); }
uint64_t load(const etl::Counter& c) { return c.load(); }

double ratio(uint64_t part, uint64_t whole) {
  return whole == 0 ? 0.0 : static_cast<double>(part) / static_cast<double>(whole);
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

json::object latency_json(const etl::LatencyHistogram& h) {
  return json::object{{"count", h.count()},
                      {"avg_ms", h.average_ms()},
                      {"p50_ms", h.quantile_ms(0.5)},
                      {"p99_ms", h.quantile_ms(0.99)}};
}

// Prometheus text format 0.0.4.
class Prometheus {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    fmt::format_to(std::back_inserter(text_), "# HELP {} {}\n# TYPE {} {}\n", name, help, name,
                   type);
  }
  void sample(std::string_view name, std::string_view labels, double value) {
    fmt::format_to(std::back_inserter(text_), "{}{}{}{} {}\n", name, labels.empty() ? "" : "{",
                   labels, labels.empty() ? "" : "}", number(value));
  }
  void histogram(std::string_view name, std::string labels, const etl::LatencyHistogram& h) {
    const auto& bounds = etl::LatencyHistogram::bucket_bounds_ms();
    const std::string sep = labels.empty() ? "" : ",";
    uint64_t cumulative = 0;
    // Every fourth bound (a factor of ~2.4 apart) keeps the output readable; the counts stay
    // cumulative and exact at the bounds shown.
    for (size_t i = 0; i < bounds.size(); ++i) {
      cumulative += h.bucket_count(i);
      if (i % 4 != 3 && i + 1 != bounds.size()) continue;
      sample(std::string(name) + "_bucket",
             labels + sep + "le=\"" + number(bounds[i] / 1000.0) + "\"",
             static_cast<double>(cumulative));
    }
    sample(std::string(name) + "_bucket", labels + sep + "le=\"+Inf\"",
           static_cast<double>(h.count()));
    sample(std::string(name) + "_sum", labels, h.sum_ms() / 1000.0);
    sample(std::string(name) + "_count", labels, static_cast<double>(h.count()));
  }
  static std::string label(std::string_view value) {
    std::string out;
    for (char c : value) {
      if (c == '\\' || c == '"') out += '\\';
      if (c == '\n') {
        out += "\\n";
        continue;
      }
      out += c;
    }
    return out;
  }
  std::string take() { return std::move(text_); }

 private:
  static std::string number(double v) {
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    if (v == std::floor(v) && std::fabs(v) < 1e15)
      return fmt::format("{}", static_cast<int64_t>(v));
    return fmt::format("{:.9g}", v);
  }
  std::string text_;
};

class StatusApi {
 public:
  explicit StatusApi(StatusContext context) : c_(std::move(context)) {}

  double uptime_seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - c_.started).count();
  }

  size_t active_pipelines() const {
    size_t n = 0;
    for (const auto& p : c_.etl->pipelines()) n += p.spec.enabled ? 1 : 0;
    return n;
  }

  // Which modules of an enabled pipeline's stage are healthy (deployed, breaker closed, error
  // rate at most 5 %), degraded (errors above 5 %), or failed (not deployed, breaker open).
  struct ModuleHealth {
    size_t healthy = 0, degraded = 0, failed = 0;
  };
  ModuleHealth stage_health(const etl::PipelineSpec& spec, const etl::StageSpec& stage,
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
  json::object storage_status() const {
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

  awaitable<Response> status(Request&) {
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

  awaitable<Response> cluster_health(Request&) {
    std::vector<std::string> problems;
    size_t degraded_pipelines = 0;
    for (const auto& entry : c_.etl->pipelines()) {
      if (!entry.spec.enabled) continue;
      auto figures = c_.etl->runtime().figures.find(entry.spec.pipeline_id);
      for (const auto& stage : entry.spec.stages) {
        auto h = stage_health(entry.spec, stage, figures.get());
        if (h.failed || h.degraded) {
          ++degraded_pipelines;
          problems.push_back("pipeline " + entry.spec.pipeline_id + ": " +
                             std::to_string(h.failed) + " module(s) failed, " +
                             std::to_string(h.degraded) + " degraded");
          break;
        }
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

  awaitable<Response> features(Request&) {
    co_return json_response(HttpStatus::ok,
                            json::object{{"etl", c_.etl->enabled()},
                                         {"etl_pipelines", true},
                                         {"stream_pipelines", true},
                                         {"dry_run", true},
                                         {"process_batch", true},
                                         {"routing", true},
                                         {"prometheus_metrics", true},
                                         {"config_reload", static_cast<bool>(c_.reload)},
                                         {"consumer_groups", false}});
  }

  awaitable<Response> config(Request&) {
    co_return json_response(HttpStatus::ok,
                            c_.effective_config ? c_.effective_config() : json::object{});
  }

  awaitable<Response> reload(Request& req) {
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

  // --- ETL ---

  awaitable<Response> etl_status(Request&) {
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

  awaitable<Response> capabilities(Request&) {
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

  awaitable<Response> etl_health(Request&) {
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

  std::string pipeline_status_word(const etl::PipelineSpec& spec) const {
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
  wasm::PoolModuleStats pool_of(const etl::PipelineSpec& spec) const {
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

  // "idle" before any call; "optimal" when at least 90 % of calls found an instance ready and
  // none waited for the creation rate limit; "degraded" otherwise.
  static const char* pool_health(const wasm::PoolModuleStats& pool) {
    if (pool.reused + pool.created_for_calls == 0) return "idle";
    return pool.hit_ratio() >= 0.9 && pool.creation_waits == 0 ? "optimal" : "degraded";
  }

  std::optional<etl::PipelineEntry> find(Request& req, Response* missing) {
    auto entry = c_.etl->find_pipeline(req.path_param("id"));
    if (!entry) {
      *missing =
          error_response(HttpStatus::not_found, "not_found",
                         "pipeline \"" + std::string(req.path_param("id")) + "\" does not exist");
    }
    return entry;
  }

  awaitable<Response> pipeline_metrics(Request& req) {
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
                                               {"latency", latency_json(m->latency)}};
        }
        json::object s{{"processed", load(stage->processed)},
                       {"failed", load(stage->failed)},
                       {"avg_time_ms", stage->latency.average_ms()},
                       {"p50_ms", stage->latency.quantile_ms(0.5)},
                       {"p99_ms", stage->latency.quantile_ms(0.99)},
                       {"modules", std::move(modules)}};
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
        {"error_handling", json::object{{"modules_skipped", load(f->skipped)},
                                        {"retries_attempted", load(f->retried)},
                                        {"dead_letter_messages", load(f->dead_lettered)},
                                        {"dead_letters_unwritable",
                                         load(f->dead_letters_unwritable)},
                                        {"failure_records_not_repeated",
                                         load(f->failure_records_not_repeated)},
                                        {"pipeline_stops", load(f->stopped)}}},
        {"throughput_msgs_per_sec", f->throughput_per_second()},
        {"avg_pipeline_latency_ms", f->latency.average_ms()},
        {"avg_processing_time_ms", f->latency.average_ms()},
        {"latency_ms", json::object{{"p50", f->latency.quantile_ms(0.5)},
                                    {"p99", f->latency.quantile_ms(0.99)}}}};
    co_return json_response(HttpStatus::ok, o);
  }

  awaitable<Response> pipeline_health(Request& req) {
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

  awaitable<Response> filters_performance(Request&) {
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
    co_return json_response(
        HttpStatus::ok, json::object{{"exact_match_time_ns", avg({etl::FilterType::kExact})},
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

  // --- metrics ---

  json::object pipeline_totals(const etl::PipelineFigures& f) const {
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

  awaitable<Response> metrics_json(Request&) {
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
    co_return json_response(
        HttpStatus::ok,
        json::object{
            {"uptime_seconds", uptime_seconds()},
            {"broker", json::object{{"topics", std::move(topics)}}},
            {"etl", json::object{{"memory_usage_bytes", c_.etl->pools().memory_usage_bytes()},
                                 {"total_executions", load(r.figures.module_calls)},
                                 {"call_latency", latency_json(r.figures.call_latency)},
                                 {"running_executions", r.limits.running()},
                                 {"queued_batches", c_.etl->workers().queued()},
                                 {"result_cache_hits", r.results.hits()},
                                 {"result_cache_misses", r.results.misses()},
                                 {"pipelines", std::move(pipelines)}}}});
  }

  awaitable<Response> metrics_prometheus(Request&) {
    Prometheus p;
    const etl::Runtime& r = c_.etl->runtime();
    p.family("wasmq_uptime_seconds", "gauge", "Seconds since the broker started.");
    p.sample("wasmq_uptime_seconds", "", uptime_seconds());

    p.family("wasmq_topic_records", "gauge",
             "Records stored per topic partition (high watermark minus log start).");
    auto topics = c_.broker->store().list();
    for (const auto& t : topics) {
      for (uint32_t i = 0; i < t->partition_count(); ++i) {
        p.sample(
            "wasmq_topic_records",
            "topic=\"" + Prometheus::label(t->name()) + "\",partition=\"" + std::to_string(i) +
                "\"",
            static_cast<double>(t->partition(i).next_offset() - t->partition(i).start_offset()));
      }
    }
    p.family("wasmq_topic_size_bytes", "gauge", "Bytes on disk per topic partition.");
    for (const auto& t : topics) {
      for (uint32_t i = 0; i < t->partition_count(); ++i) {
        p.sample("wasmq_topic_size_bytes",
                 "topic=\"" + Prometheus::label(t->name()) + "\",partition=\"" + std::to_string(i) +
                     "\"",
                 static_cast<double>(t->partition(i).size_bytes()));
      }
    }

    p.family("wasmq_topic_corrupt_offsets", "gauge",
             "Offsets lost to corrupt batches (quarantined), per topic partition that has any.");
    for (const auto& t : topics) {
      for (uint32_t i = 0; i < t->partition_count(); ++i) {
        int64_t lost = 0;
        for (const auto& range : t->partition(i).corrupt_ranges()) {
          lost += range.end_offset - range.first_offset;
        }
        if (lost == 0) continue;
        p.sample("wasmq_topic_corrupt_offsets",
                 "topic=\"" + Prometheus::label(t->name()) + "\",partition=\"" +
                     std::to_string(i) + "\"",
                 static_cast<double>(lost));
      }
    }
    p.family("wasmq_storage_unloaded_topics", "gauge",
             "Topic directories that start-up could not load (see /api/v1/status).");
    p.sample("wasmq_storage_unloaded_topics", "",
             static_cast<double>(c_.broker->store().unloaded().size()));
    p.family("wasmq_storage_open_files", "gauge", "Segment files held open now.");
    p.sample("wasmq_storage_open_files", "",
             static_cast<double>(c_.broker->store().files().cached()));

    p.family("wasmq_etl_module_calls_total", "counter",
             "Guest entry points called (process_message or process_batch).");
    p.sample("wasmq_etl_module_calls_total", "", static_cast<double>(load(r.figures.module_calls)));
    p.family("wasmq_etl_call_duration_seconds", "histogram", "Duration of one guest call.");
    p.histogram("wasmq_etl_call_duration_seconds", "", r.figures.call_latency);
    p.family("wasmq_etl_running_executions", "gauge", "Module calls running now.");
    p.sample("wasmq_etl_running_executions", "", r.limits.running());
    p.family("wasmq_etl_queued_batches", "gauge", "Batches waiting for an ETL worker.");
    p.sample("wasmq_etl_queued_batches", "", static_cast<double>(c_.etl->workers().queued()));
    p.family("wasmq_etl_admitted_batches", "gauge",
             "Produce batches admitted for the ETL workers and not yet finished "
             "(etl.max_queued_batches).");
    p.sample("wasmq_etl_admitted_batches", "",
             static_cast<double>(c_.etl->workers().admitted_batches()));
    p.family("wasmq_etl_admitted_bytes", "gauge",
             "Bytes of those batches' messages (etl.max_queued_bytes).");
    p.sample("wasmq_etl_admitted_bytes", "",
             static_cast<double>(c_.etl->workers().admitted_bytes()));
    p.family("wasmq_etl_result_cache_lookups_total", "counter", "Module result cache lookups.");
    p.sample("wasmq_etl_result_cache_lookups_total", "result=\"hit\"",
             static_cast<double>(r.results.hits()));
    p.sample("wasmq_etl_result_cache_lookups_total", "result=\"miss\"",
             static_cast<double>(r.results.misses()));

    const etl::PoolReport pools = c_.etl->pools().report();
    p.family("wasmq_etl_memory_usage_bytes", "gauge",
             "Memory of the live WebAssembly instances, measured from their memories.");
    p.sample("wasmq_etl_memory_usage_bytes", "", static_cast<double>(pools.totals.memory_bytes));
    p.family("wasmq_etl_pool_instances", "gauge",
             "Live instances per module, idle or busy, over every worker.");
    for (const auto& m : pools.modules) {
      const std::string module = "module=\"" + Prometheus::label(m.module_id) + "\"";
      p.sample("wasmq_etl_pool_instances", module + ",state=\"idle\"",
               static_cast<double>(m.total.idle));
      p.sample("wasmq_etl_pool_instances", module + ",state=\"busy\"",
               static_cast<double>(m.total.busy));
    }
    p.family("wasmq_etl_pool_instances_created_total", "counter",
             "Instances created per module (warm-ups included).");
    for (const auto& m : pools.modules) {
      p.sample("wasmq_etl_pool_instances_created_total",
               "module=\"" + Prometheus::label(m.module_id) + "\"",
               static_cast<double>(m.total.created));
    }
    p.family("wasmq_etl_pool_reuses_total", "counter",
             "Calls served by an idle instance, per module.");
    for (const auto& m : pools.modules) {
      p.sample("wasmq_etl_pool_reuses_total", "module=\"" + Prometheus::label(m.module_id) + "\"",
               static_cast<double>(m.total.reused));
    }
    p.family("wasmq_etl_pool_evictions_total", "counter", "Instances evicted per module.");
    for (const auto& m : pools.modules) {
      p.sample("wasmq_etl_pool_evictions_total",
               "module=\"" + Prometheus::label(m.module_id) + "\"",
               static_cast<double>(m.total.evicted()));
    }

    const etl::FilterFigures& filters = r.figures.filters();
    p.family("wasmq_etl_filter_evaluations_total", "counter",
             "Topic filter evaluations (when a topic's plan is computed).");
    for (auto t : kFilterTypes) {
      p.sample("wasmq_etl_filter_evaluations_total",
               "type=\"" + std::string(etl::filter_type_name(t)) + "\"",
               static_cast<double>(load(filters.evaluations[static_cast<size_t>(t)])));
    }
    p.family("wasmq_etl_filter_evaluation_seconds_total", "counter",
             "Time spent evaluating topic filters.");
    for (auto t : kFilterTypes) {
      p.sample("wasmq_etl_filter_evaluation_seconds_total",
               "type=\"" + std::string(etl::filter_type_name(t)) + "\"",
               static_cast<double>(load(filters.total_ns[static_cast<size_t>(t)])) / 1e9);
    }
    p.family("wasmq_etl_plan_lookups_total", "counter",
             "Per-topic plan lookups by produce requests.");
    p.sample("wasmq_etl_plan_lookups_total", "result=\"hit\"",
             static_cast<double>(load(filters.plan_hits)));
    p.sample("wasmq_etl_plan_lookups_total", "result=\"miss\"",
             static_cast<double>(load(filters.plan_misses)));

    auto all = r.figures.all();
    struct Counter {
      const char* outcome;
      etl::Counter etl::PipelineFigures::*field;
    };
    const Counter pipeline_counters[] = {{"in", &etl::PipelineFigures::messages_in},
                                         {"out", &etl::PipelineFigures::messages_out},
                                         {"filtered", &etl::PipelineFigures::filtered},
                                         {"dead_lettered", &etl::PipelineFigures::dead_lettered},
                                         {"dead_letter_unwritable",
                                          &etl::PipelineFigures::dead_letters_unwritable},
                                         {"stopped", &etl::PipelineFigures::stopped}};
    p.family("wasmq_etl_pipeline_messages_total", "counter",
             "Messages through a pipeline, by outcome.");
    for (const auto& f : all) {
      for (const auto& c : pipeline_counters) {
        p.sample(
            "wasmq_etl_pipeline_messages_total",
            "pipeline=\"" + Prometheus::label(f->pipeline_id) + "\",outcome=\"" + c.outcome + "\"",
            static_cast<double>(load((*f).*c.field)));
      }
    }
    p.family("wasmq_etl_pipeline_failures_total", "counter", "Module failures in a pipeline.");
    for (const auto& f : all) {
      p.sample("wasmq_etl_pipeline_failures_total",
               "pipeline=\"" + Prometheus::label(f->pipeline_id) + "\"",
               static_cast<double>(load(f->failed)));
    }
    p.family("wasmq_etl_pipeline_retries_total", "counter", "Retry calls in a pipeline.");
    for (const auto& f : all) {
      p.sample("wasmq_etl_pipeline_retries_total",
               "pipeline=\"" + Prometheus::label(f->pipeline_id) + "\"",
               static_cast<double>(load(f->retried)));
    }
    p.family("wasmq_etl_pipeline_merge_conflicts_total", "counter",
             "Parallel-stage merge conflicts.");
    for (const auto& f : all) {
      p.sample("wasmq_etl_pipeline_merge_conflicts_total",
               "pipeline=\"" + Prometheus::label(f->pipeline_id) + "\"",
               static_cast<double>(load(f->merge_conflicts)));
    }
    p.family("wasmq_etl_pipeline_latency_seconds", "histogram",
             "Time of a message through a pipeline.");
    for (const auto& f : all) {
      p.histogram("wasmq_etl_pipeline_latency_seconds",
                  "pipeline=\"" + Prometheus::label(f->pipeline_id) + "\"", f->latency);
    }
    struct ModuleCounter {
      const char* outcome;
      etl::Counter etl::ModuleFigures::*field;
    };
    const ModuleCounter module_counters[] = {{"processed", &etl::ModuleFigures::processed},
                                             {"filtered", &etl::ModuleFigures::filtered},
                                             {"failed", &etl::ModuleFigures::failed},
                                             {"skipped", &etl::ModuleFigures::skipped},
                                             {"retried", &etl::ModuleFigures::retried},
                                             {"dead_lettered", &etl::ModuleFigures::dead_lettered},
                                             {"not_matched", &etl::ModuleFigures::not_matched}};
    p.family("wasmq_etl_module_messages_total", "counter",
             "Messages per module of a stage, by outcome.");
    for (const auto& f : all) {
      MutexLock lock(f->mutex);
      for (const auto& [priority, stage] : f->stages) {
        for (const auto& m : stage->modules) {
          const std::string labels = "pipeline=\"" + Prometheus::label(f->pipeline_id) +
                                     "\",stage=\"" + std::to_string(priority) + "\",module=\"" +
                                     Prometheus::label(m->module_id) + "\"";
          for (const auto& c : module_counters) {
            p.sample("wasmq_etl_module_messages_total", labels + ",outcome=\"" + c.outcome + "\"",
                     static_cast<double>(load((*m).*c.field)));
          }
        }
      }
    }
    co_return text_response(HttpStatus::ok, p.take(), "text/plain; version=0.0.4; charset=utf-8");
  }

 private:
  StatusContext c_;
};

}  // namespace

Status add_status_api(Router& router, StatusContext context) {
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
