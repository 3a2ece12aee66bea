// The server on real sockets (127.0.0.1, ephemeral ports), driven by a small Beast client.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include "common/handoff.h"
#include "http/json_response.h"
#include "http/server.h"
#include "http_test_client.h"

namespace wasmq::http {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;
using testing::ClientResponse;
using testing::HttpTestClient;

json::value body_json(const ClientResponse& response) { return json::parse(response.body()); }

std::string error_code_of(const ClientResponse& response) {
  return json::value_to<std::string>(body_json(response).at("error").at("code"));
}

// Sleeps `ms` on the handler's executor without blocking the I/O thread.
asio::awaitable<void> pause_for(std::chrono::milliseconds ms) {
  asio::steady_timer timer(co_await asio::this_coro::executor, ms);
  co_await timer.async_wait(asio::use_awaitable);
}

class ServerTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kDefaultBodyLimit = 1024;
  static constexpr uint64_t kUploadBodyLimit = 4096;

  static ServerOptions small_limits() {
    ServerOptions options;
    options.port = 0;
    options.io_threads = 2;
    options.max_body_bytes = kDefaultBodyLimit;
    options.name = "test-api";
    return options;
  }

  void start(ServerOptions options = small_limits()) {
    server_ = std::make_unique<Server>(options, make_router());
    Status started = server_->start();
    ASSERT_TRUE(started.is_ok()) << started.message();
    ASSERT_NE(server_->port(), 0);
  }

  void TearDown() override {
    if (server_) server_->stop(1s);
    std::lock_guard lock(workers_mutex_);
    for (auto& worker : workers_) worker.join();
  }

  uint16_t port() const { return server_->port(); }

  // Runs `work` on a thread of its own, as an ETL worker would.
  void run_on_worker(std::function<void()> work) {
    std::lock_guard lock(workers_mutex_);
    workers_.emplace_back(std::move(work));
  }

