// The Kafka listener: one listening socket, an io_context run by N I/O threads, one coroutine per
// connection on its own strand. Per connection, frames are read and answered one at a time, so
// responses always go back in request order (a client may pipeline requests: they wait in the
// socket's buffer).
//
// With a TLS context every connection starts with a TLS handshake (Kafka's SSL and SASL_SSL);
// one that does not complete it within the idle timeout is closed.
//
// Bad input closes that connection and nothing else: a frame size below a request header's or
// above max_request_bytes, a malformed or truncated request, an API or version not served. It is
// counted (Figures::request_errors) and logged at debug. A frame's buffer grows as its bytes
// arrive, so a client that announces a large frame and sends nothing holds no memory for it.
//
// Threads: start() and stop() from one controlling thread; the Service runs on the I/O threads.
#pragma once

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "kafka/service.h"

namespace wasmq::kafka {

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: an ephemeral port (Server::port())
  unsigned io_threads = 1;
  uint64_t max_request_bytes = 100ull << 20;  // kafka.max_request_bytes
  // A connection with no request for this long is closed (Kafka's connections.max.idle.ms).
  std::chrono::milliseconds idle_timeout{600'000};
  size_t max_connections = 10'000;  // beyond it a new connection is closed at once
  // Null: plain TCP. Otherwise TLS with this context (security.tls_cert, tls_key).
  std::shared_ptr<boost::asio::ssl::context> tls;
};

// What the listener counts (read with relaxed loads; any thread).
struct Figures {
  static constexpr size_t kApiKeys = 64;  // figures per API for keys below this
  std::atomic<uint64_t> connections_accepted{0};
  std::atomic<uint64_t> connections_open{0};
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> request_errors{0};  // frames that closed their connection
  std::atomic<uint64_t> bytes_in{0};
  std::atomic<uint64_t> bytes_out{0};
  // Per API key: requests answered, and the time from a request read to its response written
  // (a long poll's wait included).
  std::array<std::atomic<uint64_t>, kApiKeys> requests_by_api{};
  std::array<std::atomic<uint64_t>, kApiKeys> nanoseconds_by_api{};
};

class Server {
 public:
  // `service` must outlive the server.
  Server(ServerOptions options, Service& service);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens, calls `bound` with the port (so that the Service learns the port to
  // advertise before any connection is served), then starts the I/O threads. kIo naming the
  // address when it cannot bind.
  Status start(const std::function<void(uint16_t port)>& bound = {});
  uint16_t port() const { return port_; }
  // Closes the listener and every connection, lets the I/O threads finish what they were doing
  // for up to `grace`, then stops them. Idempotent.
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(5));

  const Figures& figures() const { return figures_; }

 private:
  struct Connection;
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(std::shared_ptr<Connection> connection);
  // Reads frames from `stream` (the socket, or TLS over it) and answers them until the
  // connection ends.
  template <typename Stream>
  boost::asio::awaitable<void> serve_frames(std::shared_ptr<Connection> connection, Stream& stream);
  // (Re)starts the connection's idle timer: the socket closes when it runs out.
  void arm_idle(const std::shared_ptr<Connection>& connection);

  const ServerOptions options_;
  Service& service_;
  boost::asio::io_context io_context_;
  boost::asio::ip::tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopping_{false};
  bool started_ = false;
  bool stopped_ = false;
  Figures figures_;

  Mutex connections_mutex_;
  std::unordered_set<std::shared_ptr<Connection>> connections_ GUARDED_BY(connections_mutex_);
  CondVar connections_drained_;  // notified when the last connection ends
};

}  // namespace wasmq::kafka
