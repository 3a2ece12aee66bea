// What the ETL workers share (runtime.h): the result cache's TTL, LRU order and bounds, the
// circuit breakers' states, and the concurrency bounds. Time is passed in, so no test sleeps.
#include "etl/runtime.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

namespace wasmq::etl {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Admission = CircuitBreakers::Admission;

ProcessResult result_with(std::string value) {
  Message m;
  m.value = std::move(value);
  ProcessResult r;
  r.transformed_messages.push_back(std::move(m));
  return r;
}

Message input(std::string value) {
  Message m;
  m.value = std::move(value);
  return m;
}

// --- ResultCache ---------------------------------------------------------------------------------

TEST(ResultCache, FindsAnEntryUntilItsTtlRunsOut) {
  ResultCache cache;
  const auto t0 = Clock::now();
  cache.insert("k", result_with("v"), seconds(10), t0);
  auto hit = cache.find("k", t0 + seconds(9));
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->transformed_messages[0].value, "v");
  EXPECT_FALSE(cache.find("k", t0 + seconds(10)).has_value());
  EXPECT_FALSE(cache.find("k", t0).has_value()) << "an expired entry is dropped";
  EXPECT_EQ(cache.hits(), 1u);
  EXPECT_EQ(cache.misses(), 2u);
}

TEST(ResultCache, EvictsTheLeastRecentlyUsedEntryBeyondMaxEntries) {
  ResultCache cache(2, 1 << 20);
  const auto t0 = Clock::now();
  cache.insert("a", result_with("1"), seconds(60), t0);
  cache.insert("b", result_with("2"), seconds(60), t0);
  ASSERT_TRUE(cache.find("a", t0).has_value());  // "b" is now the least recently used
  cache.insert("c", result_with("3"), seconds(60), t0);
  EXPECT_TRUE(cache.find("a", t0).has_value());
  EXPECT_FALSE(cache.find("b", t0).has_value());
  EXPECT_TRUE(cache.find("c", t0).has_value());
}

TEST(ResultCache, EvictsBeyondMaxBytesAndNeverKeepsAnEntryLargerThanThat) {
  ResultCache cache(1000, 200);
  const auto t0 = Clock::now();
  cache.insert("big", result_with(std::string(500, 'x')), seconds(60), t0);
  EXPECT_FALSE(cache.find("big", t0).has_value());
  cache.insert("a", result_with(std::string(60, 'a')), seconds(60), t0);
  cache.insert("b", result_with(std::string(60, 'b')), seconds(60), t0);
  cache.insert("c", result_with(std::string(60, 'c')), seconds(60), t0);
  // Each entry takes about 100 bytes with its encoding: only the newest fit in 200.
  EXPECT_FALSE(cache.find("a", t0).has_value());
  EXPECT_TRUE(cache.find("c", t0).has_value());
}

TEST(ResultCache, ReplacesAnEntryInsertedAgain) {
  ResultCache cache;
  const auto t0 = Clock::now();
  cache.insert("k", result_with("old"), seconds(60), t0);
  cache.insert("k", result_with("new"), seconds(60), t0);
  auto hit = cache.find("k", t0);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(hit->transformed_messages[0].value, "new");
}

ModuleRecord record(std::string id, std::string sha256) {
  ModuleRecord r;
  r.id = std::move(id);
  r.sha256 = std::move(sha256);
  return r;
}

TEST(ResultCache, KeysDifferByModuleChecksumConfigurationAndInputBytes) {
  const ModuleRecord m = record("m-v1.0.0", "aa");
  const std::string key = ResultCache::key_for(m, "{\"a\":1}", input("x"));
  EXPECT_EQ(key, ResultCache::key_for(m, "{\"a\":1}", input("x")));
  EXPECT_NE(key, ResultCache::key_for(record("m-v1.0.1", "aa"), "{\"a\":1}", input("x")));
  EXPECT_NE(key, ResultCache::key_for(record("m-v1.0.0", "bb"), "{\"a\":1}", input("x")));
  EXPECT_NE(key, ResultCache::key_for(m, "{\"a\":2}", input("x")));
  EXPECT_NE(key, ResultCache::key_for(m, "", input("x")));
  EXPECT_NE(key, ResultCache::key_for(m, "{\"a\":1}", input("y")));
}