  Router make_router() {
    Router router;
    auto add = [&](Verb method, std::string_view pattern, Handler handler,
                   RouteOptions options = {}) {
      Status added = router.add(method, pattern, std::move(handler), options);
      EXPECT_TRUE(added.is_ok()) << added.message();
    };
    add(Verb::get, "/api/v1/topics/{topic}/messages",
        [](Request& request) -> asio::awaitable<Response> {
          json::object query;
          for (const auto& [name, value] : request.query()) query[name] = value;
          auto offset = request.query_int64("offset", 0);
          if (!offset.is_ok()) co_return status_response(offset.status(), "offset");
          co_return json_response(HttpStatus::ok, {{"topic", request.path_param("topic")},
                                                   {"offset", *offset},
                                                   {"query", std::move(query)}});
        });
    add(Verb::post, "/api/v1/topics/{topic}/messages",
        [](Request& request) -> asio::awaitable<Response> {
          JsonBody body = parse_json_body(request.body());
          if (!body.is_ok()) co_return std::move(*body.error);
          size_t count = body.value.is_array() ? body.value.as_array().size() : 1;
          co_return json_response(HttpStatus::ok, {{"topic", request.path_param("topic")},
                                                   {"count", count}});
        });
    add(
        Verb::post, "/api/v1/etl/modules",
        [](Request& request) -> asio::awaitable<Response> {
          co_return json_response(HttpStatus::created, {{"size_bytes", request.body().size()}});
        },
        RouteOptions{.max_body_bytes = kUploadBodyLimit});
    add(Verb::get, "/fast", [](Request&) -> asio::awaitable<Response> {
      co_return json_response(HttpStatus::ok, {{"ok", true}});
    });
    add(Verb::get, "/slow", [this](Request& request) -> asio::awaitable<Response> {
      auto ms = request.query_int64("ms", 100);
      ++slow_started_;
      co_await pause_for(std::chrono::milliseconds(*ms));
      co_return json_response(HttpStatus::ok, {{"slept_ms", *ms}});
    });
    add(Verb::get, "/forever", [this](Request&) -> asio::awaitable<Response> {
      ++slow_started_;
      try {
        co_await pause_for(1h);
      } catch (const boost::system::system_error&) {
        ++cancelled_;
        throw;
      }
      co_return json_response(HttpStatus::ok, {});
    });
    add(Verb::get, "/worker", [this](Request&) -> asio::awaitable<Response> {
      auto [sender, receiver] = make_handoff<std::thread::id>();
      run_on_worker([sender = sender] {
        std::this_thread::sleep_for(20ms);
        sender.send(std::this_thread::get_id());
      });
      Result<std::thread::id> worker = co_await receiver.receive();
      if (!worker.is_ok()) co_return status_response(worker.status());
      bool resumed_on_worker = *worker == std::this_thread::get_id();
      co_return json_response(HttpStatus::ok, {{"resumed_on_worker", resumed_on_worker}});
    });
    add(Verb::get, "/worker/abandons", [this](Request&) -> asio::awaitable<Response> {
      auto [sender, receiver] = make_handoff<int>();
      run_on_worker([sender = std::move(sender)] { std::this_thread::sleep_for(10ms); });
      Result<int> outcome = co_await receiver.receive();
      co_return outcome.is_ok() ? json_response(HttpStatus::ok, {{"value", *outcome}})
                                : status_response(outcome.status());
    });
    add(Verb::get, "/worker/late", [this](Request&) -> asio::awaitable<Response> {
      auto [sender, receiver] = make_handoff<int>();
      Result<int> first = co_await receiver.receive_for(30ms);
      run_on_worker([sender = sender] { sender.send(7); });
      Result<int> second = co_await receiver.receive_for(5s);
      co_return json_response(
          HttpStatus::ok,
          {{"first", first.is_ok() ? "value" : status_code_name(first.status().code())},
           {"second", second.is_ok() ? *second : -1}});
    });
    add(Verb::get, "/worker/never", [this](Request&) -> asio::awaitable<Response> {
      auto [sender, receiver] = make_handoff<int>();
      {
        std::lock_guard lock(workers_mutex_);
        kept_senders_.push_back(sender);  // never sent, never abandoned
      }
      ++slow_started_;
      Result<int> outcome = co_await receiver.receive();
      if (!outcome.is_ok()) ++cancelled_;
      co_return status_response(outcome.is_ok() ? Status(StatusCode::kInternal, "unexpected")
                                                : outcome.status());
    });
    add(Verb::get, "/throws", [](Request&) -> asio::awaitable<Response> {
      throw std::runtime_error("boom");
      co_return json_response(HttpStatus::ok, {});
    });
    return router;
  }

  std::unique_ptr<Server> server_;
  std::atomic<int> slow_started_{0};
  std::atomic<int> cancelled_{0};
  std::mutex workers_mutex_;
  std::vector<std::thread> workers_;             // guarded by workers_mutex_
  std::vector<HandoffSender<int>> kept_senders_;  // guarded by workers_mutex_
};

TEST_F(ServerTest, ListensOnAnEphemeralPortAndRefusesABusyOne) {
  start();
  ServerOptions options = small_limits();
  options.port = port();
  Server second(options, Router());
  Status started = second.start();
  EXPECT_EQ(started.code(), StatusCode::kIo);
  EXPECT_NE(started.message().find(std::to_string(port())), std::string::npos) << started.message();
}

TEST_F(ServerTest, RoutesPathAndQueryParameters) {
  start();
  HttpTestClient client(port());
  ClientResponse response = client.request(
      Verb::get, "/api/v1/topics/raw-events/messages?offset=41&max_messages=10&group=a%20b+c");
  ASSERT_TRUE(client.ok()) << client.error().message();
  EXPECT_EQ(response.result(), HttpStatus::ok);
  EXPECT_EQ(response[Field::content_type], "application/json");
  EXPECT_EQ(body_json(response), json::parse(R"({"topic": "raw-events", "offset": 41,
      "query": {"offset": "41", "max_messages": "10", "group": "a b c"}})"));
}

