// The executor's call warnings (memory near its limit, slow calls) are rate limited per module:
// a module that is always near its limit must not log at call rate.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <sstream>

#include "common/log.h"
#include "etl/executor.h"
#include "etl/module_registry.h"
#include "etl/pipeline.h"
#include "etl/plan.h"
#include "etl/runtime.h"
#include "module_files.h"
#include "temp_dir.h"
#include "wasm/engine.h"
#include "wasm/sandbox.h"

namespace wasmq::etl {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// L5: with a 1 MiB memory limit and memory_warning_threshold_percent = 1, every call of the
// module is over the threshold; 60 calls log one warning per 10 s, not 60.
TEST(CallWarnings, AModuleAlwaysNearItsMemoryLimitWarnsAtMostOncePerInterval) {
  ASSERT_TRUE(wasm::initialize_engine().is_ok());
  const fs::path dir = testing::test_temp_dir("wasmq-call-warnings");
  fs::remove_all(dir);
  std::vector<std::string> warnings;
  auto registry = ModuleRegistry::open(dir, &warnings);
  ASSERT_TRUE(registry.is_ok()) << registry.status().message();
  // A name of its own: the rate limit is per module id, for the whole process.
  ASSERT_TRUE((*registry)->add("near-limit", "1.0.0", testing::read_module("etl_tagger")).is_ok());
  Runtime runtime;
  runtime.registry = registry->get();
  runtime.defaults.memory_warning_threshold_percent = 1;
  auto sandbox = wasm::Sandbox::create();
  ASSERT_TRUE(sandbox.is_ok()) << sandbox.status().message();
  Executor executor(**sandbox, runtime);

  PipelineSpec spec;
  Status error = parse_pipeline(
      json::parse(R"({"pipeline_id": "p", "name": "p", "stages": [{"priority": 0, "modules": [
          {"module_id": "near-limit", "instance_config": {"memory_limit_bytes": 1048576,
                                                         "custom_config": null}}]}]})"),
      "generated", &spec);
  ASSERT_TRUE(error.is_ok()) << error.message();
  auto pipeline = compile_pipeline(std::move(spec));
  ASSERT_TRUE(pipeline.is_ok()) << pipeline.status().message();
  TopicPlan plan = Configuration::plan_of(**pipeline, "orders");

  std::ostringstream log;
  log::configure(spdlog::level::info, {}, {std::make_shared<spdlog::sinks::ostream_sink_mt>(log)},
                 log::Format::kText);
  constexpr int kCalls = 60;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kCalls; ++i) {
    Message m;
    m.value = "v";
    std::vector<InputMessage> in;
    in.push_back({std::move(m), std::nullopt});
    BatchResult r = executor.run(plan, "orders", std::move(in));
    ASSERT_EQ(r.outcomes.at(0).kind, InputOutcome::Kind::kPass) << r.outcomes.at(0).error;
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  // Back to stderr (configure keeps the sinks it has when given none): `log` goes out of scope.
  log::configure(spdlog::level::info, {}, {std::make_shared<spdlog::sinks::stderr_color_sink_mt>()},
                 log::Format::kText);

  const size_t lines = count(log.str(), "near-limit-v1.0.0: an instance uses ");
  // One at the first call, then at most one per started 10-second interval.
  const auto intervals = std::chrono::duration_cast<std::chrono::seconds>(elapsed).count() / 10;
  EXPECT_GE(lines, 1u) << log.str();
  EXPECT_LE(lines, static_cast<size_t>(1 + intervals)) << log.str();
  fs::remove_all(dir);
}

}  // namespace
}  // namespace wasmq::etl
