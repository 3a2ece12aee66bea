// The Kafka APIs on top of the broker: one request frame in, its response out. Produce goes
// through the same broker as HTTP (so through the topic's inline pipelines); a batch no pipeline
// applies to is stored as the client sent it. Fetch hands the stored batches back as they are.
//
// What runs where: handle() runs on the calling connection's executor (a Kafka I/O thread) and
// never waits for the disk there: topic creation and removal and reads go to the broker's disk
// threads, appends to its appender, and the coroutine resumes when they are done (Handoff).
// Threads: one Service serves every connection; handle() may run on several I/O threads at once.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "broker/broker.h"
#include "broker/groups.h"
#include "common/status.h"
#include "kafka/producer_state.h"
#include "kafka/protocol.h"

namespace wasmq::kafka {

struct ServiceOptions {
  std::string advertised_host = "127.0.0.1";  // put in Metadata: where clients connect
  int32_t advertised_port = 9093;
  bool auto_create_topics = true;  // broker.auto_create_topics
  std::string cluster_id = "wasmq";
};

// One response to send, or none (a Produce with acks=0 gets none).
using Response = std::optional<std::string>;

class Service {
 public:
  // `broker` and `groups` (null: no group APIs; they answer COORDINATOR_NOT_AVAILABLE) must
  // outlive the service.
  Service(broker::Broker& broker, ServiceOptions options,
          broker::GroupCoordinator* groups = nullptr);

  // Answers one frame (request header and body, without the size prefix): the response with its
  // header, ready for a size prefix. kInvalidArgument when the frame is malformed, names an API
  // or version not served (ApiVersions excepted: it answers UNSUPPORTED_VERSION, as Kafka does),
  // or has bytes left over: the connection must close.
  boost::asio::awaitable<Result<Response>> handle(std::span<const uint8_t> frame);

  // Rebuilds the idempotent producers' state from the tails of the logs (ProducerStates::rebuild);
  // returns how many producer batches it found. Reads the disk: at start, before serving.
  size_t recover_producers() { return producers_.rebuild(broker_.store()); }

  // Sets the address Metadata advertises. Before the listener serves its first connection only
  // (Server::start's `bound` callback).
  void set_advertised(std::string host, int32_t port) {
    options_.advertised_host = std::move(host);
    options_.advertised_port = port;
  }

 private:
  using awaitable_response = boost::asio::awaitable<Result<Response>>;
  awaitable_response api_versions(const RequestHeader& h);
  awaitable_response metadata(const RequestHeader& h, Reader& r);
  awaitable_response produce(const RequestHeader& h, Reader& r);
  awaitable_response fetch(const RequestHeader& h, Reader& r);
  awaitable_response list_offsets(const RequestHeader& h, Reader& r);
  awaitable_response create_topics(const RequestHeader& h, Reader& r);
  awaitable_response delete_topics(const RequestHeader& h, Reader& r);
  awaitable_response init_producer_id(const RequestHeader& h, Reader& r);
  // Consumer groups (service_groups.cc).
  awaitable_response find_coordinator(const RequestHeader& h, Reader& r);
  awaitable_response join_group(const RequestHeader& h, Reader& r);
  awaitable_response sync_group(const RequestHeader& h, Reader& r);
  awaitable_response heartbeat(const RequestHeader& h, Reader& r);
  awaitable_response leave_group(const RequestHeader& h, Reader& r);
  awaitable_response offset_commit(const RequestHeader& h, Reader& r);
  awaitable_response offset_fetch(const RequestHeader& h, Reader& r);
  awaitable_response describe_groups(const RequestHeader& h, Reader& r);
  awaitable_response list_groups(const RequestHeader& h, Reader& r);

  broker::Broker& broker_;
  ServiceOptions options_;
  broker::GroupCoordinator* const groups_;
  ProducerStates producers_;
};

}  // namespace wasmq::kafka
