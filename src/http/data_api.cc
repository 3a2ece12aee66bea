#include "http/data_api.h"

#include <algorithm>
#include <cstring>
#include <optional>

#include <boost/asio/this_coro.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include <iterator>

#include "common/message_json.h"
#include "common/handoff.h"
#include "http/json_response.h"
#include "http/produce_body.h"

namespace wasmq::http {
namespace {

namespace json = boost::json;
using boost::asio::awaitable;

Result<int64_t> query_in_range(const Request& req, std::string_view name, int64_t fallback,
                               int64_t min, int64_t max) {
  auto value = req.query_int64(name, fallback);
  if (!value.is_ok()) return value.status();
  if (*value < min || *value > max) {
    return invalid_argument(std::string(name) + ": must be between " + std::to_string(min) +
                            " and " + std::to_string(max));
  }
  return value;
}

Response bad_query(const Status& status, std::string_view name) {
  return error_response(HttpStatus::bad_request, "invalid_parameter", status.message(), name);
}

json::object topic_summary(const storage::Topic& topic) {
  json::object o;
  o["name"] = topic.name();
  o["partitions"] = topic.partition_count();
  if (topic.settings().retention_ms) o["retention_ms"] = *topic.settings().retention_ms;
  if (topic.settings().retention_bytes) o["retention_bytes"] = *topic.settings().retention_bytes;
  return o;
}

// The number of messages a produce body lists, counted on its bytes before any parsing: the
// elements of a top-level array, or of an array directly under a top-level object ("messages").
// A body that is not JSON gets some count; the parser refuses it afterwards. Lets a body of
// millions of tiny messages be refused without building its document (about 20 times its size).
size_t listed_messages(std::string_view body) {
  constexpr size_t kMaxDepth = 64;
  bool is_array[kMaxDepth + 1] = {};
  size_t depth = 0;
  size_t count = 0;
  bool in_string = false;
  bool list_has_value = false;
  auto at_list = [&] {
    return (depth == 1 && is_array[1]) || (depth == 2 && is_array[2] && !is_array[1]);
  };
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (in_string) {
      // To the closing quote at once (memchr), skipping quotes that an odd run of backslashes
      // escapes: strings are most of a body's bytes.
      for (;;) {
        const void* q = std::memchr(body.data() + i, '"', body.size() - i);
        if (!q) return count;  // an unterminated string: the parser refuses it
        size_t at = static_cast<size_t>(static_cast<const char*>(q) - body.data());
        size_t backslashes = 0;
        while (at - backslashes > i && body[at - backslashes - 1] == '\\') ++backslashes;
        i = at;
        if (backslashes % 2 == 0) break;
        ++i;
      }
      in_string = false;
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        if (at_list()) list_has_value = true;
        break;
      case '[':
      case '{':
        if (at_list()) list_has_value = true;
        if (depth == kMaxDepth) return count;  // too deep: the parser says so
        is_array[++depth] = c == '[';
        if (at_list()) list_has_value = false;
        break;
      case ']':
      case '}':
        if (at_list() && list_has_value) ++count;
        if (depth > 0) --depth;
        break;
      case ',':
        if (at_list()) {
          ++count;
          list_has_value = false;
        }
        break;
      case ' ':
      case '\t':
      case '\r':
      case '\n':
        break;
      default:
        if (at_list()) list_has_value = true;
        break;
    }
  }
  return count;
}

class DataApi {
 public:
  DataApi(broker::Broker& broker, DataApiOptions options) : broker_(broker), options_(options) {}

