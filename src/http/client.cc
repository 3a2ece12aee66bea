#include "http/client.h"

#include <boost/json.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>

namespace wasmq::http {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct HttpClient::Connection {
  asio::io_context io;
  beast::tcp_stream stream{io};
  beast::flat_buffer buffer;
  bool open = false;
};

namespace {

struct Endpoint {
  std::string host;
  std::string port;
};

Result<Endpoint> parse_base_url(const std::string& url) {
  static constexpr std::string_view kScheme = "http://";
  if (url.rfind(kScheme, 0) != 0) {
    return invalid_argument("broker URL \"" + url + "\" must start with http://");
  }
  std::string rest = url.substr(kScheme.size());
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.find('/') != std::string::npos) {
    return invalid_argument("broker URL \"" + url + "\" must not have a path");
  }
  size_t colon = rest.rfind(':');
  if (colon == std::string::npos) return Endpoint{rest, "80"};
  return Endpoint{rest.substr(0, colon), rest.substr(colon + 1)};
}

}  // namespace

HttpClient::HttpClient(std::string base_url, int timeout_ms)
    : base_url_(std::move(base_url)), timeout_ms_(timeout_ms), connection_(new Connection()) {}

HttpClient::~HttpClient() = default;

Result<HttpReply> HttpClient::request(const std::string& method, const std::string& target,
                                      const std::string& body) {
  return request(method, target, body, "application/json", {});
}

Result<HttpReply> HttpClient::request(
    const std::string& method, const std::string& target, const std::string& body,
    std::string_view content_type,
    const std::vector<std::pair<std::string, std::string>>& headers) {
  auto endpoint = parse_base_url(base_url_);
  if (!endpoint.is_ok()) return endpoint.status();
  Connection& c = *connection_;
  // One retry: a keep-alive connection the server closed in the meantime fails on first use.
  for (int attempt = 0; attempt < 2; ++attempt) {
    beast::error_code ec;
    if (!c.open) {
      tcp::resolver resolver(c.io);
      auto results = resolver.resolve(endpoint->host, endpoint->port, ec);
      if (!ec) {
        c.stream.expires_after(std::chrono::milliseconds(timeout_ms_));
        c.stream.connect(results, ec);
      }
      if (ec) {
        return Status(StatusCode::kIo, "cannot connect to " + base_url_ + ": " + ec.message());
      }
      c.open = true;
    }
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, endpoint->host);
    req.keep_alive(true);
    for (const auto& [name, value] : headers) req.set(name, value);
    if (!body.empty()) {
      req.set(http::field::content_type, content_type);
      req.body() = body;
    }
    req.prepare_payload();
    c.stream.expires_after(std::chrono::milliseconds(timeout_ms_));
    http::write(c.stream, req, ec);
    http::response_parser<http::string_body> parser;
    parser.body_limit(1ull << 30);
    if (!ec) http::read(c.stream, c.buffer, parser, ec);
    if (ec) {
      c.stream.close();
      c.buffer.clear();
      c.open = false;
      if (attempt == 0 &&
          (ec == http::error::end_of_stream || ec == asio::error::connection_reset ||
           ec == asio::error::broken_pipe || ec == asio::error::eof)) {
        continue;
      }
      return Status(StatusCode::kIo, method + " " + base_url_ + target + ": " + ec.message());
    }
    auto response = parser.release();
    if (!response.keep_alive()) {
      c.stream.close();
      c.buffer.clear();
      c.open = false;
    }
    return HttpReply{static_cast<int>(response.result_int()), std::move(response.body())};
  }
  return Status(StatusCode::kIo, "cannot reach " + base_url_);
}

std::string url_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string error_text(const HttpReply& reply) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(reply.body, ec);
  if (!ec && v.is_object() && v.as_object().contains("error")) {
    const auto& e = v.at("error");
    if (e.is_object() && e.as_object().contains("message") && e.at("message").is_string()) {
      return "HTTP " + std::to_string(reply.status) + ": " + std::string(e.at("message").as_string());
    }
  }
  return "HTTP " + std::to_string(reply.status) + ": " + reply.body.substr(0, 200);
}

}  // namespace wasmq::http
