// Compiled configurations (plan.h): the order pipelines apply in, which of them take part in
// plans, and the per-topic plan computed once and cached.
#include "etl/plan.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>
#include <vector>

namespace wasmq::etl {
namespace {

std::shared_ptr<const CompiledPipeline> compile(const std::string& text) {
  PipelineSpec spec;
  Status error = parse_pipeline(boost::json::parse(text), "generated", &spec);
  EXPECT_TRUE(error.is_ok()) << error.message();
  auto compiled = compile_pipeline(std::move(spec));
  EXPECT_TRUE(compiled.is_ok()) << compiled.status().message();
  return compiled.is_ok() ? *compiled : nullptr;
}

// A pipeline of one stage with module "m" filtered to topics with `prefix`, plus `more` members.
std::string pipeline(const std::string& id, const std::string& prefix,
                     const std::string& more = "") {
  return R"({"pipeline_id":")" + id +
         R"(","stages":[{"priority":0,"modules":[{"module_id":"m","topic_filters":)"
         R"([{"filter_type":"Prefix","pattern":")" +
         prefix + R"("}]}]}])" + (more.empty() ? "" : "," + more) + "}";
}

std::vector<std::string> ids(const TopicPlan& plan) {
  std::vector<std::string> out;
  for (const auto& p : plan.pipelines) out.push_back(p.pipeline->spec.pipeline_id);
  return out;
}

TEST(Configuration, PlansOnlyEnabledInlinePipelinesWhoseModulesMatchInApplicationOrder) {
  Configuration config(
      {compile(pipeline("b", "ord")), compile(pipeline("late", "ord", R"("priority":2)")),
       compile(pipeline("a", "ord")), compile(pipeline("payments", "pay")),
       compile(pipeline("off", "ord", R"("enabled":false)")),
       compile(
           R"({"pipeline_id":"stream","mode":"stream","source_topic":"orders",)"
           R"("destination_topic":"out","stages":[{"priority":0,"modules":[{"module_id":"m"}]}]})"),
       compile(pipeline("early", "ord", R"("priority":-1)"))});
  EXPECT_EQ(ids(*config.plan_for("orders")), (std::vector<std::string>{"early", "a", "b", "late"}));
  EXPECT_EQ(ids(*config.plan_for("payments")), (std::vector<std::string>{"payments"}));
  EXPECT_TRUE(config.plan_for("other")->empty());
  EXPECT_NE(config.find("off"), nullptr) << "kept for lookups";
}

TEST(Configuration, ComputesThePlanOfATopicOnce) {
  Configuration config({compile(pipeline("a", "ord"))});
  auto first = config.plan_for("orders");
  EXPECT_EQ(first, config.plan_for("orders"));
  EXPECT_NE(first, config.plan_for("orders2"));
}

TEST(Configuration, PlanOfKeepsOnlyTheModulesWhoseTopicFiltersMatch) {
  auto p = compile(
      R"({"pipeline_id":"p","stages":[)"
      R"({"priority":1,"modules":[{"module_id":"x","topic_filters":[{"filter_type":"Exact","pattern":"other"}]}]},)"
      R"({"priority":0,"modules":[{"module_id":"y"},{"module_id":"z","topic_filters":)"
      R"([{"filter_type":"Exact","pattern":"orders","negate":true}]}]}]})");
  TopicPlan plan = Configuration::plan_of(*p, "orders");
  ASSERT_EQ(plan.pipelines.size(), 1u);
  ASSERT_EQ(plan.pipelines[0].stages.size(), 1u) << "a stage with no matching module is left out";
  ASSERT_EQ(plan.pipelines[0].stages[0].modules.size(), 1u);
  EXPECT_EQ(plan.pipelines[0].stages[0].modules[0]->spec->module_id, "y");
  TopicPlan other = Configuration::plan_of(*p, "other");
  ASSERT_EQ(other.pipelines.size(), 1u);
  ASSERT_EQ(other.pipelines[0].stages.size(), 2u);
  EXPECT_EQ(other.pipelines[0].stages[0].stage->spec->priority, 0u);
  EXPECT_EQ(other.pipelines[0].stages[0].modules.size(), 2u);
  EXPECT_EQ(other.pipelines[0].stages[1].stage->spec->priority, 1u);
}

// A stream pipeline `id` from `source` to `destination`, plus `more` members.
std::shared_ptr<const CompiledPipeline> stream(const std::string& id, const std::string& source,
                                               const std::string& destination,
                                               const std::string& more = "") {
  return compile(R"({"pipeline_id":")" + id + R"(","mode":"stream","source_topic":")" + source +
                 R"(","destination_topic":")" + destination +
                 R"(","stages":[{"priority":0,"modules":[{"module_id":"m"}]}])" +
                 (more.empty() ? "" : "," + more) + "}");
}

// M9: s-a (sa -> sb) and s-b (sb -> sa) sent one message round for ever.
TEST(StreamCycles, FindsATwoPipelineCycleAndNamesIt) {
  EXPECT_EQ(find_stream_cycle({stream("s-b", "sb", "sa"), stream("s-a", "sa", "sb")}),
            "s-a: sa \u2192 sb \u2192 sa");
}

TEST(StreamCycles, FindsLongerCyclesStartingAtTheSmallestId) {
  auto cycle = find_stream_cycle({stream("p1", "t1", "t2"), stream("p2", "t2", "t3"),
                                  stream("p0", "t3", "t1"), stream("side", "t2", "elsewhere")});
  EXPECT_EQ(cycle, "p0: t3 \u2192 t1 \u2192 t2 \u2192 t3");
}

TEST(StreamCycles, NamesThePipelinesOnTheCycle) {
  auto cycle = find_stream_cycle_of({stream("p1", "t1", "t2"), stream("p2", "t2", "t3"),
                                     stream("p0", "t3", "t1"), stream("side", "t2", "elsewhere")});
  ASSERT_TRUE(cycle);
  EXPECT_EQ(cycle->pipeline_ids, (std::vector<std::string>{"p0", "p1", "p2"}));
  EXPECT_EQ(cycle->description, "p0: t3 \u2192 t1 \u2192 t2 \u2192 t3");
}

TEST(StreamCycles, AChainOrAFanOutIsNoCycle) {
  EXPECT_EQ(find_stream_cycle({stream("a", "t1", "t2"), stream("b", "t2", "t3"),
                               stream("c", "t1", "t3"), stream("d", "t3", "t4")}),
            std::nullopt);
  EXPECT_EQ(find_stream_cycle({}), std::nullopt);
}

TEST(StreamCycles, DisabledAndInlinePipelinesTakeNoPart) {
  EXPECT_EQ(
      find_stream_cycle({stream("a", "sa", "sb"), stream("b", "sb", "sa", R"("enabled":false)"),
                         compile(pipeline("inline", "s"))}),
      std::nullopt);
}

TEST(StreamCycles, RoutedOutputsAllowedByGlobsAreEdges) {
  // b routes its outputs to topics matching "s*": sa among them.
  auto cycle = find_stream_cycle(
      {stream("a", "sa", "sb"), stream("b", "sb", "out", R"("allowed_output_topics":["s*"])")});
  EXPECT_EQ(cycle, "a: sa \u2192 sb \u2192 sa");
  // Routing to its own source goes to its destination instead: no edge back to itself.
  EXPECT_EQ(find_stream_cycle({stream("b", "sb", "out", R"("allowed_output_topics":["s*"])")}),
            std::nullopt);
}

}  // namespace
}  // namespace wasmq::etl
