// What the admin-API client commands share (`module`, `pipeline`, `pool`, `status`, `metrics`,
// `config reload`): where the admin API is and how to reach it (--admin, --token or WASMQ_TOKEN,
// --ca-file), and one request that prints the reply or the API's error.
#pragma once

#include <boost/json/value.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/client.h"

namespace CLI {
class App;
}

namespace wasmq::cli {

inline constexpr const char* kDefaultAdminUrl = "http://localhost:9094";

struct AdminEndpoint {
  std::string url = kDefaultAdminUrl;
  std::string token;
  std::string ca_file;

  http::ClientOptions client_options() const;
};

// Adds --admin, --token (WASMQ_TOKEN) and --ca-file to `cmd`, filling `admin`. Returns `cmd`.
CLI::App* with_admin(CLI::App* cmd, AdminEndpoint& admin);

// Sends one request. On a 2xx reply: prints the body (or, with `out`, parses it into `out`) and
// returns 0. Otherwise prints "error: <the API's error>" to stderr and returns 1.
int admin_request(const AdminEndpoint& admin, const std::string& method, const std::string& target,
                  const std::string& body = "", boost::json::value* out = nullptr,
                  std::string_view content_type = "application/json",
                  const std::vector<std::pair<std::string, std::string>>& headers = {});

// Prints rows (the first one a header) as columns aligned with two spaces between them.
void print_table(const std::vector<std::vector<std::string>>& rows);

}  // namespace wasmq::cli