  awaitable<Response> produce(Request& req) {
    const std::string topic(req.path_param("topic"));
    if (Status s = storage::validate_topic_name(topic); !s.is_ok()) co_return status_response(s);
    if (size_t listed = listed_messages(req.body()); listed > options_.max_produce_messages) {
      co_return too_many_messages_response(
          too_many_messages(listed, options_.max_produce_messages));
    }
    // The request's document lives in one arena, freed at once when the handler returns.
    json::monotonic_resource arena(req.body().size() * 2 + 1024);
    JsonParseOptions parse_options;
    parse_options.storage = &arena;
    JsonBody body = parse_json_body(req.body(), parse_options);
    if (!body.is_ok()) co_return std::move(*body.error);
    auto listed = read_produce_body(body.value, now_ms(), options_.max_produce_messages);
    if (!listed.is_ok()) {
      const Status& s = listed.status();
      if (s.code() == StatusCode::kLimitExceeded) {
        co_return too_many_messages_response(s);
      }
      co_return invalid_message_response(s);
    }
    // Partitions are checked here, before the broker may auto-create the topic, so that a bad
    // request creates nothing; the broker checks again (the topic may change in between).
    const std::shared_ptr<storage::Topic> existing = broker_.store().find(topic);
    const uint32_t partitions =
        existing ? existing->partition_count() : broker_.store().options().default_partitions;
    for (size_t i = 0; i < listed->size(); ++i) {
      const std::optional<uint32_t>& partition = listed->partitions[i];
      if (partition && *partition >= partitions) {
        co_return invalid_message_response(
            field_error("partition", fmt::format("{} is out of range (topic \"{}\" has {} "
                                                 "partition{}{})",
                                                 *partition, topic, partitions,
                                                 partitions == 1 ? "" : "s",
                                                 existing ? "" : " when created"))
                .within(listed->path(i)));
      }
    }
    auto outcomes = co_await produce_records(topic, *listed);
    if (!existing && options_.audit && broker_.store().find(topic)) {
      options_.audit->record_auto_created_topic(req.principal(), req.remote_address(), topic);
    }
    if (!outcomes.is_ok()) co_return status_response(outcomes.status());
    co_return text_response(HttpStatus::ok, produce_reply(topic, *outcomes), "application/json");
  }

  static Response too_many_messages_response(const Status& s) {
    return error_response(HttpStatus::payload_too_large, "too_many_messages", s.message(),
                          s.field());
  }

  // Stores through the broker; a request that goes through ETL pipelines is awaited without
  // holding the I/O thread.
  // Stores through the broker (from the views into the request's document: the broker encodes
  // them before it returns, or copies them); the answer is awaited without holding the I/O
  // thread.
  awaitable<Result<std::vector<broker::ProduceOutcome>>> produce_records(const std::string& topic,
                                                                         const ProduceBody& body) {
    using Outcomes = Result<std::vector<broker::ProduceOutcome>>;
    auto [sender, receiver] = make_handoff<Outcomes>();
    auto immediate = broker_.produce(topic, body.views.messages, body.partitions,
                                     [sender = sender](Outcomes outcomes) {
                                       sender.send(std::move(outcomes));
                                     });
    if (immediate) co_return std::move(*immediate);
    auto received = co_await receiver.receive();
    if (!received.is_ok()) co_return received.status();
    co_return std::move(*received);
  }

