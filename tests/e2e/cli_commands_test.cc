// The CLI as a user runs it: `wasmq produce` and `wasmq consume` against a running broker
// (outcomes counted, filtered is not failed; raw lines and JSON that is not an envelope sent as
// values; every partition read with the partition printed; reading from the end), and what a
// mistyped command is told.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "broker_api_test.h"
#include "command.h"

namespace wasmq {
namespace {

namespace json = boost::json;
using testing::shell;

class CliCommandsTest : public testing::BrokerApiTest {
 protected:
  testing::CommandRun wasmq(const std::string& args, const std::string& input = "") {
    return shell("WASMQ_BROKER=" + broker_->data_url() + " " + std::string(WASMQ_BINARY) + " " +
                     args,
                 input);
  }
};

TEST_F(CliCommandsTest, ProduceCountsOutcomesAndFilteredIsNotAFailure) {
  start();
  upload("message_processor", "message-processor", "1.0.0", 201);
  admin("POST", "/api/v1/etl/pipelines", R"({"pipeline_id": "clean", "stages": [
      {"priority": 0, "modules": [{"module_id": "message-processor"}]}]})",
        201);
  const std::string input =
      R"({"value": "hello", "headers": {"content-type": "text/plain", "source": "web"}})" "\n"
      R"({"value": "buy spam now", "headers": {"content-type": "text/plain", "source": "web"}})" "\n";
  auto run = wasmq("produce inbox", input);
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.err.find("produced to inbox: 1 stored, 1 filtered, 0 dead-lettered, 0 failed"),
            std::string::npos)
      << run.err;
  // A refused line is a failure: exit 1, and the count says so (the pipeline applies to every
  // topic: the plain line, without a source header, is filtered).
  auto bad = wasmq("produce plain", "{\"value\": 5}\nfine\n");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("line 1: value: must be a string"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("0 stored, 1 filtered, 0 dead-lettered, 1 failed"), std::string::npos) << bad.err;
}

TEST_F(CliCommandsTest, JsonThatIsNotAnEnvelopeAndRawLinesAreValues) {
  start();
  auto run = wasmq("produce raw", "{\"temperature\": 21.5}\n[1, 2]\n{\"value\": \"enveloped\"}\n");
  ASSERT_EQ(run.exit_code, 0) << run.err;
  auto raw = wasmq("produce raw --raw", "{\"value\": \"kept as is\"}\n");
  ASSERT_EQ(raw.exit_code, 0) << raw.err;
  json::array messages = consume("raw");
  ASSERT_EQ(messages.size(), 4u);
  EXPECT_EQ(messages[0].at("value").as_string(), "{\"temperature\": 21.5}");
  EXPECT_EQ(messages[1].at("value").as_string(), "[1, 2]");
  EXPECT_EQ(messages[2].at("value").as_string(), "enveloped");
  EXPECT_EQ(messages[3].at("value").as_string(), "{\"value\": \"kept as is\"}");
}

TEST_F(CliCommandsTest, ConsumeReadsEveryPartitionOrOneAndFromTheEnd) {
  start();
  data("POST", "/api/v1/topics", R"({"name": "spread", "partitions": 3})", 201);
  for (int p = 0; p < 3; ++p) {
    data("POST", "/api/v1/topics/spread/messages",
         R"({"value": "p)" + std::to_string(p) + R"(", "partition": )" + std::to_string(p) + "}");
  }
  auto all = wasmq("consume spread");
  ASSERT_EQ(all.exit_code, 0) << all.err;
  ASSERT_EQ(all.lines.size(), 3u) << all.out;
  for (const auto& line : all.lines) {
    EXPECT_EQ(line.at("value").as_string(), "p" + std::to_string(line.at("partition").as_int64()));
  }
  auto one = wasmq("consume spread --partition 2");
  ASSERT_EQ(one.lines.size(), 1u) << one.out;
  EXPECT_EQ(one.lines[0].at("value").as_string(), "p2");
  auto missing = wasmq("consume spread --partition 7");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("has no partition 7 (it has 3)"), std::string::npos) << missing.err;
  // From the end: only what comes after the start.
  auto empty = wasmq("consume spread --from-end");
  EXPECT_EQ(empty.exit_code, 0);
  EXPECT_TRUE(empty.lines.empty()) << empty.out;
  std::thread later([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    data("POST", "/api/v1/topics/spread/messages", R"({"value": "new", "partition": 1})");
  });
  auto followed = wasmq("consume spread --from-end --follow -n 1");
  later.join();
  ASSERT_EQ(followed.exit_code, 0) << followed.err;
  ASSERT_EQ(followed.lines.size(), 1u) << followed.out;
  EXPECT_EQ(followed.lines[0].at("value").as_string(), "new");
  EXPECT_EQ(followed.lines[0].at("partition").as_int64(), 1);

  // Following a topic that does not exist yet waits for it; without --follow it is an error.
  auto absent = wasmq("consume later");
  EXPECT_EQ(absent.exit_code, 1);
  EXPECT_NE(absent.err.find("404"), std::string::npos) << absent.err;
  std::thread created([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    data("POST", "/api/v1/topics/later/messages", R"({"value": "first"})");
  });
  auto waited = wasmq("consume later --follow -n 1");
  created.join();
  ASSERT_EQ(waited.exit_code, 0) << waited.err;
  ASSERT_EQ(waited.lines.size(), 1u) << waited.out;
  EXPECT_EQ(waited.lines[0].at("value").as_string(), "first");
  EXPECT_NE(waited.err.find("waiting for topic \"later\" to be created"), std::string::npos)
      << waited.err;
}

