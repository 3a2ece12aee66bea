#include "kafka/server.h"

#include <array>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/stream.hpp>

#include "common/listen.h"
#include "common/log.h"

namespace wasmq::kafka {

namespace asio = boost::asio;
using asio::awaitable;
using asio::ip::tcp;
using boost::system::error_code;

namespace {
// A request header is at least api_key, api_version, correlation_id and client_id's length.
constexpr uint32_t kMinFrameBytes = 2 + 2 + 4 + 2;
// A frame's buffer grows by at most this much per read, as its bytes arrive.
constexpr size_t kReadChunk = 256 << 10;
}  // namespace

struct Server::Connection {
  explicit Connection(tcp::socket s) : socket(std::move(s)), idle(socket.get_executor()) {}
  tcp::socket socket;
  asio::steady_timer idle;  // closes the socket when a request is not read in time
  Session session;          // what the service knows of this connection
};

Server::Server(ServerOptions options, Service& service)
    : options_(std::move(options)), service_(service), acceptor_(asio::make_strand(io_context_)) {}

Server::~Server() { stop(std::chrono::milliseconds(0)); }

Status Server::start(const std::function<void(uint16_t port)>& bound) {
  if (started_) return {StatusCode::kInternal, "kafka: already started"};
  if (Status s = listen_on(acceptor_, options_.host, options_.port, "kafka"); !s.is_ok()) return s;
  error_code error;
  port_ = acceptor_.local_endpoint(error).port();
  if (bound) bound(port_);
  started_ = true;
  asio::co_spawn(acceptor_.get_executor(), accept_loop(), asio::detached);
  const unsigned threads = std::max(1u, options_.io_threads);
  for (unsigned i = 0; i < threads; ++i) {
    threads_.emplace_back([this] {
      for (;;) {
        try {
          io_context_.run();
          return;
        } catch (const std::exception& e) {
          log::get("kafka").error("kafka I/O thread: {}", e.what());
        }
      }
    });
  }
  log::get("kafka").info("kafka: listening on {}:{} ({} I/O threads)",
                         acceptor_.local_endpoint(error).address().to_string(), port_, threads);
  return Status::ok();
}

void Server::stop(std::chrono::milliseconds grace) {
  if (!started_ || stopped_) {
    stopped_ = true;
    return;
  }
  stopped_ = true;
  stopping_ = true;
  asio::post(acceptor_.get_executor(), [this] {
    error_code ignored;
    acceptor_.close(ignored);
  });
  std::vector<std::shared_ptr<Connection>> open;
  {
    MutexLock lock(connections_mutex_);
    open.assign(connections_.begin(), connections_.end());
  }
  for (auto& c : open) {
    asio::post(c->socket.get_executor(), [c] {
      error_code ignored;
      c->socket.shutdown(tcp::socket::shutdown_receive, ignored);
    });
  }
  open.clear();
  const auto deadline = std::chrono::steady_clock::now() + grace;
  {
    // Woken by the last connection to end (serve()), or the deadline.
    MutexLock lock(connections_mutex_);
    while (!connections_.empty() && connections_drained_.wait_until(connections_mutex_, deadline)) {
    }
  }
  io_context_.stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
  MutexLock lock(connections_mutex_);
  connections_.clear();
}

awaitable<void> Server::accept_loop() {
  for (;;) {
    error_code error;
    tcp::socket socket(asio::make_strand(io_context_));
    co_await acceptor_.async_accept(socket, asio::redirect_error(asio::use_awaitable, error));
    if (stopping_ || !acceptor_.is_open()) co_return;
    if (error) {
      log::get("kafka").warn("kafka: accept failed: {}", error.message());
      asio::steady_timer pause(acceptor_.get_executor(), std::chrono::milliseconds(50));
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, error));
      continue;
    }
    figures_.connections_accepted.fetch_add(1, std::memory_order_relaxed);
    auto connection = std::make_shared<Connection>(std::move(socket));
    {
      MutexLock lock(connections_mutex_);
      if (connections_.size() >= options_.max_connections) {
        log::get("kafka").warn("kafka: {} connections open; closing a new one", connections_.size());
        continue;  // the socket closes with `connection`
      }
      connections_.insert(connection);
    }
    error_code ignored;
    connection->socket.set_option(tcp::no_delay(true), ignored);
    auto remote = connection->socket.remote_endpoint(ignored);
    connection->session.remote = remote.address().to_string() + ":" + std::to_string(remote.port());
    connection->session.address = remote.address().to_string();
    asio::co_spawn(connection->socket.get_executor(), serve(connection), asio::detached);
  }
}