  // Written directly: this reply is as regular as it is frequent. Topic names need no JSON
  // escaping ([A-Za-z0-9._-]); error texts and module ids go through the serializer.
  static std::string produce_reply(const std::string& topic,
                                   const std::vector<broker::ProduceOutcome>& outcomes) {
    using Kind = broker::ProduceOutcome::Kind;
    std::string reply;
    reply.reserve(64 + outcomes.size() * 80);
    reply += R"({"topic":")";
    reply += topic;
    reply += R"(","results":[)";
    auto records = [&](const broker::ProduceOutcome& outcome) {
      reply += R"("records":[)";
      for (size_t k = 0; k < outcome.records.size(); ++k) {
        const auto& rec = outcome.records[k];
        fmt::format_to(std::back_inserter(reply),
                       R"({}{{"topic":"{}","partition":{},"offset":{}}})", k ? "," : "",
                       rec.topic(), rec.partition, rec.offset);
      }
      reply += ']';
    };
    auto text = [&](const char* name, const std::string& value) {
      reply += ",\"";
      reply += name;
      reply += "\":";
      reply += json::serialize(json::string(value));
    };
    for (size_t i = 0; i < outcomes.size(); ++i) {
      const auto& outcome = outcomes[i];
      if (i) reply += ',';
      switch (outcome.kind) {
        case Kind::kStored:
          reply += R"({"status":"stored",)";
          records(outcome);
          break;
        case Kind::kFiltered:
          reply += R"({"status":"filtered")";
          text("pipeline_id", outcome.pipeline_id);
          text("module_id", outcome.module_id);
          break;
        case Kind::kDeadLettered:
          reply += R"({"status":"dead_lettered",)";
          records(outcome);
          text("error", outcome.error);
          text("pipeline_id", outcome.pipeline_id);
          text("module_id", outcome.module_id);
          break;
        case Kind::kFailed:
          reply += R"({"status":"failed")";
          text("error", outcome.error);
          break;
      }
      reply += '}';
    }
    reply += "]}";
    return reply;
  }

  awaitable<Response> consume(Request& req) {
    const std::string topic(req.path_param("topic"));
    std::string group;
    if (auto g = req.query_param("group")) {
      group = std::string(*g);
      if (Status s = check_group_id(group); !s.is_ok()) co_return bad_query(s, "group");
      if (!options_.groups) {
        co_return error_response(HttpStatus::bad_request, "unsupported",
                                 "group: this listener has no consumer groups", "group");
      }
      if (req.query_param("offset")) {
        co_return bad_query(invalid_argument("offset: cannot be given with group (a group reads "
                                             "from its committed offset)"),
                            "offset");
      }
    }
    bool commit = false;
    if (auto c = req.query_param("commit")) {
      if (*c != "true" && *c != "false") {
        co_return bad_query(invalid_argument("commit: must be true or false"), "commit");
      }
      commit = *c == "true";
      if (commit && group.empty()) {
        co_return bad_query(invalid_argument("commit: needs group (whose offset to commit)"), "commit");
      }
    }
    broker::ConsumeRequest request;
    auto offset = query_in_range(req, "offset", 0, 0, INT64_MAX);
    if (!offset.is_ok()) co_return bad_query(offset.status(), "offset");
    auto max_messages = query_in_range(req, "max_messages",
                                       static_cast<int64_t>(options_.default_max_messages), 1,
                                       static_cast<int64_t>(options_.max_max_messages));
    if (!max_messages.is_ok()) co_return bad_query(max_messages.status(), "max_messages");
    auto max_bytes = query_in_range(req, "max_bytes", static_cast<int64_t>(options_.default_max_bytes),
                                    1, static_cast<int64_t>(options_.max_max_bytes));
    if (!max_bytes.is_ok()) co_return bad_query(max_bytes.status(), "max_bytes");
    auto partition = query_in_range(req, "partition", 0, 0, UINT32_MAX);
    if (!partition.is_ok()) co_return bad_query(partition.status(), "partition");
    auto wait_ms = query_in_range(req, "wait_ms", 0, 0, options_.max_wait_ms);
    if (!wait_ms.is_ok()) co_return bad_query(wait_ms.status(), "wait_ms");
    request.offset = *offset;
    request.max_messages = static_cast<size_t>(*max_messages);
    request.max_bytes = static_cast<size_t>(*max_bytes);
    request.partition = static_cast<uint32_t>(*partition);
    std::optional<int64_t> committed;  // the group's offset on this partition before the read
    if (!group.empty()) {
      if (commit) {
        if (auto busy = group_owned_by_members(group)) co_return std::move(*busy);
      }
      committed = committed_offset(group, topic, request.partition);
      request.offset = start_for_group(committed, topic, request.partition);
    }

    auto read = co_await this->read(topic, request);
    if (read.is_ok() && read->records.empty() && *wait_ms > 0) {
      // Long poll: wait for an append to this partition, or the time limit.
      auto [sender, receiver] = make_handoff<bool>();
      uint64_t id = broker_.wait_for_data(topic, request.partition, request.offset,
                                          [sender = sender] { sender.send(true); });
      if (id != 0) {
        (void)co_await receiver.receive_for(std::chrono::milliseconds(*wait_ms));
        broker_.cancel_wait(id);
      }
      read = co_await this->read(topic, request);
    }
    if (!read.is_ok()) {
      const Status& s = read.status();
      if (s.code() == StatusCode::kOutOfRange) {
        co_return error_response(HttpStatus::bad_request, "offset_out_of_range", s.message(),
                                 s.field());
      }
      co_return status_response(s);
    }
    json::array messages;
    messages.reserve(read->records.size());
    for (const auto& record : read->records) {
      json::object m = message_to_json(record.message);
      m["offset"] = record.offset;
      messages.push_back(std::move(m));
    }
    json::object reply{{"topic", topic}, {"partition", request.partition},
                       {"high_watermark", read->high_watermark}, {"log_start_offset", read->log_start_offset},
                       {"next_offset", read->next_offset}, {"messages", std::move(messages)}};
    // Offsets lost to corrupt batches that this read stepped over (docs/storage.md).
    if (!read->skipped.empty()) {
      json::array skipped;
      for (const auto& range : read->skipped) {
        skipped.push_back(json::object{{"first_offset", range.first_offset},
                                       {"end_offset", range.end_offset},
                                       {"reason", "corrupt batch (quarantined)"}});
      }
      reply["skipped"] = std::move(skipped);
    }
    if (!group.empty()) {
      if (commit && read->next_offset != committed) {
        const std::string key = topic;
        const uint32_t p = request.partition;
        const int64_t next = read->next_offset;
        using Committed = std::pair<broker::GroupError, Status>;
        std::function<Committed()> store = [groups = options_.groups, group, key, p, next] {
          Status io;
          broker::GroupCoordinator::Offsets offsets;
          offsets[{key, static_cast<int32_t>(p)}] = broker::CommittedOffset{next, ""};
          const broker::GroupError e = groups->commit(group, -1, "", offsets, &io);
          return Committed{e, io};
        };
        auto stored = co_await on_disk(std::move(store));
        if (!stored.is_ok()) co_return status_response(stored.status());
        if (stored->first != broker::GroupError::kNone) co_return group_busy(group);
        if (!stored->second.is_ok()) co_return status_response(stored->second);
        committed = next;
      }
      json::object g{{"id", group}, {"start_offset", request.offset}};
      g["committed_offset"] = committed ? json::value(*committed) : json::value(nullptr);
      reply["group"] = std::move(g);
    }
    co_return json_response(HttpStatus::ok, reply);
  }

