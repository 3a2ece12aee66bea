// What an instance really costs the host, measured on a real Sandbox, against what the pool
// counts for it (its memory_bytes): many instances of a generated module are created, and the
// growth of the isolate's JavaScript heap and of the process's resident set is divided by their
// number. The accounting must never count less than that.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "sanitizer.h"
#include "wasm/sandbox.h"
#include "wasm_builder.h"

namespace wasmq::wasm {
namespace {

using testing::WasmBuilder;

uint64_t rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

// What `instances` instances of one module cost, each.
struct Cost {
  uint64_t heap = 0;     // growth of the JavaScript heap, per instance
  uint64_t rss = 0;      // growth of the resident set, per instance
  uint64_t counted = 0;  // the pool's memory_bytes, per instance
};

class InstanceCostTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_TRUE(initialize_engine().is_ok()); }
  void SetUp() override {
    if (testing::kUnderAddressSanitizer) GTEST_SKIP() << testing::kMemoryFiguresDistorted;
  }

  static Cost measure(const std::vector<uint8_t>& binary, uint32_t instances) {
    PoolOptions options;
    options.defaults.max_pool_size = instances + 1;
    auto sandbox = Sandbox::create(options);
    EXPECT_TRUE(sandbox.is_ok());
    if (!sandbox.is_ok()) return {};
    auto module = (*sandbox)->load("cost", binary, {});
    EXPECT_TRUE(module.is_ok()) << module.status().message();
    if (!module.is_ok()) return {};
    // The first instance makes the module object and the code's per-isolate parts.
    EXPECT_TRUE((*sandbox)->warm_up(*module, 1).is_ok());
    const uint64_t heap_before = (*sandbox)->heap_used_bytes();
    const uint64_t rss_before = rss_bytes();
    const uint64_t counted_before = (*sandbox)->pool_figures()->memory_bytes();
    Status s = (*sandbox)->warm_up(*module, instances + 1);
    EXPECT_TRUE(s.is_ok()) << s.message();
    EXPECT_EQ((*sandbox)->idle_instances(**module), instances + 1);
    const uint64_t heap_after = (*sandbox)->heap_used_bytes();
    const uint64_t rss_after = rss_bytes();
    const uint64_t counted_after = (*sandbox)->pool_figures()->memory_bytes();
    auto per = [&](uint64_t before, uint64_t after) {
      return after > before ? (after - before) / instances : 0;
    };
    return {per(heap_before, heap_after), per(rss_before, rss_after),
            per(counted_before, counted_after)};
  }
};

// Each module below stresses one thing an instance costs, at the scale of its bound (the ABI's
// 4 exports included). The pool counts at least what the heap and the resident set grew by.
void expect_counted_at_least_the_cost(const char* what, const Cost& cost) {
  std::printf("%-44s heap %9llu  rss %9llu  counted %9llu bytes per instance\n", what,
              static_cast<unsigned long long>(cost.heap), static_cast<unsigned long long>(cost.rss),
              static_cast<unsigned long long>(cost.counted));
  EXPECT_GE(cost.counted, cost.heap) << what;
  EXPECT_GE(cost.counted, cost.rss) << what;
}

TEST_F(InstanceCostTest, TheAbiModuleCountsAtLeastWhatItCosts) {
  expect_counted_at_least_the_cost("ABI module", measure(WasmBuilder::abi_module().build(), 100));
}

TEST_F(InstanceCostTest, AnEmptyTableCountsAtLeastWhatItCosts) {
  auto b = WasmBuilder::abi_module();
  b.table(ModuleBounds::kTableElements, ModuleBounds::kTableElements);
  expect_counted_at_least_the_cost("one empty table of 100,000", measure(b.build(), 20));
}

// The re-check of C2: 100 tables of 1,000 elements filled by element segments cost more than
// 32 bytes an element.
TEST_F(InstanceCostTest, FilledTablesCountAtLeastWhatTheyCost) {
  auto b = WasmBuilder::abi_module();
  b.functions(997);  // references to 1,000 distinct functions
  for (int i = 0; i < 100; ++i) b.table(1000, 1000);
  b.fill_tables();
  expect_counted_at_least_the_cost("100 tables of 1,000, filled", measure(b.build(), 20));
}

TEST_F(InstanceCostTest, ATableFilledWithDistinctFunctionsCountsAtLeastWhatItCosts) {
  auto b = WasmBuilder::abi_module();
  b.functions(ModuleBounds::kFunctions - 3);
  b.table(ModuleBounds::kTableElements);
  b.fill_tables();
  expect_counted_at_least_the_cost("100,000 elements, 100,000 functions", measure(b.build(), 20));
}

