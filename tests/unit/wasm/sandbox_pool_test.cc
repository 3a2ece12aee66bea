// The instance pool inside a Sandbox, with real modules: bounds, warm-up at the first call,
// memory measured from the live memories, idle eviction and LRU across modules, the creation
// rate limit on a module whose calls keep failing. Time is a fake clock where it matters.
#include <gtest/gtest.h>

#include <atomic>

#include "module_files.h"
#include "wasm/sandbox.h"

namespace wasmq::wasm {
namespace {

using std::chrono::seconds;

class FakeClock final : public PoolClock {
 public:
  PoolTime now() override { return PoolTime(std::chrono::nanoseconds(ns_.load())); }
  void sleep_until(PoolTime t) override {
    ++sleeps;
    if (t.time_since_epoch().count() > ns_.load()) ns_.store(t.time_since_epoch().count());
  }
  void advance(std::chrono::nanoseconds d) { ns_ += d.count(); }
  std::atomic<int> sleeps{0};

 private:
  std::atomic<int64_t> ns_{1'000'000'000};
};

class SandboxPoolTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_TRUE(initialize_engine().is_ok()); }

  void make(PoolOptions options) {
    clock_ = std::make_shared<FakeClock>();
    options.clock = clock_;
    auto sandbox = Sandbox::create(std::move(options));
    ASSERT_TRUE(sandbox.is_ok()) << sandbox.status().message();
    sandbox_ = std::move(*sandbox);
  }

  std::shared_ptr<const Module> load(const std::string& name, const std::string& id) {
    auto module = sandbox_->load(id, testing::read_module(name), {});
    EXPECT_TRUE(module.is_ok()) << name << ": " << module.status().message();
    return module.is_ok() ? *module : nullptr;
  }

  PoolModuleStats stats(const std::string& id) {
    for (auto& s : sandbox_->pool_figures()->snapshot()) {
      if (s.module_id == id) return s;
    }
    return PoolModuleStats{};
  }

  static Message message(std::string value = "hello") {
    Message m;
    m.value = std::move(value);
    return m;
  }

