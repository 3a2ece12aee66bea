// The executor against pipelines.md: which modules run and in what order, parallel stages and
// their merge, should_continue, splitting, routing, every error strategy, retries, dead letters,
// error-topic records, timeouts at each level, circuit breakers, result caching, batch fallback.
//
// Every test runs real modules (tests/modules/etl_*.c, configured through init_module) from a
// real ModuleRegistry in a real Sandbox. Calls are proven by `counts.calls` and by headers the
// modules add with their own call counters.
#include "etl/executor.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/message_json.h"
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
using Clock = std::chrono::steady_clock;
using Kind = InputOutcome::Kind;

constexpr char kTopic[] = "orders";

// --- Pipeline documents, as JSON text --------------------------------------------------------

// A module of a stage: `module_id` with `custom_config` (JSON), further instance_config members
// and further module members (JSON members without braces, e.g. `"enable_caching":true`).
std::string use(std::string_view module_id, std::string_view config = "null",
                std::string_view instance = "", std::string_view more = "") {
  std::string text = R"({"module_id":")" + std::string(module_id) +
                     R"(","instance_config":{"custom_config":)" + std::string(config);
  if (!instance.empty()) text += "," + std::string(instance);
  text += "}";
  if (!more.empty()) text += "," + std::string(more);
  return text + "}";
}

// A stage of `modules` (each from use()) with further stage members.
std::string stage(uint32_t priority, const std::vector<std::string>& modules,
                  std::string_view more = "") {
  std::string text = R"({"priority":)" + std::to_string(priority) + R"(,"modules":[)";
  for (size_t i = 0; i < modules.size(); ++i) text += (i ? "," : "") + modules[i];
  text += "]";
  if (!more.empty()) text += "," + std::string(more);
  return text + "}";
}

// A pipeline of `stages` (each from stage()) with further pipeline members.
std::string pipeline(std::string_view id, const std::vector<std::string>& stages,
                     std::string_view more = "") {
  std::string text = R"({"pipeline_id":")" + std::string(id) + R"(","name":")" + std::string(id) +
                     R"(","stages":[)";
  for (size_t i = 0; i < stages.size(); ++i) text += (i ? "," : "") + stages[i];
  text += "]";
  if (!more.empty()) text += "," + std::string(more);
  return text + "}";
}

// The tagger appending `suffix` to the value (shows where and in which order it ran).
std::string appender(std::string_view suffix) {
  return use("etl_tagger", R"({"append":")" + std::string(suffix) + R"("})");
}

Message message(std::string value, std::vector<Header> headers = {}) {
  Message m;
  m.key = "k";
  m.value = std::move(value);
  m.headers = std::move(headers);
  m.timestamp = 1000;
  return m;
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

class ExecutorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_TRUE(wasm::initialize_engine().is_ok()); }

  void SetUp() override {
    dir_ = testing::test_temp_dir("wasmq-executor");
    fs::remove_all(dir_);
    std::vector<std::string> warnings;
    auto registry = ModuleRegistry::open(dir_, &warnings);
    ASSERT_TRUE(registry.is_ok()) << registry.status().message();
    registry_ = std::move(*registry);
    for (const char* name : {"etl_tagger", "etl_faulty", "etl_counter"}) {
      auto binary = testing::read_module(name);
      ASSERT_FALSE(binary.empty()) << "module " << name << " was not built";
      auto added = registry_->add(name, "1.0.0", std::move(binary));
      ASSERT_TRUE(added.is_ok()) << name << ": " << added.status().message();
    }
    runtime_.registry = registry_.get();
    auto sandbox = wasm::Sandbox::create();
    ASSERT_TRUE(sandbox.is_ok()) << sandbox.status().message();
    sandbox_ = std::move(*sandbox);
    executor_ = std::make_unique<Executor>(*sandbox_, runtime_);
  }

  void TearDown() override {
    executor_.reset();
    sandbox_.reset();
    registry_.reset();
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  // Parses and compiles a pipeline document; fails the test when either refuses it.
  std::shared_ptr<const CompiledPipeline> compile(const std::string& text) {
    PipelineSpec spec;
    Status error = parse_pipeline(json::parse(text), "generated", &spec);
    EXPECT_TRUE(error.is_ok()) << error.message() << "\n" << text;
    auto compiled = compile_pipeline(std::move(spec));
    EXPECT_TRUE(compiled.is_ok()) << compiled.status().message();
    pipelines_.push_back(compiled.is_ok() ? *compiled : nullptr);
    return pipelines_.back();
  }

  static std::vector<InputMessage> inputs(std::vector<Message> messages) {
    std::vector<InputMessage> in;
    for (auto& m : messages) in.push_back({std::move(m), std::nullopt});
    return in;
  }

  // Runs the one pipeline `p` (Configuration::plan_of) on `messages` produced to `topic`.
  BatchResult run(const std::shared_ptr<const CompiledPipeline>& p, std::vector<Message> messages,
                  const std::string& topic = kTopic) {
    TopicPlan plan = Configuration::plan_of(*p, topic);
    return executor_->run(plan, topic, inputs(std::move(messages)));
  }

  // Runs every pipeline of `config` that applies to `topic` (Configuration::plan_for).
  BatchResult run(const Configuration& config, std::vector<Message> messages,
                  const std::string& topic = kTopic) {
    auto plan = config.plan_for(topic);
    return executor_->run(*plan, topic, inputs(std::move(messages)));
  }

  // The one message input `i` stored, or an empty message (with a test failure).
  static Message stored(const BatchResult& r, size_t i = 0) {
    EXPECT_LT(i, r.outcomes.size());
    if (i >= r.outcomes.size()) return {};
    const InputOutcome& o = r.outcomes[i];
    EXPECT_EQ(o.kind, Kind::kPass) << "error: " << o.error;
    EXPECT_EQ(o.outputs.size(), 1u);
    if (o.outputs.size() != 1) return {};
    return o.outputs[0].message;
  }

  // The value of header `name` of `m`, or "<absent>".
  static std::string header(const Message& m, std::string_view name) {
    const std::string* value = m.header(name);
    return value ? *value : "<absent>";
  }

  // The text of an error record's `error` field, or of any JSON string.
  static std::string error_text(const json::value& v) {
    return v.is_string() ? std::string(v.as_string()) : json::serialize(v);
  }

  // The error records of `r` as JSON objects.
  static std::vector<json::object> error_records(const BatchResult& r) {
    std::vector<json::object> records;
    for (const auto& record : r.error_records) {
      records.push_back(json::parse(record.message.value).as_object());
    }
    return records;
  }

  fs::path dir_;
  std::unique_ptr<ModuleRegistry> registry_;
  Runtime runtime_;
  std::unique_ptr<wasm::Sandbox> sandbox_;
  std::unique_ptr<Executor> executor_;
  std::vector<std::shared_ptr<const CompiledPipeline>> pipelines_;
};

// --- Which modules run, and in what order ------------------------------------------------------

TEST_F(ExecutorTest, RunsStagesInAscendingPriorityEachModuleOnThePreviousOutput) {
  // Listed out of order: stage 7 runs after stage 0; within a stage, modules in listed order.
  auto p = compile(
      pipeline("p1", {stage(7, {appender("-C")}), stage(0, {appender("-A1"), appender("-A2")})}));
  BatchResult r = run(p, {message("m")});
  EXPECT_EQ(stored(r).value, "m-A1-A2-C");
  EXPECT_EQ(r.outcomes[0].outputs[0].topic, kTopic);
}

TEST_F(ExecutorTest, DoesNotCallAModuleWhoseTopicFiltersDoNotMatch) {
  auto p = compile(pipeline(
      "p1", {stage(0, {use("etl_counter", R"({"header":"payments"})", "",
                           R"("topic_filters":[{"filter_type":"Exact","pattern":"payments"}])"),
                       use("etl_counter", R"({"header":"ord"})", "",
                           R"("topic_filters":[{"filter_type":"Prefix","pattern":"ord"}])")})}));
  BatchResult r = run(p, {message("m")});
  Message out = stored(r);
  EXPECT_EQ(header(out, "payments"), "<absent>");
  EXPECT_EQ(header(out, "ord"), "1");
  EXPECT_EQ(r.counts.calls, 1u);
}

TEST_F(ExecutorTest, DoesNotCallAModuleWhoseConditionalRulesDoNotHold) {
  auto p = compile(pipeline(
      "p1", {stage(0, {use("etl_counter", R"({"header":"gold"})", "",
                           R"("conditional_rules":[{"condition_type":"HeaderValue",)"
                           R"("field_path":"tier","operator":"Equals","value":"gold"}])")})}));
  BatchResult r =
      run(p, {message("a", {{"tier", "gold"}}), message("b", {{"tier", "silver"}}), message("c")});
  EXPECT_EQ(header(stored(r, 0), "gold"), "1");
  EXPECT_EQ(header(stored(r, 1), "gold"), "<absent>");
  EXPECT_EQ(header(stored(r, 2), "gold"), "<absent>");
  EXPECT_EQ(r.counts.calls, 1u);
}

