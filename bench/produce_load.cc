// wasmq-load: a produce load generator of our own, for `make bench`.
//
// Opens --connections keep-alive HTTP/1.1 connections to the data API and, on each, sends
// produce requests back to back (one in flight per connection) for --seconds: each request a
// {"messages": [...]} of --batch messages with --value-bytes values. Prints one JSON line:
// messages/s, requests/s, and request latency percentiles (from send to full response).
// Responses other than 200 with every result "stored" count as errors.
//
// --json-values 1 sends JSON sensor readings (with a content-type header); --distinct N makes
// them vary: 0 (with --json-values) gives every message its own sensor id and reading, N > 0
// cycles through N different messages. Every run numbers its messages from its own random start
// (or --first N), so that "every message different" holds across runs too: a broker that ran the
// same load before (a result cache) has not seen them. --rate R paces the requests to R messages/s in total
// (latency then counts from when a request was due, so that a stalled broker is not hidden).
#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string host = "127.0.0.1";
  std::string port = "9092";
  std::string topic = "bench";
  int connections = 8;
  int batch = 100;
  int value_bytes = 100;
  double seconds = 5;
  int threads = 1;
  // When set, each value is a JSON document of about value_bytes (sensor readings, so that
  // conditional rules on payload fields have something to read), escaped into the request.
  bool json_values = false;
  // With json_values: -1 every message alike; 0 every message different; N > 0 N different
  // messages, in turn.
  long distinct = -1;
  double rate = 0;  // messages/s over all connections; 0: as fast as replies come
  // The number of the first message; each connection numbers from first + index * 2^40.
  uint64_t first = 0;
};

struct Stats {
  std::vector<double> latencies_us;
  uint64_t messages = 0;
  uint64_t errors = 0;
  std::string first_error;
};

// The JSON value of message number `n` (escaped for the request body).
std::string json_value(const Options& o, uint64_t n) {
  const uint64_t id = o.distinct < 0 ? 17 : o.distinct == 0 ? n : n % static_cast<uint64_t>(o.distinct);
  std::string value = R"({\"sensor_id\":\"sensor-)" + std::to_string(id) +
                      R"(\",\"sensor_type\":\"temperature\",\"unit\":\"celsius\",\"reading\":)" +
                      std::to_string(20 + id % 1000) + "." + std::to_string(id % 10) +
                      R"(,\"site\":\"north\",\"pad\":\")";
  while (value.size() + 4 < static_cast<size_t>(o.value_bytes)) value += 'x';
  return value + R"(\"})";
}

// A request body of o.batch messages, numbered from `first`.
std::string make_body(const Options& o, uint64_t first) {
  const std::string plain(static_cast<size_t>(o.value_bytes), 'x');
  std::string body = "{\"messages\":[";
  for (int i = 0; i < o.batch; ++i) {
    if (i) body += ',';
    const uint64_t n = first + static_cast<uint64_t>(i);
    const std::string value = o.json_values ? json_value(o, n) : plain;
    const uint64_t key = o.distinct < 0   ? static_cast<uint64_t>(i)
                         : o.distinct == 0 ? n
                                           : n % static_cast<uint64_t>(o.distinct);
    body += "{\"key\":\"key-" + std::to_string(key) + "\",\"value\":\"" + value + "\"";
    if (o.json_values) body += R"(,"headers":{"content-type":"application/json"})";
    body += "}";
  }
  return body + "]}";
}

// Bodies vary when messages are to differ; with --distinct N a request repeats every N/batch.
bool bodies_vary(const Options& o) { return o.json_values && o.distinct >= 0; }

