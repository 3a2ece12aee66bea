#include "http/pool_api.h"

#include <algorithm>
#include <boost/json.hpp>

#include "http/admin_api.h"
#include "common/handoff.h"
#include "http/json_response.h"

namespace wasmq::http {
namespace {

namespace json = boost::json;
using boost::asio::awaitable;

// Largest instance count or pool size a request may ask for (the configuration's range); the
// pools refuse values above their live-instance bound with 422 (InstancePools::warm_up, resize).
constexpr int64_t kMaxInstances = 10'000;

json::object settings_json(const wasm::PoolSettings& s) {
  return json::object{{"max_pool_size", s.max_pool_size},
                      {"warmup_instances", s.warmup_instances},
                      {"creation_rate_limit", s.creation_rate_limit},
                      {"idle_timeout_seconds", s.idle_timeout.count()}};
}

// The figures every entry shares (a module, a worker's part of it, the totals).
json::object figures_json(const wasm::PoolModuleStats& s) {
  json::object evicted_by;
  for (size_t i = 0; i < wasm::kEvictionReasons; ++i) {
    evicted_by[wasm::eviction_reason_name(static_cast<wasm::EvictionReason>(i))] = s.evicted_by[i];
  }
  return json::object{{"size", s.size},
                      {"idle", s.idle},
                      {"busy", s.busy},
                      {"created", s.created},
                      {"created_for_calls", s.created_for_calls},
                      {"warmed", s.created - std::min(s.created, s.created_for_calls)},
                      {"reused", s.reused},
                      {"evicted", s.evicted()},
                      {"evicted_by_reason", std::move(evicted_by)},
                      {"discarded_after_failure", s.discarded},
                      {"hit_ratio", s.hit_ratio()},
                      {"memory_bytes", s.memory_bytes},
                      {"avg_pool_utilization", s.utilization()},
                      {"creation_waits", s.creation_waits},
                      {"creation_wait_ms", static_cast<double>(s.creation_wait_ns) / 1e6},
                      {"module_objects", s.module_objects}};
}

json::object module_json(const etl::PoolModuleReport& m) {
  json::object o{{"module_id", m.module_id}};
  for (auto& [key, value] : figures_json(m.total)) o[key] = value;
  o["settings"] = settings_json(m.total.settings);
  o["settings_source"] = m.overridden ? "api" : "config";
  json::array workers;
  for (size_t w = 0; w < m.workers.size(); ++w) {
    const wasm::PoolModuleStats& s = m.workers[w];
    workers.push_back(json::object{{"worker", w},
                                   {"size", s.size},
                                   {"idle", s.idle},
                                   {"busy", s.busy},
                                   {"created", s.created},
                                   {"reused", s.reused},
                                   {"evicted", s.evicted()},
                                   {"hit_ratio", s.hit_ratio()},
                                   {"memory_bytes", s.memory_bytes}});
  }
  o["workers"] = std::move(workers);
  return o;
}

Response bad_request(std::string_view field, std::string message) {
  return error_response(HttpStatus::bad_request, "invalid_argument",
                        field.empty() ? message : std::string(field) + ": " + message, field);
}

// An integer field within [min, max], or the 400 saying what was expected.
std::optional<Response> read_integer(const json::value& v, std::string_view field, int64_t min,
                                     int64_t max, int64_t* out) {
  auto expected = [&] {
    return bad_request(field, "expected an integer between " + std::to_string(min) + " and " +
                                  std::to_string(max) + ", got " + json::serialize(v));
  };
  // A uint64 that is not an int64 is above INT64_MAX: out of range too.
  if (!v.is_int64()) return expected();
  *out = v.get_int64();
  if (*out < min || *out > max) return expected();
  return std::nullopt;
}

// The request body as a JSON object with only `allowed` fields, or the 400 to send. An empty
// body is an empty object when `empty_ok`.
std::optional<Response> read_object(const Request& req,
                                    std::initializer_list<std::string_view> allowed, bool empty_ok,
                                    json::object* out) {
  if (req.body().find_first_not_of(" \t\r\n") == std::string::npos) {
    if (empty_ok) return std::nullopt;
    return bad_request("", "the body must be a JSON object");
  }
  JsonBody body = parse_json_body(req.body());
  if (!body.is_ok()) return std::move(*body.error);
  if (!body.value.is_object()) return bad_request("", "the body must be a JSON object");
  *out = std::move(body.value.get_object());
  for (const auto& [key, value] : *out) {
    if (std::find(allowed.begin(), allowed.end(), std::string_view(key)) == allowed.end()) {
      std::string names;
      for (auto a : allowed) names += (names.empty() ? "" : ", ") + std::string(a);
      return bad_request(key, "unknown field (expected " + names + ")");
    }
  }
  return std::nullopt;
}

Response change_failed(const Status& s) {
  if (s.code() == StatusCode::kModuleFailed) {
    return error_response(HttpStatus::unprocessable_entity, "module_failed", s.message());
  }
  // Above the live-instance bound: a well-formed request the broker cannot honour.
  if (s.code() == StatusCode::kLimitExceeded) {
    return error_response(HttpStatus::unprocessable_entity, "limit_exceeded", s.message(),
                          s.field());
  }
  return status_response(s);
}

json::array errors_json(const etl::PoolChange& change) {
  json::array errors;
  for (const auto& e : change.errors) errors.push_back(json::string(e));
  return errors;
}

class PoolApi {
 public:
  explicit PoolApi(etl::Orchestrator& etl) : etl_(etl) {}