TEST_F(ExecutorTest, AppliesPipelinesInPriorityOrderEachOnThePreviousOutput) {
  // Ascending priority, ties by pipeline_id; a disabled pipeline does not apply.
  Configuration config(
      {compile(pipeline("z-tie", {stage(0, {appender("-z")})})),
       compile(pipeline("late", {stage(0, {appender("-late")})}, R"("priority":5)")),
       compile(pipeline("a-tie", {stage(0, {appender("-a")})})),
       compile(pipeline("off", {stage(0, {appender("-off")})}, R"("enabled":false)")),
       compile(pipeline("early", {stage(0, {appender("-early")})}, R"("priority":-3)"))});
  BatchResult r = run(config, {message("m")});
  EXPECT_EQ(stored(r).value, "m-early-a-z-late");
}

TEST_F(ExecutorTest, CallsProcessBatchOnceForABatchWhenTheModuleExportsIt) {
  auto p = compile(pipeline("p1", {stage(0, {use("etl_tagger", R"({"count_header":"n"})")})}));
  BatchResult r = run(p, {message("a"), message("b"), message("c")});
  EXPECT_EQ(r.counts.calls, 1u);
  EXPECT_EQ(header(stored(r, 0), "n"), "1");
  EXPECT_EQ(header(stored(r, 1), "n"), "2");
  EXPECT_EQ(header(stored(r, 2), "n"), "3");
}

// process_message once per message, all in one entry into the engine (Sandbox::process_each).
TEST_F(ExecutorTest, CallsProcessMessagePerMessageWhenTheModuleHasNoProcessBatch) {
  auto p = compile(pipeline("p1", {stage(0, {use("etl_counter")})}));
  BatchResult r = run(p, {message("a"), message("b"), message("c")});
  EXPECT_EQ(r.counts.calls, 1u);
  EXPECT_EQ(header(stored(r, 0), "counter"), "1");
  EXPECT_EQ(header(stored(r, 1), "counter"), "2");
  EXPECT_EQ(header(stored(r, 2), "counter"), "3");
}

TEST_F(ExecutorTest, KeepsTheProducersPartitionAndInputOrder) {
  auto p = compile(pipeline("p1", {stage(0, {appender("!")})}));
  TopicPlan plan = Configuration::plan_of(*p, kTopic);
  std::vector<InputMessage> in = {{message("a"), 3u}, {message("b"), std::nullopt}};
  BatchResult r = executor_->run(plan, kTopic, std::move(in));
  ASSERT_EQ(r.outcomes.size(), 2u);
  EXPECT_EQ(stored(r, 0).value, "a!");
  EXPECT_EQ(r.outcomes[0].outputs[0].partition, 3u);
  EXPECT_EQ(stored(r, 1).value, "b!");
  EXPECT_EQ(r.outcomes[1].outputs[0].partition, std::nullopt);
}

TEST_F(ExecutorTest, FilteredMessageNamesThePipelineAndModuleThatFilteredIt) {
  auto p = compile(pipeline("p1", {stage(0, {use("etl_tagger", R"({"filter_word":"drop"})")}),
                                   stage(1, {use("etl_counter")})}));
  BatchResult r = run(p, {message("please drop me"), message("keep")});
  EXPECT_EQ(r.outcomes[0].kind, Kind::kFiltered);
  EXPECT_TRUE(r.outcomes[0].outputs.empty());
  EXPECT_EQ(r.outcomes[0].pipeline_id, "p1");
  EXPECT_EQ(r.outcomes[0].module_id, "etl_tagger");
  // The filtered message reaches no later stage: the counter ran once, for "keep".
  EXPECT_EQ(header(stored(r, 1), "counter"), "1");
  EXPECT_EQ(r.counts.calls, 2u);
}

// --- Parallel stages ---------------------------------------------------------------------------

TEST_F(ExecutorTest, ParallelStageRunsEveryModuleOnTheStageInputAndTheLastListedValueWins) {
  auto p = compile(
      pipeline("p1", {stage(0, {appender("-A"), appender("-B")}, R"("parallel_execution":true)")}));
  BatchResult r = run(p, {message("m")});
  // Sequentially this would be "m-A-B": B saw the stage input "m", and B is listed last.
  EXPECT_EQ(stored(r).value, "m-B");
  EXPECT_EQ(r.counts.merge_conflicts, 1u);
}

TEST_F(ExecutorTest, ParallelStageAppliesHeaderChangesInListedOrderWithoutConflicts) {
  auto p = compile(
      pipeline("p1", {stage(0,
                            {use("etl_tagger", R"({"header":"shared","header_value":"first"})"),
                             use("etl_tagger", R"({"header":"only-second"})"),
                             use("etl_tagger", R"({"header":"shared","header_value":"third"})"),
                             use("etl_tagger", R"({"remove_header":"gone"})")},
                            R"("parallel_execution":true)")}));
  BatchResult r = run(p, {message("m", {{"gone", "x"}, {"kept", "y"}})});
  Message out = stored(r);
  EXPECT_EQ(header(out, "shared"), "third");
  EXPECT_EQ(header(out, "only-second"), "1");
  EXPECT_EQ(header(out, "gone"), "<absent>");
  EXPECT_EQ(header(out, "kept"), "y");
  EXPECT_EQ(out.value, "m");
  EXPECT_EQ(r.counts.merge_conflicts, 0u);
}

TEST_F(ExecutorTest, ParallelStageCountsAConflictPerFieldChangedByMoreThanOneModule) {
  auto p = compile(
      pipeline("p1", {stage(0,
                            {use("etl_tagger", R"({"key":"k1","timestamp":5})"),
                             use("etl_tagger", R"({"key":"k2","timestamp":7,"header":"h"})")},
                            R"("parallel_execution":true)")}));
  BatchResult r = run(p, {message("m")});
  Message out = stored(r);
  EXPECT_EQ(out.key, "k2");
  EXPECT_EQ(out.timestamp, 7);
  EXPECT_EQ(header(out, "h"), "1");
  EXPECT_EQ(r.counts.merge_conflicts, 2u);
}

TEST_F(ExecutorTest, ParallelStageMergesForEachMessageOnlyTheModulesWhoseRulesHold) {
  auto gold_only = R"("conditional_rules":[{"condition_type":"HeaderValue",)"
                   R"("field_path":"tier","operator":"Equals","value":"gold"}])";
  auto p =
      compile(pipeline("p1", {stage(0,
                                    {use("etl_tagger", R"({"header":"gold"})", "", gold_only),
                                     use("etl_tagger", R"({"header":"all"})"),
                                     use("etl_tagger", R"({"append":"+gold"})", "", gold_only)},
                                    R"("parallel_execution":true)")}));
  BatchResult r = run(p, {message("a"), message("b", {{"tier", "gold"}}), message("c")});
  for (size_t i : {0, 2}) {
    Message out = stored(r, i);
    EXPECT_EQ(header(out, "gold"), "<absent>") << i;
    EXPECT_EQ(header(out, "all"), "1") << i;
    EXPECT_EQ(out.value.size(), 1u) << i;
  }
  Message gold = stored(r, 1);
  EXPECT_EQ(header(gold, "gold"), "1");
  EXPECT_EQ(header(gold, "all"), "1");
  EXPECT_EQ(gold.value, "b+gold");
}

TEST_F(ExecutorTest, ParallelStageFiltersTheMessageWhenAnyModuleFilters) {
  auto p = compile(pipeline("p1", {stage(0,
                                         {use("etl_tagger", R"({"header":"h"})"),
                                          use("etl_tagger", R"({"filter_word":"drop"})")},
                                         R"("parallel_execution":true)")}));
  BatchResult r = run(p, {message("drop"), message("keep")});
  EXPECT_EQ(r.outcomes[0].kind, Kind::kFiltered);
  EXPECT_EQ(r.outcomes[0].module_id, "etl_tagger");
  EXPECT_EQ(header(stored(r, 1), "h"), "1");
}

TEST_F(ExecutorTest, ParallelStageTreatsMoreThanOneOutputAsAModuleError) {
  auto p = compile(pipeline("p1",
                            {stage(0,
                                   {use("etl_tagger", R"({"copies":2,"header":"splitter"})"),
                                    use("etl_tagger", R"({"header":"other"})")},
                                   R"("parallel_execution":true)")},
                            R"("error_handling":"SkipModule")"));
  BatchResult r = run(p, {message("m")});
  Message out = stored(r);  // one message: the splitter's outputs were ignored
  EXPECT_EQ(header(out, "splitter"), "<absent>");
  EXPECT_EQ(header(out, "other"), "1");
  auto records = error_records(r);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_NE(error_text(records[0].at("error")).find("parallel stage"), std::string::npos);
}

// --- should_continue, splitting ----------------------------------------------------------------

TEST_F(ExecutorTest, ShouldContinueFalseSkipsLaterStagesAndPipelines) {
  Configuration config(
      {compile(pipeline("p1", {stage(0, {use("etl_tagger", R"({"stop":true,"header":"stopped"})"),
                                         appender("-same-stage")}),
                               stage(1, {appender("-later-stage")})})),
       compile(pipeline("p2", {stage(0, {appender("-later-pipeline")})}, R"("priority":1)"))});
  BatchResult r = run(config, {message("m")});
  Message out = stored(r);
  EXPECT_EQ(header(out, "stopped"), "1");
  EXPECT_EQ(out.value, "m");
  EXPECT_EQ(r.counts.calls, 1u);
}

