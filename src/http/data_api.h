// The data API (http-api.md, port 9092): produce, consume (with long poll), topics, health.
//
// Access (when the server has tokens): produce needs `produce`, consume `consume`, topic lists
// and descriptions `describe_topics`, topic creation `create_topics` and deletion
// `delete_topics` (both audited); /health and /ready are open. A topic created by a produce
// request is audited too (options.audit), with who asked and from where.
//
// Consume with `group=G` reads from G's committed offset on that partition (the log start when
// it has none, or when the committed offset is no longer in the log); `commit=true` commits the
// offset after the last message returned, durably, before answering. A group whose members are
// in Kafka's group protocol owns its offsets: an HTTP commit to it is refused (409).
//
// Handlers run on the server's I/O threads and call the Broker directly (appends block on disk
// I/O; with fsync = "always" on the group commit). Long polls wait without holding a thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "broker/broker.h"
#include "broker/groups.h"
#include "common/status.h"
#include "http/audit_log.h"
#include "http/router.h"

namespace wasmq::http {

struct DataApiOptions {
  uint32_t max_wait_ms = 30'000;         // longest accepted wait_ms
  size_t default_max_messages = 100;
  size_t max_max_messages = 10'000;
  size_t default_max_bytes = 1 << 20;
  size_t max_max_bytes = 64 << 20;
  // Messages one produce request may carry; more is a 413 naming the limit. Bounds the work an
  // I/O thread does for one request and the size of its reply.
  size_t max_produce_messages = 10'000;
  // Where topics created by a produce request (auto_create_topics) are recorded; null: nowhere.
  std::shared_ptr<AuditLog> audit;
  // Consumer groups shared with the Kafka API (`group=`, `commit=true`); null: a consume with
  // `group` is refused.
  broker::GroupCoordinator* groups = nullptr;
};

// Registers the data API's routes on `router`. `broker` must outlive the router.
Status add_data_api(Router& router, broker::Broker& broker, DataApiOptions options = {});

}  // namespace wasmq::http
