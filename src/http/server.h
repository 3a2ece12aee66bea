// An HTTP/1.1 server on Boost.Beast with C++20 coroutines: one listening socket, an io_context
// run by N I/O threads, one coroutine per connection on its own strand.
//
// Per connection, requests are served one at a time and in order (keep-alive; pipelined requests
// wait in the connection's buffer), so responses always come back in request order. For each
// request the server reads the header (limit: max_header_bytes, else 431), matches the route,
// checks the declared body size against the route's limit (else 413 and the connection closes),
// answers `Expect: 100-continue`, reads the body straight into the request's std::string, runs
// the handler, and writes the response. Malformed HTTP gets a 400 and the connection closes.
// Every error response has the JSON error shape.
//
// Timeouts: idle_timeout while waiting for (and reading) a request header, body_timeout for
// reading a body, write_timeout for writing a response; none while a handler runs (a long poll
// sets its own).
//
// Access control (options.access): once the header is read and the route matched, the request is
// checked against the route's right (RouteOptions::right) before its body is read; a refused
// request gets the 401/403 and never reaches the handler (when it has a body still unread, the
// connection closes after the response). The handler sees the caller as Request::principal().
// Audited routes (RouteOptions::audited) have every attempt, admitted or refused, recorded in
// options.audit with the response's status.
//
// TLS (options.tls): every connection starts with a TLS handshake, bounded by
// handshake_timeout; a client that does not complete it (plain HTTP, say) is dropped. Without
// TLS, connections are served exactly as before: the serving code is a template on the stream.
//
// Connections: at most options.max_connections are served at once; the next one gets a 503 and
// is closed. When accept() fails for want of file descriptors (EMFILE, ENFILE), the server
// releases a descriptor it keeps in reserve, accepts the waiting connection, closes it and takes
// the reserve back, so the backlog never fills with clients nobody answers; the failure is
// logged once per interval with a count, not once per attempt.
//
// Stopping: stop() closes the listener, closes connections waiting for a request, lets requests
// in flight finish (their responses carry `Connection: close`) until the deadline, then cancels
// what is left (a handler awaiting a timer or a Handoff is resumed with operation_aborted /
// "cancelled") and joins the I/O threads.
//
// Threads: start() and stop() from one controlling thread, never from an I/O thread. Handlers
// run on the I/O threads; a connection's handler always runs on that connection's strand.
#pragma once

#include <spdlog/logger.h>

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "http/access.h"
#include "http/audit_log.h"
#include "http/router.h"

namespace wasmq::http {

struct ServerOptions {
  std::string host = "127.0.0.1";  // an address, or a name resolved once at start()
  uint16_t port = 0;               // 0: an ephemeral port (see Server::port())
  unsigned io_threads = 1;         // 0: one per hardware thread
  uint64_t max_body_bytes = 64ull << 20;  // per-route override: RouteOptions::max_body_bytes
  uint32_t max_header_bytes = 16 << 10;
  std::chrono::milliseconds idle_timeout{60'000};
  std::chrono::milliseconds body_timeout{120'000};
  std::chrono::milliseconds write_timeout{60'000};
  std::string name = "http";  // in log lines, e.g. "data-api"
  // Access control; null: every request is admitted anonymously.
  std::shared_ptr<const AccessControl> access;
  // Where audited routes' attempts are recorded; null: nowhere.
  std::shared_ptr<AuditLog> audit;
  // TLS for every connection (tls.h: server_tls_context); null: plain HTTP.
  std::shared_ptr<boost::asio::ssl::context> tls;
  std::chrono::milliseconds handshake_timeout{10'000};
  // Connections served at once; 0: no limit. A connection beyond it is answered at once with a
  // 503 (`Retry-After`, `Connection: close`; over TLS it is just closed) and closed, so that idle
  // sockets cannot use up the process's file descriptors.
  size_t max_connections = 0;
};

// Raises the soft RLIMIT_NOFILE to the hard limit and returns the new soft limit (the old one
// when it cannot be raised). Call once at start, before the listeners open.
uint64_t raise_open_file_limit();

class Server {
 public:
  // The router is moved in and is read-only from then on.
  Server(ServerOptions options, Router router);
  // Stops (with a zero grace period) if still running.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens on host:port and starts the I/O threads. kIo naming the address when the
  // address cannot be resolved or bound; kInternal when called twice.
  Status start();

  // The bound port (the ephemeral one when options.port was 0); 0 before start().
  uint16_t port() const { return port_; }

  // Stops gracefully (see above) and returns once every I/O thread has ended. Idempotent.
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(10));

  // The server's executor, for work that must run on the I/O threads (valid until the Server is
  // destroyed).
  boost::asio::any_io_executor executor() { return io_context_.get_executor(); }

 private:
  struct Connection;

  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(std::shared_ptr<Connection> connection);
  // Serves requests on `stream` (the connection's TCP stream, or a TLS stream over it) until
  // the client goes away, keep-alive ends or the server stops.
  template <typename Stream>
  boost::asio::awaitable<void> serve_requests(Connection& connection, Stream& stream);
  // Sends an error response with `Connection: close`, then drains what the client still sends
  // for a moment, so that closing does not reset the connection before the client reads it.
  template <typename Stream>
  boost::asio::awaitable<void> refuse(Connection& connection, Stream& stream, Response response);
  // Records an attempt on an audited route, when there is an audit log.
  void audit(const Route* route, const Principal* principal, std::string_view remote, Verb method,
             std::string_view path, const Response& response);
  void run_io_thread();
  // Answers a connection over max_connections, or accepted with the reserve descriptor, with a
  // 503 written without waiting (it fits the new socket's send buffer), and closes it.
  // `over_limit`: turned away for max_connections, else for want of descriptors.
  void turn_away(boost::asio::ip::tcp::socket& socket, bool over_limit);
  // After an accept failure: frees the reserve descriptor to accept and close one waiting
  // connection, takes the reserve back, and logs (rate-limited).
  void on_accept_failure(const boost::system::error_code& error);
  size_t connection_count();
  bool register_connection(const std::shared_ptr<Connection>& connection);
  void unregister_connection(const std::shared_ptr<Connection>& connection);
  // Waits until no connection is left or `deadline` passes; true when none is left.
  bool wait_for_connections(std::chrono::steady_clock::time_point deadline);

  const ServerOptions options_;
  const Router router_;
  spdlog::logger& logger_;  // the "http" log target

  boost::asio::io_context io_context_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  boost::asio::ip::tcp::acceptor acceptor_;  // on its own strand
  uint16_t port_ = 0;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopping_{false};
  Mutex lifecycle_mutex_;  // serialises start() and stop()
  bool started_ GUARDED_BY(lifecycle_mutex_) = false;
  bool stopped_ GUARDED_BY(lifecycle_mutex_) = false;

  Mutex connections_mutex_;
  CondVar connections_drained_;
  std::unordered_set<std::shared_ptr<Connection>> connections_ GUARDED_BY(connections_mutex_);

  // Used by accept_loop only (the acceptor's strand).
  int reserve_fd_ = -1;  // /dev/null, given up to accept-and-close when descriptors run out
  std::chrono::steady_clock::time_point accept_log_until_{};
  uint64_t accept_failures_unlogged_ = 0;
  uint64_t turned_away_unlogged_ = 0;
  std::chrono::steady_clock::time_point turned_away_log_until_{};
};

}  // namespace wasmq::http
