#include "broker/groups.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <future>

#include "storage/topic_store.h"
#include "temp_dir.h"

namespace wasmq::broker {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class GroupsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    options_.dir = testing::test_temp_dir("wasmq-groups");
    fs::remove_all(options_.dir);
    options_.initial_rebalance_delay = 0ms;
    options_.min_session_timeout = 10ms;
    options_.tick = 10ms;
    groups_ = std::move(*GroupCoordinator::open(options_));
  }
  void TearDown() override {
    groups_.reset();
    fs::remove_all(options_.dir);
  }
  JoinRequest request(const std::string& member, std::chrono::milliseconds session = 5000ms) {
    JoinRequest r;
    r.group_id = "g";
    r.member_id = member;
    r.client_id = "c";
    r.session_timeout = session;
    r.rebalance_timeout = 2000ms;
    r.protocol_type = "consumer";
    r.protocols = {{"range", "meta-" + member}, {"roundrobin", "rr"}};
    return r;
  }
  std::future<JoinResult> join(JoinRequest r) {
    auto promise = std::make_shared<std::promise<JoinResult>>();
    auto future = promise->get_future();
    groups_->join(std::move(r), [promise](JoinResult j) { promise->set_value(std::move(j)); });
    return future;
  }
  std::future<SyncResult> sync(int32_t generation, const std::string& member,
                               std::vector<std::pair<std::string, std::string>> assignments = {}) {
    auto promise = std::make_shared<std::promise<SyncResult>>();
    auto future = promise->get_future();
    groups_->sync("g", generation, member, std::move(assignments),
                  [promise](SyncResult s) { promise->set_value(std::move(s)); });
    return future;
  }
  // A first join: the id handed out (KIP-394).
  std::string member_id() {
    JoinResult first = join(request("")).get();
    EXPECT_EQ(first.error, GroupError::kMemberIdRequired);
    EXPECT_FALSE(first.member_id.empty());
    return first.member_id;
  }

  GroupOptions options_;
  std::unique_ptr<GroupCoordinator> groups_;
};

TEST_F(GroupsTest, TwoMembersJoinOneGenerationAndTheLeadersAssignmentsReachBoth) {
  const std::string a = member_id(), b = member_id();
  EXPECT_NE(a, b);
  auto ja = join(request(a));
  // The first member is answered alone (nobody else is known yet): a generation of one.
  JoinResult first = ja.get();
  ASSERT_EQ(first.error, GroupError::kNone);
  EXPECT_EQ(first.leader_id, a);
  ASSERT_EQ(sync(first.generation, a, {{a, "all"}}).get().assignment, "all");
  // The second member's join starts a rebalance; the first learns of it and rejoins.
  auto jb = join(request(b));
  EXPECT_EQ(groups_->heartbeat("g", first.generation, a), GroupError::kRebalanceInProgress);
  auto ja2 = join(request(a));
  JoinResult ra = ja2.get(), rb = jb.get();
  ASSERT_EQ(ra.error, GroupError::kNone);
  ASSERT_EQ(rb.error, GroupError::kNone);
  EXPECT_EQ(ra.generation, first.generation + 1);
  EXPECT_EQ(rb.generation, ra.generation);
  EXPECT_EQ(ra.protocol, "range");
  EXPECT_EQ(ra.leader_id, a);
  ASSERT_EQ(ra.members.size(), 2u);  // the leader sees every member's metadata
  EXPECT_TRUE(rb.members.empty());
  // The follower's sync waits for the leader's.
  auto sb = sync(rb.generation, b);
  EXPECT_EQ(sb.wait_for(50ms), std::future_status::timeout);
  auto sa = sync(ra.generation, a, {{a, "p0,p1"}, {b, "p2,p3"}});
  EXPECT_EQ(sa.get().assignment, "p0,p1");
  EXPECT_EQ(sb.get().assignment, "p2,p3");
  EXPECT_EQ(groups_->heartbeat("g", ra.generation, b), GroupError::kNone);
  EXPECT_EQ(groups_->heartbeat("g", ra.generation - 1, b), GroupError::kIllegalGeneration);
  EXPECT_EQ(groups_->heartbeat("g", ra.generation, "stranger"), GroupError::kUnknownMember);
  auto d = groups_->describe("g");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->state, "Stable");
  EXPECT_EQ(d->members.size(), 2u);
}

