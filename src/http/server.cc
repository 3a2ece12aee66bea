#include "http/server.h"

#include "common/listen.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <cassert>
#include <exception>
#include <optional>

#include "common/log.h"
#include "http/json_response.h"

namespace wasmq::http {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

// Completion token: errors come back as values (exceptions on the I/O path cost microseconds).
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// How long an error response's connection drains input before it is closed.
constexpr std::chrono::seconds kLingerTime{1};
// How long stop() waits, after cancelling what is left at the deadline, for connections to end.
constexpr std::chrono::seconds kCancelledStopWait{2};
// Pause after a failed accept (out of descriptors): retrying at once would spin.
constexpr std::chrono::milliseconds kAcceptRetryPause{50};
// At most one log line per interval for failed accepts, and one for turned-away connections.
constexpr std::chrono::seconds kAcceptLogInterval{10};

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

std::string_view to_view(beast::string_view text) { return {text.data(), text.size()}; }

bool is_http_error(const error_code& error) {
  return error.category() == bhttp::make_error_code(bhttp::error::bad_method).category();
}

// The response for a request that could not be read, or nullopt when there is no one to answer
// (the client went away, the read timed out or was cancelled).
std::optional<Response> unreadable_request_response(const error_code& error,
                                                    const ServerOptions& options) {
  if (error == bhttp::error::header_limit) {
    return error_response(HttpStatus::request_header_fields_too_large, "header_too_large",
                          fmt::format("the request header exceeds the limit of {} bytes",
                                      options.max_header_bytes));
  }
  if (is_http_error(error) && error != bhttp::error::end_of_stream &&
      error != bhttp::error::partial_message) {
    return error_response(HttpStatus::bad_request, "bad_request",
                          fmt::format("malformed HTTP request: {}", error.message()));
  }
  return std::nullopt;
}

Response body_too_large(std::optional<uint64_t> declared, uint64_t limit, Verb method,
                        std::string_view path) {
  std::string size = declared ? fmt::format("of {} bytes ", *declared) : std::string();
  return error_response(HttpStatus::payload_too_large, "payload_too_large",
                        fmt::format("request body {}exceeds the limit of {} bytes for {} {}", size,
                                    limit, to_view(bhttp::to_string(method)), path));
}

// Why a request's Transfer-Encoding makes its framing ambiguous, or empty when it is absent or
// exactly "chunked" (the one coding we decode). RFC 9112 §6.3: a request whose final coding is
// not chunked cannot be framed and must be refused with a 400 and the connection closed; any
// other coding (gzip, identity, xchunked, a repeated chunked) is one we do not implement. Reading
// such a body as empty would let its bytes run as a request of their own (request smuggling).
std::string bad_transfer_encoding(const RequestMessage& header) {
  size_t codings = 0;
  bool chunked_last = false;
  std::string unknown;
  for (auto range = header.equal_range(Field::transfer_encoding); range.first != range.second;
       ++range.first) {
    std::string_view list = to_view(range.first->value());
    while (!list.empty()) {
      size_t comma = list.find(',');
      std::string_view coding = list.substr(0, comma);
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
      while (!coding.empty() && (coding.front() == ' ' || coding.front() == '\t'))
        coding.remove_prefix(1);
      while (!coding.empty() && (coding.back() == ' ' || coding.back() == '\t'))
        coding.remove_suffix(1);
      if (coding.empty()) continue;
      ++codings;
      chunked_last = beast::iequals(coding, "chunked");
      if (!chunked_last && unknown.empty()) unknown = std::string(coding.substr(0, 64));
    }
  }
  if (header.count(Field::transfer_encoding) == 0) return {};
  if (codings == 1 && chunked_last) return {};
  if (!unknown.empty()) {
    return fmt::format("Transfer-Encoding: coding \"{}\" is not supported (only chunked is)",
                       unknown);
  }
  return codings == 0 ? "Transfer-Encoding: empty" : "Transfer-Encoding: chunked may appear once";
}

bool expects_continue(const RequestMessage& header) {
  auto expect = header.find(Field::expect);
  return header.version() >= 11 && expect != header.end() &&
         beast::iequals(expect->value(), "100-continue");
}

}  // namespace