  awaitable<Response> list_topics(Request&) {
    json::array topics;
    for (const auto& topic : broker_.store().list()) topics.push_back(topic_summary(*topic));
    co_return json_response(HttpStatus::ok, json::object{{"topics", std::move(topics)}});
  }

  awaitable<Response> create_topic(Request& req) {
    JsonBody body = parse_json_body(req.body());
    if (!body.is_ok()) co_return std::move(*body.error);
    if (!body.value.is_object()) {
      co_return error_response(HttpStatus::bad_request, "invalid_topic", "the body must be a JSON object", "");
    }
    storage::TopicSettings settings;
    bool has_name = false;
    for (const auto& member : body.value.get_object()) {
      const std::string_view key = member.key();
      const json::value& value = member.value();
      auto bad = [&](const std::string& what) {
        return error_response(HttpStatus::bad_request, "invalid_topic",
                              std::string(key) + ": " + what, key);
      };
      if (key == "name") {
        if (!value.is_string()) co_return bad("must be a string");
        settings.name = std::string(value.get_string());
        has_name = true;
      } else if (key == "partitions") {
        if (!value.is_int64() || value.get_int64() < 1 ||
            value.get_int64() > broker_.store().options().max_partitions) {
          co_return bad("must be an integer from 1 to " +
                        std::to_string(broker_.store().options().max_partitions));
        }
        settings.partitions = static_cast<uint32_t>(value.get_int64());
      } else if (key == "retention_ms" || key == "retention_bytes") {
        if (!value.is_int64() || value.get_int64() < -1) co_return bad("must be an integer >= -1 (-1: no limit)");
        (key == "retention_ms" ? settings.retention_ms : settings.retention_bytes) = value.get_int64();
      } else {
        co_return bad("unknown field");
      }
    }
    if (!has_name) co_return error_response(HttpStatus::bad_request, "invalid_topic", "name: missing", "name");
    using Created = Result<std::shared_ptr<storage::Topic>>;
    // A named std::function, not a temporary in the co_await expression: GCC destroys such
    // temporaries twice.
    std::function<Created()> create = [store = &broker_.store(), settings] {
      return store->create(settings);
    };
    auto created = co_await on_disk(std::move(create));
    if (!created.is_ok()) co_return status_response(created.status());
    Created& topic = *created;
    if (!topic.is_ok()) co_return status_response(topic.status(), "name");
    co_return json_response(HttpStatus::created, topic_summary(**topic));
  }

