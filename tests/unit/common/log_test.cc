#include "common/log.h"

#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>

#include <boost/json.hpp>
#include <sstream>

namespace wasmq {
namespace {

TEST(Log, LevelAppliesToListedTargetsAndTheirChildren) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  log::configure(spdlog::level::debug, {"rustmq::etl"}, {sink}, log::Format::kText);
  EXPECT_EQ(log::level_for("etl"), spdlog::level::debug);
  EXPECT_EQ(log::level_for("etl.module"), spdlog::level::debug);
  EXPECT_EQ(log::level_for("etlx"), spdlog::level::info);
  EXPECT_EQ(log::level_for("storage"), spdlog::level::info);
  log::get("etl.module").debug("shown");
  log::get("storage").debug("hidden");
  EXPECT_NE(out.str().find("[etl.module] shown"), std::string::npos) << out.str();
  EXPECT_EQ(out.str().find("hidden"), std::string::npos);
  log::configure(spdlog::level::info, {}, {}, log::Format::kText);
}

TEST(Log, JsonFormatEscapesTheMessage) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  log::configure(spdlog::level::info, {}, {sink}, log::Format::kJson);
  log::get("http").warn("a \"quoted\"\nline\\");
  log::configure(spdlog::level::info, {}, {}, log::Format::kText);
  auto line = out.str();
  line.pop_back();  // newline
  auto json = boost::json::parse(line).as_object();
  EXPECT_EQ(json.at("message").as_string(), "a \"quoted\"\nline\\");
  EXPECT_EQ(json.at("target").as_string(), "http");
  EXPECT_EQ(json.at("level").as_string(), "warning");
}

}  // namespace
}  // namespace wasmq
