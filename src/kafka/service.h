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
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "broker/broker.h"
#include "broker/groups.h"
#include "common/status.h"
#include "kafka/producer_state.h"
#include "kafka/protocol.h"

namespace wasmq::kafka {


// One response to send, or none (a Produce with acks=0 gets none).
using Response = std::optional<std::string>;

// What a request needs of its caller when the listener requires SASL: the HTTP API's rights of
// the same names (docs/configuration.md, "Roles and rights"). Produce and InitProducerId need
// kProduce; Fetch, ListOffsets and the group APIs kConsume; Metadata and DescribeConfigs
// kDescribeTopics (and kCreateTopics to create topics); CreateTopics kCreateTopics; DeleteTopics
// kDeleteTopics.
enum class Need : uint8_t { kProduce, kConsume, kDescribeTopics, kCreateTopics, kDeleteTopics };
std::string_view need_name(Need need);  // "produce", "consume", ...

// Who a connection authenticated as: a token's name and role.
struct Caller {
  std::string name;
  std::string role;
};

// One attempt for the audit log: an authentication that failed, a request refused for want of a
// right, or a topic created or deleted (admitted or not).
struct AuditEvent {
  const Caller* caller = nullptr;  // null: not authenticated
  std::string_view remote;         // the client's IP address
  std::string_view api;            // "SaslAuthenticate", "DeleteTopics", ...
  std::string_view resource;       // "topic orders", "group billing", "" for none
  enum class Result { kOk, kRefused, kFailed } result = Result::kOk;
  std::string_view error;          // why, when not kOk
};

// SASL/PLAIN against the tokens file (kafka.md, "Security"), given by the one who loads it.
struct Security {
  // The caller whose token is `password` when its name is `username`; nullopt otherwise.
  std::function<std::optional<Caller>(std::string_view username, std::string_view password)>
      authenticate;
  std::function<bool(const Caller&, Need)> allows;
};

// What the service knows of one connection. The listener keeps it and hands it to each of the
// connection's requests, one at a time.
struct Session {
  std::string remote;   // "ip:port", for logs
  std::string address;  // "ip": audit lines (bounded per address) and a group member's host
  // SASL: kStart until a SaslHandshake; then a SaslAuthenticate (handshake v1) or one raw token
  // frame (handshake v0); kDone once authenticated.
  enum class Sasl : uint8_t { kStart, kAuthenticate, kRawToken, kDone } sasl = Sasl::kStart;
  std::optional<Caller> caller;
  // Set by a failed authentication: the listener sends the response, then closes.
  bool close_after_response = false;
};

struct ServiceOptions {
  std::string advertised_host = "127.0.0.1";  // put in Metadata: where clients connect
  int32_t advertised_port = 9093;
  bool auto_create_topics = true;  // broker.auto_create_topics
  std::string cluster_id = "wasmq";
  // Null: no authentication (every request allowed). Otherwise every connection must
  // authenticate with SASL/PLAIN before any request but ApiVersions and the SASL ones.
  std::shared_ptr<const Security> security;
  // The audit log (security.audit_log); empty: none. Used with or without `security`.
  std::function<void(const AuditEvent&)> audit;
};

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
  // `session` is the connection's, updated by the SASL requests.
  boost::asio::awaitable<Result<Response>> handle(Session& session, std::span<const uint8_t> frame);

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
  awaitable_response metadata(Session& s, const RequestHeader& h, Reader& r);
  awaitable_response produce(Session& s, const RequestHeader& h, Reader& r);
  awaitable_response fetch(Session& s, const RequestHeader& h, Reader& r);
  awaitable_response list_offsets(Session& s, const RequestHeader& h, Reader& r);
  awaitable_response create_topics(Session& s, const RequestHeader& h, Reader& r);
  awaitable_response delete_topics(Session& s, const RequestHeader& h, Reader& r);
  awaitable_response init_producer_id(Session& s, const RequestHeader& h, Reader& r);
  // Consumer groups (service_groups.cc).
  awaitable_response find_coordinator(Session& s, const RequestHeader& h, Reader& r);
  awaitable_response join_group(Session& s, const RequestHeader& h, Reader& r);
  awaitable_response sync_group(Session& s, const RequestHeader& h, Reader& r);
  awaitable_response heartbeat(Session& s, const RequestHeader& h, Reader& r);
  awaitable_response leave_group(Session& s, const RequestHeader& h, Reader& r);
  awaitable_response offset_commit(Session& s, const RequestHeader& h, Reader& r);
  awaitable_response offset_fetch(Session& s, const RequestHeader& h, Reader& r);
  awaitable_response describe_groups(Session& s, const RequestHeader& h, Reader& r);
  awaitable_response list_groups(Session& s, const RequestHeader& h, Reader& r);
  awaitable_response describe_configs(Session& s, const RequestHeader& h, Reader& r);
  // SASL (service_sasl.cc).
  awaitable_response sasl_handshake(Session& s, const RequestHeader& h, Reader& r);
  awaitable_response sasl_authenticate(Session& s, const RequestHeader& h, Reader& r);
  // A handshake v0's token, which comes as a bare frame without a request header.
  Result<Response> raw_sasl_token(Session& s, std::span<const uint8_t> frame);
  // Checks a SASL/PLAIN message ("authzid\0username\0password"); on success sets the session's
  // caller. The error message to give otherwise.
  std::optional<std::string> authenticate_plain(Session& s, std::string_view message);
  // Whether the session may do what `need` names (always without security); a refusal is
  // audited as `api` on `resource`, and `why` (when given) gets its message.
  bool permit(const Session& s, Need need, std::string_view api, std::string_view resource,
              std::string* why = nullptr) const;
  // The same, with the resource named by `resource()` only when there is security to check:
  // the high-rate requests (Produce, Fetch) do not build an audit text they will not use.
  template <typename NameResource>
    requires std::is_invocable_r_v<std::string, NameResource>
  bool permit(const Session& s, Need need, std::string_view api, NameResource&& resource) const {
    return !options_.security || permit(s, need, api, std::string_view(resource()));
  }
  // Records an attempt in the audit log, when there is one.
  void audit(const Session& s, std::string_view api, std::string_view resource,
             AuditEvent::Result result, std::string_view error) const;

  broker::Broker& broker_;
  ServiceOptions options_;
  broker::GroupCoordinator* const groups_;
  ProducerStates producers_;
};

}  // namespace wasmq::kafka
