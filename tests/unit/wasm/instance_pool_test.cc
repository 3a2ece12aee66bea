// The instance pool's rules (instance_pool.h) on fake instances and a fake clock: bounds,
// warm-up, hit ratio, idle eviction, the collection's trim, LRU eviction across modules under
// the memory budget, the creation rate limit, resizing, and figures read from another thread.
// sandbox_test.cc checks the same pool with real modules.
#include "wasm/instance_pool.h"

#include <gtest/gtest.h>
#include <v8-wasm.h>  // the fake modules' (empty) compiled code

#include <thread>

namespace wasmq::wasm {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Time that moves only when a test (or a rate-limit wait) moves it.
class FakeClock final : public PoolClock {
 public:
  PoolTime now() override { return PoolTime(std::chrono::nanoseconds(ns_.load())); }
  void sleep_until(PoolTime t) override {
    ++sleeps;
    int64_t target = t.time_since_epoch().count();
    if (target > ns_.load()) ns_.store(target);
  }
  void advance(std::chrono::nanoseconds d) { ns_ += d.count(); }

  int sleeps = 0;

 private:
  std::atomic<int64_t> ns_{1'000'000'000};
};

struct FakeInstance : PooledInstance {
  explicit FakeInstance(uint64_t bytes) { memory_bytes = bytes; }
};

std::shared_ptr<const Module> fake_module(const std::string& id) {
  return std::make_shared<const Module>(id, ModuleInfo{}, InstanceSettings{}, nullptr);
}

class InstancePoolTest : public ::testing::Test {
 protected:
  void make_pool(PoolOptions options) {
    clock_ = std::make_shared<FakeClock>();
    options.clock = clock_;
    pool_ = std::make_unique<InstancePool>(std::move(options));
  }

  InstancePool::Create creator(uint64_t bytes = 100) {
    return [this, bytes](PoolSlot&) -> Result<std::unique_ptr<PooledInstance>> {
      ++created_;
      if (fail_creation_) return Status(StatusCode::kModuleFailed, "instantiation failed");
      return std::unique_ptr<PooledInstance>(std::make_unique<FakeInstance>(bytes));
    };
  }

  static std::chrono::milliseconds far() { return seconds(3600); }

  // One successful call of `module`.
  void call(const std::shared_ptr<const Module>& module, uint64_t bytes = 100) {
    PoolSlot& slot = pool_->slot(module);
    auto instance = pool_->acquire(slot, far(), creator(bytes));
    ASSERT_TRUE(instance.is_ok()) << instance.status().message();
    pool_->release(slot, std::move(*instance));
  }

  PoolModuleStats stats(const std::string& id) {
    for (auto& s : pool_->figures()->snapshot()) {
      if (s.module_id == id) return s;
    }
    return PoolModuleStats{};
  }

