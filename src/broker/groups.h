// Consumer groups (Kafka's classic group protocol) and their committed offsets, shared by the
// Kafka front end and the HTTP API (`GET …/messages?group=G&commit=true`, `/api/v1/groups`).
//
// Membership: members join (JoinGroup), the coordinator waits until every known member has
// rejoined (or the rebalance timeout passes: those that did not are dropped), then starts a new
// generation, picks a protocol every member supports (the leader's first such), and answers
// every join: the leader gets every member's metadata. The leader's SyncGroup hands out the
// assignments; every member's SyncGroup is answered with its own. Heartbeats keep a member in;
// one silent for its session timeout is dropped, and so is one that leaves. Any change of
// members starts a rebalance, which heartbeats report (kRebalanceInProgress) so that members
// rejoin. A group's first join waits `initial_rebalance_delay` for others to arrive (Kafka's
// group.initial.rebalance.delay.ms).
//
// Offsets: committed per (group, topic, partition) with their metadata, durable: each commit
// rewrites the group's file `<dir>/<hex of the group id>.json` (written aside, synced, renamed)
// before it is answered. Loaded at open().
//
// Answers that must wait (a join until the rebalance completes, a follower's sync until the
// leader's) go to the callback given, from whichever thread completes them (a later request's,
// or the coordinator's timer thread); callbacks must not block.
//
// Threads: every method may be called from any thread; one mutex guards the groups, and file
// writes happen outside it (commit() writes on the calling thread: call it on a disk thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"

namespace wasmq::storage {
class TopicStore;
}

