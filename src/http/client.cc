#include "http/client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/json.hpp>
#include <chrono>

#include "http/tls.h"

namespace wasmq::http {

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct HttpClient::Connection {
  asio::io_context io;
  beast::tcp_stream stream{io};
  std::shared_ptr<asio::ssl::context> tls_context;  // made on the first https:// connection
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream&>> tls;  // per connection, over `stream`
  beast::flat_buffer buffer;
  bool open = false;

  void close() {
    tls.reset();
    stream.close();
    buffer.clear();
    open = false;
  }
};

namespace {

struct Endpoint {
  bool tls = false;
  std::string host;
  std::string port;
};

Result<Endpoint> parse_base_url(const std::string& url) {
  Endpoint endpoint;
  std::string rest;
  if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else if (url.rfind("https://", 0) == 0) {
    rest = url.substr(8);
    endpoint.tls = true;
  } else {
    return invalid_argument("broker URL \"" + url + "\" must start with http:// or https://");
  }
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.find('/') != std::string::npos) {
    return invalid_argument("broker URL \"" + url + "\" must not have a path");
  }
  size_t colon = rest.rfind(':');
  size_t bracket = rest.rfind(']');
  if (colon == std::string::npos || (bracket != std::string::npos && colon < bracket)) {
    endpoint.host = rest;
    endpoint.port = endpoint.tls ? "443" : "80";
  } else {
    endpoint.host = rest.substr(0, colon);
    endpoint.port = rest.substr(colon + 1);
  }
  if (endpoint.host.size() >= 2 && endpoint.host.front() == '[' && endpoint.host.back() == ']') {
    endpoint.host = endpoint.host.substr(1, endpoint.host.size() - 2);
  }
  return endpoint;
}

bool is_ip_address(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

}  // namespace

HttpClient::HttpClient(std::string base_url, int timeout_ms)
    : HttpClient(std::move(base_url),
                 ClientOptions{.timeout_ms = timeout_ms, .token = {}, .ca_file = {}}) {}

HttpClient::HttpClient(std::string base_url, ClientOptions options)
    : base_url_(std::move(base_url)), options_(std::move(options)), connection_(new Connection()) {}

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
  const auto timeout = std::chrono::milliseconds(options_.timeout_ms);
  if (endpoint->tls && !c.tls_context) {
    auto context = client_tls_context(options_.ca_file);
    if (!context.is_ok()) return context.status();
    c.tls_context = std::move(*context);
  }
  // One retry: a keep-alive connection the server closed in the meantime fails on first use.
  for (int attempt = 0; attempt < 2; ++attempt) {
    beast::error_code ec;
    if (!c.open) {
      tcp::resolver resolver(c.io);
      auto results = resolver.resolve(endpoint->host, endpoint->port, ec);
      if (!ec) {
        c.stream.expires_after(timeout);
        c.stream.connect(results, ec);
      }
      if (ec) {
        c.close();
        return Status(StatusCode::kIo, "cannot connect to " + base_url_ + ": " + ec.message());
      }
      if (endpoint->tls) {
        c.tls = std::make_unique<beast::ssl_stream<beast::tcp_stream&>>(c.stream, *c.tls_context);
        if (!is_ip_address(endpoint->host)) {
          SSL_set_tlsext_host_name(c.tls->native_handle(), endpoint->host.c_str());
        }
        c.tls->set_verify_callback(asio::ssl::host_name_verification(endpoint->host));
        c.stream.expires_after(timeout);
        c.tls->handshake(asio::ssl::stream_base::client, ec);
        if (ec) {
          c.close();
          return Status(StatusCode::kIo,
                        "TLS handshake with " + base_url_ + " failed: " + ec.message());
        }
      }
      c.open = true;
    }
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, endpoint->host);
    req.keep_alive(true);
    if (!options_.token.empty()) req.set(http::field::authorization, "Bearer " + options_.token);
    for (const auto& [name, value] : headers) req.set(name, value);
    if (!body.empty()) {
      req.set(http::field::content_type, content_type);
      req.body() = body;
    }
    req.prepare_payload();
    http::response_parser<http::string_body> parser;
    parser.body_limit(1ull << 30);
    auto exchange = [&](auto& stream) {
      c.stream.expires_after(timeout);
      http::write(stream, req, ec);
      if (!ec) http::read(stream, c.buffer, parser, ec);
    };
    if (c.tls) {
      exchange(*c.tls);
    } else {
      exchange(c.stream);
    }
    if (ec) {
      c.close();
      if (attempt == 0 && (ec == http::error::end_of_stream ||
                           ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
                           ec == asio::error::eof || ec == asio::ssl::error::stream_truncated)) {
        continue;
      }
      return Status(StatusCode::kIo, method + " " + base_url_ + target + ": " + ec.message());
    }
    auto response = parser.release();
    if (!response.keep_alive()) c.close();
    HttpReply reply{static_cast<int>(response.result_int()), std::move(response.body()), {}};
    for (const auto& field : response) {
      reply.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    return reply;
  }
  return Status(StatusCode::kIo, "cannot reach " + base_url_);
}

std::string_view HttpReply::header(std::string_view name) const {
  for (const auto& [field, value] : headers) {
    if (beast::iequals(field, name)) return value;
  }
  return {};
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