  awaitable<Response> stats(Request&) {
    etl::PoolReport report = etl_.pools().report();
    json::array modules;
    for (const auto& m : report.modules) modules.push_back(module_json(m));
    const etl::PoolServiceOptions& options = etl_.options().pools;
    const wasm::PoolModuleStats& t = report.totals;
    json::object body{
        {"modules", std::move(modules)},
        {"totals", figures_json(t)},
        {"memory_usage_bytes", t.memory_bytes},
        {"workers", report.workers},
        {"instance_pool_stats", json::object{{"pool_hit_ratio", t.hit_ratio()},
                                             {"instances_created", t.created},
                                             {"instances_reused", t.reused},
                                             {"avg_pool_utilization", t.utilization()}}},
        {"defaults", settings_json(options.pool.defaults)},
        {"limits",
         json::object{{"max_memory_bytes_per_worker", options.pool.max_memory_bytes},
                      {"max_instances_per_worker", etl_.pools().max_instances_per_worker()},
                      {"max_idle_instances", options.pool.max_idle_instances},
                      {"enable_lru_eviction", options.pool.lru_eviction},
                      {"enable_background_cleanup", options.background_cleanup},
                      {"gc_interval_ms", options.gc_interval.count()}}},
        {"module_cache", json::object{{"size", report.module_cache.size},
                                      {"max_size", report.module_cache.max_entries},
                                      {"ttl_seconds", report.module_cache.ttl_seconds},
                                      {"hits", report.module_cache.hits},
                                      {"compilations", report.module_cache.compilations},
                                      {"evicted_lru", report.module_cache.evicted_lru},
                                      {"evicted_ttl", report.module_cache.evicted_ttl}}}};
    co_return json_response(HttpStatus::ok, body);
  }

  // One module's entry of the report, or nullopt when it is not deployed.
  std::optional<json::object> module_entry(std::string_view id) {
    auto record = etl_.modules().resolve(id);
    if (!record) return std::nullopt;
    for (const auto& m : etl_.pools().report().modules) {
      if (m.module_id == record->id) return module_json(m);
    }
    return std::nullopt;
  }

  awaitable<Response> module_stats(Request& req) {
    auto entry = module_entry(req.path_param("module_id"));
    if (!entry) co_return not_found(req.path_param("module_id"));
    co_return json_response(HttpStatus::ok, *entry);
  }

  awaitable<Response> warmup(Request& req) {
    json::object body;
    if (auto error = read_object(req, {"module_id", "instance_count"}, false, &body)) {
      co_return std::move(*error);
    }
    const json::value* id = body.if_contains("module_id");
    if (!id) co_return bad_request("module_id", "required");
    if (!id->is_string() || id->get_string().empty()) {
      co_return bad_request("module_id", "expected a module id (name-vX.Y.Z, or a name)");
    }
    const json::value* count_value = body.if_contains("instance_count");
    if (!count_value) co_return bad_request("instance_count", "required");
    int64_t count = 0;
    if (auto error = read_integer(*count_value, "instance_count", 1, kMaxInstances, &count)) {
      co_return std::move(*error);
    }
    auto change = co_await run([&](etl::InstancePools::Done done) {
      etl_.pools().warm_up(std::string_view(id->get_string()), static_cast<uint32_t>(count),
                           std::move(done));
    });
    if (!change.is_ok()) co_return change_failed(change.status());
    const etl::PoolChange& c = *change;
    const uint64_t per_worker =
        std::min<uint64_t>(static_cast<uint64_t>(count), c.settings.max_pool_size);
    json::object out{{"status", "warmed"},
                     {"module_id", c.module_id},
                     {"instance_count", count},
                     {"instances_per_worker", per_worker},
                     {"bounded_by_max_pool_size", static_cast<uint64_t>(count) > per_worker},
                     {"workers", etl_.workers().size()},
                     {"module_objects", c.module_objects},
                     {"created", c.created},
                     {"errors", errors_json(c)}};
    if (auto entry = module_entry(c.module_id)) out["pool"] = std::move(*entry);
    co_return json_response(HttpStatus::ok, out);
  }

