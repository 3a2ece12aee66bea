#include "cli/client_commands.h"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <iostream>
#include <memory>

#include "http/client.h"
#include "common/message_json.h"

namespace wasmq::cli {

using http::HttpClient;
using http::HttpReply;
using http::url_encode;
namespace {

namespace json = boost::json;

constexpr const char* kDefaultBroker = "http://localhost:9092";

struct ProduceOptions {
  std::string topic;
  std::string broker = kDefaultBroker;
  std::string token;
  std::string ca_file;
  size_t batch = 100;
  int partition = -1;
  std::string key;
};

struct ConsumeOptions {
  std::string topic;
  std::string broker = kDefaultBroker;
  std::string token;
  std::string ca_file;
  int64_t offset = 0;
  uint64_t count = 0;  // 0: no limit
  uint32_t partition = 0;
  bool follow = false;
  uint32_t wait_ms = 1000;
};

int produce(const ProduceOptions& o) {
  HttpClient client(
      o.broker, http::ClientOptions{.timeout_ms = 30'000, .token = o.token, .ca_file = o.ca_file});
  const std::string target = "/api/v1/topics/" + url_encode(o.topic) + "/messages";
  json::array pending;
  size_t sent = 0, failed = 0, line_number = 0;
  bool transport_ok = true;

  auto send = [&]() {
    if (pending.empty()) return;
    json::object body;
    const size_t n = pending.size();
    body["messages"] = std::move(pending);
    pending = json::array();
    auto reply = client.request("POST", target, json::serialize(body));
    if (!reply.is_ok()) {
      std::cerr << "error: " << reply.status().message() << "\n";
      failed += n;
      transport_ok = false;
      return;
    }
    if (reply->status / 100 != 2) {
      std::cerr << "error: " << http::error_text(*reply) << "\n";
      failed += n;
      return;
    }
    boost::system::error_code ec;
    json::value v = json::parse(reply->body, ec);
    if (ec || !v.is_object() || !v.as_object().contains("results")) {
      std::cerr << "error: unexpected reply: " << reply->body.substr(0, 200) << "\n";
      failed += n;
      return;
    }
    for (const auto& r : v.at("results").as_array()) {
      std::cout << json::serialize(r) << '\n';
      if (!r.is_object() || r.as_object().at("status") != "stored") ++failed;
      ++sent;
    }
    std::cout.flush();
  };

  std::string line;
  while (transport_ok && std::getline(std::cin, line)) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    json::object message;
    if (!line.empty() && line.front() == '{') {
      // An NDJSON message: checked here so the error can name the line.
      boost::system::error_code ec;
      json::value v = json::parse(line, ec);
      Message checked;
      Status s = ec ? invalid_argument("malformed JSON: " + ec.message())
                    : message_from_json(v, 0, &checked);
      if (!s.is_ok()) {
        std::cerr << "error: line " << line_number << ": " << s.message() << "\n";
        ++failed;
        continue;
      }
      message = std::move(v.as_object());
    } else {
      message["value"] = line;
    }
    if (!o.key.empty() && !message.contains("key")) message["key"] = o.key;
    if (o.partition >= 0 && !message.contains("partition")) message["partition"] = o.partition;
    pending.push_back(std::move(message));
    if (pending.size() >= o.batch) send();
  }
  send();
  std::cerr << "produced " << (sent - std::min(sent, failed)) << " message(s) to " << o.topic
            << (failed ? ", " + std::to_string(failed) + " failed" : std::string()) << "\n";
  return failed == 0 && transport_ok ? 0 : 1;
}

int consume(const ConsumeOptions& o) {
  HttpClient client(o.broker,
                    http::ClientOptions{.timeout_ms = static_cast<int>(o.wait_ms) + 30'000,
                                        .token = o.token,
                                        .ca_file = o.ca_file});
  int64_t offset = o.offset;
  uint64_t printed = 0;
  for (;;) {
    uint64_t want = 500;
    if (o.count) want = std::min<uint64_t>(want, o.count - printed);
    std::string target = "/api/v1/topics/" + url_encode(o.topic) +
                         "/messages?offset=" + std::to_string(offset) +
                         "&max_messages=" + std::to_string(want) +
                         "&partition=" + std::to_string(o.partition);
    if (o.follow) target += "&wait_ms=" + std::to_string(o.wait_ms);
    auto reply = client.request("GET", target);
    if (!reply.is_ok()) {
      std::cerr << "error: " << reply.status().message() << "\n";
      return 1;
    }
    if (reply->status / 100 != 2) {
      std::cerr << "error: " << http::error_text(*reply) << "\n";
      return 1;
    }
    boost::system::error_code ec;
    json::value v = json::parse(reply->body, ec);
    if (ec || !v.is_object() || !v.as_object().contains("messages")) {
      std::cerr << "error: unexpected reply: " << reply->body.substr(0, 200) << "\n";
      return 1;
    }
    const auto& messages = v.at("messages").as_array();
    for (const auto& m : messages) std::cout << json::serialize(m) << '\n';
    std::cout.flush();
    printed += messages.size();
    offset = v.at("next_offset").to_number<int64_t>();
    if (o.count && printed >= o.count) return 0;
    if (messages.empty() && !o.follow) return 0;
  }
}

// --token (or WASMQ_TOKEN) and --ca-file, for a broker with tokens and TLS.
void add_access_options(CLI::App* cmd, std::string& token, std::string& ca_file) {
  cmd->add_option("--token", token,
                  "bearer token, when the broker has security.tokens_file (prefer WASMQ_TOKEN: "
                  "arguments are visible to other users)")
      ->envname("WASMQ_TOKEN");
  cmd->add_option("--ca-file", ca_file,
                  "PEM certificate(s) to trust for https:// (default: the system's)");
}

}  // namespace

void add_client_commands(CLI::App& app, int& exit_code) {
  auto p = std::make_shared<ProduceOptions>();
  CLI::App* produce_cmd = app.add_subcommand(
      "produce", "send messages from stdin: NDJSON message objects or plain lines");
  produce_cmd->add_option("topic", p->topic, "the topic")->required();
  produce_cmd->add_option("--broker", p->broker, "the data API (http:// or https://)")
      ->envname("WASMQ_BROKER")
      ->capture_default_str();
  add_access_options(produce_cmd, p->token, p->ca_file);
  produce_cmd->add_option("--batch", p->batch, "messages per request")
      ->capture_default_str()->check(CLI::Range(size_t{1}, size_t{100000}));
  produce_cmd->add_option("--partition", p->partition, "partition for every message");
  produce_cmd->add_option("--key", p->key, "key for messages that have none");
  produce_cmd->callback([p, &exit_code] { exit_code = produce(*p); });

  auto c = std::make_shared<ConsumeOptions>();
  CLI::App* consume_cmd = app.add_subcommand("consume", "print a topic's messages as NDJSON");
  consume_cmd->add_option("topic", c->topic, "the topic")->required();
  consume_cmd->add_option("--broker", c->broker, "the data API (http:// or https://)")
      ->envname("WASMQ_BROKER")
      ->capture_default_str();
  add_access_options(consume_cmd, c->token, c->ca_file);
  consume_cmd->add_option("--offset", c->offset, "first offset")->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  consume_cmd->add_option("-n,--count", c->count, "stop after this many messages (0: no limit)");
  consume_cmd->add_option("--partition", c->partition, "partition")->capture_default_str();
  consume_cmd->add_flag("--follow", c->follow, "keep waiting for new messages");
  consume_cmd->callback([c, &exit_code] { exit_code = consume(*c); });
}

}  // namespace wasmq::cli
