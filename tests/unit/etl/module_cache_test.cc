// The module cache's bounds (runtime.h): at most module_cache_size compiled modules, least
// recently used dropped first, except the modules published pipelines use; modules unused for
// module_cache_ttl_seconds dropped by collect(); compilation on the compile thread.
// Time is passed in, so no test sleeps.
#include <gtest/gtest.h>

#include <chrono>
#include <future>

#include "etl/compiler.h"
#include "etl/runtime.h"
#include "module_files.h"

namespace wasmq::etl {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::seconds;

class ModuleCacheTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_TRUE(wasm::initialize_engine().is_ok()); }

  void SetUp() override {
    auto sandbox = wasm::Sandbox::create();
    ASSERT_TRUE(sandbox.is_ok()) << sandbox.status().message();
    sandbox_ = std::move(*sandbox);
    binary_ = std::make_shared<const std::vector<uint8_t>>(testing::read_module("passthrough"));
    ASSERT_FALSE(binary_->empty());
  }

  ModuleRecord record(const std::string& id) {
    ModuleRecord r;
    r.id = id;
    r.sha256 = "sha-of-" + id;
    r.binary = binary_;
    return r;
  }

  std::shared_ptr<const wasm::Module> get(ModuleCache& cache, const std::string& id,
                                          Clock::time_point now) {
    auto module = cache.get(record(id), {}, *sandbox_, now);
    EXPECT_TRUE(module.is_ok()) << module.status().message();
    return module.is_ok() ? *module : nullptr;
  }

  std::unique_ptr<wasm::Sandbox> sandbox_;
  std::shared_ptr<const std::vector<uint8_t>> binary_;
  const Clock::time_point t0_ = Clock::now();
};

TEST_F(ModuleCacheTest, TheSameSettingsShareOneCompilation) {
  ModuleCache cache;
  auto first = get(cache, "a-v1.0.0", t0_);
  auto second = get(cache, "a-v1.0.0", t0_);
  EXPECT_EQ(first, second);
  EXPECT_EQ(cache.stats().compilations, 1u);
  EXPECT_EQ(cache.stats().hits, 1u);
  wasm::InstanceSettings other;
  other.config_json = R"({"x":1})";
  auto configured = cache.get(record("a-v1.0.0"), other, *sandbox_, t0_);
  ASSERT_TRUE(configured.is_ok());
  EXPECT_NE(*configured, first) << "another init config is another module object";
  EXPECT_EQ(cache.modules_of("a-v1.0.0").size(), 2u);
}

TEST_F(ModuleCacheTest, KeepsAtMostModuleCacheSizeDroppingTheLeastRecentlyUsed) {
  ModuleCache cache(2, seconds(3600));
  get(cache, "a", t0_);
  get(cache, "b", t0_ + seconds(1));
  get(cache, "a", t0_ + seconds(2));  // b is now the least recently used
  get(cache, "c", t0_ + seconds(3));
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.stats().evicted_lru, 1u);
  EXPECT_EQ(cache.modules_of("b").size(), 0u);
  EXPECT_EQ(cache.modules_of("a").size(), 1u);
  EXPECT_EQ(cache.modules_of("c").size(), 1u);
  get(cache, "b", t0_ + seconds(4));
  EXPECT_EQ(cache.stats().compilations, 4u) << "b is compiled again";
}

TEST_F(ModuleCacheTest, DropsModulesUnusedForTheTtl) {
  ModuleCache cache(10, seconds(60));
  get(cache, "a", t0_);
  get(cache, "b", t0_ + seconds(30));
  EXPECT_EQ(cache.collect(t0_ + seconds(59)), 0u);
  EXPECT_EQ(cache.collect(t0_ + seconds(61)), 1u);
  EXPECT_EQ(cache.modules_of("a").size(), 0u);
  EXPECT_EQ(cache.modules_of("b").size(), 1u);
  EXPECT_EQ(cache.stats().evicted_ttl, 1u);
}

TEST_F(ModuleCacheTest, UseRestartsTheTtl) {
  ModuleCache cache(10, seconds(60));
  get(cache, "a", t0_);
  get(cache, "a", t0_ + seconds(50));
  EXPECT_EQ(cache.collect(t0_ + seconds(100)), 0u);
  EXPECT_EQ(cache.collect(t0_ + seconds(111)), 1u);
}

TEST_F(ModuleCacheTest, ADroppedModuleStillRunsForWhoeverHoldsIt) {
  ModuleCache cache(1, seconds(60));
  auto held = get(cache, "a", t0_);
  get(cache, "b", t0_);
  ASSERT_EQ(cache.modules_of("a").size(), 0u);
  Message m;
  m.value = "still here";
  auto result = sandbox_->process(held, m);
  ASSERT_TRUE(result.is_ok()) << result.status().message();
  EXPECT_EQ(result->transformed_messages.at(0).value, "still here");
}

