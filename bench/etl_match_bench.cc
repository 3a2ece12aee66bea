// wasmq-bench-etl: nanoseconds per evaluation of the ETL room's per-message matching
// (src/etl/match.h): one topic filter of each type, case-sensitive and not, against a matching
// topic; a HeaderValue rule; PayloadField rules on a ~200-byte JSON payload, alone and as a set
// of five; the cached per-topic plan lookup. Each benchmark also reports `allocs`, heap allocations
// per evaluation (expected: 0). Run: build/bench/wasmq-bench-etl --benchmark_min_time=0.1
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "etl/match.h"
#include "etl/plan.h"

// Counts every heap allocation of the process, to show that evaluation allocates nothing.
namespace {
std::atomic<uint64_t> g_allocations{0};
}  // namespace

// GCC pairs free() with malloc() only and warns once these are inlined; the pairing is ours.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace wasmq::etl {
namespace {

constexpr std::string_view kTopic = "orders.eu-west.v2.created";

// A ~200-byte order, the shape an enrichment pipeline sees.
constexpr std::string_view kPayload =
    R"({"order_id":"ord-20261201-0042","customer":{"id":98231,"tier":"gold","country":"FR"},)"
    R"("items":[{"sku":"A-17","qty":2},{"sku":"B-03","qty":1}],"total":149.90,)"
    R"("currency":"EUR","express":true})";

template <typename T>
T must(Result<T> result) {
  if (!result.is_ok()) {
    std::fprintf(stderr, "compile failed: %s\n", result.status().message().c_str());
    std::exit(1);
  }
  return std::move(result).value();
}

void report_allocations(benchmark::State& state, uint64_t before) {
  state.counters["allocs"] = benchmark::Counter(static_cast<double>(g_allocations.load() - before),
                                                benchmark::Counter::kAvgIterations);
}

void run_filter(benchmark::State& state, FilterType type, std::string pattern,
                bool case_sensitive) {
  TopicFilterSpec spec;
  spec.filter_type = type;
  spec.pattern = std::move(pattern);
  spec.case_sensitive = case_sensitive;
  const TopicMatcher matcher = must(TopicMatcher::compile({spec}));
  const std::string topic(kTopic);
  if (!matcher.matches(topic)) state.SkipWithError("the filter does not match the topic");
  const uint64_t before = g_allocations.load();
  for (auto _ : state) {
    benchmark::DoNotOptimize(matcher.matches(topic));
  }
  report_allocations(state, before);
}

void run_rules(benchmark::State& state, const std::vector<ConditionalRuleSpec>& specs,
               const Message& message) {
  const RuleSet rules = must(RuleSet::compile(specs));
  if (!rules.holds(message, 0)) state.SkipWithError("the rules do not hold");
  rules.holds(message, 0);  // the thread's parser and buffer reach their steady size
  const uint64_t before = g_allocations.load();
  for (auto _ : state) {
    benchmark::DoNotOptimize(rules.holds(message, 0));
  }
  report_allocations(state, before);
}

ConditionalRuleSpec rule(ConditionType type, std::string path, Operator op,
                         boost::json::value value) {
  ConditionalRuleSpec spec;
  spec.condition_type = type;
  spec.field_path = std::move(path);
  spec.op = op;
  spec.value = std::move(value);
  return spec;
}

Message order_message(bool spare_capacity) {
  Message message;
  message.key = "ord-20261201-0042";
  message.value.assign(kPayload);
  if (spare_capacity) message.value.reserve(kPayload.size() + 64);
  message.headers = {{"content-type", "application/json"},
                     {"source", "checkout"},
                     {"region", "eu-west"},
                     {"trace-id", "4bf92f3577b34da6a3ce929d0e0e4736"},
                     {"priority", "7"}};
  message.timestamp = 0;
  return message;
}

#define WASMQ_FILTER_BENCH(name, type, sensitive_pattern, insensitive_pattern) \
  void BM_Filter##name(benchmark::State& state) {                              \
    run_filter(state, type, sensitive_pattern, true);                          \
  }                                                                            \
  BENCHMARK(BM_Filter##name);                                                  \
  void BM_Filter##name##CaseInsensitive(benchmark::State& state) {             \
    run_filter(state, type, insensitive_pattern, false);                       \
  }                                                                            \
  BENCHMARK(BM_Filter##name##CaseInsensitive);

WASMQ_FILTER_BENCH(Exact, FilterType::kExact, "orders.eu-west.v2.created",
                   "Orders.EU-West.V2.Created")
WASMQ_FILTER_BENCH(Prefix, FilterType::kPrefix, "orders.", "ORDERS.")
WASMQ_FILTER_BENCH(Suffix, FilterType::kSuffix, ".created", ".CREATED")
WASMQ_FILTER_BENCH(Contains, FilterType::kContains, "eu-west", "EU-WEST")
WASMQ_FILTER_BENCH(Wildcard, FilterType::kWildcard, "orders.*.v?.created", "ORDERS.*.V?.CREATED")
WASMQ_FILTER_BENCH(Regex, FilterType::kRegex, R"(^orders\.[a-z-]+\.v[0-9]+\.created$)",
                   R"(^ORDERS\.[A-Z-]+\.V[0-9]+\.CREATED$)")

void BM_RuleHeaderValue(benchmark::State& state) {
  run_rules(state, {rule(ConditionType::kHeaderValue, "region", Operator::kEquals, "eu-west")},
            order_message(false));
}
BENCHMARK(BM_RuleHeaderValue);

void BM_RuleHeaderValueNumeric(benchmark::State& state) {
  run_rules(state, {rule(ConditionType::kHeaderValue, "priority", Operator::kGreaterThan, 5)},
            order_message(false));
}
BENCHMARK(BM_RuleHeaderValueNumeric);

void BM_RulePayloadField(benchmark::State& state) {
  run_rules(state,
            {rule(ConditionType::kPayloadField, "$.customer.tier", Operator::kEquals, "gold")},
            order_message(false));
}
BENCHMARK(BM_RulePayloadField);

void BM_RulePayloadFieldInPlace(benchmark::State& state) {
  run_rules(state,
            {rule(ConditionType::kPayloadField, "$.customer.tier", Operator::kEquals, "gold")},
            order_message(true));
}
BENCHMARK(BM_RulePayloadFieldInPlace);

void BM_RuleSetFivePayloadFields(benchmark::State& state) {
  run_rules(state,
            {rule(ConditionType::kPayloadField, "$.customer.tier", Operator::kEquals, "gold"),
             rule(ConditionType::kPayloadField, "$.customer.country", Operator::kEquals, "FR"),
             rule(ConditionType::kPayloadField, "$.items[1].qty", Operator::kGreaterThanOrEqual, 1),
             rule(ConditionType::kPayloadField, "$.total", Operator::kGreaterThan, 100),
             rule(ConditionType::kPayloadField, "$.express", Operator::kEquals, true)},
            order_message(false));
}
BENCHMARK(BM_RuleSetFivePayloadFields);

// The per-topic plan lookup every produce request makes (plan.h): a configuration of twenty
// pipelines, the plan for a topic already cached.
void BM_PlanLookup(benchmark::State& state) {
  std::vector<std::shared_ptr<const CompiledPipeline>> pipelines;
  for (int i = 0; i < 20; ++i) {
    PipelineSpec spec;
    spec.pipeline_id = "pipeline-" + std::to_string(i);
    StageSpec stage;
    ModuleSpec module;
    module.module_id = "module-" + std::to_string(i);
    module.topic_filters.push_back(
        {FilterType::kPrefix, "orders." + std::to_string(i), true, false});
    stage.modules.push_back(module);
    spec.stages.push_back(stage);
    auto compiled = compile_pipeline(spec);
    if (!compiled.is_ok()) {
      state.SkipWithError(compiled.status().message().c_str());
      return;
    }
    pipelines.push_back(*compiled);
  }
  Configuration configuration(std::move(pipelines));
  configuration.plan_for(kTopic);
  const uint64_t before = g_allocations.load();
  for (auto _ : state) benchmark::DoNotOptimize(configuration.plan_for(kTopic));
  report_allocations(state, before);
}
BENCHMARK(BM_PlanLookup);

}  // namespace
}  // namespace wasmq::etl

BENCHMARK_MAIN();