TEST_F(ServerTest, BadQueryParameterIs400NamingIt) {
  start();
  HttpTestClient client(port());
  ClientResponse bad_escape = client.request(Verb::get, "/api/v1/topics/t/messages?offset=%zz");
  EXPECT_EQ(bad_escape.result(), HttpStatus::bad_request);
  EXPECT_EQ(error_code_of(bad_escape), "invalid_query");

  ClientResponse not_integer = client.request(Verb::get, "/api/v1/topics/t/messages?offset=x");
  EXPECT_EQ(not_integer.result(), HttpStatus::bad_request);
  EXPECT_EQ(body_json(not_integer), json::parse(R"({"error": {"code": "invalid_argument",
      "message": "query parameter \"offset\" must be an integer, got \"x\"", "field": "offset"}})"));
}

TEST_F(ServerTest, UnknownPathIs404AndOtherMethodIs405WithAllow) {
  start();
  HttpTestClient client(port());
  ClientResponse missing = client.request(Verb::get, "/api/v1/nothing");
  EXPECT_EQ(missing.result(), HttpStatus::not_found);
  EXPECT_EQ(body_json(missing), json::parse(R"({"error": {"code": "not_found",
      "message": "no route for GET /api/v1/nothing"}})"));

  ClientResponse wrong = client.request(Verb::delete_, "/api/v1/topics/t/messages");
  EXPECT_EQ(wrong.result(), HttpStatus::method_not_allowed);
  EXPECT_EQ(wrong[Field::allow], "GET, POST");
  EXPECT_EQ(error_code_of(wrong), "method_not_allowed");
  // Both keep the connection open.
  EXPECT_EQ(client.request(Verb::get, "/fast").result(), HttpStatus::ok);
}

TEST_F(ServerTest, MalformedJsonIs400WithParserErrorAndOffset) {
  start();
  HttpTestClient client(port());
  ClientResponse response =
      client.request(Verb::post, "/api/v1/topics/t/messages", R"([{"value": "a"},, ])");
  EXPECT_EQ(response.result(), HttpStatus::bad_request);
  EXPECT_EQ(body_json(response), json::parse(R"({"error": {"code": "invalid_json",
      "message": "request body is not valid JSON: syntax error at byte 16"}})"));
  ClientResponse good =
      client.request(Verb::post, "/api/v1/topics/t/messages", R"([{"value": "a"}, {"value": "b"}])");
  EXPECT_EQ(good.result(), HttpStatus::ok);
  EXPECT_EQ(body_json(good).at("count"), 2);
}

TEST_F(ServerTest, BodyOverTheLimitIs413AndTheServerStaysUp) {
  start();
  {
    // Only the header is sent: the declared length alone is refused, before any body is read.
    HttpTestClient client(port());
    client.send_raw(
        "POST /api/v1/topics/t/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n");
    ClientResponse response = client.read_response();
    ASSERT_TRUE(client.ok()) << client.error().message();
    EXPECT_EQ(response.result(), HttpStatus::payload_too_large);
    EXPECT_FALSE(response.keep_alive());
    EXPECT_EQ(body_json(response), json::parse(R"({"error": {"code": "payload_too_large",
        "message": "request body of 1000000000 bytes exceeds the limit of 1024 bytes for POST /api/v1/topics/t/messages"}})"));
    EXPECT_TRUE(client.closed_by_server(3s));
  }
  {
    // A whole body just over the limit, sent before reading.
    HttpTestClient client(port());
    ClientResponse response = client.request(Verb::post, "/api/v1/topics/t/messages",
                                             std::string(kDefaultBodyLimit + 1, ' '));
    EXPECT_EQ(response.result(), HttpStatus::payload_too_large);
  }
  HttpTestClient client(port());
  EXPECT_EQ(client.request(Verb::post, "/api/v1/topics/t/messages",
                           "[" + std::string(kDefaultBodyLimit - 2, ' ') + "]")
                .result(),
            HttpStatus::ok);
}

