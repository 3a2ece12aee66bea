// Modules that try to make the host allocate without bound: each test reproduces one attack,
// scaled down, and checks that the host stays within the documented bound and fails cleanly.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <string>

#include "module_files.h"
#include "sandbox_fixture.h"
#include "wasm/sandbox.h"
#include "wasm/wasi.h"

namespace wasmq::wasm {
namespace {

using testing::read_module;

// The process's resident set, and its peak since reset_peak_rss(), in bytes (Linux).
uint64_t status_bytes(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) return std::stoull(line.substr(std::strlen(field))) * 1024;
  }
  return 0;
}
uint64_t rss_bytes() { return status_bytes("VmRSS:"); }
uint64_t peak_rss_bytes() { return status_bytes("VmHWM:"); }
void reset_peak_rss() { std::ofstream("/proc/self/clear_refs") << "5"; }

class HostileModuleTest : public SandboxFixture {};

// C1: one fd_write whose 100 iovecs each cover the whole 4 MiB memory describes 400 MiB. The
// host forwards at most kMaxWriteBytesPerCall of it, counts the rest as dropped, and reports it
// all as written (the module traps otherwise); the process's memory does not grow with the sum.
TEST_F(HostileModuleTest, FdWriteHoldsNoMoreThanItsBoundPerCall) {
  auto module = load("fd_write_amplifier");
  ASSERT_TRUE(module);
  constexpr uint64_t kDescribed = 100ull * 4 * 1024 * 1024;
  reset_peak_rss();
  const uint64_t before = rss_bytes();
  const Message sent = message();
  auto result = sandbox_->process(module, sent);
  const uint64_t peak = peak_rss_bytes();
  ASSERT_TRUE(result.is_ok()) << result.status().message();
  RecordProperty("peak_rss_growth_bytes", std::to_string(peak - before));
  EXPECT_EQ(result->transformed_messages.at(0), sent);
  EXPECT_GE(sandbox_->stats().output_bytes_dropped, kDescribed - kMaxWriteBytesPerCall);
  EXPECT_LE(sandbox_->stats().output_bytes_dropped, kDescribed);
  // The module's own memory (4 MiB) and the engine's working set, not the 400 MiB described.
  EXPECT_LT(peak - before, 32ull * 1024 * 1024) << "peak RSS grew by " << (peak - before);
  expect_sandbox_healthy();
}

// C2: two tables of 10,000,000 elements would take gigabytes of the isolate's JavaScript heap per
// instance (V8 aborts the process at its heap limit): refused before compilation.
TEST_F(HostileModuleTest, HugeTablesAreRefusedAtLoad) {
  auto module = sandbox_->load("huge_tables", read_module("huge_tables"), {});
  ASSERT_FALSE(module.is_ok());
  EXPECT_EQ(module.status().code(), StatusCode::kInvalidModule);
  EXPECT_EQ(module.status().message(),
            "tables: 20000000 elements at their initial size, more than the bound of 100000");
}

// C2: a table within the bound grown by table.grow in a loop stops at the rewritten maximum
// (table.grow returns -1 there); the module traps if it got past 100,000 elements.
TEST_F(HostileModuleTest, TableGrowStopsAtTheBound) {
  auto module = load("table_grower");
  ASSERT_TRUE(module);
  ASSERT_EQ(module->info().tables.size(), 1u);
  EXPECT_EQ(module->info().tables[0].max, ModuleBounds::kTableElements);
  const Message sent = message();
  auto result = sandbox_->process(module, sent);
  ASSERT_TRUE(result.is_ok()) << result.status().message();
  EXPECT_EQ(result->transformed_messages.at(0), sent);
}

// C2: the tables' bytes count in the instance's memory, so in the pool's max_memory_bytes.
TEST_F(HostileModuleTest, TableBytesCountInTheInstanceMemory) {
  auto module = load("large_table");
  ASSERT_TRUE(module);
  ASSERT_TRUE(sandbox_->warm_up(module, 1).is_ok());
  const uint64_t table_bytes = ModuleBounds::kTableElements * InstanceCost::kTableElementBytes;
  EXPECT_GE(module->info().instance_bytes(), table_bytes);
  EXPECT_EQ(sandbox_->pool_figures()->memory_bytes(),
            module->info().instance_bytes() + kWasmPageSize);
}

// C2: when the isolate's JavaScript heap runs out (here: a small heap and many instances of a
// module with a 100,000-element table), the call in progress fails with an error naming the
// heap limit instead of V8 aborting the process, and the sandbox recovers.
TEST_F(HostileModuleTest, HeapLimitFailsTheCallInsteadOfTheProcess) {
  PoolOptions options;
  options.defaults.max_pool_size = 1000;
  auto small = Sandbox::create(options, 64ull << 20);
  ASSERT_TRUE(small.is_ok()) << small.status().message();
  sandbox_ = std::move(*small);
  auto module = load("large_table");
  ASSERT_TRUE(module);
  Status s = sandbox_->warm_up(module, 1000);
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.code(), StatusCode::kLimitExceeded);
  EXPECT_NE(s.message().find("the engine's heap limit of "), std::string::npos) << s.message();
  EXPECT_GE(sandbox_->stats().heap_limit_reached, 1u);
  // Every idle instance was dropped to make room again.
  EXPECT_EQ(sandbox_->idle_instances(*module), 0u);
  expect_sandbox_healthy();
  expect_sandbox_healthy();
}

// L10: a module with an exception-handling tag passes validation, and V8 runs it: the throw is
// caught inside process_message.
TEST_F(HostileModuleTest, ExceptionHandlingModuleRuns) {
  auto module = load("exception_handling");
  ASSERT_TRUE(module);
  EXPECT_TRUE(module->info().has_tags);
  for (int i = 0; i < 3; ++i) {
    const Message in = message(std::string(i * 10, 'x'));
    auto result = sandbox_->process(module, in);
    ASSERT_TRUE(result.is_ok()) << result.status().message();
    EXPECT_EQ(result->transformed_messages.at(0), in);
  }
}

}  // namespace
}  // namespace wasmq::wasm