TEST_F(ExecutorTest, EverySplitOutputGoesThroughTheRestOfThePipeline) {
  auto p = compile(pipeline("p1", {stage(0, {use("etl_tagger", R"({"copies":3})")}),
                                   stage(1, {appender("+")}), stage(2, {use("etl_counter")})}));
  BatchResult r = run(p, {message("m"), message("n")});
  ASSERT_EQ(r.outcomes.size(), 2u);
  ASSERT_EQ(r.outcomes[0].outputs.size(), 3u);
  ASSERT_EQ(r.outcomes[1].outputs.size(), 3u);
  std::vector<std::string> counters;
  for (size_t i = 0; i < 2; ++i) {
    for (size_t k = 0; k < 3; ++k) {
      const Message& out = r.outcomes[i].outputs[k].message;
      EXPECT_EQ(out.value, (i == 0 ? "m+" : "n+"));
      EXPECT_EQ(header(out, "copy"), std::to_string(k));
      counters.push_back(header(out, "counter"));
    }
  }
  EXPECT_EQ(counters, (std::vector<std::string>{"1", "2", "3", "4", "5", "6"}));
}

TEST_F(ExecutorTest, SplitOutputsEachFeedTheNextPipeline) {
  Configuration config({compile(pipeline("p1", {stage(0, {use("etl_tagger", R"({"copies":2})")})})),
                        compile(pipeline("p2", {stage(0, {appender("+")})}, R"("priority":1)"))});
  BatchResult r = run(config, {message("m")});
  ASSERT_EQ(r.outcomes[0].outputs.size(), 2u);
  for (const auto& out : r.outcomes[0].outputs) EXPECT_EQ(out.message.value, "m+");
}

// --- Routing -------------------------------------------------------------------------------------

TEST_F(ExecutorTest, RoutesAnOutputToAnAllowedTopicAndRemovesTheRouteHeader) {
  auto p = compile(pipeline(
      "p1",
      {stage(0, {use("etl_tagger", R"({"route":"audit.eu.west"})")}), stage(1, {appender("+")})},
      R"("allowed_output_topics":["billing","audit.*"])"));
  TopicPlan plan = Configuration::plan_of(*p, kTopic);
  BatchResult r = executor_->run(plan, kTopic, {{message("m"), 2u}});
  Message out = stored(r);
  EXPECT_EQ(r.outcomes[0].outputs[0].topic, "audit.eu.west");
  EXPECT_EQ(r.outcomes[0].outputs[0].partition, std::nullopt);
  EXPECT_EQ(header(out, "wasmq.topic"), "<absent>");
  EXPECT_EQ(out.value, "m+");
}

TEST_F(ExecutorTest, RefusesRoutingToATopicTheGlobsDoNotAllow) {
  auto p = compile(
      pipeline("p1", {stage(0, {use("etl_tagger", R"({"route":"secrets","header":"routed"})")})},
               R"("allowed_output_topics":["audit.*"],"error_handling":"SkipModule")"));
  BatchResult r = run(p, {message("m")});
  Message out = stored(r);
  EXPECT_EQ(r.outcomes[0].outputs[0].topic, kTopic);
  EXPECT_EQ(header(out, "routed"), "<absent>");  // the module's output was ignored
  auto records = error_records(r);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_NE(error_text(records[0].at("error")).find("allowed_output_topics"), std::string::npos);
  EXPECT_EQ(r.counts.module_failures, 1u);
}

TEST_F(ExecutorTest, RefusesRoutingWhenThePipelineAllowsNoOutputTopic) {
  auto p = compile(pipeline("p1", {stage(0, {use("etl_tagger", R"({"route":"audit"})")})},
                            R"("error_handling":"SendToDeadLetter")"));
  BatchResult r = run(p, {message("m")});
  EXPECT_EQ(r.outcomes[0].kind, Kind::kDeadLettered);
  EXPECT_NE(r.outcomes[0].error.find("allowed_output_topics"), std::string::npos);
}

// --- Error strategies ----------------------------------------------------------------------------

TEST_F(ExecutorTest, ContinueOnErrorSkipsTheFailedModuleWhateverTheStrategy) {
  auto p = compile(pipeline(
      "p1",
      {stage(0, {appender("-A"), use("etl_faulty", R"({"error_word":"bad"})"), appender("-C")},
             R"("continue_on_error":true)")},
      R"("error_handling":"SendToDeadLetter")"));
  BatchResult r = run(p, {message("bad")});
  EXPECT_EQ(stored(r).value, "bad-A-C");
  EXPECT_EQ(r.counts.module_failures, 1u);
}

TEST_F(ExecutorTest, SkipModuleLetsTheMessageGoOnAsItWasBeforeTheModule) {
  auto p = compile(pipeline(
      "p1",
      {stage(0, {appender("-A")}), stage(1, {use("etl_faulty", R"({"error_word":"bad"})")}),
       stage(2, {appender("-C")})},
      R"("error_handling":"SkipModule")"));
  BatchResult r = run(p, {message("bad"), message("good")});
  Message failed = stored(r, 0);
  EXPECT_EQ(failed.value, "bad-A-C");
  EXPECT_EQ(header(failed, "faulty.calls"), "<absent>");
  EXPECT_EQ(header(stored(r, 1), "faulty.calls"), "2");
}

TEST_F(ExecutorTest, StopPipelinePassesTheMessageAsItEnteredThePipeline) {
  Configuration config(
      {compile(pipeline("first", {stage(0, {appender("-1")})})),
       compile(pipeline(
           "second",
           {stage(0, {appender("-A")}), stage(1, {use("etl_faulty", R"({"error_word":"bad"})")}),
            stage(2, {appender("-C")})},
           R"("priority":1,"error_handling":"StopPipeline")")),
       compile(pipeline("third", {stage(0, {appender("-3")})}, R"("priority":2)"))});
  BatchResult r = run(config, {message("bad"), message("good")});
  // "second" changed it to "bad-1-A" before failing: it goes on as it entered, "bad-1".
  EXPECT_EQ(stored(r, 0).value, "bad-1-3");
  EXPECT_EQ(stored(r, 1).value, "good-1-A-C-3");
}

TEST_F(ExecutorTest, StopPipelineRestoresASplitMessageAsOne) {
  auto p = compile(pipeline("p1",
                            {stage(0, {use("etl_tagger", R"({"copies":2})")}),
                             stage(1, {use("etl_faulty", R"({"fail_first":1})")})},
                            R"("error_handling":"StopPipeline")"));
  BatchResult r = run(p, {message("m")});
  Message out = stored(r);
  EXPECT_EQ(out, message("m"));
}

TEST_F(ExecutorTest, RetryWithBackoffCallsAnAlwaysFailingModuleOnePlusMaxRetriesTimes) {
  auto p = compile(pipeline(
      "p1", {stage(0, {appender("-A")}), stage(1, {use("etl_faulty", R"({"error_word":"bad"})")})},
      R"("error_handling":"RetryWithBackoff","max_retries":3,)"
      R"("retry_config":{"max_retries":4,"initial_delay_ms":1,"jitter":false},)"
      R"("circuit_breaker":{"failure_threshold":100})"));
  BatchResult r = run(p, {message("bad")});
  // retry_config.max_retries wins over max_retries; the stage-0 call is the first call.
  EXPECT_EQ(r.counts.calls, 1u + 1u + 4u);
  EXPECT_EQ(r.counts.retries, 4u);
  // Still failing, no dead-letter topic: as StopPipeline.
  EXPECT_EQ(stored(r).value, "bad");
  EXPECT_EQ(r.error_records.size(), 1u);
}

TEST_F(ExecutorTest, RetryWithBackoffUsesThePipelinesMaxRetriesWithoutRetryConfig) {
  auto p = compile(pipeline("p1", {stage(0, {use("etl_faulty", R"({"error_word":"bad"})")})},
                            R"("error_handling":"RetryWithBackoff","max_retries":2,)"
                            R"("circuit_breaker":{"failure_threshold":100})"));
  BatchResult r = run(p, {message("bad")});
  EXPECT_EQ(r.counts.calls, 3u);
}

TEST_F(ExecutorTest, RetryWithBackoffSucceedsWhenTheModuleRecovers) {
  auto p =
      compile(pipeline("p1", {stage(0, {use("etl_faulty", R"({"fail_first":2})")})},
                       R"("error_handling":"RetryWithBackoff",)"
                       R"("retry_config":{"max_retries":5,"initial_delay_ms":1,"jitter":false},)"
                       R"("dead_letter_config":{})"));
  BatchResult r = run(p, {message("m")});
  EXPECT_EQ(header(stored(r), "faulty.calls"), "3");
  EXPECT_EQ(r.counts.calls, 3u);
  EXPECT_EQ(r.counts.retries, 2u);
  EXPECT_EQ(r.counts.module_failures, 0u);
}