TEST_F(ServerTest, ChunkedBodyOverTheLimitIs413) {
  start();
  HttpTestClient client(port());
  std::string chunk(600, ' ');
  std::ostringstream request;
  request << "POST /api/v1/topics/t/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
          << std::hex << chunk.size() << "\r\n" << chunk << "\r\n"
          << chunk.size() << "\r\n" << chunk << "\r\n0\r\n\r\n";
  client.send_raw(request.str());
  ClientResponse response = client.read_response();
  ASSERT_TRUE(client.ok()) << client.error().message();
  EXPECT_EQ(response.result(), HttpStatus::payload_too_large);
  EXPECT_EQ(body_json(response), json::parse(R"({"error": {"code": "payload_too_large",
      "message": "request body exceeds the limit of 1024 bytes for POST /api/v1/topics/t/messages"}})"));
}

TEST_F(ServerTest, RouteOverridesTheBodyLimit) {
  start();
  HttpTestClient client(port());
  ClientResponse upload = client.request(Verb::post, "/api/v1/etl/modules",
                                         std::string(kUploadBodyLimit, 'w'),
                                         {{"Content-Type", "application/octet-stream"}});
  EXPECT_EQ(upload.result(), HttpStatus::created);
  EXPECT_EQ(body_json(upload).at("size_bytes"), kUploadBodyLimit);

  ClientResponse too_big =
      client.request(Verb::post, "/api/v1/etl/modules", std::string(kUploadBodyLimit + 1, 'w'));
  EXPECT_EQ(too_big.result(), HttpStatus::payload_too_large);
}

TEST_F(ServerTest, AnswersExpectContinueOrRefusesBeforeTheBody) {
  start();
  {
    HttpTestClient client(port());
    client.send_raw(
        "POST /api/v1/etl/modules HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
        "Content-Length: 5\r\n\r\n");
    EXPECT_EQ(client.read_interim_response(), "HTTP/1.1 100 Continue\r\n\r\n");
    client.send_raw("hello");
    ClientResponse response = client.read_response();
    EXPECT_EQ(response.result(), HttpStatus::created);
    EXPECT_EQ(body_json(response).at("size_bytes"), 5);
  }
  HttpTestClient client(port());
  client.send_raw(
      "POST /api/v1/etl/modules HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
      "Content-Length: 52428800\r\n\r\n");
  ClientResponse response = client.read_response();
  EXPECT_EQ(response.result(), HttpStatus::payload_too_large);
}

TEST_F(ServerTest, HeaderOverTheLimitIs431) {
  start();
  HttpTestClient client(port());
  ClientResponse response = client.request(Verb::get, "/fast", "", {{"X-Big", std::string(20000, 'h')}});
  ASSERT_TRUE(client.ok()) << client.error().message();
  EXPECT_EQ(response.result(), HttpStatus::request_header_fields_too_large);
  EXPECT_EQ(error_code_of(response), "header_too_large");
}

TEST_F(ServerTest, KeepAliveServesManyRequestsOnOneConnection) {
  start();
  HttpTestClient client(port());
  for (int i = 0; i < 50; ++i) {
    ClientResponse response =
        client.request(Verb::get, "/api/v1/topics/t" + std::to_string(i) + "/messages");
    ASSERT_TRUE(client.ok()) << i << ": " << client.error().message();
    EXPECT_TRUE(response.keep_alive());
    EXPECT_EQ(body_json(response).at("topic").as_string(), "t" + std::to_string(i));
  }
}

TEST_F(ServerTest, PipelinedRequestsAreAnsweredInOrder) {
  start();
  HttpTestClient client(port());
  std::string requests;
  // The first one waits on a timer: the later ones must still be answered after it.
  requests += "GET /slow?ms=100 HTTP/1.1\r\nHost: x\r\n\r\n";
  for (int i = 0; i < 5; ++i) {
    requests += "GET /api/v1/topics/p" + std::to_string(i) + "/messages HTTP/1.1\r\nHost: x\r\n\r\n";
  }
  client.send_raw(requests);
  EXPECT_EQ(body_json(client.read_response()).at("slept_ms"), 100);
  for (int i = 0; i < 5; ++i) {
    ClientResponse response = client.read_response();
    ASSERT_TRUE(client.ok()) << client.error().message();
    EXPECT_EQ(body_json(response).at("topic").as_string(), "p" + std::to_string(i));
  }
}

