#include "cli/admin_client.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/json.hpp>
#include <iostream>

namespace wasmq::cli {

http::ClientOptions AdminEndpoint::client_options() const {
  return http::ClientOptions{.timeout_ms = 120'000, .token = token, .ca_file = ca_file};
}

CLI::App* with_admin(CLI::App* cmd, AdminEndpoint& admin) {
  cmd->add_option("--admin", admin.url, "the admin API (http:// or https://)")
      ->envname("WASMQ_ADMIN")
      ->capture_default_str();
  cmd->add_option("--token", admin.token,
                  "bearer token, when the broker has security.tokens_file (prefer WASMQ_TOKEN: "
                  "arguments are visible to other users)")
      ->envname("WASMQ_TOKEN");
  cmd->add_option("--ca-file", admin.ca_file,
                  "PEM certificate(s) to trust for https:// (default: the system's)");
  return cmd;
}

int admin_request(const AdminEndpoint& admin, const std::string& method, const std::string& target,
                  const std::string& body, boost::json::value* out, std::string_view content_type,
                  const std::vector<std::pair<std::string, std::string>>& headers) {
  http::HttpClient client(admin.url, admin.client_options());
  auto reply = client.request(method, target, body, content_type, headers);
  if (!reply.is_ok()) {
    std::cerr << "error: " << reply.status().message() << "\n";
    return 1;
  }
  if (reply->status / 100 != 2) {
    std::cerr << "error: " << http::error_text(*reply) << "\n";
    return 1;
  }
  if (!out) {
    std::cout << reply->body << "\n";
    return 0;
  }
  boost::system::error_code ec;
  *out = boost::json::parse(reply->body, ec);
  if (ec) {
    std::cerr << "error: the reply is not JSON: " << reply->body.substr(0, 200) << "\n";
    return 1;
  }
  return 0;
}

void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c) {
      if (width.size() <= c) width.push_back(0);
      width[c] = std::max(width[c], row[c].size());
    }
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      line += row[c];
      if (c + 1 < row.size()) line += std::string(width[c] - row[c].size() + 2, ' ');
    }
    std::cout << line << "\n";
  }
}

}  // namespace wasmq::cli