TEST_F(ExecutorTest, RetryWithBackoffWaitsExponentiallyGrowingDelays) {
  auto p = compile(
      pipeline("p1", {stage(0, {use("etl_faulty", R"({"error_word":"bad"})")})},
               R"("error_handling":"RetryWithBackoff","circuit_breaker":{"failure_threshold":100},)"
               R"("retry_config":{"max_retries":3,"initial_delay_ms":20,"backoff_multiplier":2.0,)"
               R"("max_delay_ms":1000,"jitter":false})"));
  auto start = Clock::now();
  BatchResult r = run(p, {message("bad")});
  double elapsed = ms_since(start);
  EXPECT_EQ(r.counts.calls, 4u);
  EXPECT_GE(elapsed, 20 + 40 + 80);
  EXPECT_LT(elapsed, 10000);  // safety margin only
}

TEST_F(ExecutorTest, RetryWithBackoffCapsDelaysAtMaxDelay) {
  auto p = compile(pipeline(
      "p1", {stage(0, {use("etl_faulty", R"({"error_word":"bad"})")})},
      R"("error_handling":"RetryWithBackoff","circuit_breaker":{"failure_threshold":100},)"
      R"("retry_config":{"max_retries":3,"initial_delay_ms":20,"backoff_multiplier":100.0,)"
      R"("max_delay_ms":30,"jitter":false})"));
  auto start = Clock::now();
  BatchResult r = run(p, {message("bad")});
  double elapsed = ms_since(start);
  EXPECT_EQ(r.counts.calls, 4u);
  EXPECT_GE(elapsed, 20 + 30 + 30);
  // Uncapped the waits would be 20 + 2000 + 200000 ms.
  EXPECT_LT(elapsed, 2000);
}

// The first retry would wake 10 minutes after the failure, past the 30 s global timeout: the
// executor gives up at once instead of sleeping. The global timeout leaves the first call all the
// time a loaded machine needs (a 100 ms one once ran out before the first call under load).
TEST_F(ExecutorTest, RetryWithBackoffStopsRetryingAtTheGlobalTimeout) {
  auto p = compile(pipeline(
      "p1", {stage(0, {use("etl_faulty", R"({"error_word":"bad"})")})},
      R"("error_handling":"RetryWithBackoff","global_timeout_ms":30000,)"
      R"("retry_config":{"max_retries":5,"initial_delay_ms":600000,"max_delay_ms":600000,)"
      R"("jitter":false})"));
  auto start = Clock::now();
  BatchResult r = run(p, {message("bad")});
  EXPECT_EQ(r.counts.calls, 1u);
  EXPECT_EQ(r.counts.retries, 0u);
  EXPECT_EQ(stored(r).value, "bad");
  // Neither the retry delay nor the rest of the global timeout was slept through.
  EXPECT_LT(ms_since(start), 30000);
}

TEST_F(ExecutorTest, RetryWithBackoffDeadLettersWhenStillFailingAndADeadLetterTopicIsSet) {
  auto p = compile(pipeline(
      "p1", {stage(0, {appender("-A")}), stage(1, {use("etl_faulty", R"({"error_word":"bad"})")})},
      R"("error_handling":"RetryWithBackoff","dead_letter_config":{},)"
      R"("retry_config":{"max_retries":2,"initial_delay_ms":1,"jitter":false})"));
  BatchResult r = run(p, {message("bad")});
  ASSERT_EQ(r.outcomes[0].kind, Kind::kDeadLettered);
  ASSERT_EQ(r.outcomes[0].dead_letters.size(), 1u);
  EXPECT_EQ(r.outcomes[0].dead_letters[0].topic, "dlq.etl.orders");
  EXPECT_EQ(r.outcomes[0].dead_letters[0].message.value, "bad");
  EXPECT_EQ(r.counts.calls, 1u + 3u);
}

TEST_F(ExecutorTest, SendToDeadLetterWritesTheMessageAsItEnteredWithErrorContext) {
  auto p = compile(pipeline(
      "p1",
      {stage(0, {appender("-A")}), stage(5, {use("etl_faulty", R"({"error_word":"bad"})")}),
       stage(6, {appender("-C")})},
      R"("error_handling":"SendToDeadLetter")"));
  int64_t before = now_ms();
  BatchResult r = run(p, {message("bad", {{"origin", "test"}})});
  const InputOutcome& o = r.outcomes[0];
  ASSERT_EQ(o.kind, Kind::kDeadLettered);
  EXPECT_TRUE(o.outputs.empty());
  ASSERT_EQ(o.dead_letters.size(), 1u);
  EXPECT_EQ(o.dead_letters[0].topic, "dlq.etl.orders");
  const Message& dl = o.dead_letters[0].message;
  EXPECT_EQ(dl.value, "bad");  // as it entered the pipeline, not "bad-A"
  EXPECT_EQ(dl.key, "k");
  EXPECT_EQ(header(dl, "origin"), "test");
  EXPECT_NE(header(dl, "etl.error").find("asked to fail on bad"), std::string::npos);
  EXPECT_EQ(header(dl, "etl.pipeline_id"), "p1");
  EXPECT_EQ(header(dl, "etl.module_id"), "etl_faulty");
  EXPECT_EQ(header(dl, "etl.stage_priority"), "5");
  EXPECT_EQ(header(dl, "etl.source_topic"), "orders");
  int64_t failed_at = std::stoll(header(dl, "etl.failed_at"));
  EXPECT_GE(failed_at, before);
  EXPECT_LE(failed_at, now_ms());
  EXPECT_EQ(o.pipeline_id, "p1");
  EXPECT_EQ(o.module_id, "etl_faulty");
  EXPECT_NE(o.error.find("asked to fail on bad"), std::string::npos);
}

TEST_F(ExecutorTest, SendToDeadLetterUsesTheConfiguredPrefixAndCanLeaveOutTheContext) {
  auto p = compile(
      pipeline("p1", {stage(0, {use("etl_faulty", R"({"error_word":"bad"})")})},
               R"("error_handling":"SendToDeadLetter",)"
               R"("dead_letter_config":{"topic_prefix":"dead","include_error_context":false})"));
  BatchResult r = run(p, {message("bad")});
  ASSERT_EQ(r.outcomes[0].kind, Kind::kDeadLettered);
  ASSERT_EQ(r.outcomes[0].dead_letters.size(), 1u);
  EXPECT_EQ(r.outcomes[0].dead_letters[0].topic, "dead.orders");
  const Message& dl = r.outcomes[0].dead_letters[0].message;
  // No context; only the mark that it is a dead letter (kFailureRecordHeader).
  Message expected = message("bad");
  expected.set_header(std::string(kFailureRecordHeader), "dead_letter");
  EXPECT_EQ(dl, expected);
  for (const auto& [name, value] : dl.headers) {
    EXPECT_TRUE(name == kFailureRecordHeader || !name.starts_with("etl.")) << name;
  }
}

TEST_F(ExecutorTest, SendToDeadLetterDeadLettersOnlyTheFailingMessagesOfABatch) {
  auto p = compile(pipeline("p1", {stage(0, {use("etl_faulty", R"({"error_word":"bad"})")})},
                            R"("error_handling":"SendToDeadLetter")"));
  BatchResult r = run(p, {message("good"), message("bad"), message("good too")});
  EXPECT_EQ(r.outcomes[0].kind, Kind::kPass);
  EXPECT_EQ(r.outcomes[1].kind, Kind::kDeadLettered);
  EXPECT_EQ(r.outcomes[2].kind, Kind::kPass);
  EXPECT_TRUE(r.outcomes[0].dead_letters.empty());
  EXPECT_TRUE(r.outcomes[2].dead_letters.empty());
}

TEST_F(ExecutorTest, SendToDeadLetterStopsLaterPipelinesForTheMessage) {
  Configuration config(
      {compile(pipeline("p1", {stage(0, {use("etl_faulty", R"({"error_word":"bad"})")})},
                        R"("error_handling":"SendToDeadLetter")")),
       compile(pipeline("p2", {stage(0, {use("etl_counter")})}, R"("priority":1)"))});
  BatchResult r = run(config, {message("bad")});
  EXPECT_EQ(r.outcomes[0].kind, Kind::kDeadLettered);
  EXPECT_EQ(r.counts.calls, 1u);
}

TEST_F(ExecutorTest, TreatsAModuleThatIsNotDeployedAsAFailure) {
  auto p =
      compile(pipeline("p1", {stage(0, {use("ghost")})}, R"("error_handling":"SendToDeadLetter")"));
  BatchResult r = run(p, {message("m")});
  ASSERT_EQ(r.outcomes[0].kind, Kind::kDeadLettered);
  ASSERT_EQ(r.outcomes[0].dead_letters.size(), 1u);
  EXPECT_NE(header(r.outcomes[0].dead_letters[0].message, "etl.error").find("not deployed"),
            std::string::npos);
  EXPECT_EQ(r.counts.module_failures, 1u);
  EXPECT_EQ(r.counts.calls, 0u);
}

