// wasmq-bench-allocs: heap allocations per produced message on the produce path without ETL:
// the data API's produce handler (body parse, messages, the broker's checks, grouping, batch
// encoding, the appender's write, the reply), run in-process through the router as the server
// runs it, minus the socket. Counts every operator new on every thread (the appender's too).
// Prints one JSON line.
//
//   wasmq-bench-allocs [--requests N] [--batch N] [--value-bytes N]
#include <unistd.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/json.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <iostream>
#include <new>
#include <string>

#include "broker/broker.h"
#include "common/message_json.h"
#include "http/data_api.h"
#include "http/router.h"
#include "storage/topic_store.h"

namespace {
std::atomic<uint64_t> allocations{0};
}

void* operator new(size_t size) {
  allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size ? size : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](size_t size) { return operator new(size); }
void* operator new(size_t size, const std::nothrow_t&) noexcept {
  allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(size ? size : 1);
}
void* operator new[](size_t size, const std::nothrow_t& t) noexcept { return operator new(size, t); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }

using namespace wasmq;
namespace fs = std::filesystem;

int main(int argc, char** argv) {
  int requests = 500, batch = 100, value_bytes = 100;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const int value = std::atoi(argv[i + 1]);
    if (flag == "--requests") requests = value;
    else if (flag == "--batch") batch = value;
    else if (flag == "--value-bytes") value_bytes = value;
    else {
      std::cerr << "unknown flag " << flag << "\n";
      return 2;
    }
  }
  const fs::path dir = fs::temp_directory_path() / ("wasmq-allocs-" + std::to_string(::getpid()));
  storage::StoreOptions options;
  options.data_dir = dir;
  options.log.fsync = storage::FsyncPolicy::kInterval;
  auto store = storage::TopicStore::open(options, nullptr);
  if (!store.is_ok()) {
    std::cerr << store.status().message() << "\n";
    return 1;
  }
  int status = 0;
  {
    broker::Broker broker(**store, broker::BrokerOptions{});
    http::Router router;
    if (!http::add_data_api(router, broker).is_ok()) return 1;
    // A 22-character topic, two headers per message, as measured by the code review.
    const std::string topic = "bench.allocation-probe";
    std::string body = "{\"messages\":[";
    for (int i = 0; i < batch; ++i) {
      if (i) body += ',';
      body += "{\"key\":\"key-" + std::to_string(i) + "\",\"value\":\"" +
              std::string(static_cast<size_t>(value_bytes), 'v') +
              "\",\"headers\":{\"content-type\":\"application/json\",\"source\":\"bench\"}}";
    }
    body += "]}";
    boost::asio::io_context io;
    auto run = [&](int n) -> bool {
      bool ok = true;
      boost::asio::co_spawn(
          io,
          [&]() -> boost::asio::awaitable<void> {
            for (int i = 0; i < n; ++i) {
              http::RequestMessage message{boost::beast::http::verb::post,
                                           "/api/v1/topics/" + topic + "/messages", 11};
              message.body() = body;
              http::Request request;
              (void)request.reset(std::move(message));
              http::Response response = co_await router.handle(request);
              if (response.result() != boost::beast::http::status::ok) ok = false;
            }
          },
          boost::asio::detached);
      io.run();
      io.restart();
      return ok;
    };
    if (!run(50)) status = 1;  // warm-up: the topic, the file cache, buffers
    const uint64_t before = allocations.load();
    if (!run(requests)) status = 1;
    const uint64_t used = allocations.load() - before;
    // Of which the body's parse into messages (the data API's first step: views into the
    // request's document).
    uint64_t parse = 0;
    {
      const uint64_t at = allocations.load();
      for (int r = 0; r < requests; ++r) {
        boost::json::monotonic_resource arena(body.size() * 2 + 1024);
        boost::json::value doc = boost::json::parse(body, &arena);
        const auto& list = doc.get_object().at("messages").get_array();
        MessageViews views;
        views.messages.reserve(list.size());
        for (size_t i = 0; i < list.size(); ++i) (void)views.add(list[i], 1);
        views.finish();
      }
      parse = allocations.load() - at;
    }
    // Of which the broker (checks, grouping, encoding, the appender, the outcomes).
    uint64_t in_broker = 0;
    {
      boost::json::value doc = boost::json::parse(body);
      const auto& list = doc.get_object().at("messages").get_array();
      MessageViews views;
      for (size_t i = 0; i < list.size(); ++i) (void)views.add(list[i], 1);
      views.finish();
      const std::vector<std::optional<uint32_t>> partitions(list.size());
      const uint64_t at = allocations.load();
      for (int r = 0; r < requests; ++r) {
        std::promise<void> stored;
        auto immediate = broker.produce(topic, views.messages, partitions,
                                        [&](Result<std::vector<broker::ProduceOutcome>>) {
                                          stored.set_value();
                                        });
        if (immediate) {
          status = 1;
          break;
        }
        stored.get_future().wait();
      }
      in_broker = allocations.load() - at;
    }
    boost::json::object out;
    out["requests"] = requests;
    out["batch"] = batch;
    out["value_bytes"] = value_bytes;
    out["allocations"] = used;
    out["allocations_per_message"] =
        static_cast<double>(used) / (static_cast<double>(requests) * batch);
    out["of_which_broker_per_message"] =
        static_cast<double>(in_broker) / (static_cast<double>(requests) * batch);
    out["of_which_parse_per_message"] =
        static_cast<double>(parse) / (static_cast<double>(requests) * batch);
    std::cout << boost::json::serialize(out) << std::endl;
  }
  store->reset();
  std::error_code ec;
  fs::remove_all(dir, ec);
  return status;
}