  awaitable<Response> describe_topic(Request& req) {
    auto topic = broker_.store().find(req.path_param("topic"));
    if (!topic) {
      co_return error_response(HttpStatus::not_found, "not_found",
                               "topic \"" + std::string(req.path_param("topic")) + "\" does not exist");
    }
    json::object o = topic_summary(*topic);
    json::array partitions;
    for (uint32_t p = 0; p < topic->partition_count(); ++p) {
      const auto& log = topic->partition(p);
      json::object detail{{"partition", p},
                          {"log_start_offset", log.start_offset()},
                          {"high_watermark", log.next_offset()},
                          {"size_bytes", log.size_bytes()},
                          {"segments", log.segment_count()}};
      if (auto ranges = log.corrupt_ranges(); !ranges.empty()) {
        json::array corrupt;
        for (const auto& r : ranges) {
          corrupt.push_back(json::object{{"first_offset", r.first_offset}, {"end_offset", r.end_offset}});
        }
        detail["corrupt_ranges"] = std::move(corrupt);
      }
      partitions.push_back(std::move(detail));
    }
    o["partitions"] = topic->partition_count();
    o["partition_details"] = std::move(partitions);
    co_return json_response(HttpStatus::ok, o);
  }

  awaitable<Response> delete_topic(Request& req) {
    const std::string name(req.path_param("topic"));
    using Removed = Result<bool>;
    std::function<Removed()> remove = [store = &broker_.store(), name]() -> Removed {
      if (Status s = store->remove(name); !s.is_ok()) return s;
      return true;
    };
    auto removed = co_await on_disk(std::move(remove));
    if (!removed.is_ok()) co_return status_response(removed.status());
    if (!removed->is_ok()) co_return status_response(removed->status());
    co_return json_response(HttpStatus::ok, json::object{{"deleted", name}});
  }

 private:
  // Runs `work` on a disk thread (storage/disk_tasks.h) and awaits its value without holding
  // this I/O thread. `work` owns what it uses: this handler may be gone when it runs.
  template <typename T>
  awaitable<Result<T>> on_disk(std::function<T()> work) {
    return run_on(broker_.disk_tasks(), std::move(work));
  }

  // Group ids: what Kafka allows, minus what cannot be named in a URL or a log line.
  static Status check_group_id(std::string_view id) {
    if (id.empty() || id.size() > 255) return invalid_argument("group: must be 1 to 255 bytes");
    for (unsigned char c : id) {
      if (c < 0x20 || c == 0x7f) return invalid_argument("group: must not hold control characters");
    }
    return Status::ok();
  }

  Response group_busy(const std::string& group) const {
    return error_response(HttpStatus::conflict, "group_has_members",
                          "group \"" + group + "\" has members in Kafka's group protocol, which "
                          "own its offsets: commit from outside it once they have left",
                          "commit");
  }