TEST_F(ExecutorTest, SkipsAModuleThatIsNotDeployedUnderSkipModule) {
  auto p = compile(pipeline("p1", {stage(0, {use("ghost"), appender("+")})}));
  BatchResult r = run(p, {message("m")});
  EXPECT_EQ(stored(r).value, "m+");
  EXPECT_EQ(r.counts.module_failures, 1u);
  // Counted and logged, not an error record per message: the pipeline's status says it waits
  // for the module.
  EXPECT_TRUE(error_records(r).empty());
}

TEST_F(ExecutorTest, TreatsATrapAsAFailure) {
  auto p = compile(pipeline("p1", {stage(0, {use("etl_faulty", R"({"trap_word":"boom"})")})},
                            R"("error_handling":"SendToDeadLetter")"));
  BatchResult r = run(p, {message("boom")});
  ASSERT_EQ(r.outcomes[0].kind, Kind::kDeadLettered);
  EXPECT_FALSE(r.outcomes[0].error.empty());
}

TEST_F(ExecutorTest, TreatsAModuleThatCannotBeLoadedAsAFailure) {
  // 64 KiB is less than the module's initial memory: it cannot be instantiated under the limit.
  auto p = compile(
      pipeline("p1", {stage(0, {use("etl_counter", "null", R"("memory_limit_bytes":65536)")})},
               R"("error_handling":"SendToDeadLetter")"));
  BatchResult r = run(p, {message("m")});
  ASSERT_EQ(r.outcomes[0].kind, Kind::kDeadLettered);
  EXPECT_NE(r.outcomes[0].error.find("etl_counter"), std::string::npos) << r.outcomes[0].error;
  EXPECT_EQ(r.counts.module_failures, 1u);
}

TEST_F(ExecutorTest, TruncatesADeadLetterToMaxMessageSize) {
  auto p = compile(pipeline("p1", {stage(0, {use("etl_faulty", R"({"error_word":"bad"})")})},
                            R"("error_handling":"SendToDeadLetter",)"
                            R"("dead_letter_config":{"max_message_size":3})"));
  BatchResult r = run(p, {message("bad and long")});
  ASSERT_EQ(r.outcomes[0].dead_letters.size(), 1u);
  const Message& dl = r.outcomes[0].dead_letters[0].message;
  EXPECT_EQ(dl.value, "bad");
  EXPECT_EQ(header(dl, "etl.truncated_from_bytes"), "12");
}

TEST_F(ExecutorTest, ParallelStageSkipsAFailedModuleUnderContinueOnError) {
  auto p = compile(pipeline(
      "p1",
      {stage(0,
             {use("etl_tagger", R"({"header":"a"})"), use("etl_faulty", R"({"error_word":"m"})"),
              use("etl_tagger", R"({"header":"c"})")},
             R"("parallel_execution":true,"continue_on_error":true)")},
      R"("error_handling":"StopPipeline")"));
  BatchResult r = run(p, {message("m")});
  Message out = stored(r);
  EXPECT_EQ(header(out, "a"), "1");
  EXPECT_EQ(header(out, "c"), "1");
  EXPECT_EQ(r.counts.module_failures, 1u);
}

TEST_F(ExecutorTest, ParallelStageDeadLettersTheStageInputUnderSendToDeadLetter) {
  auto p = compile(pipeline(
      "p1",
      {stage(0, {appender("-0")}),
       stage(1,
             {use("etl_tagger", R"({"header":"a"})"), use("etl_faulty", R"({"error_word":"m"})")},
             R"("parallel_execution":true)")},
      R"("error_handling":"SendToDeadLetter")"));
  BatchResult r = run(p, {message("m")});
  ASSERT_EQ(r.outcomes[0].kind, Kind::kDeadLettered);
  ASSERT_EQ(r.outcomes[0].dead_letters.size(), 1u);
  EXPECT_EQ(r.outcomes[0].dead_letters[0].message.value, "m");  // as it entered the pipeline
  EXPECT_EQ(header(r.outcomes[0].dead_letters[0].message, "a"), "<absent>");
}

TEST_F(ExecutorTest, ParallelStageShouldContinueFalseSkipsLaterStages) {
  auto p = compile(pipeline(
      "p1",
      {stage(0, {use("etl_tagger", R"({"stop":true})"), use("etl_tagger", R"({"header":"b"})")},
             R"("parallel_execution":true)"),
       stage(1, {appender("+")})}));
  BatchResult r = run(p, {message("m")});
  Message out = stored(r);
  EXPECT_EQ(header(out, "b"), "1");
  EXPECT_EQ(out.value, "m");
}

TEST_F(ExecutorTest, ParallelStageRoutesAnAllowedOutput) {
  auto p = compile(pipeline(
      "p1",
      {stage(0, {use("etl_tagger", R"({"route":"audit"})"), use("etl_tagger", R"({"header":"b"})")},
             R"("parallel_execution":true)")},
      R"("allowed_output_topics":["audit"])"));
  BatchResult r = run(p, {message("m")});
  Message out = stored(r);
  EXPECT_EQ(r.outcomes[0].outputs[0].topic, "audit");
  EXPECT_EQ(header(out, "wasmq.topic"), "<absent>");
  EXPECT_EQ(header(out, "b"), "1");
}

TEST_F(ExecutorTest, ARouteChosenInOnePipelineSurvivesALaterStoppedPipeline) {
  Configuration config(
      {compile(pipeline("p1", {stage(0, {use("etl_tagger", R"({"route":"audit"})")})},
                        R"("allowed_output_topics":["audit"])")),
       compile(pipeline("p2", {stage(0, {use("etl_faulty", R"({"error_word":"m"})")})},
                        R"("priority":1,"error_handling":"StopPipeline")"))});
  BatchResult r = run(config, {message("m")});
  stored(r);
  EXPECT_EQ(r.outcomes[0].outputs[0].topic, "audit");
}

TEST_F(ExecutorTest, TracesEveryModuleConsideredWithItsDecisionOutputAndAction) {
  auto p = compile(
      pipeline("p1", {stage(0, {use("etl_counter", "null", "",
                                    R"("conditional_rules":[{"condition_type":"HeaderValue",)"
                                    R"("field_path":"tier","operator":"Equals","value":"gold"}])"),
                                use("etl_faulty", R"({"error_word":"m"})")})}));
  TopicPlan plan = Configuration::plan_of(*p, kTopic);
  Trace trace;
  BatchResult r = executor_->run(plan, kTopic, inputs({message("m")}), &trace);
  ASSERT_EQ(trace.per_input.size(), 1u);
  const auto& steps = trace.per_input[0];
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0].module_id, "etl_counter");
  EXPECT_FALSE(steps[0].matched);
  EXPECT_FALSE(steps[0].ran);
  EXPECT_NE(steps[0].decided_by.find("conditional_rules[0]"), std::string::npos);
  EXPECT_EQ(steps[1].module_id, "etl_faulty");
  EXPECT_TRUE(steps[1].matched);
  EXPECT_TRUE(steps[1].ran);
  EXPECT_EQ(steps[1].resolved_id, "etl_faulty-v1.0.0");
  EXPECT_NE(steps[1].error.find("asked to fail on m"), std::string::npos);
  EXPECT_NE(steps[1].action.find("SkipModule"), std::string::npos);
  EXPECT_EQ(stored(r).value, "m");
}

TEST_F(ExecutorTest, RetryWithBackoffDoesNotRetryUnderContinueOnError) {
  auto p = compile(pipeline(
      "p1",
      {stage(0, {use("etl_faulty", R"({"error_word":"bad"})")}, R"("continue_on_error":true)")},
      R"("error_handling":"RetryWithBackoff",)"
      R"("retry_config":{"max_retries":3,"initial_delay_ms":1,"jitter":false})"));
  BatchResult r = run(p, {message("bad")});
  EXPECT_EQ(r.counts.calls, 1u);
  EXPECT_EQ(r.counts.retries, 0u);
  EXPECT_EQ(stored(r).value, "bad");
}

TEST_F(ExecutorTest, CallsAModuleWithAtMostBatchSizeMessagesAtOnce) {
  auto p = compile(pipeline("p1", {stage(0, {use("etl_tagger", R"({"count_header":"n"})")})},
                            R"("configuration":{"batch_size":2})"));
  BatchResult r = run(p, {message("a"), message("b"), message("c"), message("d"), message("e")});
  EXPECT_EQ(r.counts.calls, 3u);
  EXPECT_EQ(header(stored(r, 4), "n"), "5");
}

// --- Module versions ---------------------------------------------------------------------------

TEST_F(ExecutorTest, ABareModuleNameFollowsTheNewestVersionAndAPinnedIdDoesNot) {
  auto follower =
      compile(pipeline("follower", {stage(0, {use("etl_faulty", R"({"header":"v2"})")})}));
  auto pinned =
      compile(pipeline("pinned", {stage(0, {use("etl_faulty-v1.0.0", R"({"header":"v2"})")})}));
  EXPECT_NE(header(stored(run(follower, {message("m")})), "faulty.calls"), "<absent>");
  // Version 2.0.0 of the name is another binary: the counter, which sets the header "v2".
  ASSERT_TRUE(registry_->add("etl_faulty", "2.0.0", testing::read_module("etl_counter")).is_ok());
  Message followed = stored(run(follower, {message("m")}));
  EXPECT_EQ(header(followed, "v2"), "1");
  EXPECT_EQ(header(followed, "faulty.calls"), "<absent>");
  Message kept = stored(run(pinned, {message("m")}));
  EXPECT_NE(header(kept, "faulty.calls"), "<absent>");
  EXPECT_EQ(header(kept, "v2"), "<absent>");
  // Deleting the newest version rolls the follower back.
  ASSERT_TRUE(registry_->remove("etl_faulty-v2.0.0").is_ok());
  EXPECT_NE(header(stored(run(follower, {message("m")})), "faulty.calls"), "<absent>");
}