// One accepted connection. Everything in it is used on the connection's strand only.
struct Server::Connection {
  explicit Connection(tcp::socket socket) : stream(std::move(socket)) {}

  beast::tcp_stream stream;  // its executor is the connection's strand
  beast::flat_buffer buffer;  // kept across requests: holds pipelined bytes
  Request request;            // reused: its containers keep their capacity
  asio::cancellation_signal cancel;  // cancels the serving coroutine when stop() runs late
  bool waiting_for_request = false;  // reading a request header: safe to close on stop()
};

Server::Server(ServerOptions options, Router router)
    : options_(std::move(options)),
      router_(std::move(router)),
      logger_(log::get("http")),
      acceptor_(asio::make_strand(io_context_)) {}

Server::~Server() {
  stop(std::chrono::milliseconds(0));
  if (reserve_fd_ >= 0) ::close(reserve_fd_);
}

Status Server::start() {
  MutexLock lifecycle(lifecycle_mutex_);
  if (started_) return {StatusCode::kInternal, options_.name + ": already started"};
  if (Status s = listen_on(acceptor_, options_.host, options_.port, options_.name); !s.is_ok()) {
    return s;
  }
  error_code error;
  port_ = acceptor_.local_endpoint(error).port();
  // Accepts that fail must not block (on_accept_failure accepts synchronously).
  acceptor_.non_blocking(true, error);
  reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);

  started_ = true;
  work_.emplace(io_context_.get_executor());
  asio::co_spawn(acceptor_.get_executor(), accept_loop(), asio::detached);
  unsigned threads = options_.io_threads;
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { run_io_thread(); });
  logger_.info("{}: listening on {} ({} I/O threads)", options_.name,
               fmt::format("{}:{}", acceptor_.local_endpoint(error).address().to_string(), port_),
               threads);
  return Status::ok();
}

void Server::run_io_thread() {
  for (;;) {
    try {
      io_context_.run();
      return;
    } catch (const std::exception& e) {
      // Handlers catch their own exceptions; this is a last resort that keeps the thread alive.
      logger_.error("{}: I/O thread: uncaught exception: {}", options_.name, e.what());
    }
  }
}

void Server::stop(std::chrono::milliseconds grace) {
  MutexLock lifecycle(lifecycle_mutex_);
  if (!started_ || stopped_) {
    stopped_ = true;
    return;
  }
  stopped_ = true;
  // Joining the I/O threads from one of them would wait forever.
  assert(!io_context_.get_executor().running_in_this_thread());
  auto deadline = std::chrono::steady_clock::now() + grace;

  std::vector<std::shared_ptr<Connection>> open;
  {
    MutexLock lock(connections_mutex_);
    stopping_ = true;
    open.assign(connections_.begin(), connections_.end());
  }
  asio::post(acceptor_.get_executor(), [this] {
    error_code ignored;
    acceptor_.close(ignored);
  });
  for (auto& connection : open) {
    asio::post(connection->stream.get_executor(), [connection] {
      if (connection->waiting_for_request) connection->stream.cancel();
    });
  }
  open.clear();

  if (!wait_for_connections(deadline)) {
    {
      MutexLock lock(connections_mutex_);
      open.assign(connections_.begin(), connections_.end());
    }
    logger_.warn("{}: {} connection(s) still busy at the stop deadline; cancelling them",
                 options_.name, open.size());
    for (auto& connection : open) {
      asio::post(connection->stream.get_executor(), [connection] {
        connection->cancel.emit(asio::cancellation_type::terminal);
        connection->stream.close();
      });
    }
    open.clear();
    if (!wait_for_connections(std::chrono::steady_clock::now() + kCancelledStopWait)) {
      logger_.error("{}: connections ignored cancellation; abandoning them", options_.name);
    }
  }
  work_.reset();
  io_context_.stop();
  for (auto& thread : threads_) thread.join();
  threads_.clear();
  logger_.info("{}: stopped", options_.name);
}

bool Server::register_connection(const std::shared_ptr<Connection>& connection) {
  MutexLock lock(connections_mutex_);
  if (stopping_) return false;
  connections_.insert(connection);
  return true;
}

void Server::unregister_connection(const std::shared_ptr<Connection>& connection) {
  MutexLock lock(connections_mutex_);
  connections_.erase(connection);
  if (connections_.empty()) connections_drained_.notify_all();
}