TEST_F(GroupsTest, ASilentMemberIsDroppedAndTheOtherRejoinsAlone) {
  // Both join within the first join's delay: one generation of two.
  groups_.reset();
  options_.initial_rebalance_delay = 300ms;
  groups_ = std::move(*GroupCoordinator::open(options_));
  const std::string a = member_id(), b = member_id();
  auto ja = join(request(a, 5000ms));
  auto jb = join(request(b, 100ms));
  JoinResult ra = ja.get(), rb = jb.get();
  ASSERT_EQ(ra.error, GroupError::kNone);
  ASSERT_EQ(rb.generation, ra.generation);
  sync(ra.generation, a, {{a, "x"}, {b, "y"}}).get();
  // b never heartbeats: after its 100 ms it is dropped and a rebalance starts.
  GroupError seen = GroupError::kNone;
  for (int i = 0; i < 200 && seen == GroupError::kNone; ++i) {
    std::this_thread::sleep_for(10ms);
    seen = groups_->heartbeat("g", ra.generation, a);
  }
  EXPECT_EQ(seen, GroupError::kRebalanceInProgress);
  JoinResult again = join(request(a)).get();
  EXPECT_EQ(again.generation, ra.generation + 1);
  EXPECT_EQ(again.members.size(), 1u);
  // A member that leaves empties the group.
  EXPECT_EQ(groups_->leave("g", a), GroupError::kNone);
  EXPECT_EQ(groups_->describe("g")->state, "Empty");
}

TEST_F(GroupsTest, CommittedOffsetsAreDurableAndOnlyCurrentMembersCommit) {
  Status io;
  GroupCoordinator::Offsets offsets{{{"t", 0}, {42, "meta"}}, {{"t", 1}, {7, ""}}};
  EXPECT_EQ(groups_->commit("solo", -1, "", offsets, &io), GroupError::kNone);
  ASSERT_TRUE(io.is_ok()) << io.message();
  const std::string a = member_id();
  JoinResult ra = join(request(a)).get();
  EXPECT_EQ(groups_->commit("g", ra.generation + 1, a, offsets, &io), GroupError::kIllegalGeneration);
  EXPECT_EQ(groups_->commit("g", ra.generation, "stranger", offsets, &io), GroupError::kUnknownMember);
  EXPECT_EQ(groups_->commit("g", -1, "", offsets, &io), GroupError::kUnknownMember);  // it has members
  sync(ra.generation, a, {{a, "all"}}).get();
  EXPECT_EQ(groups_->commit("g", ra.generation, a, {{{"t", 1}, {9, "m"}}}, &io), GroupError::kNone);

  groups_.reset();  // a restart
  groups_ = std::move(*GroupCoordinator::open(options_));
  auto solo = groups_->committed("solo");
  ASSERT_EQ(solo.size(), 2u);
  EXPECT_EQ(solo.at({"t", 0}).offset, 42);
  EXPECT_EQ(solo.at({"t", 0}).metadata, "meta");
  EXPECT_EQ(groups_->committed("g").at({"t", 1}).offset, 9);
  EXPECT_EQ(groups_->list().size(), 2u);
}

TEST_F(GroupsTest, ADamagedOffsetsFileIsNamedAtOpen) {
  groups_.reset();
  std::ofstream(options_.dir / "6869.json") << "{not json";
  auto opened = GroupCoordinator::open(options_);
  ASSERT_FALSE(opened.is_ok());
  EXPECT_NE(opened.status().message().find("6869.json"), std::string::npos) << opened.status().message();
}