  std::optional<Response> group_owned_by_members(const std::string& group) const {
    auto summary = options_.groups->describe(group);
    if (summary && !summary->members.empty()) return group_busy(group);
    return std::nullopt;
  }

  std::optional<int64_t> committed_offset(const std::string& group, const std::string& topic,
                                          uint32_t partition) const {
    const auto offsets = options_.groups->committed(group);
    auto it = offsets.find({topic, static_cast<int32_t>(partition)});
    if (it == offsets.end() || it->second.offset < 0) return std::nullopt;
    return it->second.offset;
  }

  // Where a group reads: its committed offset, moved into [log start, high watermark] (the
  // messages before it were removed, or the topic was made anew); the log start without one.
  int64_t start_for_group(std::optional<int64_t> committed, const std::string& topic,
                          uint32_t partition) const {
    auto t = broker_.store().find(topic);
    if (!t || partition >= t->partition_count()) return committed.value_or(0);  // the read says why
    const auto& log = t->partition(partition);
    if (!committed) return log.start_offset();
    return std::clamp(*committed, log.start_offset(), log.next_offset());
  }

  // Reads for a consumer on a disk thread.
  awaitable<Result<storage::ReadResult>> read(const std::string& topic,
                                              const broker::ConsumeRequest& request) {
    using Read = Result<storage::ReadResult>;
    auto [sender, receiver] = make_handoff<Read>();
    broker_.consume(topic, request, [sender = sender](Read read) { sender.send(std::move(read)); });
    auto received = co_await receiver.receive();
    if (!received.is_ok()) co_return received.status();
    co_return std::move(*received);
  }

  broker::Broker& broker_;
  const DataApiOptions options_;
};

}  // namespace

Status add_data_api(Router& router, broker::Broker& broker, DataApiOptions options) {
  auto api = std::make_shared<DataApi>(broker, options);
  auto bind = [api](awaitable<Response> (DataApi::*method)(Request&)) {
    return [api, method](Request& req) { return ((*api).*method)(req); };
  };
  struct Entry {
    Verb verb;
    const char* pattern;
    awaitable<Response> (DataApi::*method)(Request&);
    Right right;
    bool audited;  // topic creation and deletion change the broker like admin changes do
  };
  const Entry entries[] = {
      {Verb::post, "/api/v1/topics/{topic}/messages", &DataApi::produce, Right::kProduce, false},
      {Verb::get, "/api/v1/topics/{topic}/messages", &DataApi::consume, Right::kConsume, false},
      {Verb::get, "/api/v1/topics", &DataApi::list_topics, Right::kDescribeTopics, false},
      {Verb::post, "/api/v1/topics", &DataApi::create_topic, Right::kCreateTopics, true},
      {Verb::get, "/api/v1/topics/{topic}", &DataApi::describe_topic, Right::kDescribeTopics,
       false},
      {Verb::delete_, "/api/v1/topics/{topic}", &DataApi::delete_topic, Right::kDeleteTopics, true},
  };
  for (const auto& e : entries) {
    RouteOptions options;
    options.right = e.right;
    options.audited = e.audited;
    if (Status s = router.add(e.verb, e.pattern, bind(e.method), options); !s.is_ok()) return s;
  }
  RouteOptions open;
  open.right = Right::kOpen;
  auto health = [](Request&) -> awaitable<Response> {
    co_return json_response(HttpStatus::ok, json::object{{"status", "ok"}});
  };
  // Listening at all means storage has recovered: the server starts only after that.
  auto ready = [](Request&) -> awaitable<Response> {
    co_return json_response(HttpStatus::ok, json::object{{"status", "ready"}});
  };
  if (Status s = router.add(Verb::get, "/health", health, open); !s.is_ok()) return s;
  return router.add(Verb::get, "/ready", ready, open);
}

}  // namespace wasmq::http
