// A small synchronous HTTP/1.1 client (the CLI's client commands, tests): one keep-alive
// connection, reopened when the server closes it. Speaks HTTPS for "https://" base URLs,
// verifying the server's certificate (against ClientOptions::ca_file, or the system's trusted
// certificates) and its name or IP address; sends `Authorization: Bearer <token>` when given a
// token.
//
// Threads: one thread at a time per client.
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
  std::vector<std::pair<std::string, std::string>> headers;  // as received, in order

  // The first header field named `name` (case-insensitive), or empty.
  std::string_view header(std::string_view name) const;
};

struct ClientOptions {
  int timeout_ms = 30'000;  // connect, TLS handshake, and each request
  std::string token;        // sent as "Authorization: Bearer <token>" when not empty
  std::string ca_file;      // PEM certificates to trust for https://; empty: the system's
};

class HttpClient {
 public:
  // `base_url` is "http://host:port" or "https://host:port" (a trailing slash is ignored);
  // anything else is an error on the first request.
  explicit HttpClient(std::string base_url, int timeout_ms = 30'000);
  HttpClient(std::string base_url, ClientOptions options);
  ~HttpClient();

  // Sends a request with a JSON body (when not empty) and returns the reply; transport
  // failures (including a certificate that does not verify) are kIo errors naming the
  // broker's address.
  Result<HttpReply> request(const std::string& method, const std::string& target,
                            const std::string& body = "");

  // As request(), with the body's content type and extra header fields (name, value).
  Result<HttpReply> request(const std::string& method, const std::string& target,
                            const std::string& body, std::string_view content_type,
                            const std::vector<std::pair<std::string, std::string>>& headers);

 private:
  struct Connection;
  std::string base_url_;
  ClientOptions options_;
  std::unique_ptr<Connection> connection_;
};

// A one-line description of a reply that is not a success: "HTTP <status>: <the API's error
// message>", or the start of the body when it has no error object.
std::string error_text(const HttpReply& reply);

// Percent-encodes a path segment or query value.
std::string url_encode(std::string_view text);

}  // namespace wasmq::http
