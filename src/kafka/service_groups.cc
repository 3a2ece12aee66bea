// The consumer-group APIs of the Service: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
// LeaveGroup, OffsetCommit, OffsetFetch, DescribeGroups, ListGroups, on broker::GroupCoordinator.
#include <functional>

#include "common/handoff.h"
#include "kafka/requests.h"
#include "kafka/service.h"
#include "kafka/service_internal.h"

namespace wasmq::kafka {
namespace {

using boost::asio::awaitable;
using broker::GroupError;
using namespace service_internal;

int16_t code_of(GroupError e) {
  switch (e) {
    case GroupError::kNone: return error::kNone;
    case GroupError::kUnknownMember: return error::kUnknownMemberId;
    case GroupError::kIllegalGeneration: return error::kIllegalGeneration;
    case GroupError::kRebalanceInProgress: return error::kRebalanceInProgress;
    case GroupError::kInconsistentProtocol: return error::kInconsistentGroupProtocol;
    case GroupError::kMemberIdRequired: return error::kMemberIdRequired;
    case GroupError::kInvalidSessionTimeout: return error::kInvalidSessionTimeout;
    case GroupError::kInvalidGroupId: return error::kInvalidGroupId;
    case GroupError::kCoordinatorClosing: return error::kCoordinatorNotAvailable;
  }
  return error::kUnknownServerError;
}

std::string text(std::span<const uint8_t> b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

// A response of only an error code (and the throttle time from `throttle_from` on).
Response error_only(const RequestHeader& h, int16_t code, int16_t throttle_from) {
  std::string out;
  Writer w(&out);
  w.i32(h.correlation_id);
  if (h.api_version >= throttle_from) w.i32(0);
  w.i16(code);
  return out;
}

}  // namespace

awaitable<Result<Response>> Service::find_coordinator(Session& s, const RequestHeader& h, Reader& r) {
  FindCoordinatorRequest req = read_find_coordinator(r, h.api_version);
  if (!r.ok()) co_return malformed(h, r);
  int16_t code = error::kNone;
  std::optional<std::string_view> message;
  std::string why;
  if (req.key_type == 1) {
    // Transactions are not offered: non-retriable, so that the producer fails at once.
    code = error::kTransactionalIdAuthorizationFailed;
    message = "transactions are not supported by wasmq";
  } else if (!permit(s, Need::kConsume, "FindCoordinator", "group " + std::string(req.key), &why)) {
    code = error::kGroupAuthorizationFailed;
    message = why;
  } else if (!groups_) {
    code = error::kCoordinatorNotAvailable;
  }
  std::string out;
  Writer w(&out);
  w.i32(h.correlation_id);
  if (h.api_version >= 1) w.i32(0);
  w.i16(code);
  if (h.api_version >= 1) w.nullable_string(message);
  w.i32(code == error::kNone ? kNodeId : -1);
  w.string(code == error::kNone ? options_.advertised_host : "");
  w.i32(code == error::kNone ? options_.advertised_port : -1);
  co_return Response(std::move(out));
}

awaitable<Result<Response>> Service::join_group(Session& s, const RequestHeader& h, Reader& r) {
  const int16_t v = h.api_version;
  JoinGroupRequest req = read_join_group(r, v);
  if (!r.ok()) co_return malformed(h, r);
  broker::JoinResult result;
  int16_t refused = error::kNone;
  if (!permit(s, Need::kConsume, "JoinGroup", "group " + std::string(req.group_id))) {
    refused = error::kGroupAuthorizationFailed;
  } else if (!groups_) {
    result.error = GroupError::kCoordinatorClosing;
  } else {
    broker::JoinRequest join;
    join.group_id = std::string(req.group_id);
    join.member_id = std::string(req.member_id);
    join.client_id = std::string(h.client_id.value_or(""));
    join.client_host = "/" + s.address;  // as Kafka shows it
    join.session_timeout = std::chrono::milliseconds(req.session_timeout_ms);
    join.rebalance_timeout = std::chrono::milliseconds(std::max(req.rebalance_timeout_ms, req.session_timeout_ms));
    join.protocol_type = std::string(req.protocol_type);
    for (const auto& [name, metadata] : req.protocols) join.protocols.emplace_back(std::string(name), text(metadata));
    join.require_known_member_id = v >= 4;
    // Answered when the rebalance completes, which may take until its timeout.
    auto [sender, receiver] = make_handoff<broker::JoinResult>();
    groups_->join(std::move(join), [sender = sender](broker::JoinResult j) { sender.send(std::move(j)); });
    auto got = co_await receiver.receive();
    if (!got.is_ok()) co_return got.status();
    result = std::move(*got);
  }
  std::string out;
  Writer w(&out);
  w.i32(h.correlation_id);
  if (v >= 2) w.i32(0);
  w.i16(refused != error::kNone ? refused : code_of(result.error));
  w.i32(result.generation);
  w.string(result.protocol);
  w.string(result.leader_id);
  w.string(result.member_id);
  w.array_length(result.members.size());
  for (const auto& [id, metadata] : result.members) {
    w.string(id);
    if (v >= 5) w.nullable_string(std::nullopt);
    w.bytes(metadata);
  }
  co_return Response(std::move(out));
}

awaitable<Result<Response>> Service::sync_group(Session& s, const RequestHeader& h, Reader& r) {
  SyncGroupRequest req = read_sync_group(r, h.api_version);
  if (!r.ok()) co_return malformed(h, r);
  broker::SyncResult result{GroupError::kCoordinatorClosing, {}};
  const bool may = permit(s, Need::kConsume, "SyncGroup", "group " + std::string(req.group_id));
  if (groups_ && may) {
    std::vector<std::pair<std::string, std::string>> assignments;
    for (const auto& [member, assignment] : req.assignments) {
      assignments.emplace_back(std::string(member), text(assignment));
    }
    // A follower's sync is answered when the leader's comes.
    auto [sender, receiver] = make_handoff<broker::SyncResult>();
    groups_->sync(std::string(req.group_id), req.generation_id, std::string(req.member_id),
                  std::move(assignments), [sender = sender](broker::SyncResult s) { sender.send(std::move(s)); });
    auto got = co_await receiver.receive();
    if (!got.is_ok()) co_return got.status();
    result = std::move(*got);
  }
  std::string out;
  Writer w(&out);
  w.i32(h.correlation_id);
  if (h.api_version >= 1) w.i32(0);
  w.i16(may ? code_of(result.error) : error::kGroupAuthorizationFailed);
  w.bytes(result.assignment);
  co_return Response(std::move(out));
}

awaitable<Result<Response>> Service::heartbeat(Session& s, const RequestHeader& h, Reader& r) {
  HeartbeatRequest req = read_heartbeat(r, h.api_version);
  if (!r.ok()) co_return malformed(h, r);
  if (!permit(s, Need::kConsume, "Heartbeat", "group " + std::string(req.group_id))) {
    co_return error_only(h, error::kGroupAuthorizationFailed, 1);
  }
  const GroupError e = groups_ ? groups_->heartbeat(std::string(req.group_id), req.generation_id,
                                                    std::string(req.member_id))
                               : GroupError::kCoordinatorClosing;
  co_return error_only(h, code_of(e), 1);
}

awaitable<Result<Response>> Service::leave_group(Session& s, const RequestHeader& h, Reader& r) {
  LeaveGroupRequest req = read_leave_group(r, h.api_version);
  if (!r.ok()) co_return malformed(h, r);
  if (!permit(s, Need::kConsume, "LeaveGroup", "group " + std::string(req.group_id))) {
    co_return error_only(h, error::kGroupAuthorizationFailed, 1);
  }
  const GroupError e = groups_ ? groups_->leave(std::string(req.group_id), std::string(req.member_id))
                               : GroupError::kCoordinatorClosing;
  co_return error_only(h, code_of(e), 1);
}

awaitable<Result<Response>> Service::offset_commit(Session& s, const RequestHeader& h, Reader& r) {
  const int16_t v = h.api_version;
  OffsetCommitRequest req = read_offset_commit(r, v);
  if (!r.ok()) co_return malformed(h, r);
  // Per partition: an error found here, or the commit's outcome.
  std::vector<std::vector<int16_t>> codes(req.topics.size());
  broker::GroupCoordinator::Offsets offsets;
  const bool may = permit(s, Need::kConsume, "OffsetCommit", "group " + std::string(req.group_id));
  for (size_t t = 0; t < req.topics.size(); ++t) {
    auto topic = broker_.store().find(req.topics[t].name);
    for (const auto& p : req.topics[t].partitions) {
      if (!may) {
        codes[t].push_back(error::kGroupAuthorizationFailed);
        continue;
      }
      if (!partition_of(topic, p.index)) {
        codes[t].push_back(error::kUnknownTopicOrPartition);
        continue;
      }
      codes[t].push_back(error::kNone);
      offsets[{std::string(req.topics[t].name), p.index}] = {p.offset, std::string(p.metadata.value_or(""))};
    }
  }
  int16_t outcome = groups_ ? error::kNone : error::kCoordinatorNotAvailable;
  if (groups_ && !offsets.empty()) {
    // Durable before it is answered: the group's file is written on a disk thread.
    using Commit = std::pair<GroupError, Status>;
    std::function<Commit()> commit = [groups = groups_, group = std::string(req.group_id),
                                      generation = v >= 1 ? req.generation_id : -1,
                                      member = std::string(req.member_id), offsets] {
      Status io;
      GroupError e = groups->commit(group, generation, member, offsets, &io);
      return Commit{e, io};
    };
    auto done = co_await run_on(broker_.disk_tasks(), commit);
    if (!done.is_ok()) co_return done.status();
    outcome = !done->second.is_ok() ? error::kKafkaStorageError : code_of(done->first);
  }
  std::string out;
  Writer w(&out);
  w.i32(h.correlation_id);
  if (v >= 3) w.i32(0);
  w.array_length(req.topics.size());
  for (size_t t = 0; t < req.topics.size(); ++t) {
    w.string(req.topics[t].name);
    w.array_length(req.topics[t].partitions.size());
    for (size_t i = 0; i < req.topics[t].partitions.size(); ++i) {
      w.i32(req.topics[t].partitions[i].index);
      w.i16(codes[t][i] != error::kNone ? codes[t][i] : outcome);
    }
  }
  co_return Response(std::move(out));
}

awaitable<Result<Response>> Service::offset_fetch(Session& s, const RequestHeader& h, Reader& r) {
  const int16_t v = h.api_version;
  OffsetFetchRequest req = read_offset_fetch(r, v);
  if (!r.ok()) co_return malformed(h, r);
  const bool may = permit(s, Need::kConsume, "OffsetFetch", "group " + std::string(req.group_id));
  const auto committed = groups_ && may ? groups_->committed(std::string(req.group_id))
                                        : broker::GroupCoordinator::Offsets{};
  // Every committed offset when no topics were named (v2+).
  std::vector<std::pair<std::string, std::vector<int32_t>>> wanted;
  if (req.topics) {
    for (const auto& t : *req.topics) wanted.emplace_back(std::string(t.name), t.partitions);
  } else {
    for (const auto& [key, c] : committed) {
      if (wanted.empty() || wanted.back().first != key.first) wanted.emplace_back(key.first, std::vector<int32_t>{});
      wanted.back().second.push_back(key.second);
    }
  }
  std::string out;
  Writer w(&out);
  w.i32(h.correlation_id);
  if (v >= 3) w.i32(0);
  w.array_length(wanted.size());
  for (const auto& [topic, partitions] : wanted) {
    w.string(topic);
    w.array_length(partitions.size());
    for (int32_t p : partitions) {
      auto it = committed.find({topic, p});
      w.i32(p);
      w.i64(it == committed.end() ? -1 : it->second.offset);
      if (v >= 5) w.i32(-1);  // committed_leader_epoch
      w.nullable_string(it == committed.end() ? std::optional<std::string_view>("")
                                              : std::optional<std::string_view>(it->second.metadata));
      w.i16(may ? error::kNone : error::kGroupAuthorizationFailed);
    }
  }
  if (v >= 2) {
    w.i16(!may ? error::kGroupAuthorizationFailed
               : groups_ ? error::kNone : error::kCoordinatorNotAvailable);
  }
  co_return Response(std::move(out));
}

awaitable<Result<Response>> Service::describe_groups(Session& s, const RequestHeader& h, Reader& r) {
  const int16_t v = h.api_version;
  DescribeGroupsRequest req = read_describe_groups(r, v);
  if (!r.ok()) co_return malformed(h, r);
  std::string out;
  Writer w(&out);
  w.i32(h.correlation_id);
  if (v >= 1) w.i32(0);
  w.array_length(req.groups.size());
  for (std::string_view id : req.groups) {
    const bool may = permit(s, Need::kConsume, "DescribeGroups", "group " + std::string(id));
    auto g = groups_ && may ? groups_->describe(std::string(id)) : std::nullopt;
    w.i16(!may ? error::kGroupAuthorizationFailed
               : groups_ ? error::kNone : error::kCoordinatorNotAvailable);
    w.string(id);
    w.string(g ? g->state : "Dead");
    w.string(g ? g->protocol_type : "");
    w.string(g ? g->protocol : "");
    w.array_length(g ? g->members.size() : 0);
    if (g) {
      for (const auto& m : g->members) {
        w.string(m.member_id);
        if (v >= 4) w.nullable_string(std::nullopt);
        w.string(m.client_id);
        w.string(m.client_host);
        w.bytes(m.metadata);
        w.bytes(m.assignment);
      }
    }
    if (v >= 3) w.i32(INT32_MIN);  // authorized_operations: not computed
  }
  co_return Response(std::move(out));
}

awaitable<Result<Response>> Service::list_groups(Session& s, const RequestHeader& h, Reader& r) {
  read_list_groups(r, h.api_version);
  if (!r.ok()) co_return malformed(h, r);
  const bool may = permit(s, Need::kConsume, "ListGroups", "every group");
  std::string out;
  Writer w(&out);
  w.i32(h.correlation_id);
  if (h.api_version >= 1) w.i32(0);
  w.i16(!may ? error::kClusterAuthorizationFailed
             : groups_ ? error::kNone : error::kCoordinatorNotAvailable);
  const auto all = groups_ && may ? groups_->list() : std::vector<broker::GroupSummary>{};
  w.array_length(all.size());
  for (const auto& g : all) {
    w.string(g.group_id);
    w.string(g.protocol_type);
  }
  co_return Response(std::move(out));
}

}  // namespace wasmq::kafka