// A mistyped or missing command is answered with the commands there are.
TEST(CliUsage, UnknownOrMissingCommandsNameTheOnesThatExist) {
  auto top = shell(std::string(WASMQ_BINARY) + " fooo");
  EXPECT_NE(top.exit_code, 0);
  EXPECT_NE(top.err.find("unknown command \"fooo\" for wasmq; its commands: "), std::string::npos) << top.err;
  EXPECT_NE(top.err.find("produce"), std::string::npos) << top.err;
  EXPECT_NE(top.err.find("groups"), std::string::npos) << top.err;
  auto nested = shell(std::string(WASMQ_BINARY) + " pipeline lst");
  EXPECT_NE(nested.exit_code, 0);
  EXPECT_NE(nested.err.find("unknown command \"lst\" for wasmq pipeline; its commands: apply, list"),
            std::string::npos)
      << nested.err;
  auto missing = shell(std::string(WASMQ_BINARY) + " groups");
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("wasmq groups needs a command: list, describe"), std::string::npos) << missing.err;
}

// A pipeline file that is not JSON is refused before any request, naming its line and column.
TEST(CliUsage, PipelineApplyNamesWhereAFileIsNotJson) {
  const auto file = std::filesystem::temp_directory_path() /
                    ("wasmq-bad-pipeline-" + std::to_string(::getpid()) + ".json");
  std::ofstream(file) << "{\"pipeline_id\": \"x\",\n  \"stages\": [ {\"priority\": 0,, }]}\n";
  auto run = shell(std::string(WASMQ_BINARY) + " pipeline apply -f " + file.string() +
                   " --admin http://127.0.0.1:1");
  std::filesystem::remove(file);
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_NE(run.err.find(file.string() + ":2:30: not valid JSON"), std::string::npos) << run.err;
}

// Every command's --help ends with an example of it, found by walking the commands --help lists.
TEST(CliUsage, EveryCommandsHelpHasAnExample) {
  std::vector<std::string> todo = {""}, leaves;
  while (!todo.empty()) {
    const std::string path = todo.back();
    todo.pop_back();
    auto help = shell(std::string(WASMQ_BINARY) + (path.empty() ? "" : " " + path) + " --help");
    ASSERT_EQ(help.exit_code, 0) << path << ": " << help.err;
    const size_t listed = help.out.find("Subcommands:\n");
    if (listed == std::string::npos) {
      leaves.push_back(path);
      const size_t example = help.out.find("Example: ");
      ASSERT_NE(example, std::string::npos) << "wasmq " << path << " --help:\n" << help.out;
      const std::string line = help.out.substr(example, help.out.find('\n', example) - example);
      EXPECT_NE(line.find("wasmq " + path), std::string::npos) << line;
      continue;
    }
    std::istringstream lines(help.out.substr(listed + 13));
    for (std::string line; std::getline(lines, line) && !line.empty();) {
      std::istringstream words(line);
      std::string name;
      words >> name;
      if (!name.empty()) todo.push_back(path.empty() ? name : path + " " + name);
    }
  }
  // produce, consume, transform run|bench, config check|reload, serve, module (8), pipeline (8),
  // status, metrics, pool (4), groups (2).
  EXPECT_GE(leaves.size(), 30u);
}

}  // namespace
}  // namespace wasmq
