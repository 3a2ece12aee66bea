// Consumer groups over HTTP (kafka.md, "Consumer groups"): `GET …/messages?group=G` reads from
// G's committed offset and `&commit=true` commits what it returned, durably; the admin API's
// `/api/v1/groups` and `wasmq groups list|describe` show members, offsets and lag; the metrics
// carry the lag. The sharing with Kafka clients is in kafka_test.cc.
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "broker_api_test.h"
#include "command.h"

namespace wasmq {
namespace {

namespace json = boost::json;
using testing::shell;

class GroupsTest : public testing::BrokerApiTest {
 protected:
  void produce(const std::string& topic, int first, int count, int partition = 0) {
    json::array messages;
    for (int i = first; i < first + count; ++i) {
      messages.push_back(json::object{{"value", "m" + std::to_string(i)}, {"partition", partition}});
    }
    data("POST", "/api/v1/topics/" + topic + "/messages",
         json::serialize(json::object{{"messages", std::move(messages)}}));
  }
  static std::vector<std::string> values(const json::value& reply) {
    std::vector<std::string> out;
    for (const auto& m : reply.at("messages").as_array()) out.emplace_back(m.at("value").as_string());
    return out;
  }
  testing::CommandRun cli(const std::string& args) {
    return shell(std::string(WASMQ_BINARY) + " " + args + " --admin " + broker_->admin_url());
  }
};

TEST_F(GroupsTest, AGroupReadsFromItsCommittedOffsetAndCommitsDurably) {
  start();
  data("POST", "/api/v1/topics", R"({"name":"orders","partitions":2})", 201);
  produce("orders", 0, 5);
  produce("orders", 100, 2, 1);

  json::value first = data("GET", "/api/v1/topics/orders/messages?group=billing&max_messages=2&commit=true");
  EXPECT_EQ(values(first), (std::vector<std::string>{"m0", "m1"}));
  EXPECT_EQ(first.at("group").at("start_offset").as_int64(), 0);
  EXPECT_EQ(first.at("group").at("committed_offset").as_int64(), 2);
  // Without commit the position stays where it was: the same messages again.
  json::value peek = data("GET", "/api/v1/topics/orders/messages?group=billing&max_messages=1");
  EXPECT_EQ(values(peek), (std::vector<std::string>{"m2"}));
  EXPECT_EQ(peek.at("group").at("committed_offset").as_int64(), 2);
  json::value rest = data("GET", "/api/v1/topics/orders/messages?group=billing&commit=true");
  EXPECT_EQ(values(rest), (std::vector<std::string>{"m2", "m3", "m4"}));
  // Partitions are separate positions; another group starts at the beginning.
  json::value p1 = data("GET", "/api/v1/topics/orders/messages?group=billing&partition=1&max_messages=1&commit=true");
  EXPECT_EQ(values(p1), (std::vector<std::string>{"m100"}));
  json::value other = data("GET", "/api/v1/topics/orders/messages?group=audit&max_messages=1");
  EXPECT_EQ(values(other), (std::vector<std::string>{"m0"}));
  EXPECT_TRUE(other.at("group").at("committed_offset").is_null());

  // Committed offsets survive a restart.
  ASSERT_NO_FATAL_FAILURE(restart());
  produce("orders", 5, 3);
  json::value after = data("GET", "/api/v1/topics/orders/messages?group=billing&max_messages=1&commit=true");
  EXPECT_EQ(values(after), (std::vector<std::string>{"m5"}));

  // Lag: partition 0 has 8 messages and billing committed 6; partition 1 has 2, committed 1.
  json::value described = admin("GET", "/api/v1/groups/billing");
  EXPECT_EQ(described.at("state").as_string(), "Empty");
  EXPECT_EQ(described.at("lag").as_int64(), 3);
  const auto& offsets = described.at("offsets").as_array();
  ASSERT_EQ(offsets.size(), 2u);
  EXPECT_EQ(offsets[0].at("partition").as_int64(), 0);
  EXPECT_EQ(offsets[0].at("committed_offset").as_int64(), 6);
  EXPECT_EQ(offsets[0].at("high_watermark").as_int64(), 8);
  EXPECT_EQ(offsets[0].at("lag").as_int64(), 2);
  EXPECT_EQ(offsets[1].at("lag").as_int64(), 1);
  json::value listed = admin("GET", "/api/v1/groups");
  ASSERT_EQ(listed.at("groups").as_array().size(), 1u);  // audit never committed
  EXPECT_EQ(listed.at("groups").at(0).at("group_id").as_string(), "billing");
  EXPECT_EQ(listed.at("groups").at(0).at("lag").as_int64(), 3);
  EXPECT_EQ(listed.at("groups").at(0).at("committed_partitions").as_int64(), 2);
  admin("GET", "/api/v1/groups/audit", "", 404);

  // The figures follow.
  json::value metrics = admin("GET", "/api/v1/metrics");
  EXPECT_EQ(metrics.at("groups").at("billing").at("lag").as_int64(), 3);
  auto prometheus = admin_->request("GET", "/metrics", "");
  ASSERT_TRUE(prometheus.is_ok());
  EXPECT_NE(prometheus->body.find("wasmq_group_lag{group=\"billing\",topic=\"orders\",partition=\"0\"} 2\n"),
            std::string::npos)
      << prometheus->body;

  // The CLI shows the same.
  auto list = cli("groups list");
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_NE(list.out.find("GROUP"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("billing  Empty  0        2           3"), std::string::npos) << list.out;
  auto describe = cli("groups describe billing");
  ASSERT_EQ(describe.exit_code, 0) << describe.err;
  EXPECT_NE(describe.out.find("group billing: Empty, lag 3"), std::string::npos) << describe.out;
  EXPECT_NE(describe.out.find("orders  0          6          0          8               2"),
            std::string::npos)
      << describe.out;
  auto missing = cli("groups describe nobody");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("group \"nobody\" does not exist"), std::string::npos) << missing.err;
}

TEST_F(GroupsTest, BadGroupParametersAreRefusedAndCommitNothing) {
  start();
  produce("t", 0, 3);
  auto refused = [&](const std::string& query, const std::string& field) {
    json::value v = data("GET", "/api/v1/topics/t/messages?" + query, "", 400);
    EXPECT_EQ(v.at("error").at("field").as_string(), field) << query;
  };
  refused("group=g&offset=1", "offset");
  refused("group=g&commit=yes", "commit");
  refused("commit=true", "commit");
  refused("group=", "group");
  refused("group=a%0Ab", "group");
  refused("group=" + std::string(256, 'g'), "group");
  // A missing topic or partition is the same error as without a group, and commits nothing.
  data("GET", "/api/v1/topics/none/messages?group=g&commit=true", "", 404);
  data("GET", "/api/v1/topics/t/messages?group=g&partition=3&commit=true", "", 404);
  EXPECT_TRUE(admin("GET", "/api/v1/groups").at("groups").as_array().empty());
  // A committed offset the log no longer holds (the topic was made anew) reads from the log.
  data("GET", "/api/v1/topics/t/messages?group=g&commit=true");
  data("DELETE", "/api/v1/topics/t");
  produce("t", 10, 1);
  json::value again = data("GET", "/api/v1/topics/t/messages?group=g");
  EXPECT_EQ(again.at("group").at("start_offset").as_int64(), 1);  // the log's end: 3 → 1
  EXPECT_EQ(admin("GET", "/api/v1/groups/g").at("offsets").at(0).at("lag").as_int64(), 0);
}

// The CLI finds the broker through WASMQ_ADMIN and WASMQ_BROKER when --admin and --broker are
// not given, and says its version.
TEST_F(GroupsTest, TheCliTakesItsAddressesFromTheEnvironmentAndSaysItsVersion) {
  start();
  produce("envy", 0, 1);
  data("GET", "/api/v1/topics/envy/messages?group=env&commit=true");
  const std::string bin = WASMQ_BINARY;
  auto listed = shell("WASMQ_ADMIN=" + broker_->admin_url() + " " + bin + " groups list");
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find("env "), std::string::npos) << listed.out;
  auto consumed = shell("WASMQ_BROKER=" + broker_->data_url() + " " + bin + " consume envy -n 1");
  ASSERT_EQ(consumed.exit_code, 0) << consumed.err;
  EXPECT_NE(consumed.out.find("\"m0\""), std::string::npos) << consumed.out;
  // A flag still wins over the environment.
  auto wrong_env = shell("WASMQ_ADMIN=http://127.0.0.1:1 " + bin + " groups list --admin " +
                         broker_->admin_url());
  EXPECT_EQ(wrong_env.exit_code, 0) << wrong_env.err;
  auto version = shell(bin + " --version");
  ASSERT_EQ(version.exit_code, 0);
  EXPECT_EQ(version.out, "wasmq " + std::string(admin("GET", "/api/v1/status").at("version").as_string()) + "\n");
}

}  // namespace
}  // namespace wasmq