  awaitable<Response> cleanup(Request& req) {
    json::object body;
    if (auto error = read_object(req, {"module_id"}, true, &body)) co_return std::move(*error);
    std::string id;
    if (const json::value* v = body.if_contains("module_id")) {
      if (!v->is_string() || v->get_string().empty()) {
        co_return bad_request("module_id", "expected a module id (name-vX.Y.Z, or a name)");
      }
      id = std::string(v->get_string());
    }
    auto change = co_await run(
        [&](etl::InstancePools::Done done) { etl_.pools().clean_up(id, std::move(done)); });
    if (!change.is_ok()) co_return change_failed(change.status());
    json::object out{{"status", "cleaned"},
                     {"evicted", change->evicted},
                     {"memory_freed_bytes", change->bytes_freed},
                     {"memory_usage_bytes", etl_.pools().memory_usage_bytes()}};
    if (!change->module_id.empty()) out["module_id"] = change->module_id;
    co_return json_response(HttpStatus::ok, out);
  }

  awaitable<Response> resize(Request& req) {
    json::object body;
    if (auto error = read_object(
            req,
            {"max_pool_size", "warmup_instances", "creation_rate_limit", "idle_timeout_seconds"},
            false, &body)) {
      co_return std::move(*error);
    }
    if (body.empty()) {
      co_return bad_request("",
                            "nothing to change: give max_pool_size, warmup_instances, "
                            "creation_rate_limit or idle_timeout_seconds");
    }
    etl::PoolSettingsChange change;
    int64_t n = 0;
    if (const json::value* v = body.if_contains("max_pool_size")) {
      if (auto error = read_integer(*v, "max_pool_size", 0, kMaxInstances, &n)) {
        co_return std::move(*error);
      }
      change.max_pool_size = static_cast<uint32_t>(n);
    }
    if (const json::value* v = body.if_contains("warmup_instances")) {
      if (auto error = read_integer(*v, "warmup_instances", 0, kMaxInstances, &n)) {
        co_return std::move(*error);
      }
      change.warmup_instances = static_cast<uint32_t>(n);
    }
    if (const json::value* v = body.if_contains("creation_rate_limit")) {
      // The configuration's range (etl.instance_pool.creation_rate_limit).
      if (!v->is_number() || !(v->to_number<double>() >= 0.1) ||
          !(v->to_number<double>() <= 100'000)) {
        co_return bad_request("creation_rate_limit",
                              "expected a number between 0.1 and 100000 (new instances per "
                              "second), got " +
                                  json::serialize(*v));
      }
      change.creation_rate_limit = v->to_number<double>();
    }
    if (const json::value* v = body.if_contains("idle_timeout_seconds")) {
      if (auto error = read_integer(*v, "idle_timeout_seconds", 1, 604'800, &n)) {
        co_return std::move(*error);
      }
      change.idle_timeout_seconds = static_cast<uint64_t>(n);
    }
    auto changed = co_await run([&](etl::InstancePools::Done done) {
      etl_.pools().resize(req.path_param("module_id"), change, std::move(done));
    });
    if (!changed.is_ok()) co_return change_failed(changed.status());
    const etl::PoolChange& c = *changed;
    json::object out{{"status", "resized"},
                     {"module_id", c.module_id},
                     {"evicted", c.evicted},
                     {"created", c.created},
                     {"errors", errors_json(c)}};
    for (auto& [key, value] : settings_json(c.settings)) out[key] = value;
    if (auto entry = module_entry(c.module_id)) out["pool"] = std::move(*entry);
    co_return json_response(HttpStatus::ok, out);
  }

 private:
  static Response not_found(std::string_view id) {
    return error_response(HttpStatus::not_found, "not_found",
                          "module " + std::string(id) + " does not exist");
  }

  // Starts a change with `start(done)` and awaits its outcome from the workers.
  template <typename Start>
  awaitable<Result<etl::PoolChange>> run(Start&& start) {
    using Outcome = Result<etl::PoolChange>;
    auto [sender, receiver] = make_handoff<Outcome>();
    start([sender = sender](Outcome r) { sender.send(std::move(r)); });
    auto received = co_await receiver.receive();
    if (!received.is_ok()) co_return received.status();
    co_return std::move(*received);
  }

  etl::Orchestrator& etl_;
};

}  // namespace

Status add_pool_api(Router& router, etl::Orchestrator& etl) {
  auto api = std::make_shared<PoolApi>(etl);
  return add_admin_routes<PoolApi>(
      router, api,
      {
          {Verb::get, "/api/v1/etl/instance-pool/stats", &PoolApi::stats},
          {Verb::post, "/api/v1/etl/instance-pool/warmup", &PoolApi::warmup},
          {Verb::post, "/api/v1/etl/instance-pool/cleanup", &PoolApi::cleanup},
          {Verb::get, "/api/v1/etl/instance-pool/{module_id}", &PoolApi::module_stats},
          {Verb::patch, "/api/v1/etl/instance-pool/{module_id}", &PoolApi::resize},
      });
}

}  // namespace wasmq::http
