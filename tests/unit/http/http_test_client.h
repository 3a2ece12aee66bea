// A small blocking HTTP/1.1 client for the server tests: one connection to 127.0.0.1, every
// operation bounded by a timeout so a broken server fails a test instead of hanging it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace wasmq::http::testing {

using ClientResponse = boost::beast::http::response<boost::beast::http::string_body>;

class HttpTestClient {
 public:
  explicit HttpTestClient(uint16_t port,
                          std::chrono::milliseconds timeout = std::chrono::seconds(10))
      : stream_(io_), timeout_(timeout) {
    boost::asio::ip::tcp::endpoint endpoint(boost::asio::ip::make_address("127.0.0.1"), port);
    stream_.expires_after(timeout_);
    stream_.async_connect(endpoint, [this](boost::system::error_code ec) { error_ = ec; });
    run();
  }

  // The error of the last operation (connect, write, read).
  boost::system::error_code error() const { return error_; }
  bool ok() const { return !error_; }

  // Writes one request (keep-alive) and reads its response; on failure error() is set and the
  // returned response is empty.
  ClientResponse request(boost::beast::http::verb method, std::string target,
                         std::string body = {},
                         std::vector<std::pair<std::string, std::string>> headers = {}) {
    send(make_request(method, std::move(target), std::move(body), std::move(headers)));
    if (!ok()) return {};
    return read_response();
  }

  static boost::beast::http::request<boost::beast::http::string_body> make_request(
      boost::beast::http::verb method, std::string target, std::string body = {},
      std::vector<std::pair<std::string, std::string>> headers = {}) {
    boost::beast::http::request<boost::beast::http::string_body> request(method, target, 11);
    request.set(boost::beast::http::field::host, "127.0.0.1");
    for (auto& [name, value] : headers) request.set(name, value);
    request.body() = std::move(body);
    request.prepare_payload();
    return request;
  }

  void send(boost::beast::http::request<boost::beast::http::string_body> request) {
    stream_.expires_after(timeout_);
    boost::beast::http::async_write(
        stream_, request, [this](boost::system::error_code ec, size_t) { error_ = ec; });
    run();
  }

  void send_raw(std::string_view bytes) {
    stream_.expires_after(timeout_);
    boost::asio::async_write(stream_, boost::asio::buffer(bytes.data(), bytes.size()),
                             [this](boost::system::error_code ec, size_t) { error_ = ec; });
    run();
  }

  ClientResponse read_response() {
    boost::beast::http::response_parser<boost::beast::http::string_body> parser;
    parser.body_limit(1ull << 30);
    stream_.expires_after(timeout_);
    boost::beast::http::async_read(stream_, buffer_, parser,
                                   [this](boost::system::error_code ec, size_t) { error_ = ec; });
    run();
    if (!ok()) return {};
    return parser.release();
  }

  // Reads "HTTP/1.1 100 Continue\r\n\r\n" (or whatever the server sends first, up to the blank
  // line) and returns it.
  std::string read_interim_response() {
    stream_.expires_after(timeout_);
    std::string text;
    boost::asio::async_read_until(stream_, boost::asio::dynamic_buffer(text), "\r\n\r\n",
                                  [this](boost::system::error_code ec, size_t) { error_ = ec; });
    run();
    return text;
  }

  // True when the server closes the connection (end of stream) within `within`.
  bool closed_by_server(std::chrono::milliseconds within) {
    char byte;
    stream_.expires_after(within);
    stream_.async_read_some(boost::asio::buffer(&byte, 1),
                            [this](boost::system::error_code ec, size_t) { error_ = ec; });
    run();
    return error_ == boost::asio::error::eof || error_ == boost::asio::error::connection_reset;
  }

  void close() { stream_.close(); }

 private:
  void run() {
    io_.restart();
    io_.run();
  }

  boost::asio::io_context io_;
  boost::beast::tcp_stream stream_;
  boost::beast::flat_buffer buffer_;
  std::chrono::milliseconds timeout_;
  boost::system::error_code error_;
};

}  // namespace wasmq::http::testing