  std::shared_ptr<FakeClock> clock_;
  std::unique_ptr<InstancePool> pool_;
  int created_ = 0;
  bool fail_creation_ = false;
};

PoolOptions with(PoolSettings settings) {
  PoolOptions o;
  o.defaults = settings;
  return o;
}

TEST_F(InstancePoolTest, KeepsAtMostMaxPoolSizeIdleInstances) {
  make_pool(with({.max_pool_size = 2}));
  auto module = fake_module("m-v1.0.0");
  PoolSlot& slot = pool_->slot(module);
  std::vector<std::unique_ptr<PooledInstance>> out;
  for (int i = 0; i < 3; ++i) out.push_back(std::move(*pool_->acquire(slot, far(), creator())));
  for (auto& instance : out) pool_->release(slot, std::move(instance));
  EXPECT_EQ(slot.idle(), 2u);
  PoolModuleStats s = stats("m-v1.0.0");
  EXPECT_EQ(s.size, 2u);
  EXPECT_EQ(s.idle, 2u);
  EXPECT_EQ(s.busy, 0u);
  EXPECT_EQ(s.created, 3u);
  EXPECT_EQ(s.evicted_by[static_cast<size_t>(EvictionReason::kPoolFull)], 1u);
  EXPECT_EQ(s.memory_bytes, 200u);
}

TEST_F(InstancePoolTest, BusyInstancesAreCountedWhileOutInACall) {
  make_pool(with({}));
  auto module = fake_module("m");
  PoolSlot& slot = pool_->slot(module);
  auto instance = pool_->acquire(slot, far(), creator());
  ASSERT_TRUE(instance.is_ok());
  EXPECT_EQ(stats("m").busy, 1u);
  EXPECT_EQ(stats("m").size, 1u);
  pool_->release(slot, std::move(*instance));
  EXPECT_EQ(stats("m").busy, 0u);
  EXPECT_EQ(stats("m").idle, 1u);
}

TEST_F(InstancePoolTest, MaxPoolSizeZeroCreatesAnInstanceForEveryCall) {
  make_pool(with({.max_pool_size = 0}));
  auto module = fake_module("cold");
  for (int i = 0; i < 5; ++i) call(module);
  PoolModuleStats s = stats("cold");
  EXPECT_EQ(s.created_for_calls, 5u);
  EXPECT_EQ(s.reused, 0u);
  EXPECT_EQ(s.size, 0u);
  EXPECT_EQ(s.memory_bytes, 0u);
  EXPECT_EQ(s.evicted(), 5u);
  EXPECT_DOUBLE_EQ(s.hit_ratio(), 0.0);
}

TEST_F(InstancePoolTest, WarmsUpAtTheFirstCall) {
  make_pool(with({.max_pool_size = 10, .warmup_instances = 3}));
  auto module = fake_module("warm");
  call(module);
  PoolModuleStats s = stats("warm");
  EXPECT_EQ(s.created, 3u);
  EXPECT_EQ(s.created_for_calls, 0u);
  EXPECT_EQ(s.reused, 1u);
  EXPECT_EQ(s.idle, 3u);
  EXPECT_DOUBLE_EQ(s.hit_ratio(), 1.0);
  call(module);
  EXPECT_EQ(stats("warm").created, 3u) << "warm-up happens once per module object";
}

TEST_F(InstancePoolTest, HitRatioRisesWithReuse) {
  make_pool(with({}));
  auto module = fake_module("m");
  call(module);
  EXPECT_DOUBLE_EQ(stats("m").hit_ratio(), 0.0);
  call(module);
  EXPECT_DOUBLE_EQ(stats("m").hit_ratio(), 0.5);
  for (int i = 0; i < 8; ++i) call(module);
  EXPECT_DOUBLE_EQ(stats("m").hit_ratio(), 0.9);
  EXPECT_EQ(stats("m").created, 1u);
}

TEST_F(InstancePoolTest, IdleInstancesBeyondWarmupAreEvictedAfterTheTimeout) {
  make_pool(with({.warmup_instances = 1, .idle_timeout = seconds(10)}));
  auto module = fake_module("m");
  PoolSlot& slot = pool_->slot(module);
  ASSERT_TRUE(pool_->warm(slot, 4, creator()).is_ok());
  clock_->advance(seconds(9));
  EXPECT_EQ(pool_->collect().evicted, 0u);
  EXPECT_EQ(slot.idle(), 4u);
  clock_->advance(seconds(2));
  PoolSweep sweep = pool_->collect();
  EXPECT_EQ(sweep.evicted, 3u);
  EXPECT_EQ(sweep.bytes_freed, 300u);
  EXPECT_EQ(slot.idle(), 1u) << "warmup_instances stay";
  EXPECT_EQ(stats("m").evicted_by[static_cast<size_t>(EvictionReason::kIdleTimeout)], 3u);
}

TEST_F(InstancePoolTest, AnInstanceUsedWithinTheTimeoutStays) {
  make_pool(with({.idle_timeout = seconds(10)}));
  auto module = fake_module("m");
  PoolSlot& slot = pool_->slot(module);
  ASSERT_TRUE(pool_->warm(slot, 2, creator()).is_ok());
  clock_->advance(seconds(8));
  call(module);  // takes the most recently returned instance and gives it back now
  clock_->advance(seconds(3));
  EXPECT_EQ(pool_->collect().evicted, 1u);
  EXPECT_EQ(slot.idle(), 1u);
  clock_->advance(seconds(8));
  EXPECT_EQ(pool_->collect().evicted, 1u);
  EXPECT_EQ(slot.idle(), 0u);
}

TEST_F(InstancePoolTest, CollectionTrimsIdleInstancesToMaxIdleInstances) {
  PoolOptions o = with({.max_pool_size = 20, .warmup_instances = 2});
  o.max_idle_instances = 5;
  make_pool(o);
  auto module = fake_module("m");
  PoolSlot& slot = pool_->slot(module);
  ASSERT_TRUE(pool_->warm(slot, 12, creator()).is_ok());
  EXPECT_EQ(slot.idle(), 12u);
  EXPECT_EQ(pool_->collect().evicted, 7u);
  EXPECT_EQ(slot.idle(), 5u);
  EXPECT_EQ(stats("m").evicted_by[static_cast<size_t>(EvictionReason::kMaxIdle)], 7u);
}

TEST_F(InstancePoolTest, TheLeastRecentlyUsedModuleIsEvictedOverTheMemoryBudget) {
  PoolOptions o = with({});
  o.max_memory_bytes = 300;
  make_pool(o);
  auto a = fake_module("a"), b = fake_module("b"), c = fake_module("c"), d = fake_module("d");
  call(a);
  clock_->advance(seconds(1));
  call(b);
  clock_->advance(seconds(1));
  call(c);
  clock_->advance(seconds(1));
  call(a);  // a is now the most recently used; b the least
  clock_->advance(seconds(1));
  EXPECT_EQ(pool_->memory_bytes(), 300u);
  call(d);
  EXPECT_EQ(pool_->memory_bytes(), 300u);
  EXPECT_EQ(stats("b").idle, 0u);
  EXPECT_EQ(stats("b").evicted_by[static_cast<size_t>(EvictionReason::kMemory)], 1u);
  EXPECT_EQ(stats("a").idle, 1u);
  EXPECT_EQ(stats("c").idle, 1u);
  EXPECT_EQ(stats("d").idle, 1u);
}

TEST_F(InstancePoolTest, WithoutLruEvictionTheReturnedInstanceIsDropped) {
  PoolOptions o = with({});
  o.max_memory_bytes = 200;
  o.lru_eviction = false;
  make_pool(o);
  auto a = fake_module("a"), b = fake_module("b"), c = fake_module("c");
  call(a);
  call(b);
  call(c);
  EXPECT_EQ(stats("a").idle, 1u);
  EXPECT_EQ(stats("b").idle, 1u);
  EXPECT_EQ(stats("c").idle, 0u);
  EXPECT_EQ(stats("c").evicted_by[static_cast<size_t>(EvictionReason::kMemory)], 1u);
}

TEST_F(InstancePoolTest, MemoryGrownInACallCountsWhenTheInstanceReturns) {
  PoolOptions o = with({});
  o.max_memory_bytes = 1000;
  make_pool(o);
  auto a = fake_module("a"), b = fake_module("b");
  call(a);
  clock_->advance(seconds(1));
  PoolSlot& slot = pool_->slot(b);
  auto instance = pool_->acquire(slot, far(), creator());
  ASSERT_TRUE(instance.is_ok());
  EXPECT_EQ(pool_->memory_bytes(), 200u);
  (*instance)->memory_bytes = 950;  // memory.grow during the call
  pool_->release(slot, std::move(*instance));
  EXPECT_EQ(stats("b").memory_bytes, 950u);
  EXPECT_EQ(stats("a").idle, 0u) << "a's instance made room for b's grown one";
  EXPECT_EQ(pool_->memory_bytes(), 950u);
  EXPECT_EQ(pool_->figures()->memory_bytes(), 950u);
}

TEST_F(InstancePoolTest, WarmUpStopsAtTheMemoryBudget) {
  PoolOptions o = with({.max_pool_size = 10});
  o.max_memory_bytes = 350;
  make_pool(o);
  auto module = fake_module("m");
  auto created = pool_->warm(pool_->slot(module), 10, creator());
  ASSERT_TRUE(created.is_ok());
  EXPECT_EQ(*created, 3u);
  EXPECT_EQ(pool_->memory_bytes(), 300u);
}

TEST_F(InstancePoolTest, CreationRateLimitMakesACallWaitForAToken) {
  make_pool(with({.max_pool_size = 0, .creation_rate_limit = 2.0}));
  auto module = fake_module("m");
  const PoolTime start = clock_->now();
  for (int i = 0; i < 4; ++i) call(module);  // the bucket holds 2; then one token per 0.5 s
  EXPECT_EQ(clock_->sleeps, 2);
  EXPECT_EQ(clock_->now() - start, seconds(1));
  PoolModuleStats s = stats("m");
  EXPECT_EQ(s.created_for_calls, 4u);
  EXPECT_EQ(s.creation_waits, 2u);
  EXPECT_EQ(s.creation_wait_ns, 1'000'000'000u);
}

TEST_F(InstancePoolTest, CreationRateLimitFailsACallWhoseWaitWouldOutlastItsTimeLimit) {
  make_pool(with({.max_pool_size = 0, .creation_rate_limit = 0.5}));
  auto module = fake_module("m");
  call(module);
  PoolSlot& slot = pool_->slot(module);
  auto refused = pool_->acquire(slot, seconds(1), creator());
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kTimeout);
  EXPECT_NE(refused.status().message().find("creation_rate_limit"), std::string::npos)
      << refused.status().message();
  EXPECT_EQ(created_, 1);
  EXPECT_EQ(clock_->sleeps, 0);
  // Within its time limit, the next call waits for the token instead of failing.
  auto waited = pool_->acquire(slot, seconds(5), creator());
  ASSERT_TRUE(waited.is_ok()) << waited.status().message();
  EXPECT_EQ(clock_->sleeps, 1);
}

TEST_F(InstancePoolTest, ReusedInstancesDoNotSpendTokens) {
  make_pool(with({.creation_rate_limit = 0.1}));
  auto module = fake_module("m");
  for (int i = 0; i < 50; ++i) call(module);
  EXPECT_EQ(clock_->sleeps, 0);
  EXPECT_EQ(stats("m").reused, 49u);
}

TEST_F(InstancePoolTest, WarmUpIsNotRateLimited) {
  make_pool(with({.max_pool_size = 10, .creation_rate_limit = 1.0}));
  auto module = fake_module("m");
  auto created = pool_->warm(pool_->slot(module), 8, creator());
  ASSERT_TRUE(created.is_ok());
  EXPECT_EQ(*created, 8u);
  EXPECT_EQ(clock_->sleeps, 0);
}

TEST_F(InstancePoolTest, AFailedCallDiscardsItsInstance) {
  make_pool(with({}));
  auto module = fake_module("m");
  PoolSlot& slot = pool_->slot(module);
  auto instance = pool_->acquire(slot, far(), creator());
  ASSERT_TRUE(instance.is_ok());
  pool_->discard(slot, std::move(*instance));
  PoolModuleStats s = stats("m");
  EXPECT_EQ(s.discarded, 1u);
  EXPECT_EQ(s.size, 0u);
  EXPECT_EQ(s.busy, 0u);
  EXPECT_EQ(s.memory_bytes, 0u);
  EXPECT_EQ(pool_->memory_bytes(), 0u);
}

TEST_F(InstancePoolTest, ACreationFailureFailsTheCall) {
  make_pool(with({}));
  auto module = fake_module("m");
  fail_creation_ = true;
  auto instance = pool_->acquire(pool_->slot(module), far(), creator());
  ASSERT_FALSE(instance.is_ok());
  EXPECT_EQ(instance.status().message(), "instantiation failed");
}

TEST_F(InstancePoolTest, EvictIdleDropsTheIdleInstancesOfOneModuleOrOfAll) {
  make_pool(with({.max_pool_size = 10}));
  auto a = fake_module("a"), b = fake_module("b");
  ASSERT_TRUE(pool_->warm(pool_->slot(a), 3, creator()).is_ok());
  ASSERT_TRUE(pool_->warm(pool_->slot(b), 2, creator()).is_ok());
  PoolSweep only_a = pool_->evict_idle("a");
  EXPECT_EQ(only_a.evicted, 3u);
  EXPECT_EQ(stats("a").idle, 0u);
  EXPECT_EQ(stats("b").idle, 2u);
  EXPECT_EQ(pool_->evict_idle().evicted, 2u);
  EXPECT_EQ(pool_->memory_bytes(), 0u);
  EXPECT_EQ(stats("b").evicted_by[static_cast<size_t>(EvictionReason::kCleanup)], 2u);
}

TEST_F(InstancePoolTest, NewSettingsShrinkThePoolAndWarmItUp) {
  make_pool(with({.max_pool_size = 10}));
  auto a = fake_module("a"), b = fake_module("b");
  ASSERT_TRUE(pool_->warm(pool_->slot(a), 6, creator()).is_ok());
  ASSERT_TRUE(pool_->warm(pool_->slot(b), 6, creator()).is_ok());
  PoolSweep shrunk = pool_->set_settings("a", {.max_pool_size = 2}, creator());
  EXPECT_EQ(shrunk.evicted, 4u);
  EXPECT_EQ(stats("a").idle, 2u);
  EXPECT_EQ(stats("a").evicted_by[static_cast<size_t>(EvictionReason::kResize)], 4u);
  EXPECT_EQ(stats("b").idle, 6u) << "other modules keep their settings";
  PoolSweep grown =
      pool_->set_settings("a", {.max_pool_size = 8, .warmup_instances = 5}, creator());
  EXPECT_EQ(grown.created, 3u);
  EXPECT_EQ(stats("a").idle, 5u);
  EXPECT_EQ(stats("a").settings.max_pool_size, 8u);
  EXPECT_EQ(pool_->settings("a").warmup_instances, 5u);
  EXPECT_EQ(pool_->settings("b").max_pool_size, 10u);
}

TEST_F(InstancePoolTest, SlotsOfVanishedModulesAreUnloadedAtCollection) {
  make_pool(with({}));
  auto module = fake_module("gone");
  const uint64_t serial = module->serial();
  call(module);
  module.reset();
  EXPECT_EQ(pool_->collect().evicted, 1u);
  EXPECT_EQ(pool_->find(serial), nullptr);
  EXPECT_EQ(stats("gone").evicted_by[static_cast<size_t>(EvictionReason::kUnloaded)], 1u);
  EXPECT_EQ(pool_->memory_bytes(), 0u);
}

TEST_F(InstancePoolTest, ForgettingAModuleDropsItsFigures) {
  make_pool(with({}));
  auto module = fake_module("m");
  call(module);
  pool_->forget(std::string_view("m"));
  EXPECT_TRUE(pool_->figures()->snapshot().empty());
  EXPECT_EQ(pool_->memory_bytes(), 0u);
}

TEST_F(InstancePoolTest, UtilizationIsTheShareOfInstanceTimeInCalls) {
  make_pool(with({}));
  auto module = fake_module("m");
  PoolSlot& slot = pool_->slot(module);
  for (int i = 0; i < 4; ++i) {
    auto instance = pool_->acquire(slot, far(), creator());
    clock_->advance(milliseconds(250));
    pool_->release(slot, std::move(*instance));
    clock_->advance(milliseconds(750));
  }
  PoolModuleStats s = stats("m");
  EXPECT_EQ(s.busy_ns, 1'000'000'000u);
  EXPECT_EQ(s.live_ns, 4'000'000'000u);
  EXPECT_DOUBLE_EQ(s.utilization(), 0.25);
}

TEST_F(InstancePoolTest, FiguresAreReadWhileTheOwnerWorks) {
  make_pool(with({.max_pool_size = 4}));
  auto module = fake_module("m");
  std::atomic<bool> done{false};
  std::thread reader([&] {
    while (!done) {
      for (const auto& s : pool_->figures()->snapshot()) {
        EXPECT_LE(s.idle, 4u);
        EXPECT_LE(s.busy, 1u);
      }
    }
  });
  for (int i = 0; i < 20'000; ++i) call(module);
  done = true;
  reader.join();
  EXPECT_EQ(stats("m").reused, 19'999u);
}

// M8: every wasm memory reserves ~10 GiB of address space, so the pool bounds its live instances
// (every module together), whatever max_pool_size and warm-ups ask for.
TEST_F(InstancePoolTest, WarmUpsStopAtMaxInstances) {
  PoolOptions o = with({.max_pool_size = 10'000});
  o.max_instances = 5;
  make_pool(o);
  auto a = fake_module("a");
  auto b = fake_module("b");
  auto warmed = pool_->warm(pool_->slot(a), 10'000, creator());
  ASSERT_TRUE(warmed.is_ok());
  EXPECT_EQ(*warmed, 5u);
  warmed = pool_->warm(pool_->slot(b), 10'000, creator());
  ASSERT_TRUE(warmed.is_ok());
  EXPECT_EQ(*warmed, 0u);
  EXPECT_EQ(pool_->live_instances(), 5u);
  EXPECT_EQ(created_, 5);
}

TEST_F(InstancePoolTest, ACallAtMaxInstancesDropsTheLeastRecentlyUsedIdleInstance) {
  PoolOptions o = with({.max_pool_size = 10});
  o.max_instances = 2;
  make_pool(o);
  auto a = fake_module("a");
  auto b = fake_module("b");
  auto c = fake_module("c");
  call(a);
  clock_->advance(seconds(1));
  call(b);
  clock_->advance(seconds(1));
  call(c);  // a's idle instance, the oldest, makes room
  EXPECT_EQ(pool_->live_instances(), 2u);
  EXPECT_EQ(stats("a").size, 0u);
  EXPECT_EQ(stats("a").evicted_by[static_cast<size_t>(EvictionReason::kInstanceLimit)], 1u);
  EXPECT_EQ(stats("b").size, 1u);
  EXPECT_EQ(stats("c").size, 1u);
}

TEST_F(InstancePoolTest, ACallAtMaxInstancesWithNothingIdleFailsCleanly) {
  PoolOptions o = with({});
  o.max_instances = 1;
  make_pool(o);
  auto a = fake_module("a");
  PoolSlot& slot = pool_->slot(a);
  auto busy = pool_->acquire(slot, far(), creator());
  ASSERT_TRUE(busy.is_ok());
  auto second = pool_->acquire(slot, far(), creator());
  ASSERT_FALSE(second.is_ok());
  EXPECT_EQ(second.status().code(), StatusCode::kLimitExceeded);
  EXPECT_EQ(second.status().message(),
            "no instance of a: the pool holds its bound of 1 live instances");
  EXPECT_EQ(created_, 1);
  pool_->release(slot, std::move(*busy));
  EXPECT_EQ(pool_->live_instances(), 1u);
}

TEST_F(InstancePoolTest, LoweringMaxInstancesDropsTheExcess) {
  make_pool(with({.max_pool_size = 10}));
  auto a = fake_module("a");
  ASSERT_TRUE(pool_->warm(pool_->slot(a), 8, creator()).is_ok());
  PoolSweep sweep = pool_->set_max_instances(3);
  EXPECT_EQ(sweep.evicted, 5u);
  EXPECT_EQ(pool_->live_instances(), 3u);
  EXPECT_EQ(stats("a").evicted_by[static_cast<size_t>(EvictionReason::kInstanceLimit)], 5u);
}

TEST_F(InstancePoolTest, DefaultMaxInstancesIsTheProcessBound) {
  make_pool(with({}));
  EXPECT_EQ(pool_->options().max_instances, kMaxLiveInstancesPerProcess);
  // 128 TiB of address space, 10 GiB per memory: fewer than half of the 13,107 memories.
  EXPECT_LT(kMaxLiveInstancesPerProcess * 2, (1ull << 47) / (10ull << 30));
}

}  // namespace
}  // namespace wasmq::wasm