bool Server::wait_for_connections(std::chrono::steady_clock::time_point deadline) {
  MutexLock lock(connections_mutex_);
  while (!connections_.empty()) {
    if (!connections_drained_.wait_until(connections_mutex_, deadline)) return connections_.empty();
  }
  return true;
}

uint64_t raise_open_file_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) return raised.rlim_cur;
  }
  return limit.rlim_cur;
}

size_t Server::connection_count() {
  MutexLock lock(connections_mutex_);
  return connections_.size();
}

void Server::turn_away(tcp::socket& socket, bool over_limit) {
  error_code ignored;
  if (!options_.tls) {
    std::string body = fmt::format(
        R"({{"error":{{"code":"too_many_connections","message":"{}: {}; retry later"}}}})",
        options_.name,
        over_limit
            ? fmt::format("the limit of {} open connections is reached", options_.max_connections)
            : std::string("out of file descriptors"));
    std::string reply = fmt::format(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        "Retry-After: 1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{}",
        body.size(), body);
    socket.non_blocking(true, ignored);
    socket.write_some(asio::buffer(reply), ignored);
    socket.shutdown(tcp::socket::shutdown_send, ignored);
    // Input left unread makes close() send a reset, which may destroy the 503 in flight.
    char scratch[4096];
    for (int i = 0; i < 16; ++i) {
      socket.read_some(asio::buffer(scratch), ignored);
      if (ignored) break;
    }
  }
  socket.close(ignored);
  auto now = std::chrono::steady_clock::now();
  ++turned_away_unlogged_;
  if (now >= turned_away_log_until_) {
    logger_.warn("{}: {} connection(s) turned away: {}", options_.name, turned_away_unlogged_,
                 over_limit ? fmt::format("the limit of {} open connections is reached",
                                          options_.max_connections)
                            : std::string("out of file descriptors"));
    turned_away_unlogged_ = 0;
    turned_away_log_until_ = now + kAcceptLogInterval;
  }
}