TEST_F(ServerTest, ServesConnectionsInParallel) {
  start();
  constexpr int kClients = 8;
  constexpr int kRequests = 100;
  std::atomic<int> succeeded{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      HttpTestClient client(port());
      for (int i = 0; i < kRequests; ++i) {
        std::string topic = fmt::format("c{}-{}", c, i);
        ClientResponse response =
            client.request(Verb::post, fmt::format("/api/v1/topics/{}/messages", topic),
                           R"([{"value": "x"}])");
        if (client.ok() && response.result() == HttpStatus::ok &&
            body_json(response).at("topic").as_string() == topic) {
          ++succeeded;
        }
      }
    });
  }
  for (auto& client : clients) client.join();
  EXPECT_EQ(succeeded, kClients * kRequests);
}

TEST_F(ServerTest, LongPollDoesNotHoldUpOtherRequests) {
  ServerOptions options = small_limits();
  options.io_threads = 1;  // one thread: a blocking handler would stall everything
  start(options);
  auto long_poll = std::async(std::launch::async, [&] {
    HttpTestClient client(port());
    return client.request(Verb::get, "/slow?ms=600");
  });
  while (slow_started_ == 0) std::this_thread::sleep_for(1ms);
  auto begin = std::chrono::steady_clock::now();
  HttpTestClient client(port());
  for (int i = 0; i < 20; ++i) EXPECT_EQ(client.request(Verb::get, "/fast").result(), HttpStatus::ok);
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 400ms);
  EXPECT_EQ(long_poll.wait_for(0ms), std::future_status::timeout);
  EXPECT_EQ(body_json(long_poll.get()).at("slept_ms"), 600);
}

TEST_F(ServerTest, HandlerAwaitsAResultCompletedOnAnotherThread) {
  start();
  HttpTestClient client(port());
  for (int i = 0; i < 10; ++i) {
    ClientResponse response = client.request(Verb::get, "/worker");
    ASSERT_EQ(response.result(), HttpStatus::ok);
    EXPECT_EQ(body_json(response).at("resumed_on_worker"), false);
  }
}

TEST_F(ServerTest, AbandonedHandoffWakesTheHandlerWithAnError) {
  start();
  HttpTestClient client(port());
  ClientResponse response = client.request(Verb::get, "/worker/abandons");
  EXPECT_EQ(response.result(), HttpStatus::internal_server_error);
  EXPECT_EQ(body_json(response), json::parse(R"({"error": {"code": "internal",
      "message": "abandoned: no result was sent"}})"));
}

TEST_F(ServerTest, HandoffReceiveTimesOutAndCanBeReceivedLater) {
  start();
  HttpTestClient client(port());
  ClientResponse response = client.request(Verb::get, "/worker/late");
  ASSERT_EQ(response.result(), HttpStatus::ok);
  EXPECT_EQ(body_json(response), json::parse(R"({"first": "timeout", "second": 7})"));
}

TEST_F(ServerTest, HandlerExceptionIs500AndTheConnectionGoesOn) {
  start();
  HttpTestClient client(port());
  ClientResponse response = client.request(Verb::get, "/throws");
  EXPECT_EQ(response.result(), HttpStatus::internal_server_error);
  EXPECT_EQ(body_json(response), json::parse(R"({"error": {"code": "internal",
      "message": "the handler for GET /throws failed: boom"}})"));
  EXPECT_EQ(client.request(Verb::get, "/fast").result(), HttpStatus::ok);
}

TEST_F(ServerTest, Http10RequestWithoutKeepAliveIsAnsweredThenClosed) {
  start();
  HttpTestClient client(port());
  client.send_raw("GET /fast HTTP/1.0\r\n\r\n");
  ClientResponse response = client.read_response();
  ASSERT_TRUE(client.ok()) << client.error().message();
  EXPECT_EQ(response.result(), HttpStatus::ok);
  EXPECT_EQ(response.version(), 10);
  EXPECT_TRUE(client.closed_by_server(3s));
}

