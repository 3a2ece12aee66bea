// `wasmq transform run|bench` as a user runs them: the real binary, real modules.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "command.h"
#include "module_files.h"

namespace wasmq {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using testing::CommandRun;
using testing::slurp;
using testing::wasmq;

std::string module(const std::string& name) { return testing::module_path(name).string(); }

std::string header(const json::object& message, const char* name) {
  const auto& headers = message.at("headers").as_object();
  auto it = headers.find(name);
  return it == headers.end() ? "<absent>" : std::string(it->value().as_string());
}

json::object value_json(const json::object& message) {
  return json::parse(message.at("value").as_string()).as_object();
}

class MessageProcessor : public ::testing::Test {
 protected:
  static std::string line(const std::string& value, const std::string& content_type,
                          bool with_source = true) {
    json::object headers;
    if (!content_type.empty()) headers["content-type"] = content_type;
    if (with_source) headers["source"] = "iot-sensors";
    headers["client_ip"] = "192.168.1.100";
    json::object m{{"key", "sensor-001"}, {"value", value}, {"headers", headers}};
    return json::serialize(m) + "\n";
  }
};

TEST_F(MessageProcessor, TransformsJson) {
  CommandRun r = wasmq({"transform", "run", "--module", module("message_processor")},
                line(R"({"temperature_celsius": 23.5, "humidity": 65.2, "sensor_id": "env001",)"
                     R"( "email": "Ops@Example.COM", "latitude": 37.7749, "longitude": -122.4194})",
                     "application/json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(r.lines.size(), 1u) << r.out;
  const auto& result = r.lines[0];
  EXPECT_EQ(result.at("input").as_int64(), 0);
  EXPECT_EQ(result.at("status").as_string(), "ok");
  EXPECT_TRUE(result.at("should_continue").as_bool());
  const auto& out = result.at("messages").as_array().at(0).as_object();
  EXPECT_EQ(out.at("key").as_string(), "sensor-001");
  json::object value = value_json(out);
  EXPECT_TRUE(value.at("_processed").as_bool());
  EXPECT_DOUBLE_EQ(value.at("temperature_fahrenheit").to_number<double>(), 23.5 * 9 / 5 + 32);
  EXPECT_EQ(value.at("email").as_string(), "ops@example.com");
  EXPECT_EQ(value.at("coordinate_string").as_string(), "37.774900,-122.419400");
  EXPECT_DOUBLE_EQ(value.at("humidity").to_number<double>(), 65.2);
  EXPECT_EQ(header(out, "enriched"), "true");
  EXPECT_EQ(header(out, "geo_country"), "Local");
  EXPECT_EQ(header(out, "content_type_detected"), "application/json");
  EXPECT_NE(header(out, "processed_at"), "<absent>");
  EXPECT_EQ(header(out, "source"), "iot-sensors");
}

TEST_F(MessageProcessor, UppercasesText) {
  CommandRun r = wasmq({"transform", "run", "--module", module("message_processor")},
                line("hello world", "text/plain"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto& out = r.lines.at(0).at("messages").as_array().at(0).as_object();
  EXPECT_EQ(out.at("value").as_string(), "[PROCESSED] HELLO WORLD");
  EXPECT_EQ(header(out, "transformation"), "text_uppercase");
  EXPECT_EQ(header(out, "original_length"), "11");
}

TEST_F(MessageProcessor, FiltersSpamMissingSourceAndOversize) {
  std::string input = line("buy cheap SPAM now", "text/plain") +
                      line("no source here", "text/plain", /*with_source=*/false) +
                      line(std::string(1024 * 1024 + 1, 'a'), "text/plain") +
                      line("a fine message", "text/plain");
  CommandRun r = wasmq({"transform", "run", "--module", module("message_processor")}, input);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(r.lines.size(), 4u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(r.lines[i].at("status").as_string(), "filtered") << i;
    EXPECT_TRUE(r.lines[i].at("messages").as_array().empty()) << i;
  }
  EXPECT_EQ(r.lines[3].at("status").as_string(), "ok");
}

TEST_F(MessageProcessor, ConfigReachesTheModule) {
  std::string config = R"({"filter_rules": {"spam_keywords": ["forbidden"]}})";
  CommandRun r = wasmq({"transform", "run", "--module", module("message_processor"), "--config", config},
                line("this has spam in it", "text/plain") + line("this is forbidden", "text/plain"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.lines.at(0).at("status").as_string(), "ok");
  EXPECT_EQ(r.lines.at(1).at("status").as_string(), "filtered");
}

TEST_F(MessageProcessor, InvalidJsonPayloadIsAnErrorLine) {
  CommandRun r = wasmq({"transform", "run", "--module", module("message_processor")},
                line("{not json", "application/json") + line("fine", "text/plain"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.lines.at(0).at("status").as_string(), "error");
  EXPECT_NE(r.lines.at(0).at("error").as_string().find("JSON"), json::string::npos);
  EXPECT_EQ(r.lines.at(1).at("status").as_string(), "ok");
}

TEST(TransformRun, BadLinesAreReportedAndTheRestGoOn) {
  CommandRun r = wasmq({"transform", "run", "--module", module("passthrough")},
                "{\"value\": \"a\"}\n{broken\n\n{\"value\": 5}\n{\"value_base64\": \"AP8=\"}\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(r.lines.size(), 4u) << r.out;
  EXPECT_EQ(r.lines[0].at("status").as_string(), "ok");
  EXPECT_EQ(r.lines[1].at("status").as_string(), "error");
  EXPECT_NE(r.lines[1].at("error").as_string().find("malformed JSON"), json::string::npos);
  // `input` is the 0-based position in the input (as a dry run's), blank lines included; the
  // error names the line as an editor does, from 1.
  EXPECT_EQ(r.lines[1].at("input").as_int64(), 1);
  EXPECT_EQ(r.lines[1].at("error").as_string().find("line 2: "), 0u) << r.lines[1];
  EXPECT_EQ(r.lines[2].at("input").as_int64(), 3);
  EXPECT_NE(r.lines[2].at("error").as_string().find("line 4: value: must be a string"),
            json::string::npos);
  const auto& binary = r.lines[3].at("messages").as_array().at(0).as_object();
  EXPECT_EQ(binary.at("value_base64").as_string(), "AP8=");
}

TEST(TransformRun, ModuleFailuresAreOneLineEach) {
  CommandRun r = wasmq({"transform", "run", "--module", module("infinite_loop"), "--timeout-ms", "100"},
                "{\"value\": \"a\"}\n{\"value\": \"b\"}\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(r.lines.size(), 2u);
  for (const auto& l : r.lines) {
    EXPECT_EQ(l.at("status").as_string(), "error");
    EXPECT_EQ(l.at("error").as_string(), "timed out after 100 ms");
    EXPECT_FALSE(l.at("should_continue").as_bool());
  }
}

TEST(TransformRun, MemoryLimitFlagCapsTheModule) {
  CommandRun r = wasmq({"transform", "run", "--module", module("memory_hog"), "--memory-limit-bytes",
                        "4194304"},
                       "{\"value\": \"a\"}\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string error(r.lines.at(0).at("error").as_string());
  EXPECT_EQ(error.rfind("trap: unreachable in process_message (memory: ", 0), 0u) << error;
  EXPECT_NE(error.find(" of 4194304 bytes)"), std::string::npos) << error;
}

TEST(TransformRun, UnloadableModuleExitsWithOneLineReason) {
  CommandRun r = wasmq({"transform", "run", "--module", module("unsupported_import")}, "");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("unsupported import env.foo"), std::string::npos) << r.err;

  r = wasmq({"transform", "run", "--module", "/nonexistent.wasm"}, "");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("cannot open"), std::string::npos) << r.err;

  r = wasmq({"transform", "run", "--module", module("passthrough"), "--config", "{bad"}, "");
  EXPECT_NE(r.exit_code, 0);
  // The option is named as what is wrong, not the module.
  EXPECT_EQ(r.err.find("error: --config is not valid JSON"), 0u) << r.err;
}

TEST(TransformBench, PrintsOneJsonLine) {
  std::string input = "{\"value\": \"a\", \"headers\": {\"source\": \"x\"}}\n";
  CommandRun single = wasmq({"transform", "bench", "--module", module("passthrough"), "--seconds", "0.2"}, input);
  ASSERT_EQ(single.exit_code, 0) << single.err;
  ASSERT_EQ(single.lines.size(), 1u);
  const auto& s = single.lines[0];
  EXPECT_EQ(s.at("mode").as_string(), "single");
  EXPECT_EQ(s.at("module").as_string(), "passthrough");
  EXPECT_GT(s.at("messages").as_int64(), 0);
  EXPECT_GT(s.at("messages_per_second").as_double(), 0);
  EXPECT_NEAR(s.at("ns_per_message").as_double() * s.at("messages_per_second").as_double(), 1e9, 1e6);

  CommandRun batch = wasmq({"transform", "bench", "--module", module("passthrough"), "--seconds", "0.2",
                     "--batch", "32"}, input);
  ASSERT_EQ(batch.exit_code, 0) << batch.err;
  EXPECT_EQ(batch.lines.at(0).at("mode").as_string(), "batch");
  EXPECT_EQ(batch.lines.at(0).at("messages").as_int64() % 32, 0);

  // No process_batch export: single calls whatever --batch says.
  CommandRun fallback = wasmq({"transform", "bench", "--module", module("passthrough_single"),
                        "--seconds", "0.1", "--batch", "32"}, input);
  ASSERT_EQ(fallback.exit_code, 0) << fallback.err;
  EXPECT_EQ(fallback.lines.at(0).at("mode").as_string(), "single");
}

}  // namespace
}  // namespace wasmq