TEST_F(ExecutorTest, RunsTheNewBinaryOfAModuleDeletedAndUploadedAgainUnderTheSameId) {
  auto p = compile(pipeline("p1", {stage(0, {use("etl_faulty-v1.0.0")})}));
  EXPECT_NE(header(stored(run(p, {message("m")})), "faulty.calls"), "<absent>");
  ASSERT_TRUE(registry_->remove("etl_faulty-v1.0.0").is_ok());
  ASSERT_TRUE(registry_->add("etl_faulty", "1.0.0", testing::read_module("etl_counter")).is_ok());
  Message out = stored(run(p, {message("m")}));
  EXPECT_EQ(header(out, "counter"), "1");
  EXPECT_EQ(header(out, "faulty.calls"), "<absent>");
}

// --- Batches with a poison message -------------------------------------------------------------

TEST_F(ExecutorTest, FallsBackToSingleCallsWhenABatchFailsAsAWhole) {
  auto p = compile(pipeline("p1", {stage(0, {use("etl_faulty", R"({"trap_word":"poison"})")})},
                            R"("error_handling":"SendToDeadLetter")"));
  BatchResult r = run(p, {message("one"), message("poison"), message("three")});
  // One batch call (trapped), then one call per message.
  EXPECT_EQ(r.counts.calls, 1u + 3u);
  EXPECT_NE(header(stored(r, 0), "faulty.calls"), "<absent>");
  EXPECT_EQ(r.outcomes[1].kind, Kind::kDeadLettered);
  EXPECT_NE(header(stored(r, 2), "faulty.calls"), "<absent>");
  EXPECT_EQ(r.counts.module_failures, 1u);
}

// --- Error-topic records -----------------------------------------------------------------------

TEST_F(ExecutorTest, WritesAnErrorRecordPerFailureWithTheValueTruncated) {
  runtime_.defaults.max_error_message_size = 4;
  auto p = compile(pipeline("p1", {stage(3, {use("etl_faulty", R"({"error_word":"bad"})")})}));
  int64_t before = now_ms();
  BatchResult r = run(p, {message("bad and long"), message("fine"), message("bad again")});
  ASSERT_EQ(r.error_records.size(), 2u);
  EXPECT_EQ(r.error_records[0].topic, "etl-errors");
  auto records = error_records(r);
  const json::object& record = records[0];
  EXPECT_EQ(record.at("pipeline_id"), "p1");
  EXPECT_EQ(record.at("module_id"), "etl_faulty");
  EXPECT_EQ(record.at("stage"), 3);
  EXPECT_EQ(record.at("topic"), "orders");
  EXPECT_NE(error_text(record.at("error")).find("asked to fail on bad"), std::string::npos);
  EXPECT_GE(record.at("timestamp").to_number<int64_t>(), before);
  const json::object& m = record.at("message").as_object();
  EXPECT_EQ(m.at("value"), "bad ");
  EXPECT_EQ(m.at("key"), "k");
  EXPECT_EQ(records[1].at("message").as_object().at("value"), "bad ");
}

TEST_F(ExecutorTest, WritesErrorRecordsToTheConfiguredErrorTopic) {
  runtime_.defaults.error_topic_prefix = "my-errors";
  auto p = compile(pipeline("p1", {stage(0, {use("etl_faulty", R"({"error_word":"bad"})")})}));
  BatchResult r = run(p, {message("bad")});
  ASSERT_EQ(r.error_records.size(), 1u);
  EXPECT_EQ(r.error_records[0].topic, "my-errors");
}

TEST_F(ExecutorTest, WritesNoErrorRecordWhenTheErrorTopicIsDisabled) {
  runtime_.defaults.enable_error_topic = false;
  auto p = compile(pipeline("p1", {stage(0, {use("etl_faulty", R"({"error_word":"bad"})")})}));
  BatchResult r = run(p, {message("bad")});
  EXPECT_TRUE(r.error_records.empty());
  EXPECT_EQ(r.counts.module_failures, 1u);
  EXPECT_EQ(stored(r).value, "bad");
}

// --- Failure records that fail again (M9, the error-topic loop) --------------------------------

// A stream pipeline from `source` to "archive" with etl_faulty failing on "bad", plus `more`.
std::string failing_stream(std::string_view source, std::string_view more = "") {
  std::string members = R"("mode":"stream","source_topic":")" + std::string(source) +
                        R"(","destination_topic":"archive")";
  if (!more.empty()) members += "," + std::string(more);
  return pipeline("errors-reader", {stage(0, {use("etl_faulty", R"({"error_word":"bad"})")})},
                  members);
}

// A stream pipeline reading etl-errors whose module failed on every record went round for ever:
// each failure wrote an error record (embedding the one before) to the topic it reads.
TEST_F(ExecutorTest, AStreamPipelineReadingItsErrorTopicWritesOneErrorRecordPerFailedMessage) {
  auto p = compile(failing_stream("etl-errors"));
  // The first failure writes a record; what the runner then reads from etl-errors is that
  // record, and so on: the loop ends when a run writes nothing.
  std::vector<Message> to_read = {message("bad")};
  size_t records = 0;
  for (int round = 0; round < 5 && !to_read.empty(); ++round) {
    BatchResult r = run(p, std::move(to_read), "etl-errors");
    to_read.clear();
    for (auto& record : r.error_records) {
      EXPECT_EQ(record.topic, "etl-errors");
      // The error record mentions "bad" (it embeds the message): the module fails on it too.
      to_read.push_back(record.message);
    }
    records += r.error_records.size();
    if (round > 0) {
      EXPECT_EQ(r.counts.module_failures, 1u);
      EXPECT_EQ(r.counts.failure_records_not_repeated, 1u);
      // SkipModule: the record goes on to the destination, still marked as an error record.
      ASSERT_EQ(r.outcomes[0].kind, Kind::kPass);
      EXPECT_EQ(header(r.outcomes[0].outputs[0].message, kFailureRecordHeader), "error_record");
    }
  }
  EXPECT_EQ(records, 1u);
  EXPECT_TRUE(to_read.empty());
  EXPECT_EQ(runtime_.figures.pipeline("errors-reader")->failure_records_not_repeated.load(), 1u);
}

TEST_F(ExecutorTest, ErrorRecordsAndDeadLettersAreMarkedAsFailureRecords) {
  auto p = compile(pipeline("p1", {stage(0, {use("etl_faulty", R"({"error_word":"bad"})")})},
                            R"("error_handling":"SendToDeadLetter")"));
  BatchResult r = run(p, {message("bad")});
  ASSERT_EQ(r.error_records.size(), 1u);
  EXPECT_EQ(header(r.error_records[0].message, kFailureRecordHeader), "error_record");
  ASSERT_EQ(r.outcomes[0].dead_letters.size(), 1u);
  EXPECT_EQ(header(r.outcomes[0].dead_letters[0].message, kFailureRecordHeader), "dead_letter");
}

// The same loop through dead letters: a stream pipeline whose dead letters reach its source.
TEST_F(ExecutorTest, AStreamPipelineDoesNotDeadLetterADeadLetterAgain) {
  auto p = compile(failing_stream("dlq.etl.orders", R"("error_handling":"SendToDeadLetter")"));
  Message dead = message("bad");
  dead.set_header(std::string(kFailureRecordHeader), "dead_letter");
  BatchResult r = run(p, {dead, message("good")}, "dlq.etl.orders");
  EXPECT_TRUE(r.error_records.empty());
  // Dead-lettered, with its cause, but no new dead letter: it stays in the topic it was read from.
  EXPECT_EQ(r.outcomes[0].kind, Kind::kDeadLettered);
  EXPECT_TRUE(r.outcomes[0].dead_letters.empty());
  EXPECT_NE(r.outcomes[0].error.find("asked to fail on bad"), std::string::npos);
  EXPECT_EQ(r.counts.failure_records_not_repeated, 1u);
  // A record that is no failure record is handled as always.
  EXPECT_EQ(r.outcomes[1].kind, Kind::kPass);
  BatchResult fresh = run(p, {message("bad")}, "dlq.etl.orders");
  ASSERT_EQ(fresh.outcomes[0].dead_letters.size(), 1u);
  EXPECT_EQ(fresh.error_records.size(), 1u);
}