asio::awaitable<void> run_connection(const Options& o, const std::string& body, int index,
                                     Clock::time_point end, Stats& stats) {
  auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  beast::tcp_stream stream(executor);
  auto endpoints = co_await resolver.async_resolve(o.host, o.port, asio::use_awaitable);
  co_await stream.async_connect(endpoints, asio::use_awaitable);
  stream.socket().set_option(tcp::no_delay(true));
  http::request<http::string_body> req{http::verb::post, "/api/v1/topics/" + o.topic + "/messages",
                                       11};
  req.set(http::field::host, o.host);
  req.set(http::field::content_type, "application/json");
  req.keep_alive(true);
  req.body() = body;
  req.prepare_payload();
  beast::flat_buffer buffer;
  // Each connection numbers its messages apart from the others'.
  uint64_t next_message = o.first + (static_cast<uint64_t>(index) << 40);
  // With a rate: one request every `interval`, each due at its time.
  const auto interval =
      o.rate > 0 ? std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                       o.batch * o.connections / o.rate))
                 : Clock::duration::zero();
  auto due = Clock::now() + interval * index / std::max(1, o.connections);
  asio::steady_timer pace(executor);
  while (Clock::now() < end) {
    if (bodies_vary(o)) {
      req.body() = make_body(o, next_message);
      req.prepare_payload();
      next_message += static_cast<uint64_t>(o.batch);
    }
    if (o.rate > 0) {
      if (due >= end) break;
      pace.expires_at(due);
      co_await pace.async_wait(asio::use_awaitable);
    }
    auto start = o.rate > 0 ? due : Clock::now();
    due += interval;
    co_await http::async_write(stream, req, asio::use_awaitable);
    http::response<http::string_body> res;
    co_await http::async_read(stream, buffer, res, asio::use_awaitable);
    stats.latencies_us.push_back(
        std::chrono::duration<double, std::micro>(Clock::now() - start).count());
    // "stored" appears once per message in a fully stored batch.
    size_t stored = 0;
    for (size_t at = res.body().find("\"stored\""); at != std::string::npos;
         at = res.body().find("\"stored\"", at + 1)) {
      ++stored;
    }
    if (res.result() == http::status::ok && stored == static_cast<size_t>(o.batch)) {
      stats.messages += static_cast<uint64_t>(o.batch);
    } else {
      ++stats.errors;
      if (stats.first_error.empty())
        stats.first_error = std::to_string(res.result_int()) + " " + res.body().substr(0, 200);
    }
  }
}

int main(int argc, char** argv) {
  Options o;
  bool first_given = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--host")
      o.host = value;
    else if (flag == "--port")
      o.port = value;
    else if (flag == "--topic")
      o.topic = value;
    else if (flag == "--connections")
      o.connections = std::stoi(value);
    else if (flag == "--batch")
      o.batch = std::stoi(value);
    else if (flag == "--value-bytes")
      o.value_bytes = std::stoi(value);
    else if (flag == "--seconds")
      o.seconds = std::stod(value);
    else if (flag == "--threads")
      o.threads = std::stoi(value);
    else if (flag == "--json-values")
      o.json_values = value == "1" || value == "true";
    else if (flag == "--distinct")
      o.distinct = std::stol(value);
    else if (flag == "--first")
      o.first = std::stoull(value), first_given = true;
    else if (flag == "--rate")
      o.rate = std::stod(value);
    else {
      std::cerr << "unknown flag " << flag << "\n";
      return 2;
    }
  }
  if (!first_given) o.first = static_cast<uint64_t>(std::random_device{}() % 4096) << 52;
  const std::string body = make_body(o, o.first);
  asio::io_context io;
  std::vector<Stats> stats(static_cast<size_t>(o.connections));
  const auto start = Clock::now();
  const auto end =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
  std::string failure;
  for (int c = 0; c < o.connections; ++c) {
    asio::co_spawn(io, run_connection(o, body, c, end, stats[static_cast<size_t>(c)]),
                   [&](std::exception_ptr e) {
                     if (!e) return;
                     try {
                       std::rethrow_exception(e);
                     } catch (const std::exception& ex) {
                       if (failure.empty()) failure = ex.what();
                     }
                   });
  }
  std::vector<std::thread> threads;
  for (int t = 1; t < o.threads; ++t) threads.emplace_back([&] { io.run(); });
  io.run();
  for (auto& t : threads) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();

  Stats total;
  for (auto& s : stats) {
    total.latencies_us.insert(total.latencies_us.end(), s.latencies_us.begin(),
                              s.latencies_us.end());
    total.messages += s.messages;
    total.errors += s.errors;
    if (total.first_error.empty()) total.first_error = s.first_error;
  }
  std::sort(total.latencies_us.begin(), total.latencies_us.end());
  auto percentile = [&](double p) {
    if (total.latencies_us.empty()) return 0.0;
    size_t i = static_cast<size_t>(p * static_cast<double>(total.latencies_us.size() - 1));
    return total.latencies_us[i] / 1000.0;
  };
  boost::json::object out;
  out["connections"] = o.connections;
  out["batch"] = o.batch;
  out["value_bytes"] = o.value_bytes;
  out["distinct"] = o.distinct;
  if (o.rate > 0) out["rate"] = o.rate;
  out["seconds"] = elapsed;
  out["requests"] = total.latencies_us.size();
  out["messages"] = total.messages;
  out["errors"] = total.errors;
  out["messages_per_second"] = static_cast<double>(total.messages) / elapsed;
  out["p50_ms"] = percentile(0.50);
  out["p99_ms"] = percentile(0.99);
  out["max_ms"] = percentile(1.0);
  if (!failure.empty()) out["failure"] = failure;
  if (!total.first_error.empty()) out["first_error"] = total.first_error;
  std::cout << boost::json::serialize(out) << std::endl;
  return failure.empty() && total.errors == 0 ? 0 : 1;
}
