#include "cli/pool_commands.h"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>

#include "cli/admin_client.h"
#include "http/client.h"

namespace wasmq::cli {
namespace {

namespace json = boost::json;

// One request to the admin API (admin_client.h).
int send(const AdminEndpoint& admin, const std::string& method, const std::string& target,
         const std::string& body, json::value* out = nullptr) {
  return admin_request(admin, method, target, body, out);
}

std::string number(const json::value& v) {
  if (v.is_double()) {
    char text[32];
    std::snprintf(text, sizeof text, "%.3f", v.get_double());
    return text;
  }
  return json::serialize(v);
}

std::string mebibytes(const json::value& v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f MiB", v.to_number<double>() / (1 << 20));
  return text;
}

struct StatsOptions {
  AdminEndpoint admin;
  bool json_output = false;
};

int stats(const StatsOptions& o) {
  if (o.json_output) return send(o.admin, "GET", "/api/v1/etl/instance-pool/stats", "");
  json::value v;
  if (int rc = send(o.admin, "GET", "/api/v1/etl/instance-pool/stats", "", &v); rc != 0) return rc;
  std::vector<std::vector<std::string>> rows = {{"MODULE", "SIZE", "IDLE", "BUSY", "CREATED",
                                                 "REUSED", "EVICTED", "HIT RATIO", "MEMORY",
                                                 "MAX/WARMUP"}};
  auto row = [](std::string name, const json::value& m, std::string settings) {
    return std::vector<std::string>{
        std::move(name),         number(m.at("size")),      number(m.at("idle")),
        number(m.at("busy")),    number(m.at("created")),   number(m.at("reused")),
        number(m.at("evicted")), number(m.at("hit_ratio")), mebibytes(m.at("memory_bytes")),
        std::move(settings)};
  };
  for (const auto& m : v.at("modules").as_array()) {
    const auto& s = m.at("settings");
    rows.push_back(row(std::string(m.at("module_id").as_string()), m,
                       number(s.at("max_pool_size")) + "/" + number(s.at("warmup_instances")) +
                           (m.at("settings_source").as_string() == "api" ? " (api)" : "")));
  }
  rows.push_back(row("total", v.at("totals"), ""));
  print_table(rows);
  std::cout << v.at("workers").as_int64() << " worker(s); etl.memory_usage_bytes "
            << number(v.at("memory_usage_bytes")) << "\n";
  return 0;
}

struct WarmupOptions {
  AdminEndpoint admin;
  std::string module_id;
  int64_t count = 1;
};

struct CleanupOptions {
  AdminEndpoint admin;
  std::string module_id;
};

struct ResizeOptions {
  AdminEndpoint admin;
  std::string module_id;
  std::optional<int64_t> max_pool_size, warmup_instances, idle_timeout_seconds;
  std::optional<double> creation_rate_limit;
};

}  // namespace

void add_pool_commands(CLI::App& app, int& exit_code) {
  CLI::App* pool =
      app.add_subcommand("pool", "the ETL workers' module instance pools on a broker (admin API)");
  pool->require_subcommand(1);

  auto so = std::make_shared<StatsOptions>();
  CLI::App* stats_cmd =
      with_admin(pool->add_subcommand("stats",
                                      "instances per module: size, idle, busy, reuse, "
                                      "evictions, hit ratio, memory"),
                 so->admin);
  stats_cmd->add_flag("--json", so->json_output, "print the API's JSON");
  stats_cmd->callback([so, &exit_code] { exit_code = stats(*so); });

  auto wo = std::make_shared<WarmupOptions>();
  CLI::App* warmup_cmd = with_admin(
      pool->add_subcommand("warmup", "create idle instances of a module on every worker"),
      wo->admin);
  warmup_cmd->add_option("module_id", wo->module_id, "name-vX.Y.Z, or a name for its newest")
      ->required();
  warmup_cmd
      ->add_option("-n,--count", wo->count,
                   "idle instances per worker (at most the "
                   "module's max_pool_size)")
      ->capture_default_str();
  warmup_cmd->callback([wo, &exit_code] {
    json::object body{{"module_id", wo->module_id}, {"instance_count", wo->count}};
    exit_code = send(wo->admin, "POST", "/api/v1/etl/instance-pool/warmup", json::serialize(body));
  });

  auto co = std::make_shared<CleanupOptions>();
  CLI::App* cleanup_cmd =
      with_admin(pool->add_subcommand("cleanup", "evict idle instances (of one module, or of all)"),
                 co->admin);
  cleanup_cmd->add_option("module_id", co->module_id, "only this module");
  cleanup_cmd->callback([co, &exit_code] {
    std::string body =
        co->module_id.empty() ? "" : json::serialize(json::object{{"module_id", co->module_id}});
    exit_code = send(co->admin, "POST", "/api/v1/etl/instance-pool/cleanup", body);
  });

  auto ro = std::make_shared<ResizeOptions>();
  CLI::App* resize_cmd = with_admin(
      pool->add_subcommand("resize", "change a module's pool settings until the broker restarts"),
      ro->admin);
  resize_cmd->add_option("module_id", ro->module_id, "name-vX.Y.Z, or a name for its newest")
      ->required();
  resize_cmd->add_option("--max-pool-size", ro->max_pool_size, "idle instances kept per worker");
  resize_cmd->add_option("--warmup-instances", ro->warmup_instances, "instances kept warm");
  resize_cmd->add_option("--creation-rate-limit", ro->creation_rate_limit,
                         "new instances per second");
  resize_cmd->add_option("--idle-timeout-seconds", ro->idle_timeout_seconds,
                         "idle instances beyond the warm ones are dropped after this");
  resize_cmd->callback([ro, &exit_code] {
    json::object body;
    if (ro->max_pool_size) body["max_pool_size"] = *ro->max_pool_size;
    if (ro->warmup_instances) body["warmup_instances"] = *ro->warmup_instances;
    if (ro->creation_rate_limit) body["creation_rate_limit"] = *ro->creation_rate_limit;
    if (ro->idle_timeout_seconds) body["idle_timeout_seconds"] = *ro->idle_timeout_seconds;
    exit_code =
        send(ro->admin, "PATCH", "/api/v1/etl/instance-pool/" + http::url_encode(ro->module_id),
             json::serialize(body));
  });
}

}  // namespace wasmq::cli
