// The vocabulary of the HTTP room: a request as a handler sees it (the parsed message, the path
// parameters its route matched, the decoded query string), the response type, and
// percent-decoding.
//
// Threads: a Request belongs to one connection and is used by one handler at a time; nothing here
// is shared.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>

#include "common/status.h"

namespace wasmq::http {

struct Principal;  // access.h

using Verb = boost::beast::http::verb;
using HttpStatus = boost::beast::http::status;
using Field = boost::beast::http::field;
// A request as parsed off the wire; the body is read straight into the std::string.
using RequestMessage = boost::beast::http::request<boost::beast::http::string_body>;
// What a handler returns. The server sets the version, keep-alive and Content-Length.
using Response = boost::beast::http::response<boost::beast::http::string_body>;

// Decodes %XX escapes, and '+' as a space when `plus_is_space` (query strings). A '%' not
// followed by two hex digits is an error naming its position.
Result<std::string> percent_decode(std::string_view text, bool plus_is_space);

// Named values in arrival order: a route's path parameters, or a query string's parameters.
// Lookup is linear (requests carry a handful). A name may repeat; find() returns the first.
class Params {
 public:
  // The first value named `name`, or nullopt.
  std::optional<std::string_view> find(std::string_view name) const;
  // The first value named `name`, or `fallback`.
  std::string_view get(std::string_view name, std::string_view fallback = {}) const;
  bool contains(std::string_view name) const { return find(name).has_value(); }

  void add(std::string name, std::string value) {
    entries_.emplace_back(std::move(name), std::move(value));
  }
  // Forgets every entry (keeps the capacity, for reuse across requests).
  void clear() { entries_.clear(); }

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }

 private:
  std::vector<std::pair<std::string, std::string>> entries_;
};

// Parses "a=1&b=x%20y" into `out` (appending), percent-decoding names and values ('+' is a
// space). Empty pieces ("a=1&&b=2") are skipped; "flag" alone has an empty value. A malformed
// escape is a kInvalidArgument naming the parameter.
Status parse_query(std::string_view query, Params& out);

// One HTTP request. The server fills it (reusing one per connection); handlers read it and may
// move the body out. Tests may build one with reset().
class Request {
 public:
  Request() = default;

  // Replaces the message and re-parses the target's query string; the path parameters are left
  // as they are (the router sets them). On a malformed query the message is still replaced and
  // the error (kInvalidArgument naming the parameter) is returned.
  Status reset(RequestMessage message);

  Verb method() const { return message_.method(); }
  // The request target as sent: path and query, not decoded.
  std::string_view target() const;
  // The path part of the target (before '?'), not decoded.
  std::string_view path() const { return target().substr(0, path_size_); }
  // The raw query string (after '?'), or empty.
  std::string_view query_string() const;

  // A header's value, or empty when absent.
  std::string_view header(Field field) const;
  std::string_view header(std::string_view name) const;

  std::string& body() { return message_.body(); }
  const std::string& body() const { return message_.body(); }

  // A path parameter of the matched route ("{topic}" → path_param("topic")), decoded; empty
  // when the route has no such parameter.
  std::string_view path_param(std::string_view name) const { return path_params_.get(name); }
  const Params& path_params() const { return path_params_; }
  Params& path_params() { return path_params_; }

  // A decoded query parameter, or nullopt.
  std::optional<std::string_view> query_param(std::string_view name) const {
    return query_.find(name);
  }
  const Params& query() const { return query_; }
  // A query parameter read as a base-10 integer; `fallback` when absent. A value that is not an
  // integer in range is a kInvalidArgument naming the parameter.
  Result<int64_t> query_int64(std::string_view name, int64_t fallback) const;

  const RequestMessage& message() const { return message_; }
  RequestMessage& message() { return message_; }

  // The peer's IP address ("127.0.0.1", "::1"), set by the server per connection.
  const std::string& remote_address() const { return remote_address_; }
  void set_remote_address(std::string address) { remote_address_ = std::move(address); }

  // The caller its bearer token names, set by the server before the handler runs; null when
  // the listener has no access control or the route is open. Points into the server's token
  // store, which outlives the request.
  const Principal* principal() const { return principal_; }
  void set_principal(const Principal* principal) { principal_ = principal; }

 private:
  RequestMessage message_;
  std::string remote_address_;
  const Principal* principal_ = nullptr;
  size_t path_size_ = 0;
  Params path_params_;
  Params query_;
};

}  // namespace wasmq::http
