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
  auto error = parse_pipeline(boost::json::parse(text), "generated", &spec);
  EXPECT_FALSE(error.has_value()) << (error ? error->message : "");
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

}  // namespace
}  // namespace wasmq::etl
