// A small synchronous HTTP/1.1 client (the CLI's client commands, tests): one keep-alive
// connection, reopened when the server closes it.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace wasmq::http {

struct HttpReply {
  int status = 0;
  std::string body;
};

class HttpClient {
 public:
  // `base_url` is "http://host:port" (a trailing slash is ignored); anything else is an error
  // on the first request.
  explicit HttpClient(std::string base_url, int timeout_ms = 30'000);
  ~HttpClient();

  // Sends a request with a JSON body (when not empty) and returns the reply; transport
  // failures are kIo errors naming the broker's address.
  Result<HttpReply> request(const std::string& method, const std::string& target,
                            const std::string& body = "");

  // As request(), with the body's content type and extra header fields (name, value).
  Result<HttpReply> request(const std::string& method, const std::string& target,
                            const std::string& body, std::string_view content_type,
                            const std::vector<std::pair<std::string, std::string>>& headers);

 private:
  struct Connection;
  std::string base_url_;
  int timeout_ms_;
  std::unique_ptr<Connection> connection_;
};

// A one-line description of a reply that is not a success: "HTTP <status>: <the API's error
// message>", or the start of the body when it has no error object.
std::string error_text(const HttpReply& reply);

// Percent-encodes a path segment or query value.
std::string url_encode(std::string_view text);

}  // namespace wasmq::http