// Forwarding failure records with a stream pipeline is a use of its own: it works as long as the
// module succeeds, and what it makes of them stays marked whatever the module kept.
TEST_F(ExecutorTest, AStreamPipelineForwardsFailureRecordsAndKeepsThemMarked) {
  auto p = compile(pipeline(
      "forward",
      {stage(0, {use("etl_tagger", R"({"remove_header":"etl.failure_record","copies":2})")})},
      R"("mode":"stream","source_topic":"etl-errors","destination_topic":"alerts")"));
  Message record = message("an error record");
  record.set_header(std::string(kFailureRecordHeader), "error_record");
  BatchResult r = run(p, {record}, "etl-errors");
  ASSERT_EQ(r.outcomes[0].kind, Kind::kPass);
  ASSERT_EQ(r.outcomes[0].outputs.size(), 2u);
  for (const auto& out : r.outcomes[0].outputs) {
    EXPECT_EQ(out.message.value, "an error record");
    EXPECT_EQ(header(out.message, kFailureRecordHeader), "error_record");
  }
}

// A producer may send a failure record back (a replay after the module was fixed): an inline
// pipeline's outcome goes back to that producer, so nothing can go round, and it is handled as
// any message.
TEST_F(ExecutorTest, AnInlinePipelineHandlesAFailureRecordAsAnyMessage) {
  auto p = compile(pipeline("p1", {stage(0, {use("etl_faulty", R"({"error_word":"bad"})")})},
                            R"("error_handling":"SendToDeadLetter")"));
  Message replayed = message("bad");
  replayed.set_header(std::string(kFailureRecordHeader), "dead_letter");
  BatchResult r = run(p, {replayed});
  EXPECT_EQ(r.error_records.size(), 1u);
  ASSERT_EQ(r.outcomes[0].dead_letters.size(), 1u);
  EXPECT_EQ(r.counts.failure_records_not_repeated, 0u);
}

// --- Timeouts ------------------------------------------------------------------------------------

TEST_F(ExecutorTest, EndsAModuleAtItsExecutionTimeout) {
  auto p = compile(pipeline(
      "p1", {stage(0, {use("etl_faulty", R"({"loop_word":"spin"})", R"("execution_timeout_ms":50)"),
                       appender("+")})}));
  auto start = Clock::now();
  BatchResult r = run(p, {message("spin")});
  EXPECT_LT(ms_since(start), 10000);  // safety margin only
  EXPECT_EQ(stored(r).value, "spin+");
  auto records = error_records(r);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_NE(error_text(records[0].at("error")).find("timed out"), std::string::npos);
}

TEST_F(ExecutorTest, EndsAStageAtItsStageTimeout) {
  // The loop may run 20 s by its own limit; the stage allows 100 ms for all its modules, so the
  // counter after it finds no time left. The next stage has a budget of its own.
  auto p = compile(pipeline(
      "p1", {stage(0,
                   {use("etl_faulty", R"({"loop_word":"spin"})", R"("execution_timeout_ms":20000)"),
                    use("etl_counter")},
                   R"("stage_timeout_ms":100)"),
             stage(1, {appender("+")})}));
  auto start = Clock::now();
  BatchResult r = run(p, {message("spin")});
  EXPECT_LT(ms_since(start), 10000);  // safety margin only
  Message out = stored(r);
  EXPECT_EQ(out.value, "spin+");
  EXPECT_EQ(header(out, "counter"), "<absent>");
  auto records = error_records(r);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].at("module_id"), "etl_faulty");
  EXPECT_EQ(records[1].at("module_id"), "etl_counter");
  EXPECT_NE(error_text(records[1].at("error")).find("stage_timeout_ms"), std::string::npos);
}

TEST_F(ExecutorTest, EndsAPipelineAtItsGlobalTimeout) {
  auto p = compile(pipeline(
      "p1",
      {stage(0, {use("etl_faulty", R"({"loop_word":"spin"})", R"("execution_timeout_ms":20000)")}),
       stage(1, {appender("+")})},
      R"("global_timeout_ms":100)"));
  auto start = Clock::now();
  BatchResult r = run(p, {message("spin")});
  EXPECT_LT(ms_since(start), 10000);  // safety margin only
  EXPECT_EQ(stored(r).value, "spin");
  auto records = error_records(r);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_NE(error_text(records[1].at("error")).find("global_timeout_ms"), std::string::npos);
}

TEST_F(ExecutorTest, UsesThePipelinesConfigurationTimeoutAsTheModuleDefault) {
  auto p = compile(pipeline("p1", {stage(0, {use("etl_faulty", R"({"loop_word":"spin"})")})},
                            R"("configuration":{"timeout_ms":50})"));
  auto start = Clock::now();
  BatchResult r = run(p, {message("spin")});
  EXPECT_LT(ms_since(start), 4000);  // the [etl] default would be 5000 ms
  EXPECT_EQ(r.counts.module_failures, 1u);
}

// --- Circuit breaker -------------------------------------------------------------------------

// The breaker's mechanics, with the module's own error results counted as failures
// (count_module_errors), which lets a test choose which message fails.
class ExecutorBreakerTest : public ExecutorTest {
 protected:
  std::shared_ptr<const CompiledPipeline> breaker_pipeline(uint32_t threshold, uint64_t open_ms) {
    return compile(pipeline("p1", {stage(0, {use("etl_faulty", R"({"error_word":"bad"})")})},
                            R"("circuit_breaker":{"count_module_errors":true,"failure_threshold":)" +
                                std::to_string(threshold) + R"(,"open_ms":)" +
                                std::to_string(open_ms) + "}"));
  }
};

// By default a module's own error result is the message's failure, not the module's: however
// many malformed messages come, the breaker stays closed and good messages are processed.
TEST_F(ExecutorBreakerTest, ModuleErrorResultsDoNotOpenTheBreakerByDefault) {
  auto p = compile(pipeline("p1", {stage(0, {use("etl_faulty", R"({"error_word":"bad"})")})},
                            R"("error_handling":"SendToDeadLetter",)"
                            R"("circuit_breaker":{"failure_threshold":2,"open_ms":60000})"));
  BatchResult bad = run(p, {message("bad"), message("bad"), message("bad"), message("bad")});
  EXPECT_EQ(bad.counts.module_failures, 4u);
  for (const auto& o : bad.outcomes) EXPECT_EQ(o.kind, Kind::kDeadLettered);
  BatchResult good = run(p, {message("good")});
  EXPECT_EQ(good.counts.breaker_rejections, 0u);
  EXPECT_EQ(good.counts.calls, 1u);
  ASSERT_EQ(good.outcomes[0].kind, Kind::kPass);
  EXPECT_NE(header(stored(good), "faulty.calls"), "<absent>");
}

// Traps are the module's failure whatever count_module_errors says.
TEST_F(ExecutorBreakerTest, TrapsOpenTheBreakerByDefault) {
  auto p = compile(pipeline("p1", {stage(0, {use("etl_faulty", R"({"trap_word":"boom"})")})},
                            R"("error_handling":"SendToDeadLetter",)"
                            R"("circuit_breaker":{"failure_threshold":2,"open_ms":60000})"));
  run(p, {message("boom")});
  run(p, {message("boom")});
  BatchResult r = run(p, {message("good")});
  EXPECT_EQ(r.counts.calls, 0u);
  EXPECT_EQ(r.counts.breaker_rejections, 1u);
  ASSERT_EQ(r.outcomes[0].kind, Kind::kDeadLettered);
  EXPECT_NE(r.outcomes[0].error.find("circuit breaker open"), std::string::npos);
}

