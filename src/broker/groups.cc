#include "broker/groups.h"

#include <algorithm>
#include <boost/json.hpp>
#include <set>

#include "common/file.h"
#include "common/log.h"
#include "storage/topic_store.h"

namespace wasmq::broker {

namespace fs = std::filesystem;
namespace json = boost::json;
using Clock = std::chrono::steady_clock;

struct GroupCoordinator::Member {
  std::string id, client_id, client_host;
  std::chrono::milliseconds session_timeout{10'000}, rebalance_timeout{60'000};
  std::vector<std::pair<std::string, std::string>> protocols;
  std::string assignment;
  Clock::time_point last_seen;
  JoinDone pending_join;  // a join waiting for the rebalance to complete
  SyncDone pending_sync;  // a sync waiting for the leader's
};

struct GroupCoordinator::Group {
  enum class State { kEmpty, kPreparingRebalance, kCompletingRebalance, kStable };
  std::string id;
  State state = State::kEmpty;
  int32_t generation = 0;
  std::string protocol_type, protocol, leader;
  std::map<std::string, Member> members;
  // Ids handed out by a MEMBER_ID_REQUIRED answer, not yet joined with, and when.
  std::map<std::string, Clock::time_point> pending_ids;
  Clock::time_point rebalance_deadline{};
  Clock::time_point not_before{};  // the initial rebalance delay
};

namespace {

// The last member is gone: a new generation with nobody in it.
void become_empty(auto& g) {
  g.state = std::remove_reference_t<decltype(g)>::State::kEmpty;
  ++g.generation;
  g.protocol.clear();
  g.leader.clear();
}

GroupError validate_group_id(const std::string& id) {
  return id.empty() ? GroupError::kInvalidGroupId : GroupError::kNone;
}

std::string hex(std::string_view s) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

}  // namespace

GroupCoordinator::GroupCoordinator(GroupOptions options) : options_(std::move(options)) {}

Result<std::unique_ptr<GroupCoordinator>> GroupCoordinator::open(GroupOptions options) {
  std::error_code ec;
  fs::create_directories(options.dir, ec);
  if (ec) return Status(StatusCode::kIo, "cannot create " + options.dir.string() + ": " + ec.message());
  std::unique_ptr<GroupCoordinator> c(new GroupCoordinator(options));
  for (const auto& entry : fs::directory_iterator(options.dir, ec)) {
    if (entry.path().extension() != ".json") continue;
    auto text = read_file(entry.path(), 64ull << 20);
    if (!text.is_ok()) return text.status();
    boost::system::error_code jec;
    json::value v = json::parse(*text, jec);
    const std::string where = entry.path().string();
    if (jec || !v.is_object() || !v.as_object().contains("group") ||
        !v.at("group").is_string() || !v.as_object().contains("offsets") ||
        !v.at("offsets").is_array()) {
      return Status(StatusCode::kIo, where + ": not a group offsets file");
    }
    Offsets offsets;
    for (const auto& o : v.at("offsets").as_array()) {
      if (!o.is_object() || !o.as_object().contains("topic") || !o.at("topic").is_string() ||
          !o.as_object().contains("partition") || !o.at("partition").is_int64() ||
          !o.as_object().contains("offset") || !o.at("offset").is_int64()) {
        return Status(StatusCode::kIo, where + ": a malformed offset entry");
      }
      CommittedOffset c;
      c.offset = o.at("offset").as_int64();
      if (o.as_object().contains("metadata") && o.at("metadata").is_string()) {
        c.metadata = std::string(o.at("metadata").as_string());
      }
      offsets[{std::string(o.at("topic").as_string()), static_cast<int32_t>(o.at("partition").as_int64())}] = c;
    }
    MutexLock lock(c->mutex_);
    c->offsets_[std::string(v.at("group").as_string())] = std::move(offsets);
  }
  if (ec) return Status(StatusCode::kIo, "cannot list " + options.dir.string() + ": " + ec.message());
  c->timers_ = std::thread([raw = c.get()] { raw->run_timers(); });
  return c;
}

GroupCoordinator::~GroupCoordinator() {
  Calls calls;
  {
    MutexLock lock(mutex_);
    stopping_ = true;
    for (auto& [id, g] : groups_) {
      for (auto& [mid, m] : g->members) {
        if (m.pending_join) {
          calls.push_back([done = std::move(m.pending_join)] {
            JoinResult r;
            r.error = GroupError::kCoordinatorClosing;
            done(r);
          });
        }
        if (m.pending_sync) {
          calls.push_back([done = std::move(m.pending_sync)] { done({GroupError::kCoordinatorClosing, {}}); });
        }
      }
    }
  }
  wake_.notify_all();
  for (auto& call : calls) call();
  if (timers_.joinable()) timers_.join();
}

std::string GroupCoordinator::state_name(const Group& g) {
  switch (g.state) {
    case Group::State::kEmpty: return "Empty";
    case Group::State::kPreparingRebalance: return "PreparingRebalance";
    case Group::State::kCompletingRebalance: return "CompletingRebalance";
    case Group::State::kStable: return "Stable";
  }
  return "Dead";
}

void GroupCoordinator::join(JoinRequest req, JoinDone done) {
  JoinResult refused;
  if ((refused.error = validate_group_id(req.group_id)) != GroupError::kNone) return done(refused);
  if (req.session_timeout < options_.min_session_timeout ||
      req.session_timeout > options_.max_session_timeout) {
    refused.error = GroupError::kInvalidSessionTimeout;
    return done(refused);
  }
  Calls calls;
  {
    MutexLock lock(mutex_);
    if (stopping_) {
      refused.error = GroupError::kCoordinatorClosing;
      calls.push_back([done, refused] { done(refused); });
    } else {
      auto& slot = groups_[req.group_id];
      if (!slot) {
        slot = std::make_unique<Group>();
        slot->id = req.group_id;
      }
      Group& g = *slot;
      const auto now = Clock::now();
      // Every member must share the group's protocol type and one protocol with the others.
      bool consistent = g.members.empty() || g.protocol_type == req.protocol_type;
      if (consistent && !g.members.empty()) {
        consistent = std::any_of(req.protocols.begin(), req.protocols.end(), [&](const auto& p) {
          return std::all_of(g.members.begin(), g.members.end(), [&](const auto& m) {
            return m.first == req.member_id ||
                   std::any_of(m.second.protocols.begin(), m.second.protocols.end(),
                               [&](const auto& q) { return q.first == p.first; });
          });
        });
      }
      if (req.protocols.empty() || !consistent) {
        refused.error = GroupError::kInconsistentProtocol;
        calls.push_back([done, refused] { done(refused); });
      } else if (req.member_id.empty() && req.require_known_member_id) {
        // KIP-394: hand out an id; the client joins again with it.
        refused.error = GroupError::kMemberIdRequired;
        refused.member_id = (req.client_id.empty() ? "member" : req.client_id) + "-" + std::to_string(next_member_++);
        g.pending_ids[refused.member_id] = now;
        calls.push_back([done, refused] { done(refused); });
      } else if (!req.member_id.empty() && !g.members.count(req.member_id) &&
                 !g.pending_ids.count(req.member_id)) {
        refused.error = GroupError::kUnknownMember;
        calls.push_back([done, refused] { done(refused); });
      } else {
        std::string id = req.member_id.empty()
                             ? (req.client_id.empty() ? "member" : req.client_id) + "-" + std::to_string(next_member_++)
                             : req.member_id;
        g.pending_ids.erase(id);
        Member& m = g.members[id];
        const bool changed = m.id.empty() || m.protocols != req.protocols;
        m.id = id;
        m.client_id = req.client_id;
        m.client_host = req.client_host;
        m.session_timeout = req.session_timeout;
        m.rebalance_timeout = req.rebalance_timeout;
        m.protocols = std::move(req.protocols);
        m.last_seen = now;
        if (m.pending_join) {
          JoinResult replaced;
          replaced.error = GroupError::kUnknownMember;
          calls.push_back([old = std::move(m.pending_join), replaced] { old(replaced); });
        }
        m.pending_join = std::move(done);
        g.protocol_type = req.protocol_type;
        if (g.state == Group::State::kEmpty) {
          g.not_before = now + options_.initial_rebalance_delay;
          start_rebalance_locked(g, &calls);
        } else if (g.state != Group::State::kPreparingRebalance &&
                   (changed || id != g.leader || g.state == Group::State::kStable ||
                    g.state == Group::State::kCompletingRebalance)) {
          start_rebalance_locked(g, &calls);
        }
        maybe_complete_join_locked(g, false, &calls);
      }
    }
  }
  wake_.notify_all();
  for (auto& call : calls) call();
}

void GroupCoordinator::start_rebalance_locked(Group& g, Calls* calls) {
  g.state = Group::State::kPreparingRebalance;
  std::chrono::milliseconds longest{0};
  for (auto& [id, m] : g.members) {
    longest = std::max(longest, m.rebalance_timeout);
    // A follower waiting for a sync of the generation that ends now must rejoin.
    if (m.pending_sync) {
      calls->push_back([done = std::move(m.pending_sync)] { done({GroupError::kRebalanceInProgress, {}}); });
      m.pending_sync = nullptr;
    }
  }
  g.rebalance_deadline = Clock::now() + longest;
}

void GroupCoordinator::maybe_complete_join_locked(Group& g, bool deadline_passed, Calls* calls) {
  if (g.state != Group::State::kPreparingRebalance) return;
  const auto now = Clock::now();
  if (now < g.not_before && !deadline_passed) return;
  bool all_joined = true;
  for (const auto& [id, m] : g.members) all_joined &= static_cast<bool>(m.pending_join);
  if (!all_joined && !deadline_passed) return;
  // Members that did not rejoin in time are dropped.
  for (auto it = g.members.begin(); it != g.members.end();) {
    it = it->second.pending_join ? std::next(it) : g.members.erase(it);
  }
  if (g.members.empty()) return become_empty(g);
  ++g.generation;
  if (!g.members.count(g.leader)) g.leader = g.members.begin()->first;
  // The leader's first protocol that every member supports.
  const Member& leader = g.members.at(g.leader);
  g.protocol.clear();
  for (const auto& offered : leader.protocols) {
    const std::string& name = offered.first;  // not a structured binding: clang 14 cannot capture one
    bool everyone = std::all_of(g.members.begin(), g.members.end(), [&](const auto& m) {
      return std::any_of(m.second.protocols.begin(), m.second.protocols.end(),
                         [&](const auto& q) { return q.first == name; });
    });
    if (everyone) {
      g.protocol = name;
      break;
    }
  }
  g.state = Group::State::kCompletingRebalance;
  std::vector<std::pair<std::string, std::string>> all;
  for (const auto& [id, m] : g.members) {
    for (const auto& [name, metadata] : m.protocols) {
      if (name == g.protocol) all.emplace_back(id, metadata);
    }
  }
  for (auto& [id, m] : g.members) {
    JoinResult r;
    r.generation = g.generation;
    r.protocol = g.protocol;
    r.leader_id = g.leader;
    r.member_id = id;
    if (id == g.leader) r.members = all;
    m.last_seen = now;
    m.assignment.clear();
    calls->push_back([done = std::move(m.pending_join), r = std::move(r)] { done(r); });
    m.pending_join = nullptr;
  }
}

void GroupCoordinator::sync(const std::string& group_id, int32_t generation,
                            const std::string& member_id,
                            std::vector<std::pair<std::string, std::string>> assignments,
                            SyncDone done) {
  Calls calls;
  {
    MutexLock lock(mutex_);
    auto it = groups_.find(group_id);
    Member* m = nullptr;
    if (it != groups_.end()) {
      auto mit = it->second->members.find(member_id);
      if (mit != it->second->members.end()) m = &mit->second;
    }
    if (!m) {
      calls.push_back([done] { done({GroupError::kUnknownMember, {}}); });
    } else if (generation != it->second->generation) {
      calls.push_back([done] { done({GroupError::kIllegalGeneration, {}}); });
    } else if (it->second->state == Group::State::kPreparingRebalance) {
      calls.push_back([done] { done({GroupError::kRebalanceInProgress, {}}); });
    } else if (it->second->state == Group::State::kStable) {
      calls.push_back([done, a = m->assignment] { done({GroupError::kNone, a}); });
    } else {
      Group& g = *it->second;
      m->last_seen = Clock::now();
      m->pending_sync = std::move(done);
      if (member_id == g.leader) {
        for (auto& [id, assignment] : assignments) {
          auto target = g.members.find(id);
          if (target != g.members.end()) target->second.assignment = std::move(assignment);
        }
        g.state = Group::State::kStable;
        for (auto& [id, member] : g.members) {
          if (member.pending_sync) {
            calls.push_back([d = std::move(member.pending_sync), a = member.assignment] {
              d({GroupError::kNone, a});
            });
            member.pending_sync = nullptr;
          }
        }
      }
    }
  }
  for (auto& call : calls) call();
}

GroupError GroupCoordinator::heartbeat(const std::string& group_id, int32_t generation,
                                       const std::string& member_id) {
  MutexLock lock(mutex_);
  auto it = groups_.find(group_id);
  if (it == groups_.end()) return GroupError::kUnknownMember;
  Group& g = *it->second;
  auto m = g.members.find(member_id);
  if (m == g.members.end()) return GroupError::kUnknownMember;
  m->second.last_seen = Clock::now();
  if (g.state == Group::State::kPreparingRebalance) return GroupError::kRebalanceInProgress;
  if (generation != g.generation) return GroupError::kIllegalGeneration;
  return GroupError::kNone;
}

GroupError GroupCoordinator::leave(const std::string& group_id, const std::string& member_id) {
  Calls calls;
  GroupError result = GroupError::kNone;
  {
    MutexLock lock(mutex_);
    auto it = groups_.find(group_id);
    if (it == groups_.end() || !it->second->members.count(member_id)) {
      result = GroupError::kUnknownMember;
    } else {
      remove_member_locked(*it->second, member_id, &calls);
    }
  }
  for (auto& call : calls) call();
  return result;
}

void GroupCoordinator::remove_member_locked(Group& g, const std::string& member_id, Calls* calls) {
  auto it = g.members.find(member_id);
  if (it == g.members.end()) return;
  if (it->second.pending_join) {
    JoinResult r;
    r.error = GroupError::kUnknownMember;
    calls->push_back([done = std::move(it->second.pending_join), r] { done(r); });
  }
  if (it->second.pending_sync) {
    calls->push_back([done = std::move(it->second.pending_sync)] { done({GroupError::kUnknownMember, {}}); });
  }
  g.members.erase(it);
  if (g.members.empty()) return become_empty(g);
  if (g.state != Group::State::kPreparingRebalance) start_rebalance_locked(g, calls);
  maybe_complete_join_locked(g, false, calls);
}

void GroupCoordinator::run_timers() {
  for (;;) {
    Calls calls;
    {
      MutexLock lock(mutex_);
      if (stopping_) return;
      wake_.wait_for(mutex_, options_.tick);
      if (stopping_) return;
      const auto now = Clock::now();
      for (auto& [id, g] : groups_) {
        // Silent members, except those waiting in a join (they are answered at the rebalance).
        std::vector<std::string> expired;
        for (const auto& [mid, m] : g->members) {
          if (!m.pending_join && now - m.last_seen > m.session_timeout) expired.push_back(mid);
        }
        for (const auto& mid : expired) {
          log::get("broker").info("group {}: member {} left (no heartbeat for its session timeout)",
                                  id, mid);
          remove_member_locked(*g, mid, &calls);
        }
        for (auto it = g->pending_ids.begin(); it != g->pending_ids.end();) {
          it = now - it->second > std::chrono::minutes(5) ? g->pending_ids.erase(it) : std::next(it);
        }
        if (g->state == Group::State::kPreparingRebalance) {
          maybe_complete_join_locked(*g, now >= g->rebalance_deadline, &calls);
        }
      }
    }
    for (auto& call : calls) call();
  }
}

fs::path GroupCoordinator::file_for(const std::string& group_id) const {
  // Group ids are any string: the file is named by their bytes in hex (long ones hashed would
  // collide; ids are short in practice and the name is bounded below).
  return options_.dir / (hex(group_id.substr(0, 100)) + ".json");
}

Status GroupCoordinator::write_offsets(const std::string& group_id, const Offsets& offsets) {
  json::array entries;
  for (const auto& [key, c] : offsets) {
    entries.push_back(json::object{{"topic", key.first},
                                   {"partition", key.second},
                                   {"offset", c.offset},
                                   {"metadata", c.metadata}});
  }
  json::object doc{{"group", group_id}, {"offsets", std::move(entries)}};
  return write_file_atomically(file_for(group_id), json::serialize(doc));
}

GroupError GroupCoordinator::commit(const std::string& group_id, int32_t generation,
                                    const std::string& member_id, const Offsets& offsets,
                                    Status* io_error) {
  if (validate_group_id(group_id) != GroupError::kNone) return GroupError::kInvalidGroupId;
  MutexLock writing(write_mutex_);
  Offsets all;
  {
    MutexLock lock(mutex_);
    auto it = groups_.find(group_id);
    if (generation >= 0) {
      if (it == groups_.end() || !it->second->members.count(member_id)) return GroupError::kUnknownMember;
      if (it->second->generation != generation) return GroupError::kIllegalGeneration;
      if (it->second->state == Group::State::kPreparingRebalance) return GroupError::kRebalanceInProgress;
      it->second->members.at(member_id).last_seen = Clock::now();
    } else if (it != groups_.end() && !it->second->members.empty()) {
      // Outside the group protocol while the group has members: Kafka refuses it too.
      return GroupError::kUnknownMember;
    }
    all = offsets_[group_id];
  }
  for (const auto& [key, c] : offsets) all[key] = c;
  if (Status s = write_offsets(group_id, all); !s.is_ok()) {
    log::get("broker").error("group {}: cannot store committed offsets: {}", group_id, s.message());
    *io_error = s;
    return GroupError::kNone;
  }
  MutexLock lock(mutex_);
  offsets_[group_id] = std::move(all);
  return GroupError::kNone;
}

GroupCoordinator::Offsets GroupCoordinator::committed(const std::string& group_id) const {
  MutexLock lock(mutex_);
  auto it = offsets_.find(group_id);
  return it == offsets_.end() ? Offsets{} : it->second;
}

std::vector<GroupSummary> GroupCoordinator::list() const {
  std::vector<GroupSummary> out;
  std::set<std::string> seen;
  {
    MutexLock lock(mutex_);
    for (const auto& [id, g] : groups_) seen.insert(id);
    for (const auto& [id, o] : offsets_) seen.insert(id);
  }
  for (const auto& id : seen) {
    if (auto d = describe(id)) out.push_back(std::move(*d));
  }
  return out;
}

std::optional<GroupSummary> GroupCoordinator::describe(const std::string& group_id) const {
  MutexLock lock(mutex_);
  auto it = groups_.find(group_id);
  if (it == groups_.end()) {
    if (!offsets_.count(group_id)) return std::nullopt;
    GroupSummary s;
    s.group_id = group_id;
    s.state = "Empty";
    return s;
  }
  const Group& g = *it->second;
  GroupSummary s;
  s.group_id = group_id;
  s.state = state_name(g);
  s.protocol_type = g.protocol_type;
  s.protocol = g.protocol;
  s.generation = g.generation;
  for (const auto& [id, m] : g.members) {
    GroupMemberSummary ms{id, m.client_id, m.client_host, {}, m.assignment};
    for (const auto& [name, metadata] : m.protocols) {
      if (name == g.protocol) ms.metadata = metadata;
    }
    s.members.push_back(std::move(ms));
  }
  return s;
}

std::vector<PartitionLag> group_lag(const GroupCoordinator::Offsets& offsets,
                                    const storage::TopicStore& store) {
  std::vector<PartitionLag> out;
  out.reserve(offsets.size());
  std::shared_ptr<storage::Topic> topic;
  for (const auto& [key, committed] : offsets) {
    PartitionLag p;
    p.topic = key.first;
    p.partition = key.second;
    p.committed = committed.offset;
    p.metadata = committed.metadata;
    if (!topic || topic->name() != key.first) topic = store.find(key.first);
    if (topic && key.second >= 0 && static_cast<uint32_t>(key.second) < topic->partition_count()) {
      const auto& log = topic->partition(static_cast<uint32_t>(key.second));
      p.log_start_offset = log.start_offset();
      p.high_watermark = log.next_offset();
      p.lag = std::max<int64_t>(0, p.high_watermark - std::max(p.committed, p.log_start_offset));
    }
    out.push_back(std::move(p));
  }
  return out;
}

int64_t total_lag(const std::vector<PartitionLag>& lags) {
  int64_t total = 0;
  for (const auto& l : lags) total += std::max<int64_t>(0, l.lag);
  return total;
}

std::optional<TopicPartitions> decode_consumer_assignment(std::string_view bytes) {
  size_t at = 0;
  auto take = [&](size_t n) -> std::optional<std::string_view> {
    if (bytes.size() - at < n) return std::nullopt;
    std::string_view s = bytes.substr(at, n);
    at += n;
    return s;
  };
  auto be = [&](size_t n) -> std::optional<int64_t> {
    auto s = take(n);
    if (!s) return std::nullopt;
    uint64_t v = 0;
    for (unsigned char c : *s) v = (v << 8) | c;
    // Sign-extend from n bytes.
    const unsigned shift = static_cast<unsigned>(64 - 8 * n);
    return static_cast<int64_t>(v << shift) >> shift;
  };
  auto version = be(2);
  if (!version || *version < 0) return std::nullopt;
  auto topics = be(4);
  if (!topics || *topics < 0 || *topics > static_cast<int64_t>(bytes.size())) return std::nullopt;
  TopicPartitions out;
  for (int64_t t = 0; t < *topics; ++t) {
    auto length = be(2);
    if (!length || *length < 0) return std::nullopt;
    auto name = take(static_cast<size_t>(*length));
    auto count = be(4);
    if (!name || !count || *count < 0 || *count > static_cast<int64_t>(bytes.size())) return std::nullopt;
    std::vector<int32_t> partitions;
    for (int64_t i = 0; i < *count; ++i) {
      auto p = be(4);
      if (!p) return std::nullopt;
      partitions.push_back(static_cast<int32_t>(*p));
    }
    out.emplace_back(std::string(*name), std::move(partitions));
  }
  // User data (bytes, -1 for null) follows; older encoders may leave it out.
  if (at < bytes.size()) {
    auto length = be(4);
    if (!length || *length < -1 || (*length > 0 && !take(static_cast<size_t>(*length)))) return std::nullopt;
  }
  if (at != bytes.size()) return std::nullopt;
  return out;
}

}  // namespace wasmq::broker
