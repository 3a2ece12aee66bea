// Hostile modules against the real broker: each fails cleanly (refused at upload, or its
// message handled) and the broker keeps serving. The unit tests (tests/unit/wasm/
// hostile_module_test.cc) measure the bounds; these prove the broker survives them.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>

#include "broker_api_test.h"

namespace wasmq {
namespace {

namespace json = boost::json;

class HostileModuleTest : public testing::BrokerApiTest {
 protected:
  // Uploads `module_file` as `name` and a pipeline running it on topic `name`.
  void deploy(const std::string& module_file, const std::string& name) {
    upload(module_file, name);
    admin("POST", "/api/v1/etl/pipelines",
          R"({"pipeline_id": ")" + name + R"(", "stages": [{"priority": 0, "modules": [
              {"module_id": ")" + name + R"(", "topic_filters": [
                {"filter_type": "Exact", "pattern": ")" + name + R"("}]}]}]})",
          201);
  }
  // Produces one message to `topic`; returns its result's status.
  std::string produce(const std::string& topic) {
    json::value r = data("POST", "/api/v1/topics/" + topic + "/messages", R"({"value": "x"})");
    if (!r.is_object()) return "<no reply>";
    return std::string(r.at("results").at(0).at("status").as_string());
  }
};

// C2: two tables of 10,000,000 elements (a 454-byte module aborted the broker at its first
// message): refused at upload, naming the bound, with no server path in the error.
TEST_F(HostileModuleTest, HugeTablesAreRefusedAtUpload) {
  start();
  json::value r = upload("huge_tables", "huge-tables", "1.0.0", 400);
  ASSERT_TRUE(r.is_object());
  const std::string message(r.at("error").at("message").as_string());
  EXPECT_NE(message.find("tables: 20000000 elements at their initial size, more than the bound of "
                         "100000"),
            std::string::npos)
      << message;
  EXPECT_EQ(message.find(broker_->data_dir().string()), std::string::npos) << message;
  EXPECT_EQ(admin("GET", "/api/v1/etl/modules").at("modules").as_array().size(), 0u);
}

// C1 (fd_write of 400 MiB described by a 4 MiB memory), C2 (table.grow in a loop) and L10 (an
// exception thrown and caught): every message is transformed and stored, and the broker stays up.
TEST_F(HostileModuleTest, HostileCallsCompleteAndTheBrokerStaysUp) {
  start();
  deploy("fd_write_amplifier", "amp");
  deploy("table_grower", "grow");
  deploy("exception_handling", "eh");
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(produce("amp"), "stored");
    EXPECT_EQ(produce("grow"), "stored");
    EXPECT_EQ(produce("eh"), "stored");
  }
  EXPECT_EQ(consume("amp").size(), 3u);
  data("GET", "/health");
  EXPECT_TRUE(broker_->running());
}

}  // namespace
}  // namespace wasmq