// An error result in the half-open trial is a healthy call: it closes the breaker.
TEST_F(ExecutorBreakerTest, AModuleErrorInTheTrialClosesTheBreaker) {
  auto p = compile(pipeline(
      "p1", {stage(0, {use("etl_faulty", R"({"trap_word":"boom","error_word":"bad"})")})},
      R"("circuit_breaker":{"failure_threshold":1,"open_ms":100})"));
  run(p, {message("boom")});
  EXPECT_EQ(run(p, {message("good")}).counts.breaker_rejections, 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  BatchResult trial = run(p, {message("bad")});
  EXPECT_EQ(trial.counts.calls, 1u);
  BatchResult closed = run(p, {message("good"), message("good")});
  EXPECT_EQ(closed.counts.breaker_rejections, 0u);
}

TEST_F(ExecutorBreakerTest, OpensAfterFailureThresholdConsecutiveFailures) {
  auto p = breaker_pipeline(3, 60000);
  BatchResult first = run(p, {message("bad"), message("bad")});
  EXPECT_EQ(first.counts.module_failures, 2u);
  EXPECT_EQ(first.counts.breaker_rejections, 0u);
  BatchResult second = run(p, {message("bad")});
  EXPECT_EQ(second.counts.calls, 1u);
  EXPECT_EQ(second.counts.breaker_rejections, 0u);
  // The third consecutive failure opened it: good messages are not called any more.
  BatchResult open = run(p, {message("good"), message("good")});
  EXPECT_EQ(open.counts.calls, 0u);
  EXPECT_EQ(open.counts.breaker_rejections, 2u);
  EXPECT_EQ(open.counts.module_failures, 2u);
  EXPECT_EQ(header(stored(open, 0), "faulty.calls"), "<absent>");  // SkipModule: as it was
  auto records = error_records(open);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_NE(error_text(records[0].at("error")).find("circuit breaker open"), std::string::npos);
}

TEST_F(ExecutorBreakerTest, ASuccessResetsTheConsecutiveFailureCount) {
  auto p = breaker_pipeline(2, 60000);
  run(p, {message("bad")});
  run(p, {message("good")});
  run(p, {message("bad")});
  BatchResult r = run(p, {message("good")});
  EXPECT_EQ(r.counts.breaker_rejections, 0u);
  EXPECT_NE(header(stored(r), "faulty.calls"), "<absent>");
}

TEST_F(ExecutorBreakerTest, AnOpenBreakerCountsAsAFailureForTheErrorStrategy) {
  auto p = compile(pipeline("p1", {stage(0, {use("etl_faulty", R"({"error_word":"bad"})")})},
                            R"("error_handling":"SendToDeadLetter",)"
                            R"("circuit_breaker":{"count_module_errors":true,)"
                            R"("failure_threshold":1,"open_ms":60000})"));
  run(p, {message("bad")});
  BatchResult r = run(p, {message("good")});
  ASSERT_EQ(r.outcomes[0].kind, Kind::kDeadLettered);
  EXPECT_NE(r.outcomes[0].error.find("circuit breaker open"), std::string::npos);
  EXPECT_EQ(r.counts.calls, 0u);
}

TEST_F(ExecutorBreakerTest, ClosesAfterOpenMsOnASuccessfulTrialCall) {
  auto p = breaker_pipeline(1, 100);
  run(p, {message("bad")});
  EXPECT_EQ(run(p, {message("good")}).counts.breaker_rejections, 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  BatchResult trial = run(p, {message("good"), message("good"), message("good")});
  EXPECT_EQ(trial.counts.breaker_rejections, 0u);
  EXPECT_EQ(trial.counts.module_failures, 0u);
  // The trial is one message alone; closed again, the other two go in one batch call.
  EXPECT_EQ(trial.counts.calls, 2u);
  BatchResult closed = run(p, {message("good"), message("good")});
  EXPECT_EQ(closed.counts.calls, 1u);
  EXPECT_EQ(closed.counts.breaker_rejections, 0u);
}

TEST_F(ExecutorBreakerTest, ReopensOnAFailedTrialCall) {
  auto p = breaker_pipeline(5, 100);
  run(p, {message("bad"), message("bad"), message("bad"), message("bad"), message("bad")});
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  BatchResult trial = run(p, {message("bad"), message("good")});
  // The failed trial reopened it at once (not after `failure_threshold` more failures).
  EXPECT_EQ(trial.counts.calls, 1u);
  EXPECT_EQ(trial.counts.breaker_rejections, 1u);
  EXPECT_EQ(run(p, {message("good")}).counts.breaker_rejections, 1u);
}

TEST_F(ExecutorBreakerTest, StaysOpenWhenALaterMessageOfTheSameBatchSucceeds) {
  auto p = breaker_pipeline(2, 60000);
  // One batch call: the second failure opens the breaker; the success after it was called
  // before the breaker opened and is no trial, so it does not close it.
  BatchResult batch = run(p, {message("bad"), message("bad"), message("good")});
  EXPECT_EQ(batch.counts.calls, 1u);
  BatchResult r = run(p, {message("good")});
  EXPECT_EQ(r.counts.calls, 0u);
  EXPECT_EQ(r.counts.breaker_rejections, 1u);
}

TEST_F(ExecutorBreakerTest, ANewVersionOfAFollowedModuleIsNotRefusedByTheOldVersionsBreaker) {
  auto p = breaker_pipeline(1, 60000);
  run(p, {message("bad")});
  ASSERT_EQ(run(p, {message("good")}).counts.breaker_rejections, 1u);
  // The fix is uploaded: new calls go to it, whatever the breaker of the old version says.
  ASSERT_TRUE(registry_->add("etl_faulty", "1.0.1", testing::read_module("etl_counter")).is_ok());
  BatchResult r = run(p, {message("good")});
  EXPECT_EQ(r.counts.breaker_rejections, 0u);
  EXPECT_EQ(r.counts.calls, 1u);
  EXPECT_EQ(header(stored(r), "counter"), "1");
}

// --- Result caching ----------------------------------------------------------------------------

// A result is kept the second time its input is seen and served from the third on
// (result_cache.h, "Admission").
TEST_F(ExecutorTest, ServesAThirdIdenticalInputFromTheCache) {
  auto p = compile(pipeline(
      "p1",
      {stage(0, {use("etl_counter", "null", R"("enable_caching":true,"cache_ttl_seconds":60)")})}));
  BatchResult first = run(p, {message("a")});
  EXPECT_EQ(header(stored(first), "counter"), "1");
  EXPECT_EQ(first.counts.cache_hits, 0u);
  BatchResult second = run(p, {message("a")});
  EXPECT_EQ(header(stored(second), "counter"), "2");
  EXPECT_EQ(second.counts.cache_hits, 0u);
  BatchResult third = run(p, {message("a")});
  EXPECT_EQ(header(stored(third), "counter"), "2");
  EXPECT_EQ(third.counts.calls, 0u);
  EXPECT_EQ(third.counts.cache_hits, 1u);
  BatchResult other = run(p, {message("b")});
  EXPECT_EQ(header(stored(other), "counter"), "3");
  EXPECT_EQ(other.counts.calls, 1u);
  EXPECT_EQ(other.counts.cache_hits, 0u);
  // Any byte of the input counts: another header is another input.
  BatchResult headers = run(p, {message("a", {{"x", "y"}})});
  EXPECT_EQ(headers.counts.cache_hits, 0u);
}

// The broker stamps every produced message: the same message produced again has another
// timestamp and is still served from the cache, with its own timestamp.
TEST_F(ExecutorTest, ServesARepeatedMessageWithAnotherTimestampFromTheCache) {
  auto p = compile(pipeline(
      "p1",
      {stage(0, {use("etl_counter", "null", R"("enable_caching":true,"cache_ttl_seconds":60)")})}));
  run(p, {message("a")});
  Message again = message("a");
  again.timestamp = 2000;
  run(p, {again});
  again.timestamp = 3000;
  BatchResult third = run(p, {again});
  EXPECT_EQ(third.counts.cache_hits, 1u);
  EXPECT_EQ(third.counts.calls, 0u);
  EXPECT_EQ(header(stored(third), "counter"), "2");
  EXPECT_EQ(stored(third).timestamp, 3000);
}

TEST_F(ExecutorTest, DoesNotCacheWithoutEnableCaching) {
  auto p = compile(pipeline("p1", {stage(0, {use("etl_counter")})}));
  for (int i = 1; i <= 3; ++i) {
    BatchResult r = run(p, {message("a")});
    EXPECT_EQ(header(stored(r), "counter"), std::to_string(i));
    EXPECT_EQ(r.counts.cache_hits, 0u);
    EXPECT_EQ(r.counts.calls, 1u);
  }
}

TEST_F(ExecutorTest, ExpiresCachedResultsAfterTheTtl) {
  auto p = compile(pipeline(
      "p1",
      {stage(0, {use("etl_counter", "null", R"("enable_caching":true,"cache_ttl_seconds":1)")})}));
  run(p, {message("a")});
  run(p, {message("a")});
  EXPECT_EQ(run(p, {message("a")}).counts.cache_hits, 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  BatchResult expired = run(p, {message("a")});
  EXPECT_EQ(expired.counts.cache_hits, 0u);
  EXPECT_EQ(header(stored(expired), "counter"), "3");
}

TEST_F(ExecutorTest, DoesNotServeACachedResultOfTheSameModuleConfiguredDifferently) {
  // Both run on the same stage input; each must produce its own header, from the cache too.
  auto p = compile(pipeline(
      "p1", {stage(0,
                   {use("etl_tagger", R"({"header":"first"})", R"("enable_caching":true)"),
                    use("etl_tagger", R"({"header":"second"})", R"("enable_caching":true)")},
                   R"("parallel_execution":true)")}));
  for (int i = 0; i < 3; ++i) {
    BatchResult r = run(p, {message("m")});
    Message out = stored(r);
    EXPECT_EQ(header(out, "first"), "1");
    EXPECT_EQ(header(out, "second"), "1");
    EXPECT_EQ(r.counts.cache_hits, i == 2 ? 2u : 0u);
  }
}

TEST_F(ExecutorTest, DoesNotServeCachedResultsOfAModuleDeletedAndUploadedAgain) {
  auto p = compile(
      pipeline("p1", {stage(0, {use("etl_counter-v1.0.0", "null", R"("enable_caching":true)")})}));
  EXPECT_EQ(header(stored(run(p, {message("m")})), "counter"), "1");
  EXPECT_EQ(header(stored(run(p, {message("m")})), "counter"), "2");  // kept now
  ASSERT_TRUE(registry_->remove("etl_counter-v1.0.0").is_ok());
  // The same id, another binary: the tagger, which without configuration changes nothing.
  ASSERT_TRUE(registry_->add("etl_counter", "1.0.0", testing::read_module("etl_tagger")).is_ok());
  BatchResult r = run(p, {message("m")});
  EXPECT_EQ(r.counts.cache_hits, 0u);
  EXPECT_EQ(stored(r), message("m"));
}

}  // namespace
}  // namespace wasmq::etl