void Server::on_accept_failure(const error_code& error) {
  const bool out_of_descriptors = error == asio::error::no_descriptors || error.value() == ENFILE;
  if (out_of_descriptors && reserve_fd_ >= 0) {
    // The waiting client gets an answer instead of hanging in the backlog until it times out.
    ::close(reserve_fd_);
    reserve_fd_ = -1;
    tcp::socket socket(io_context_);
    error_code accept_error;
    acceptor_.accept(socket, accept_error);  // the acceptor is non-blocking: never waits
    if (!accept_error) turn_away(socket, /*over_limit=*/false);
    reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  auto now = std::chrono::steady_clock::now();
  ++accept_failures_unlogged_;
  if (now >= accept_log_until_) {
    logger_.warn("{}: accept failed {} time(s): {}{}", options_.name, accept_failures_unlogged_,
                 error.message(),
                 out_of_descriptors ? " (the process is out of file descriptors; waiting "
                                      "connections are answered 503 and closed)"
                                    : "");
    accept_failures_unlogged_ = 0;
    accept_log_until_ = now + kAcceptLogInterval;
  }
}

asio::awaitable<void> Server::accept_loop() {
  for (;;) {
    auto [error, socket] =
        co_await acceptor_.async_accept(asio::any_io_executor(asio::make_strand(io_context_)),
                                        kNoThrow);
    if (error) {
      if (error == asio::error::operation_aborted || stopping_ || !acceptor_.is_open()) co_return;
      on_accept_failure(error);
      asio::steady_timer pause(acceptor_.get_executor(), kAcceptRetryPause);
      co_await pause.async_wait(kNoThrow);
      continue;
    }
    if (options_.max_connections > 0 && connection_count() >= options_.max_connections) {
      turn_away(socket, /*over_limit=*/true);
      continue;
    }
    error_code ignored;
    // Responses are written whole; Nagle's algorithm would only delay them.
    socket.set_option(tcp::no_delay(true), ignored);
    auto connection = std::make_shared<Connection>(std::move(socket));
    if (!register_connection(connection)) co_return;
    auto executor = connection->stream.get_executor();
    asio::co_spawn(executor, serve(connection),
                   asio::bind_cancellation_slot(
                       connection->cancel.slot(),
                       [this, connection](std::exception_ptr failure) {
                         if (failure && !stopping_) {
                           try {
                             std::rethrow_exception(failure);
                           } catch (const std::exception& e) {
                             logger_.debug("{}: connection ended: {}", options_.name, e.what());
                           } catch (...) {
                           }
                         }
                         unregister_connection(connection);
                       }));
  }
}

asio::awaitable<void> Server::serve(std::shared_ptr<Connection> connection) {
  Connection& c = *connection;
  error_code error;
  tcp::endpoint peer = c.stream.socket().remote_endpoint(error);
  c.request.set_remote_address(error ? std::string() : peer.address().to_string());
  if (!options_.tls) {
    co_await serve_requests(c, c.stream);
  } else {
    beast::ssl_stream<beast::tcp_stream&> tls(c.stream, *options_.tls);
    c.stream.expires_after(options_.handshake_timeout);
    c.waiting_for_request = true;  // stop() may close a connection still in its handshake
    auto [handshake_error] = co_await tls.async_handshake(asio::ssl::stream_base::server, kNoThrow);
    c.waiting_for_request = false;
    if (handshake_error) {
      logger_.debug("{}: TLS handshake with {} failed: {}", options_.name,
                    c.request.remote_address(), handshake_error.message());
    } else {
      co_await serve_requests(c, tls);
      // close_notify, so the client can tell the end from a truncation; briefly.
      c.stream.expires_after(kLingerTime);
      co_await tls.async_shutdown(kNoThrow);
    }
  }
  error_code ignored;
  c.stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  c.stream.close();
}

void Server::audit(const Route* route, const Principal* principal, std::string_view remote,
                   Verb method, std::string_view path, const Response& response) {
  if (options_.audit && route != nullptr && route->options.audited) {
    options_.audit->record(principal, remote, method, path, response);
  }
}

template <typename Stream>
asio::awaitable<void> Server::serve_requests(Connection& c, Stream& stream) {
  // A parser reads one message; it is re-made per request inside this frame (no allocation).
  std::optional<bhttp::request_parser<bhttp::string_body>> parser;
  while (!stopping_) {
    parser.emplace();
    parser->header_limit(options_.max_header_bytes);
    // Beast checks Content-Length against body_limit while parsing the header; the limit depends
    // on the route, known only once the header is in, so it is set (and checked) below.
    parser->body_limit(boost::none);

    c.stream.expires_after(options_.idle_timeout);
    c.waiting_for_request = true;
    auto [header_error, header_bytes] =
        co_await bhttp::async_read_header(stream, c.buffer, *parser, kNoThrow);
    c.waiting_for_request = false;
    if (header_error) {
      if (auto response = unreadable_request_response(header_error, options_)) {
        co_await refuse(c, stream, std::move(*response));
      }
      break;
    }

    const RequestMessage& header = parser->get();
    if (std::string why = bad_transfer_encoding(header); !why.empty()) {
      co_await refuse(
          c, stream,
          error_response(HttpStatus::bad_request, "bad_request", "malformed HTTP request: " + why));
      break;
    }
    std::string_view target = to_view(header.target());
    std::string_view path = target.substr(0, target.find('?'));
    RouteMatch match = router_.match(header.method(), path, c.request.path_params());
    const Route* route = match.route;

    // Access is checked before the body is read: a refused client is not read from.
    std::optional<Response> refusal;
    c.request.set_principal(nullptr);
    if (options_.access && route != nullptr) {
      AccessDecision decision = options_.access->check(
          header, route->options.right.value_or(default_right(header.method())));
      c.request.set_principal(decision.principal);
      if (decision.refusal) {
        audit(route, decision.principal, c.request.remote_address(), header.method(), path,
              *decision.refusal);
        if (!parser->is_done()) {
          co_await refuse(c, stream, std::move(*decision.refusal));
          break;
        }
        refusal = std::move(decision.refusal);
      }
    } else if (options_.access && match.kind != RouteMatch::Kind::kFound) {
      // No route: a caller without a valid token learns nothing about which paths and methods
      // exist (401 for all, instead of 404 or 405); any valid token gets the 404 or 405.
      AccessDecision decision = options_.access->check(header, Right::kView);
      c.request.set_principal(decision.principal);
      if (decision.refusal && decision.refusal->result() == HttpStatus::unauthorized) {
        if (!parser->is_done()) {
          co_await refuse(c, stream, std::move(*decision.refusal));
          break;
        }
        refusal = std::move(decision.refusal);
      }
    }

    if (!refusal) {
      uint64_t body_limit = options_.max_body_bytes;
      if (route != nullptr && route->options.max_body_bytes) {
        body_limit = *route->options.max_body_bytes;
      }
      auto declared = parser->content_length();
      if (declared && *declared > body_limit) {
        Response too_large = body_too_large(*declared, body_limit, header.method(), path);
        audit(route, c.request.principal(), c.request.remote_address(), header.method(), path,
              too_large);
        co_await refuse(c, stream, std::move(too_large));
        break;
      }
      parser->body_limit(body_limit);

      if (!parser->is_done()) {
        if (expects_continue(header)) {
          c.stream.expires_after(options_.write_timeout);
          auto [continue_error, continue_bytes] = co_await asio::async_write(
              stream, asio::buffer(kContinue.data(), kContinue.size()), kNoThrow);
          if (continue_error) break;
        }
        c.stream.expires_after(options_.body_timeout);
        auto [body_error, body_bytes] =
            co_await bhttp::async_read(stream, c.buffer, *parser, kNoThrow);
        if (body_error) {
          if (body_error == bhttp::error::body_limit) {
            Response too_large = body_too_large(std::nullopt, body_limit, header.method(), path);
            audit(route, c.request.principal(), c.request.remote_address(), header.method(), path,
                  too_large);
            co_await refuse(c, stream, std::move(too_large));
          } else if (auto response = unreadable_request_response(body_error, options_)) {
            co_await refuse(c, stream, std::move(*response));
          }
          break;
        }
      }
    }

    Status query = c.request.reset(parser->release());
    Response response;
    if (refusal) {
      response = std::move(*refusal);
    } else if (!query.is_ok()) {
      response = error_response(HttpStatus::bad_request, "invalid_query", query.message());
    } else if (match.kind != RouteMatch::Kind::kFound) {
      response = Router::unmatched_response(match, c.request);
    } else {
      // The handler may wait as long as it likes (long poll); it sets its own deadlines.
      c.stream.expires_never();
      std::optional<std::string> failure;
      try {
        response = co_await route->handler(c.request);
      } catch (const std::exception& e) {
        failure = e.what();
      } catch (...) {
        failure = "unknown exception";
      }
      if (failure) {
        if (!stopping_) {
          logger_.error("{}: handler for {} {} failed: {}", options_.name,
                        to_view(bhttp::to_string(c.request.method())), c.request.path(), *failure);
        }
        response = error_response(HttpStatus::internal_server_error, "internal",
                                  fmt::format("the handler for {} {} failed: {}",
                                              to_view(bhttp::to_string(c.request.method())),
                                              c.request.path(), *failure));
      }
      audit(route, c.request.principal(), c.request.remote_address(), c.request.method(),
            c.request.path(), response);
    }

    bool keep_alive = c.request.message().keep_alive() && !stopping_;
    response.version(c.request.message().version());
    response.keep_alive(keep_alive);
    response.prepare_payload();
    c.stream.expires_after(options_.write_timeout);
    auto [write_error, written] = co_await bhttp::async_write(stream, response, kNoThrow);
    if (write_error || !keep_alive) break;
  }
}

template <typename Stream>
asio::awaitable<void> Server::refuse(Connection& c, Stream& stream, Response response) {
  response.version(11);
  response.keep_alive(false);
  response.prepare_payload();
  c.stream.expires_after(options_.write_timeout);
  auto [write_error, written] = co_await bhttp::async_write(stream, response, kNoThrow);
  if (write_error) co_return;
  // The client may still be sending the request we refused; closing a socket with unread input
  // makes the kernel send a reset, which can destroy our response before the client reads it.
  error_code ignored;
  c.stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  c.stream.expires_after(kLingerTime);
  c.buffer.clear();
  for (;;) {
    auto [read_error, read] = co_await stream.async_read_some(c.buffer.prepare(64 << 10), kNoThrow);
    if (read_error) break;
  }
}

}  // namespace wasmq::http