TEST_F(ServerTest, GarbageBytesGet400AndCloseWithoutHarmingTheServer) {
  start();
  {
    HttpTestClient client(port());
    const char tls_hello[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n";
    client.send_raw(std::string_view(tls_hello, sizeof(tls_hello) - 1));
    ClientResponse response = client.read_response();
    ASSERT_TRUE(client.ok()) << client.error().message();
    EXPECT_EQ(response.result(), HttpStatus::bad_request);
    EXPECT_EQ(error_code_of(response), "bad_request");
    EXPECT_TRUE(client.closed_by_server(3s));
  }
  {
    HttpTestClient client(port());
    client.send_raw("GET /fast HTTP/9.9\r\n\r\n");
    EXPECT_EQ(client.read_response().result(), HttpStatus::bad_request);
  }
  HttpTestClient client(port());
  EXPECT_EQ(client.request(Verb::get, "/fast").result(), HttpStatus::ok);
}

TEST_F(ServerTest, UnfinishedRequestThenDisconnectLeavesTheServerUnaffected) {
  start();
  for (const char* partial : {"GET /fa", "POST /api/v1/topics/t/messages HTTP/1.1\r\nHost: x\r\n",
                              "POST /api/v1/topics/t/messages HTTP/1.1\r\nHost: x\r\n"
                              "Content-Length: 100\r\n\r\n[{\"value\""}) {
    HttpTestClient client(port());
    client.send_raw(partial);
    client.close();
  }
  HttpTestClient client(port());
  EXPECT_EQ(client.request(Verb::get, "/fast").result(), HttpStatus::ok);
}

TEST_F(ServerTest, IdleConnectionIsClosedAfterTheIdleTimeout) {
  ServerOptions options = small_limits();
  options.idle_timeout = 200ms;
  start(options);
  HttpTestClient client(port());
  EXPECT_EQ(client.request(Verb::get, "/fast").result(), HttpStatus::ok);
  auto begin = std::chrono::steady_clock::now();
  EXPECT_TRUE(client.closed_by_server(5s));
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 2s);
}

TEST_F(ServerTest, GracefulStopFinishesTheRequestInFlightAndClosesIdleConnections) {
  start();
  HttpTestClient idle(port());
  ASSERT_EQ(idle.request(Verb::get, "/fast").result(), HttpStatus::ok);
  auto in_flight = std::async(std::launch::async, [&] {
    HttpTestClient client(port());
    return client.request(Verb::get, "/slow?ms=300");
  });
  while (slow_started_ == 0) std::this_thread::sleep_for(1ms);
  uint16_t stopped_port = port();

  auto begin = std::chrono::steady_clock::now();
  server_->stop(5s);
  auto took = std::chrono::steady_clock::now() - begin;
  EXPECT_LT(took, 2s);

  ClientResponse response = in_flight.get();
  EXPECT_EQ(response.result(), HttpStatus::ok);
  EXPECT_FALSE(response.keep_alive());
  EXPECT_EQ(body_json(response).at("slept_ms"), 300);
  EXPECT_TRUE(idle.closed_by_server(1s));
  HttpTestClient late(stopped_port, 1s);
  EXPECT_FALSE(late.ok());
}

TEST_F(ServerTest, StopCancelsHandlersStillRunningAtTheDeadline) {
  start();
  auto timer_wait = std::async(std::launch::async, [&] {
    HttpTestClient client(port());
    return client.request(Verb::get, "/forever");
  });
  auto handoff_wait = std::async(std::launch::async, [&] {
    HttpTestClient client(port());
    return client.request(Verb::get, "/worker/never");
  });
  while (slow_started_ < 2) std::this_thread::sleep_for(1ms);
  auto begin = std::chrono::steady_clock::now();
  server_->stop(100ms);
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 2s);
  EXPECT_EQ(cancelled_, 2);
  timer_wait.get();  // the connection was closed: no response to check
  handoff_wait.get();
}

