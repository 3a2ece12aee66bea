// Routes requests by method and path pattern to asynchronous handlers.
//
// A pattern is a path of literal segments and named segments: "/api/v1/topics/{topic}/messages".
// A named segment matches one non-empty segment; its percent-decoded text becomes the request's
// path parameter. When several patterns match a path, the most specific wins: at the first
// segment where they differ, a literal beats a named segment (so "/pool/stats" is chosen over
// "/pool/{id}" for "/pool/stats"). A trailing slash is ignored ("/topics/" is "/topics").
//
// Unmatched requests get the JSON error shape: 404 `not_found` for an unknown path, 405
// `method_not_allowed` with an `Allow` header for a known path and another method.
//
// Threads: build the router on one thread, then hand it to the Server; from then on it is
// read-only and shared by every I/O thread.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "http/access.h"
#include "http/request.h"

namespace wasmq::http {

// A route's handler: runs on the connection's I/O thread (a strand of the server's io_context)
// and may suspend (timers, long polls, a Handoff from another thread). The Request stays valid
// until the returned awaitable completes. The handler object lives as long as the router, so a
// lambda's captures are safe to use inside the coroutine. Exceptions it throws become a 500.
using Handler = std::function<boost::asio::awaitable<Response>(Request&)>;

struct RouteOptions {
  // The largest request body this route accepts; unset: the server's max_body_bytes.
  std::optional<uint64_t> max_body_bytes;
  // What a caller needs when the server has access control (ServerOptions::access); unset:
  // default_right(method) (access.h: view for GET, admin for anything else).
  std::optional<Right> right;
  // Whether every attempt, admitted or refused, goes to the server's audit log
  // (ServerOptions::audit): routes that change the broker's configuration or topics.
  bool audited = false;
};

// One registered method + pattern.
struct Route {
  Verb method;
  std::string pattern;
  Handler handler;
  RouteOptions options;
};

// The outcome of matching a method and a path.
struct RouteMatch {
  enum class Kind {
    kFound,             // `route` is set; the path parameters were filled
    kNotFound,          // no pattern matches the path
    kMethodNotAllowed,  // patterns match, none with this method; `allow` lists theirs
    kBadPath,           // the matched route's parameter is badly percent-encoded; `error` says where
  };
  Kind kind = Kind::kNotFound;
  const Route* route = nullptr;
  std::string allow;  // "GET, POST"
  Status error;
};

class Router {
 public:
  Router();
  ~Router();
  Router(Router&&) noexcept;
  Router& operator=(Router&&) noexcept;

  // Registers `handler` for `method` on `pattern`. Errors (kInvalidArgument): a pattern that does
  // not start with '/', has an empty or malformed "{name}" segment or repeats a name; the same
  // method on an equivalent pattern twice (kAlreadyExists).
  Status add(Verb method, std::string_view pattern, Handler handler, RouteOptions options = {});

  // Matches a raw (not decoded) path. On kFound, the route's decoded parameters are appended to
  // `params` (cleared first). Allocation-free for paths without parameters.
  RouteMatch match(Verb method, std::string_view path, Params& params) const;

  // Routes a complete request: sets its path parameters and runs the handler, or returns the
  // 404 / 405 / 400 error response. What the Server does, minus the I/O; handy in tests.
  boost::asio::awaitable<Response> handle(Request& request) const;

  // The error response for a match that is not kFound.
  static Response unmatched_response(const RouteMatch& match, const Request& request);

 private:
  struct Resource;
  std::vector<std::unique_ptr<Resource>> resources_;  // most specific first
};

}  // namespace wasmq::http