  std::shared_ptr<FakeClock> clock_;
  std::unique_ptr<Sandbox> sandbox_;
};

PoolOptions with(PoolSettings settings) {
  PoolOptions o;
  o.defaults = settings;
  return o;
}

TEST_F(SandboxPoolTest, WarmUpIsBoundedByMaxPoolSize) {
  make(with({.max_pool_size = 2}));
  auto module = load("passthrough", "pass-v1.0.0");
  uint64_t created = 0;
  ASSERT_TRUE(sandbox_->warm_up(module, 5, &created).is_ok());
  EXPECT_EQ(created, 2u);
  EXPECT_EQ(sandbox_->idle_instances(*module), 2u);
  EXPECT_EQ(stats("pass-v1.0.0").size, 2u);
}

TEST_F(SandboxPoolTest, TheFirstCallWarmsThePoolAndLaterCallsReuseIt) {
  make(with({.max_pool_size = 10, .warmup_instances = 3}));
  auto module = load("passthrough", "pass-v1.0.0");
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(sandbox_->process(module, message()).is_ok());
  PoolModuleStats s = stats("pass-v1.0.0");
  EXPECT_EQ(s.created, 3u);
  EXPECT_EQ(s.created_for_calls, 0u);
  EXPECT_EQ(s.reused, 10u);
  EXPECT_DOUBLE_EQ(s.hit_ratio(), 1.0);
  EXPECT_EQ(sandbox_->stats().instances_reused, 10u);
}

TEST_F(SandboxPoolTest, AColdPoolInstantiatesForEveryCall) {
  make(with({.max_pool_size = 0}));
  auto module = load("passthrough", "pass-v1.0.0");
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(sandbox_->process(module, message()).is_ok());
  PoolModuleStats s = stats("pass-v1.0.0");
  EXPECT_EQ(s.created_for_calls, 5u);
  EXPECT_EQ(s.evicted_by[static_cast<size_t>(EvictionReason::kPoolFull)], 5u);
  EXPECT_EQ(s.size, 0u);
  EXPECT_DOUBLE_EQ(s.hit_ratio(), 0.0);
}

TEST_F(SandboxPoolTest, MemoryFiguresAreReadFromTheLiveMemories) {
  make(with({}));
  auto module = load("passthrough", "pass-v1.0.0");
  ASSERT_TRUE(sandbox_->process(module, message()).is_ok());
  const uint64_t before = stats("pass-v1.0.0").memory_bytes;
  // The live memory, in whole pages, plus what the instance costs besides it.
  const uint64_t fixed = module->info().instance_bytes();
  EXPECT_GE(before, module->info().memory_initial_pages * 65536 + fixed);
  EXPECT_EQ((before - fixed) % 65536, 0u);
  // A 4 MiB message makes the guest's allocator grow its memory.
  ASSERT_TRUE(sandbox_->process(module, message(std::string(4 << 20, 'x'))).is_ok());
  const uint64_t after = stats("pass-v1.0.0").memory_bytes;
  EXPECT_GE(after, before + (4u << 20));
  EXPECT_EQ(sandbox_->pool_figures()->memory_bytes(), after);
}

TEST_F(SandboxPoolTest, IdleInstancesAreEvictedAfterTheIdleTimeout) {
  make(with({.max_pool_size = 10, .warmup_instances = 1, .idle_timeout = seconds(5)}));
  auto module = load("passthrough", "pass-v1.0.0");
  ASSERT_TRUE(sandbox_->warm_up(module, 4).is_ok());
  clock_->advance(seconds(4));
  EXPECT_EQ(sandbox_->collect_idle().evicted, 0u);
  clock_->advance(seconds(2));
  PoolSweep sweep = sandbox_->collect_idle();
  EXPECT_EQ(sweep.evicted, 3u);
  EXPECT_GT(sweep.bytes_freed, 0u);
  EXPECT_EQ(sandbox_->idle_instances(*module), 1u);
  // The pool still serves calls.
  ASSERT_TRUE(sandbox_->process(module, message()).is_ok());
}

TEST_F(SandboxPoolTest, TheLeastRecentlyUsedModuleMakesRoomUnderTheMemoryBudget) {
  // One instance's memory, measured on a first sandbox.
  make(with({}));
  uint64_t instance_bytes = 0;
  {
    auto module = load("passthrough", "probe");
    ASSERT_TRUE(sandbox_->process(module, message()).is_ok());
    instance_bytes = stats("probe").memory_bytes;
  }
  ASSERT_GT(instance_bytes, 0u);
  PoolOptions o = with({});
  o.max_memory_bytes = instance_bytes * 2 + instance_bytes / 2;
  make(o);
  auto a = load("passthrough", "a-v1.0.0");
  auto b = load("passthrough", "b-v1.0.0");
  auto c = load("passthrough", "c-v1.0.0");
  ASSERT_TRUE(sandbox_->process(a, message()).is_ok());
  clock_->advance(seconds(1));
  ASSERT_TRUE(sandbox_->process(b, message()).is_ok());
  clock_->advance(seconds(1));
  ASSERT_TRUE(sandbox_->process(c, message()).is_ok());
  EXPECT_EQ(sandbox_->idle_instances(*a), 0u) << "a was the least recently used";
  EXPECT_EQ(sandbox_->idle_instances(*b), 1u);
  EXPECT_EQ(sandbox_->idle_instances(*c), 1u);
  EXPECT_EQ(stats("a-v1.0.0").evicted_by[static_cast<size_t>(EvictionReason::kMemory)], 1u);
  EXPECT_LE(sandbox_->pool_figures()->memory_bytes(), o.max_memory_bytes);
}

TEST_F(SandboxPoolTest, CreationRateLimitSpacesOutNewInstancesOfAFailingModule) {
  make(with({.creation_rate_limit = 2.0}));
  auto module = load("trap", "trap-v1.0.0");
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(sandbox_->process(module, message()).is_ok());
  // Each failure discards its instance; the bucket holds two, then one token per 0.5 s.
  EXPECT_EQ(clock_->sleeps.load(), 3);
  PoolModuleStats s = stats("trap-v1.0.0");
  EXPECT_EQ(s.created_for_calls, 5u);
  EXPECT_EQ(s.discarded, 5u);
  EXPECT_EQ(s.creation_waits, 3u);
}

TEST_F(SandboxPoolTest, NewSettingsApplyToTheModuleAtOnce) {
  make(with({.max_pool_size = 10}));
  auto module = load("passthrough", "pass-v1.0.0");
  ASSERT_TRUE(sandbox_->warm_up(module, 6).is_ok());
  PoolSweep sweep = sandbox_->set_pool_settings("pass-v1.0.0", {.max_pool_size = 3});
  EXPECT_EQ(sweep.evicted, 3u);
  EXPECT_EQ(sandbox_->idle_instances(*module), 3u);
  sweep = sandbox_->set_pool_settings("pass-v1.0.0", {.max_pool_size = 8, .warmup_instances = 5});
  EXPECT_TRUE(sweep.status.is_ok()) << sweep.status.message();
  EXPECT_EQ(sweep.created, 2u);
  EXPECT_EQ(sandbox_->idle_instances(*module), 5u);
  EXPECT_EQ(sandbox_->pool_settings("pass-v1.0.0").max_pool_size, 8u);
}

TEST_F(SandboxPoolTest, EvictIdleEmptiesThePool) {
  make(with({.max_pool_size = 10}));
  auto module = load("passthrough", "pass-v1.0.0");
  ASSERT_TRUE(sandbox_->warm_up(module, 4).is_ok());
  EXPECT_EQ(sandbox_->evict_idle().evicted, 4u);
  EXPECT_EQ(sandbox_->idle_instances(*module), 0u);
  EXPECT_EQ(stats("pass-v1.0.0").memory_bytes, 0u);
}

}  // namespace
}  // namespace wasmq::wasm