TEST_F(ModuleCacheTest, SmallerLimitsApplyAtOnce) {
  ModuleCache cache(10, seconds(60));
  for (const char* id : {"a", "b", "c", "d"}) get(cache, id, t0_);
  cache.set_limits(2, seconds(60));
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.modules_of("c").size(), 1u);
  EXPECT_EQ(cache.modules_of("d").size(), 1u);
}

// L11: 1000 pipelines over 200 modules with module_cache_size 50 compiled every module again on
// every batch. Modules the configuration uses stay; the bound applies to the rest.
TEST_F(ModuleCacheTest, ModulesInUseAreNotEvictedByTheSizeBound) {
  ModuleCache cache(2, seconds(3600));
  cache.set_in_use({"u1", "u2", "u3", "u4"});
  // Two batches of a topic whose plan uses four modules.
  for (int batch = 0; batch < 2; ++batch) {
    for (const char* id : {"u1", "u2", "u3", "u4"}) get(cache, id, t0_ + seconds(batch));
  }
  EXPECT_EQ(cache.stats().compilations, 4u) << "the second batch compiled again";
  EXPECT_EQ(cache.stats().evicted_lru, 0u);
  EXPECT_EQ(cache.size(), 4u);
  // Modules no pipeline uses are bounded as before (2 of them): the least recently used goes.
  get(cache, "x", t0_ + seconds(10));
  get(cache, "y", t0_ + seconds(11));
  get(cache, "z", t0_ + seconds(12));
  EXPECT_EQ(cache.modules_of("x").size(), 0u);
  EXPECT_EQ(cache.modules_of("y").size(), 1u);
  EXPECT_EQ(cache.modules_of("z").size(), 1u);
  EXPECT_EQ(cache.stats().evicted_lru, 1u);
  for (const char* id : {"u1", "u2", "u3", "u4"}) EXPECT_EQ(cache.modules_of(id).size(), 1u) << id;
  // Modules no longer used are bounded again at once: the least recently used go.
  cache.set_in_use({"u1"});
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.modules_of("u1").size(), 1u);
  EXPECT_EQ(cache.modules_of("y").size(), 1u);
  EXPECT_EQ(cache.modules_of("z").size(), 1u);
  // The TTL applies to modules in use too.
  EXPECT_EQ(cache.collect(t0_ + seconds(4000)), 3u);
}

TEST_F(ModuleCacheTest, CompilesOnTheCompileThreadWhenOneIsSet) {
  auto compiler = ModuleCompiler::start();
  ASSERT_TRUE(compiler.is_ok()) << compiler.status().message();
  ModuleCache cache;
  cache.set_compiler(compiler->get());
  auto module = get(cache, "a", t0_);
  ASSERT_TRUE(module);
  // Compiled elsewhere, it runs on this sandbox: the compile thread's isolate kept nothing.
  Message m;
  m.value = "compiled apart";
  auto result = sandbox_->process(module, m);
  ASSERT_TRUE(result.is_ok()) << result.status().message();
  EXPECT_EQ(result->transformed_messages.at(0).value, "compiled apart");
  ModuleRecord broken = record("b");
  auto bytes = std::make_shared<std::vector<uint8_t>>(*binary_);
  bytes->resize(bytes->size() / 2);
  broken.binary = bytes;
  auto refused = cache.get(broken, {}, *sandbox_, t0_);
  EXPECT_FALSE(refused.is_ok());
}

// M4: one compile thread compiled every cache miss; behind two modules that took seconds to
// compile, an unrelated pipeline's first message waited for both. With a thread per worker, a
// module is compiled while another compilation holds a compile thread.
TEST_F(ModuleCacheTest, CompilesAModuleWhileAnotherCompilationHoldsACompileThread) {
  auto compiler = ModuleCompiler::start(2);
  ASSERT_TRUE(compiler.is_ok()) << compiler.status().message();
  // A compilation that does not end until it is told to (as one of a module slow to compile).
  std::promise<void> release;
  std::promise<void> holding;
  std::shared_future<void> released = release.get_future().share();
  (*compiler)->submit_compile([released, &holding](wasm::Sandbox&) {
    holding.set_value();
    released.wait();
  });
  holding.get_future().wait();
  ModuleCache cache;
  cache.set_compiler(compiler->get());
  auto unrelated = std::async(std::launch::async, [&] { return get(cache, "unrelated", t0_); });
  const bool compiled = unrelated.wait_for(seconds(30)) == std::future_status::ready;
  release.set_value();
  ASSERT_TRUE(compiled) << "the compilation waited behind the one in progress";
  EXPECT_TRUE(unrelated.get());
}

}  // namespace
}  // namespace wasmq::etl
