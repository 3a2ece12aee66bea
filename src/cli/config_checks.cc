// The checks that involve more than one key, and listen addresses (parse_listen_address,
// is_loopback_host).
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "cli/config.h"
#include "cli/config_internal.h"
#include "etl/pipeline.h"

namespace wasmq::cli {
namespace config_internal {
namespace {

bool is_any_address(std::string_view host) { return host == "0.0.0.0" || host == "::"; }

}  // namespace

Status check_together(const Config& config, const std::string& source, const KeyOrigins& origins) {
  // Where a key's value came from: "file:line", the variable's name, or the file for defaults.
  auto origin_of = [&](std::string_view path) {
    auto it = origins.find(std::string(path));
    return it == origins.end() ? source : it->second;
  };
  const auto& pool = config.etl.instance_pool;
  if (pool.warmup_instances > pool.max_pool_size) {
    return fail(
        origin_of("etl.instance_pool.warmup_instances"), "etl.instance_pool.warmup_instances",
        "expected at most etl.instance_pool.max_pool_size (" + std::to_string(pool.max_pool_size) +
            "), got " + std::to_string(pool.warmup_instances));
  }
  const auto& management = config.etl_management;
  if (management.max_pipelines_per_broker > management.max_total_pipelines) {
    return fail(origin_of("etl_management.max_pipelines_per_broker"),
                "etl_management.max_pipelines_per_broker",
                "expected at most etl_management.max_total_pipelines (" +
                    std::to_string(management.max_total_pipelines) + "), got " +
                    std::to_string(management.max_pipelines_per_broker));
  }
  if (config.etl.pipelines.size() > management.max_pipelines_per_broker) {
    size_t first_extra = management.max_pipelines_per_broker;
    return fail(source + ":" + std::to_string(config.etl.pipeline_lines[first_extra]),
                std::string(kPipelinesPath) + "[" + std::to_string(first_extra) + "]",
                "more pipelines than etl_management.max_pipelines_per_broker (" +
                    std::to_string(management.max_pipelines_per_broker) + ")");
  }
  // The pipeline documents are checked by the same code as the pipeline API's.
  std::set<std::string> ids;
  for (size_t i = 0; i < config.etl.pipelines.size(); ++i) {
    const std::string where = std::string(kPipelinesPath) + "[" + std::to_string(i) + "]";
    const std::string origin = source + ":" + std::to_string(config.etl.pipeline_lines[i]);
    etl::PipelineSpec spec;
    if (Status error = etl::parse_pipeline(config.etl.pipelines[i],
                                           "pipeline-" + std::to_string(i + 1), &spec);
        !error.is_ok()) {
      return Status(StatusCode::kInvalidArgument, origin + ": " + where + ": " + error.message());
    }
    if (!ids.insert(spec.pipeline_id).second) {
      return Status(StatusCode::kInvalidArgument,
                    origin + ": " + where + ": pipeline_id \"" + spec.pipeline_id +
                        "\" is used by another [[etl.pipelines]] table");
    }
  }
  const auto& security = config.security;
  if (security.tls_cert.empty() != security.tls_key.empty()) {
    std::string_view set = security.tls_cert.empty() ? "security.tls_key" : "security.tls_cert";
    std::string_view missing = security.tls_cert.empty() ? "security.tls_cert" : "security.tls_key";
    return fail(origin_of(set), set,
                "needs " + std::string(missing) + " as well (TLS takes a certificate and a key)");
  }
  if (config.etl.enable_module_signature_verification && security.module_signing_keys.empty()) {
    return fail(origin_of("etl.enable_module_signature_verification"),
                "etl.enable_module_signature_verification",
                "needs security.module_signing_keys (the Ed25519 public keys that may sign "
                "modules)");
  }
  auto data = parse_listen_address(config.broker.listen);
  auto admin = parse_listen_address(config.admin.listen);
  if (data->port == admin->port && data->port != 0 &&
      (data->host == admin->host || is_any_address(data->host) || is_any_address(admin->host))) {
    return fail(origin_of("admin.listen"), "admin.listen",
                "expected an address other than broker.listen (" + config.broker.listen +
                    "), got " + json_quoted(config.admin.listen));
  }
  if (!config.kafka.listen.empty()) {
    auto kafka = parse_listen_address(config.kafka.listen);
    for (const auto& [other, address] : {std::pair{"broker.listen", &*data}, {"admin.listen", &*admin}}) {
      if (kafka->port == address->port && kafka->port != 0 &&
          (kafka->host == address->host || is_any_address(kafka->host) ||
           is_any_address(address->host))) {
        return fail(origin_of("kafka.listen"), "kafka.listen",
                    std::string("expected an address other than ") + other + ", got " +
                        json_quoted(config.kafka.listen));
      }
    }
  }
  return Status::ok();
}

}  // namespace config_internal

using config_internal::json_quoted;

Result<ListenAddress> parse_listen_address(std::string_view text) {
  auto bad = [&] {
    return invalid_argument(
        "expected host:port with a port between 0 and 65535 (0: any free port), got " +
        json_quoted(text));
  };
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return bad();
  std::string_view host = text.substr(0, colon);
  std::string_view port_text = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    if (host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string_view::npos) {
      return bad();
    }
  } else if (host.find(':') != std::string_view::npos) {
    return bad();  // an IPv6 address needs brackets
  } else if (std::any_of(host.begin(), host.end(), [](char c) {
               return !(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-');
             })) {
    return bad();
  }
  if (host.empty()) return bad();
  uint32_t port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port_text.empty() ||
      port > 65535) {
    return bad();
  }
  return ListenAddress{std::string(host), static_cast<uint16_t>(port)};
}

bool is_loopback_host(std::string_view host) {
  if (host == "localhost" || host == "::1") return true;
  if (!host.starts_with("127.")) return false;
  // 127.0.0.0/8, written as a dotted quad.
  int parts = 0;
  for (size_t start = 0; start <= host.size(); ++parts) {
    size_t dot = std::min(host.find('.', start), host.size());
    std::string_view part = host.substr(start, dot - start);
    unsigned value = 0;
    auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), value);
    if (part.empty() || ec != std::errc() || end != part.data() + part.size() || value > 255) {
      return false;
    }
    start = dot + 1;
  }
  return parts == 4;
}

}  // namespace wasmq::cli