namespace wasmq::broker {

// The outcomes a group operation can have (the Kafka front end maps them to error codes).
enum class GroupError {
  kNone,
  kUnknownMember,        // UNKNOWN_MEMBER_ID
  kIllegalGeneration,    // ILLEGAL_GENERATION
  kRebalanceInProgress,  // REBALANCE_IN_PROGRESS
  kInconsistentProtocol, // INCONSISTENT_GROUP_PROTOCOL
  kMemberIdRequired,     // MEMBER_ID_REQUIRED: join again with the id given
  kInvalidSessionTimeout,
  kInvalidGroupId,
  kCoordinatorClosing,   // the broker is stopping
};

struct JoinRequest {
  std::string group_id;
  std::string member_id;  // "" on a first join
  std::string client_id;
  std::string client_host;
  std::chrono::milliseconds session_timeout{10'000};
  std::chrono::milliseconds rebalance_timeout{60'000};
  std::string protocol_type;  // "consumer"
  std::vector<std::pair<std::string, std::string>> protocols;  // name, metadata (preference order)
  bool require_known_member_id = true;  // JoinGroup v4+ (KIP-394)
};

struct JoinResult {
  GroupError error = GroupError::kNone;
  int32_t generation = -1;
  std::string protocol;
  std::string leader_id;
  std::string member_id;
  // The leader's answer holds every member (id and metadata for the chosen protocol); the
  // others' is empty.
  std::vector<std::pair<std::string, std::string>> members;
};

struct SyncResult {
  GroupError error = GroupError::kNone;
  std::string assignment;
};

struct CommittedOffset {
  int64_t offset = -1;
  std::string metadata;
};

struct GroupMemberSummary {
  std::string member_id, client_id, client_host;
  std::string metadata, assignment;
};
struct GroupSummary {
  std::string group_id;
  std::string state;  // "Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"
  std::string protocol_type, protocol;
  int32_t generation = 0;
  std::vector<GroupMemberSummary> members;
};

struct GroupOptions {
  std::filesystem::path dir;  // where committed offsets live
  std::chrono::milliseconds initial_rebalance_delay{500};
  std::chrono::milliseconds min_session_timeout{1'000};
  std::chrono::milliseconds max_session_timeout{300'000};
  std::chrono::milliseconds tick{50};  // how often timers are checked
};

class GroupCoordinator {
 public:
  // Creates `options.dir` when missing and loads every group's committed offsets. kIo naming
  // the file when one cannot be read or parsed.
  static Result<std::unique_ptr<GroupCoordinator>> open(GroupOptions options);
  // Answers what waits with kCoordinatorClosing, then stops the timer thread.
  ~GroupCoordinator();

  using JoinDone = std::function<void(JoinResult)>;
  using SyncDone = std::function<void(SyncResult)>;
  void join(JoinRequest request, JoinDone done);
  void sync(const std::string& group_id, int32_t generation, const std::string& member_id,
            std::vector<std::pair<std::string, std::string>> assignments, SyncDone done);
  GroupError heartbeat(const std::string& group_id, int32_t generation,
                       const std::string& member_id);
  GroupError leave(const std::string& group_id, const std::string& member_id);

  // Stores the offsets durably (writes the group's file: call on a disk thread). A commit with
  // a generation (>= 0) must come from a current member of that generation; generation -1 is a
  // commit from outside the group protocol (a consumer with assign(), the HTTP API).
  using Offsets = std::map<std::pair<std::string, int32_t>, CommittedOffset>;  // (topic, partition)
  GroupError commit(const std::string& group_id, int32_t generation, const std::string& member_id,
                    const Offsets& offsets, Status* io_error);
  // The committed offsets of `group_id` (all of them), empty when none.
  Offsets committed(const std::string& group_id) const;

  std::vector<GroupSummary> list() const;
  std::optional<GroupSummary> describe(const std::string& group_id) const;

 private:
  struct Member;
  struct Group;
  explicit GroupCoordinator(GroupOptions options);
  void run_timers();
  // What to call once the lock is released.
  using Calls = std::vector<std::function<void()>>;
  void start_rebalance_locked(Group& g, Calls* calls) REQUIRES(mutex_);
  void maybe_complete_join_locked(Group& g, bool deadline_passed, Calls* calls) REQUIRES(mutex_);
  void remove_member_locked(Group& g, const std::string& member_id, Calls* calls)
      REQUIRES(mutex_);
  Status write_offsets(const std::string& group_id, const Offsets& offsets);
  std::filesystem::path file_for(const std::string& group_id) const;
  static std::string state_name(const Group& g);

  const GroupOptions options_;
  mutable Mutex mutex_;
  std::map<std::string, std::unique_ptr<Group>> groups_ GUARDED_BY(mutex_);
  std::map<std::string, Offsets> offsets_ GUARDED_BY(mutex_);
  uint64_t next_member_ GUARDED_BY(mutex_) = 1;
  bool stopping_ GUARDED_BY(mutex_) = false;
  Mutex write_mutex_;  // one writer of group files at a time (commits of one group in order)
  std::thread timers_;
  CondVar wake_;
};

// A group's position on one partition it has committed.
struct PartitionLag {
  std::string topic;
  int32_t partition = 0;
  int64_t committed = -1;
  std::string metadata;
  // -1 when the topic or the partition no longer exists (then lag is -1 too).
  int64_t log_start_offset = -1;
  int64_t high_watermark = -1;
  // The messages left to read: high_watermark - max(committed, log_start_offset), at least 0.
  int64_t lag = -1;
};
// Every committed partition of `offsets` against the logs of `store` (no disk reads).
std::vector<PartitionLag> group_lag(const GroupCoordinator::Offsets& offsets,
                                    const storage::TopicStore& store);
// The sum of the known lags (partitions whose topic is gone count 0).
int64_t total_lag(const std::vector<PartitionLag>& lags);

// What a member of a "consumer" group was given: Kafka's ConsumerProtocol Assignment (version
// i16, then [topic string, [partition i32]], then user data bytes). nullopt when `bytes` is not
// one (another protocol type, or an empty assignment before the first sync).
using TopicPartitions = std::vector<std::pair<std::string, std::vector<int32_t>>>;
std::optional<TopicPartitions> decode_consumer_assignment(std::string_view bytes);

}  // namespace wasmq::broker