TEST_F(GroupsTest, BadJoinsAreRefused) {
  JoinRequest no_protocols = request("");
  no_protocols.protocols.clear();
  EXPECT_EQ(join(no_protocols).get().error, GroupError::kInconsistentProtocol);
  JoinRequest short_session = request("", 1ms);
  EXPECT_EQ(join(short_session).get().error, GroupError::kInvalidSessionTimeout);
  JoinRequest no_group = request("");
  no_group.group_id = "";
  EXPECT_EQ(join(no_group).get().error, GroupError::kInvalidGroupId);
  EXPECT_EQ(join(request("never-given")).get().error, GroupError::kUnknownMember);
}

// Kafka's ConsumerProtocol Assignment, as clients encode it.
std::string assignment_bytes(const TopicPartitions& topics, bool user_data = true) {
  std::string out;
  auto be = [&](uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) out.push_back(static_cast<char>(v >> (8 * i)));
  };
  be(1, 2);  // version
  be(topics.size(), 4);
  for (const auto& [topic, partitions] : topics) {
    be(topic.size(), 2);
    out += topic;
    be(partitions.size(), 4);
    for (int32_t p : partitions) be(static_cast<uint32_t>(p), 4);
  }
  if (user_data) be(0xffffffff, 4);  // null user data
  return out;
}

TEST(ConsumerAssignment, DecodesWhatClientsSendAndRefusesWhatIsNotOne) {
  const TopicPartitions topics = {{"orders", {0, 2}}, {"audit", {1}}};
  EXPECT_EQ(decode_consumer_assignment(assignment_bytes(topics)), topics);
  EXPECT_EQ(decode_consumer_assignment(assignment_bytes(topics, false)), topics);
  EXPECT_EQ(decode_consumer_assignment(assignment_bytes({})), TopicPartitions{});
  const std::string whole = assignment_bytes(topics);
  for (size_t cut = 0; cut < whole.size() - 4; ++cut) {  // at size - 4: no user data, whole
    EXPECT_FALSE(decode_consumer_assignment(whole.substr(0, cut))) << cut;
  }
  EXPECT_FALSE(decode_consumer_assignment(whole + "x"));
  // A count no shorter input could hold is refused before anything is allocated for it.
  std::string huge = assignment_bytes({});
  huge[5] = '\x7f';
  EXPECT_FALSE(decode_consumer_assignment(huge));
}

TEST_F(GroupsTest, LagIsWhatIsLeftToReadInTheLogs) {
  storage::StoreOptions options;
  options.data_dir = options_.dir.string() + "-store";
  fs::remove_all(options.data_dir);
  auto store = storage::TopicStore::open(options, nullptr);
  ASSERT_TRUE(store.is_ok());
  storage::TopicSettings settings;
  settings.name = "t";
  settings.partitions = 2;
  auto topic = (*store)->create(settings);
  ASSERT_TRUE(topic.is_ok());
  std::vector<Message> five(5);
  ASSERT_TRUE((*topic)->partition(0).append(five).is_ok());
  GroupCoordinator::Offsets offsets;
  offsets[{"t", 0}] = {2, "m"};
  offsets[{"t", 1}] = {0, ""};
  offsets[{"gone", 0}] = {7, ""};
  const auto lags = group_lag(offsets, **store);
  ASSERT_EQ(lags.size(), 3u);
  EXPECT_EQ(lags[0].topic, "gone");
  EXPECT_EQ(lags[0].lag, -1);
  EXPECT_EQ(lags[0].high_watermark, -1);
  EXPECT_EQ(lags[1].lag, 3);
  EXPECT_EQ(lags[1].metadata, "m");
  EXPECT_EQ(lags[1].high_watermark, 5);
  EXPECT_EQ(lags[2].lag, 0);
  store->reset();
  fs::remove_all(options.data_dir);
}

}  // namespace
}  // namespace wasmq::broker