// RFC 9112 §6.3: a Transfer-Encoding that does not end in chunked, or names a coding we do not
// decode, cannot be framed. Read as an empty body, its bytes would run as a request of their own
// (request smuggling); it gets one 400 and the connection is closed.
TEST_F(ServerTest, TransferEncodingNotEndingInChunkedIs400AndCloses) {
  start();
  const std::string smuggled =
      "POST /api/v1/topics/smuggled/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
  for (std::string coding :
       {"identity", "gzip", "xchunked", "chunked, identity", "chunked, chunked", "gzip, chunked"}) {
    SCOPED_TRACE(coding);
    HttpTestClient client(port());
    client.send_raw("POST /api/v1/topics/t/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " +
                    coding + "\r\n\r\n" + smuggled);
    ClientResponse response = client.read_response();
    ASSERT_TRUE(client.ok()) << client.error().message();
    EXPECT_EQ(response.result(), HttpStatus::bad_request);
    EXPECT_EQ(error_code_of(response), "bad_request");
    EXPECT_NE(response.body().find("Transfer-Encoding"), std::string::npos) << response.body();
    EXPECT_FALSE(response.keep_alive());
    // No second response: the smuggled request was never served.
    EXPECT_TRUE(client.closed_by_server(3s));
  }
  // Two Transfer-Encoding fields are one list: "chunked" then "identity" ends in identity.
  HttpTestClient split(port());
  split.send_raw(
      "POST /api/v1/topics/t/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
      "chunked\r\nTransfer-Encoding: identity\r\n\r\n" +
      smuggled);
  EXPECT_EQ(split.read_response().result(), HttpStatus::bad_request);
  EXPECT_TRUE(split.closed_by_server(3s));
  // Plain chunked still works, on a kept-alive connection.
  HttpTestClient chunked(port());
  chunked.send_raw(
      "POST /api/v1/topics/t/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
      "Chunked\r\n\r\n2\r\n[]\r\n0\r\n\r\n");
  ClientResponse ok = chunked.read_response();
  ASSERT_TRUE(chunked.ok()) << chunked.error().message();
  EXPECT_EQ(ok.result(), HttpStatus::ok);
  EXPECT_EQ(chunked.request(Verb::get, "/fast").result(), HttpStatus::ok);
}

// Idle sockets beyond max_connections are answered 503 and closed at once, and the server is
// reachable again as soon as one of the connections it serves ends.
TEST_F(ServerTest, ConnectionsOverTheLimitGet503AndClose) {
  ServerOptions options = small_limits();
  options.max_connections = 3;
  start(options);
  std::vector<std::unique_ptr<HttpTestClient>> idle;
  for (int i = 0; i < 3; ++i) {
    idle.push_back(std::make_unique<HttpTestClient>(port()));
    // A request answered proves the connection is registered before the next one comes.
    ASSERT_EQ(idle.back()->request(Verb::get, "/fast").result(), HttpStatus::ok);
  }
  HttpTestClient refused(port());
  ASSERT_TRUE(refused.ok()) << refused.error().message();
  ClientResponse response = refused.read_response();  // sent without waiting for a request
  ASSERT_TRUE(refused.ok()) << refused.error().message();
  EXPECT_EQ(response.result(), HttpStatus::service_unavailable);
  EXPECT_EQ(response[Field::retry_after], "1");
  EXPECT_FALSE(response.keep_alive());
  EXPECT_EQ(error_code_of(response), "too_many_connections");
  EXPECT_NE(response.body().find("limit of 3 open connections"), std::string::npos);
  EXPECT_TRUE(refused.closed_by_server(3s));

  idle.front()->close();
  // The server notices the close on its own time: retry until the freed place is seen.
  ClientResponse served;
  for (int attempt = 0; attempt < 100; ++attempt) {
    HttpTestClient again(port());
    served = again.request(Verb::get, "/fast");
    if (again.ok() && served.result() == HttpStatus::ok) break;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(served.result(), HttpStatus::ok);
  // The connections kept are served throughout.
  EXPECT_EQ(idle.back()->request(Verb::get, "/fast").result(), HttpStatus::ok);
}

}  // namespace
}  // namespace wasmq::http