awaitable<void> Server::serve(std::shared_ptr<Connection> c) {
  figures_.connections_open.fetch_add(1, std::memory_order_relaxed);
  try {
    if (!options_.tls) {
      co_await serve_frames(c, c->socket);
    } else {
      asio::ssl::stream<tcp::socket&> tls(c->socket, *options_.tls);
      arm_idle(c);  // a handshake must come in time too
      error_code error;
      co_await tls.async_handshake(asio::ssl::stream_base::server,
                                   asio::redirect_error(asio::use_awaitable, error));
      if (error) {
        figures_.request_errors.fetch_add(1, std::memory_order_relaxed);
        log::get("kafka").debug("kafka: closing {}: TLS handshake failed: {}", c->session.remote,
                                error.message());
      } else {
        co_await serve_frames(c, tls);
      }
    }
  } catch (const std::exception& e) {
    log::get("kafka").warn("kafka: connection {}: {}", c->session.remote, e.what());
  }
  c->idle.cancel();
  error_code ignored;
  c->socket.close(ignored);
  figures_.connections_open.fetch_sub(1, std::memory_order_relaxed);
  MutexLock lock(connections_mutex_);
  connections_.erase(c);
  if (connections_.empty()) connections_drained_.notify_all();
}

void Server::arm_idle(const std::shared_ptr<Connection>& c) {
  // Closes the socket when the next request's first bytes do not come in time. The handler
  // may run after the connection ended (expired just before the cancel): it holds a weak_ptr.
  c->idle.expires_after(options_.idle_timeout);
  c->idle.async_wait([weak = std::weak_ptr<Connection>(c)](error_code e) {
    if (e) return;
    if (auto conn = weak.lock()) {
      error_code ignored;
      conn->socket.close(ignored);
    }
  });
}

template <typename Stream>
awaitable<void> Server::serve_frames(std::shared_ptr<Connection> connection, Stream& stream) {
  Connection& c = *connection;
  auto& logger = log::get("kafka");
  std::vector<uint8_t> frame;
  auto close_with = [&](const std::string& why) {
    figures_.request_errors.fetch_add(1, std::memory_order_relaxed);
    logger.debug("kafka: closing {}: {}", c.session.remote, why);
  };
  for (;;) {
    arm_idle(connection);
    uint8_t size_bytes[4];
    error_code error;
    co_await asio::async_read(stream, asio::buffer(size_bytes),
                              asio::redirect_error(asio::use_awaitable, error));
    if (error) break;  // closed by the client, the idle timer or stop()
    const uint32_t size = (uint32_t{size_bytes[0]} << 24) | (uint32_t{size_bytes[1]} << 16) |
                          (uint32_t{size_bytes[2]} << 8) | uint32_t{size_bytes[3]};
    if (size > options_.max_request_bytes || size < kMinFrameBytes) {
      close_with("frame size " + std::to_string(static_cast<int32_t>(size)) + " outside [" +
                 std::to_string(kMinFrameBytes) + ", " + std::to_string(options_.max_request_bytes) + "]");
      break;
    }
    frame.clear();
    while (frame.size() < size && !error) {
      const size_t before = frame.size();
      frame.resize(before + std::min<size_t>(kReadChunk, size - before));
      co_await asio::async_read(stream, asio::buffer(frame.data() + before, frame.size() - before),
                                asio::redirect_error(asio::use_awaitable, error));
    }
    if (error) {
      close_with("truncated frame: " + error.message());
      break;
    }
    c.idle.cancel();
    figures_.requests.fetch_add(1, std::memory_order_relaxed);
    figures_.bytes_in.fetch_add(size + 4, std::memory_order_relaxed);
    const auto started = std::chrono::steady_clock::now();
    const int16_t api = static_cast<int16_t>((frame[0] << 8) | frame[1]);
    auto response = co_await service_.handle(c.session, frame);
    if (!response.is_ok()) {
      close_with(response.status().message());
      break;
    }
    auto count = [&] {
      if (api < 0 || static_cast<size_t>(api) >= Figures::kApiKeys) return;
      figures_.requests_by_api[static_cast<size_t>(api)].fetch_add(1, std::memory_order_relaxed);
      figures_.nanoseconds_by_api[static_cast<size_t>(api)].fetch_add(
          static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                    std::chrono::steady_clock::now() - started)
                                    .count()),
          std::memory_order_relaxed);
    };
    if (!*response) {  // acks=0
      count();
      continue;
    }
    const std::string& body = **response;
    const uint32_t n = static_cast<uint32_t>(body.size());
    const char prefix[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                            static_cast<char>(n >> 8), static_cast<char>(n)};
    std::array<asio::const_buffer, 2> buffers{asio::buffer(prefix, 4), asio::buffer(body)};
    co_await asio::async_write(stream, buffers, asio::redirect_error(asio::use_awaitable, error));
    if (error) break;
    figures_.bytes_out.fetch_add(body.size() + 4, std::memory_order_relaxed);
    count();
    if (c.session.close_after_response) break;  // a failed authentication
  }
}

}  // namespace wasmq::kafka
