#include "cli/client_commands.h"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <iostream>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "common/json_text.h"
#include "common/message_json.h"
#include "http/client.h"

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
  bool raw = false;  // every line is one value, JSON or not
};

struct ConsumeOptions {
  std::string topic;
  std::string broker = kDefaultBroker;
  std::string token;
  std::string ca_file;
  int64_t offset = 0;
  uint64_t count = 0;  // 0: no limit
  std::optional<uint32_t> partition;  // unset: every partition
  bool from_end = false;
  bool follow = false;
  uint32_t wait_ms = 1000;
};

// A line that is a message envelope: a JSON object with `value` or `value_base64`. Any other
// line, JSON or not, is a value.
bool is_envelope(const json::value& v) {
  return v.is_object() && (v.as_object().contains("value") || v.as_object().contains("value_base64"));
}

int produce(const ProduceOptions& o) {
  HttpClient client(
      o.broker, http::ClientOptions{.timeout_ms = 30'000, .token = o.token, .ca_file = o.ca_file});
  const std::string target = "/api/v1/topics/" + url_encode(o.topic) + "/messages";
  json::array pending;
  // What became of each message: stored, filtered, dead-lettered (pipeline outcomes), or failed
  // (refused lines, failed results, requests that did not get through).
  size_t stored = 0, filtered = 0, dead_lettered = 0, failed = 0, line_number = 0;
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
      std::cout << json_text(r) << '\n';
      const json::value* status = r.is_object() ? r.as_object().if_contains("status") : nullptr;
      if (status && *status == "stored") {
        ++stored;
      } else if (status && *status == "filtered") {
        ++filtered;
      } else if (status && *status == "dead_lettered") {
        ++dead_lettered;
      } else {
        ++failed;
      }
    }
    std::cout.flush();
  };

  std::string line;
  while (transport_ok && std::getline(std::cin, line)) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    json::object message;
    boost::system::error_code ec;
    json::value v;
    if (!o.raw && !line.empty() && line.front() == '{') v = json::parse(line, ec);
    if (!o.raw && !ec && is_envelope(v)) {
      // A message envelope: checked here so the error can name the line.
      Message checked;
      if (Status s = message_from_json(v, 0, &checked); !s.is_ok()) {
        std::cerr << "error: line " << line_number << ": " << s.message() << "\n";
        ++failed;
        continue;
      }
      message = std::move(v.as_object());
    } else {
      message["value"] = line;
    }
    if (!o.key.empty() && !message.contains("key") && !message.contains("key_base64")) {
      message["key"] = o.key;
    }
    if (o.partition >= 0 && !message.contains("partition")) message["partition"] = o.partition;
    pending.push_back(std::move(message));
    if (pending.size() >= o.batch) send();
  }
  send();
  std::cerr << "produced to " << o.topic << ": " << stored << " stored, " << filtered
            << " filtered, " << dead_lettered << " dead-lettered, " << failed << " failed\n";
  return failed == 0 && transport_ok ? 0 : 1;
}