// The re-check of C2: exports were not counted at all.
TEST_F(InstanceCostTest, ExportedFunctionsCountAtLeastWhatTheyCost) {
  auto b = WasmBuilder::abi_module();
  b.exported_functions(ModuleBounds::kExports - 4);
  expect_counted_at_least_the_cost("9,996 exported functions", measure(b.build(), 20));
}

TEST_F(InstanceCostTest, ExportedGlobalsCountAtLeastWhatTheyCost) {
  auto b = WasmBuilder::abi_module();
  b.exported_globals(ModuleBounds::kExports - 4);
  expect_counted_at_least_the_cost("9,996 exported globals", measure(b.build(), 20));
}

TEST_F(InstanceCostTest, TagsCountAtLeastWhatTheyCost) {
  auto b = WasmBuilder::abi_module();
  b.tags(ModuleBounds::kTags);
  expect_counted_at_least_the_cost("10,000 tags", measure(b.build(), 20));
}

// The re-check of C2: a warm-up of a table-heavy module stopped at the pool's budget as counted,
// while the heap grew 1.6 times as much. Now the heap grows by no more than the budget.
TEST_F(InstanceCostTest, AWarmUpOfATableHeavyModuleKeepsTheHeapWithinTheBudget) {
  PoolOptions options;
  options.defaults.max_pool_size = 1000;
  options.max_memory_bytes = 64ull << 20;
  auto sandbox = Sandbox::create(options);
  ASSERT_TRUE(sandbox.is_ok()) << sandbox.status().message();
  auto b = WasmBuilder::abi_module();
  b.functions(997);
  for (int i = 0; i < 100; ++i) b.table(1000, 1000);
  b.fill_tables();
  auto module = (*sandbox)->load("tables", b.build(), {});
  ASSERT_TRUE(module.is_ok()) << module.status().message();
  const uint64_t heap_before = (*sandbox)->heap_used_bytes();
  const uint64_t rss_before = rss_bytes();
  uint64_t created = 0;
  ASSERT_TRUE((*sandbox)->warm_up(*module, 1000, &created).is_ok());
  const uint64_t heap_growth = (*sandbox)->heap_used_bytes() - heap_before;
  const uint64_t rss_after = rss_bytes();
  const uint64_t rss_growth = rss_after > rss_before ? rss_after - rss_before : 0;
  std::printf("warm-up: %llu instances, heap +%llu, rss +%llu, counted %llu bytes\n",
              static_cast<unsigned long long>(created),
              static_cast<unsigned long long>(heap_growth),
              static_cast<unsigned long long>(rss_growth),
              static_cast<unsigned long long>((*sandbox)->pool_figures()->memory_bytes()));
  EXPECT_GT(created, 1u);
  EXPECT_LT(created, 1000u) << "the warm-up stops at the budget";
  EXPECT_LE((*sandbox)->pool_figures()->memory_bytes(), options.max_memory_bytes);
  EXPECT_LE(heap_growth, options.max_memory_bytes);
  EXPECT_LE(rss_growth, options.max_memory_bytes);
}

// The isolate's heap limit follows the pool's budget, so that the heap-limit callback fails a
// call before the heap runs to V8's default (about 1.4 GB, per worker).
TEST_F(InstanceCostTest, TheHeapLimitFollowsThePoolBudget) {
  PoolOptions options;
  options.max_memory_bytes = 64ull << 20;
  auto sandbox = Sandbox::create(options);
  ASSERT_TRUE(sandbox.is_ok()) << sandbox.status().message();
  // V8 adds its young generation's rounding (a few MiB) to what it was given.
  EXPECT_LE((*sandbox)->heap_limit_bytes(),
            (options.max_memory_bytes + kHeapHeadroomBytes) / 100 * 102);
  EXPECT_GE((*sandbox)->heap_limit_bytes(), options.max_memory_bytes + kHeapHeadroomBytes);
  auto unbounded = Sandbox::create();
  ASSERT_TRUE(unbounded.is_ok()) << unbounded.status().message();
  EXPECT_GE((*unbounded)->heap_limit_bytes(), kDefaultHeapLimitBytes);
  std::printf("heap limit: %llu with a budget of 64 MiB, %llu without\n",
              static_cast<unsigned long long>((*sandbox)->heap_limit_bytes()),
              static_cast<unsigned long long>((*unbounded)->heap_limit_bytes()));
}

}  // namespace
}  // namespace wasmq::wasm