// --- CircuitBreakers -----------------------------------------------------------------------------

TEST(CircuitBreakers, OpensAfterThresholdConsecutiveFailures) {
  CircuitBreakers breakers;
  const auto t0 = Clock::now();
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(breakers.admit("m", t0), Admission::kClosed);
    breakers.record("m", false, 3, milliseconds(100), t0);
  }
  breakers.record("m", true, 3, milliseconds(100), t0);  // a success starts the count again
  for (int i = 0; i < 2; ++i) breakers.record("m", false, 3, milliseconds(100), t0);
  EXPECT_EQ(breakers.admit("m", t0), Admission::kClosed);
  breakers.record("m", false, 3, milliseconds(100), t0);
  EXPECT_EQ(breakers.admit("m", t0), Admission::kOpen);
  EXPECT_TRUE(breakers.is_open("m", t0 + milliseconds(99)));
  EXPECT_EQ(breakers.admit("other", t0), Admission::kClosed);
}

TEST(CircuitBreakers, AdmitsOneTrialAfterOpenForAndClosesOnItsSuccess) {
  CircuitBreakers breakers;
  const auto t0 = Clock::now();
  breakers.record("m", false, 1, milliseconds(100), t0);
  const auto later = t0 + milliseconds(100);
  EXPECT_EQ(breakers.admit("m", later), Admission::kTrial);
  EXPECT_EQ(breakers.admit("m", later), Admission::kOpen) << "one trial at a time";
  breakers.record("m", true, 1, milliseconds(100), later);
  EXPECT_EQ(breakers.admit("m", later), Admission::kClosed);
}

TEST(CircuitBreakers, ReopensForOpenForOnAFailedTrial) {
  CircuitBreakers breakers;
  const auto t0 = Clock::now();
  breakers.record("m", false, 1, milliseconds(100), t0);
  const auto trial = t0 + milliseconds(150);
  ASSERT_EQ(breakers.admit("m", trial), Admission::kTrial);
  breakers.record("m", false, 1, milliseconds(100), trial);
  EXPECT_EQ(breakers.admit("m", trial + milliseconds(99)), Admission::kOpen);
  EXPECT_EQ(breakers.admit("m", trial + milliseconds(100)), Admission::kTrial);
}

TEST(CircuitBreakers, IgnoresOutcomesOfCallsAdmittedBeforeItOpened) {
  CircuitBreakers breakers;
  const auto t0 = Clock::now();
  breakers.record("m", false, 1, milliseconds(100), t0);
  // Reported while open with no trial running: a call that started before the breaker opened.
  breakers.record("m", true, 1, milliseconds(100), t0 + milliseconds(10));
  EXPECT_EQ(breakers.admit("m", t0 + milliseconds(20)), Admission::kOpen);
  breakers.record("m", false, 1, milliseconds(100), t0 + milliseconds(50));
  EXPECT_EQ(breakers.admit("m", t0 + milliseconds(100)), Admission::kTrial)
      << "a late failure does not extend the open time";
}

// --- ConcurrencyLimits ---------------------------------------------------------------------------

TEST(ConcurrencyLimits, WaitsWhileAModuleRunsItsMaximumOfCalls) {
  ConcurrencyLimits limits;
  std::atomic<bool> second_acquired{false};
  std::thread other;
  {
    auto permit = limits.acquire("m", 1, 10);
    EXPECT_EQ(limits.running(), 1u);
    auto unrelated = limits.acquire("n", 1, 10);  // another module is not held up
    EXPECT_EQ(limits.running(), 2u);
    other = std::thread([&] {
      auto second = limits.acquire("m", 1, 10);
      second_acquired = true;
    });
    std::this_thread::sleep_for(milliseconds(50));
    EXPECT_FALSE(second_acquired.load());
  }
  other.join();
  EXPECT_TRUE(second_acquired.load());
  EXPECT_EQ(limits.running(), 0u);
}

}  // namespace
}  // namespace wasmq::etl