int consume(const ConsumeOptions& o) {
  HttpClient client(o.broker,
                    http::ClientOptions{.timeout_ms = static_cast<int>(o.wait_ms) + 30'000,
                                        .token = o.token,
                                        .ca_file = o.ca_file});
  // With `absent`, a 404 sets it instead of being an error.
  auto get = [&](const std::string& target, json::value* out, bool* absent = nullptr) {
    auto reply = client.request("GET", target);
    if (!reply.is_ok()) {
      std::cerr << "error: " << reply.status().message() << "\n";
      return false;
    }
    if (absent != nullptr) *absent = reply->status == 404;
    if (absent != nullptr && *absent) return true;
    if (reply->status / 100 != 2) {
      std::cerr << "error: " << http::error_text(*reply) << "\n";
      return false;
    }
    boost::system::error_code ec;
    *out = json::parse(reply->body, ec);
    if (ec || !out->is_object()) {
      std::cerr << "error: unexpected reply: " << reply->body.substr(0, 200) << "\n";
      return false;
    }
    return true;
  };
  const std::string topic_path = "/api/v1/topics/" + url_encode(o.topic);
  json::value topic;
  // Following a topic that does not exist yet waits for it (a pipeline's first output, say).
  for (bool told = false;;) {
    bool absent = false;
    if (!get(topic_path, &topic, o.follow ? &absent : nullptr)) return 1;
    if (!absent) break;
    if (!told) std::cerr << "waiting for topic \"" << o.topic << "\" to be created\n";
    told = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  // Where each partition is read from: --offset, or its end with --from-end.
  std::vector<std::pair<uint32_t, int64_t>> positions;
  for (const auto& p : topic.at("partition_details").as_array()) {
    const uint32_t index = static_cast<uint32_t>(p.at("partition").to_number<int64_t>());
    if (o.partition && *o.partition != index) continue;
    positions.emplace_back(index, o.from_end ? p.at("high_watermark").to_number<int64_t>() : o.offset);
  }
  if (positions.empty()) {
    std::cerr << "error: topic \"" << o.topic << "\" has no partition " << *o.partition << " (it has "
              << topic.at("partitions").to_number<int64_t>() << ")\n";
    return 1;
  }
  uint64_t printed = 0;
  for (;;) {
    bool any = false;
    for (auto& [partition, offset] : positions) {
      uint64_t want = 500;
      if (o.count) want = std::min<uint64_t>(want, o.count - printed);
      std::string target = topic_path + "/messages?offset=" + std::to_string(offset) +
                           "&max_messages=" + std::to_string(want) +
                           "&partition=" + std::to_string(partition);
      // Following one partition: wait there. Following several: a short wait on each in turn.
      if (o.follow) {
        const uint32_t wait = positions.size() == 1 ? o.wait_ms
                                                    : std::max<uint32_t>(50, o.wait_ms / static_cast<uint32_t>(positions.size()));
        target += "&wait_ms=" + std::to_string(wait);
      }
      json::value v;
      if (!get(target, &v) || !v.as_object().contains("messages")) return 1;
      const auto& messages = v.at("messages").as_array();
      for (const auto& m : messages) {
        json::object line = m.as_object();
        line["partition"] = partition;
        std::cout << json_text(line) << '\n';
      }
      std::cout.flush();
      printed += messages.size();
      any |= !messages.empty();
      offset = v.at("next_offset").to_number<int64_t>();
      if (o.count && printed >= o.count) return 0;
    }
    if (!any && !o.follow) return 0;
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
  produce_cmd->add_flag("--raw", p->raw, "every line is one value, JSON or not (no envelopes)");
  produce_cmd->footer(
      "Each line is a message: a JSON object with \"value\" (or \"value_base64\") is an envelope\n"
      "(key, headers, timestamp, partition); any other line is the value. Filtered and\n"
      "dead-lettered messages are outcomes, not failures: the exit code is 1 only when a\n"
      "message failed or was refused.\n"
      "Example: printf '{\"key\": \"k\", \"value\": \"v\"}\\nplain\\n' | wasmq produce events");
  produce_cmd->callback([p, &exit_code] { exit_code = produce(*p); });

  auto c = std::make_shared<ConsumeOptions>();
  CLI::App* consume_cmd = app.add_subcommand("consume", "print a topic's messages as NDJSON");
  consume_cmd->add_option("topic", c->topic, "the topic")->required();
  consume_cmd->add_option("--broker", c->broker, "the data API (http:// or https://)")
      ->envname("WASMQ_BROKER")
      ->capture_default_str();
  add_access_options(consume_cmd, c->token, c->ca_file);
  auto* offset = consume_cmd->add_option("--offset", c->offset, "first offset in each partition read")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  consume_cmd->add_option("-n,--count", c->count, "stop after this many messages (0: no limit)");
  consume_cmd->add_option("--partition", c->partition, "only this partition (default: every one)");
  consume_cmd->add_flag("--from-end", c->from_end, "start at the end: only messages produced from now on")
      ->excludes(offset);
  consume_cmd->add_flag("--follow", c->follow, "keep waiting for new messages");
  consume_cmd->footer(
      "Prints one JSON message per line, with its partition and offset.\n"
      "Example: wasmq consume events --from-end --follow");
  consume_cmd->callback([c, &exit_code] { exit_code = consume(*c); });
}

}  // namespace wasmq::cli
