// DescribeConfigs v0–2 of the Service: what a topic or the broker is configured with, in Kafka's
// names. Only settings wasmq applies are listed; none can be changed through Kafka (read only).
#include <string>
#include <vector>

#include "kafka/produce_batch.h"
#include "kafka/requests.h"
#include "kafka/service.h"
#include "kafka/service_internal.h"

namespace wasmq::kafka {
namespace {

using boost::asio::awaitable;
using namespace service_internal;

constexpr int8_t kTopicResource = 2;
constexpr int8_t kBrokerResource = 4;

// Kafka's config sources.
enum class Source : int8_t { kTopic = 1, kStaticBroker = 4, kDefault = 5 };

struct Config {
  std::string name, value;
  Source source = Source::kDefault;
};

}  // namespace

awaitable<Result<Response>> Service::describe_configs(Session& s, const RequestHeader& h,
                                                      Reader& r) {
  const int16_t v = h.api_version;
  DescribeConfigsRequest req = read_describe_configs(r, v);
  if (!r.ok()) co_return malformed(h, r);
  const auto& store = broker_.store().options();

  std::string out;
  Writer w(&out);
  w.i32(h.correlation_id);
  w.i32(0);  // throttle_time_ms
  w.array_length(req.resources.size());
  for (const auto& resource : req.resources) {
    int16_t code = error::kNone;
    std::string message;
    std::vector<Config> configs;
    if (resource.type == kTopicResource) {
      if (!permit(s, Need::kDescribeTopics, "DescribeConfigs", "topic " + std::string(resource.name),
                  &message)) {
        code = error::kTopicAuthorizationFailed;
      } else if (auto topic = broker_.store().find(resource.name)) {
        const auto& t = topic->settings();
        auto own = [](const std::optional<int64_t>& set, int64_t fallback) {
          return Config{"", std::to_string(set.value_or(fallback)),
                        set ? Source::kTopic : Source::kStaticBroker};
        };
        Config retention_ms = own(t.retention_ms, store.log.retention_ms);
        retention_ms.name = "retention.ms";
        Config retention_bytes = own(t.retention_bytes, store.log.retention_bytes);
        retention_bytes.name = "retention.bytes";
        configs = {retention_ms,
                   retention_bytes,
                   {"segment.bytes", std::to_string(store.log.segment_bytes), Source::kStaticBroker},
                   {"max.message.bytes", std::to_string(kMaxBatchBytes), Source::kDefault},
                   {"cleanup.policy", "delete", Source::kDefault},
                   {"compression.type", "producer", Source::kDefault},
                   {"message.timestamp.type", "CreateTime", Source::kDefault},
                   {"min.insync.replicas", "1", Source::kDefault}};
      } else {
        code = error::kUnknownTopicOrPartition;
        message = "topic \"" + std::string(resource.name) + "\" does not exist";
      }
    } else if (resource.type == kBrokerResource) {
      if (!permit(s, Need::kDescribeTopics, "DescribeConfigs", "broker", &message)) {
        code = error::kClusterAuthorizationFailed;
      } else if (!resource.name.empty() && resource.name != std::to_string(kNodeId)) {
        code = error::kInvalidRequest;
        message = "broker \"" + std::string(resource.name) + "\" is not this one (" +
                  std::to_string(kNodeId) + ")";
      } else {
        configs = {{"broker.id", std::to_string(kNodeId), Source::kDefault},
                   {"log.retention.ms", std::to_string(store.log.retention_ms), Source::kStaticBroker},
                   {"log.retention.bytes", std::to_string(store.log.retention_bytes), Source::kStaticBroker},
                   {"log.segment.bytes", std::to_string(store.log.segment_bytes), Source::kStaticBroker},
                   {"num.partitions", std::to_string(store.default_partitions), Source::kStaticBroker},
                   {"auto.create.topics.enable", options_.auto_create_topics ? "true" : "false",
                    Source::kStaticBroker},
                   {"message.max.bytes", std::to_string(kMaxBatchBytes), Source::kDefault}};
      }
    } else {
      code = error::kInvalidRequest;
      message = "resource type " + std::to_string(resource.type) +
                " is not described here (2 topic, 4 broker)";
    }
    if (resource.keys) {
      std::vector<Config> wanted;
      for (const auto& c : configs) {
        for (std::string_view key : *resource.keys) {
          if (key == c.name) wanted.push_back(c);
        }
      }
      configs = std::move(wanted);
    }
    w.i16(code);
    w.nullable_string(code == error::kNone ? std::nullopt : std::optional<std::string_view>(message));
    w.i8(resource.type);
    w.string(resource.name);
    w.array_length(configs.size());
    for (const auto& c : configs) {
      w.string(c.name);
      w.nullable_string(c.value);
      w.boolean(true);  // read_only: no AlterConfigs
      if (v == 0) {
        w.boolean(c.source == Source::kDefault);  // is_default
      } else {
        w.i8(static_cast<int8_t>(c.source));
      }
      w.boolean(false);  // is_sensitive
      if (v >= 1) {
        w.array_length(req.include_synonyms ? 1 : 0);
        if (req.include_synonyms) {
          w.string(c.name);
          w.nullable_string(c.value);
          w.i8(static_cast<int8_t>(c.source));
        }
      }
    }
  }
  co_return Response(std::move(out));
}

}  // namespace wasmq::kafka
