// One worker's module result cache (result_cache.h): keys, TTL, timestamps on a hit, LRU order
// and the byte bound, admission once full. Time is passed in, so no test sleeps.
#include "etl/result_cache.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace wasmq::etl {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::seconds;

Message input(std::string value, int64_t timestamp = 1000) {
  Message m;
  m.key = "k";
  m.value = std::move(value);
  m.headers = {{"h", "1"}};
  m.timestamp = timestamp;
  return m;
}

ProcessResult result_with(std::string value, int64_t timestamp = 1000) {
  Message m;
  m.value = std::move(value);
  m.timestamp = timestamp;
  ProcessResult r;
  r.transformed_messages.push_back(std::move(m));
  return r;
}

ModuleRecord record(std::string id, std::string sha256) {
  ModuleRecord r;
  r.id = std::move(id);
  r.sha256 = std::move(sha256);
  return r;
}

// The cache with the keys of some inputs of one module use.
struct Fixture {
  explicit Fixture(size_t max_bytes = 1 << 20) : cache(max_bytes) {}
  ResultCache cache;
  uint64_t salt = ResultCache::salt_for(record("m-v1.0.0", "aa"), "");
  ResultCache::Keys keys_of(const std::vector<Message>& inputs) {
    std::vector<const Message*> pointers;
    for (const auto& m : inputs) pointers.push_back(&m);
    ResultCache::Keys keys;
    ResultCache::make_keys(salt, pointers, &keys);
    return keys;
  }
  bool find(const Message& m, Clock::time_point now, ProcessResult* out = nullptr) {
    ProcessResult ignored;
    return cache.find(keys_of({m}), 0, m.timestamp, now, out ? out : &ignored);
  }
  // Offers a result twice, as for an input seen a second time: kept.
  void offer(const Message& m, const ProcessResult& r, Clock::time_point now,
             seconds ttl = seconds(60)) {
    offer_once(m, r, now, ttl);
    offer_once(m, r, now, ttl);
  }
  void offer_once(const Message& m, const ProcessResult& r, Clock::time_point now,
                  seconds ttl = seconds(60)) {
    cache.offer(keys_of({m}), 0, m.timestamp, r, ttl, now);
  }
};

TEST(ResultCache, FindsAnEntryUntilItsTtlRunsOut) {
  Fixture f;
  const auto t0 = Clock::now();
  f.offer(input("x"), result_with("v"), t0, seconds(10));
  ProcessResult hit;
  ASSERT_TRUE(f.find(input("x"), t0 + seconds(9), &hit));
  EXPECT_EQ(hit.transformed_messages.at(0).value, "v");
  EXPECT_FALSE(f.find(input("x"), t0 + seconds(10)));
  EXPECT_FALSE(f.find(input("x"), t0)) << "an expired entry is dropped";
  EXPECT_EQ(f.cache.hits(), 1u);
  EXPECT_EQ(f.cache.misses(), 2u);
  EXPECT_EQ(f.cache.entries(), 0u);
}

// The broker stamps every message: a repeated message has another timestamp, and still hits.
// An output that carried its input's timestamp gets the new one; another timestamp stays.
TEST(ResultCache, TheTimestampIsNotPartOfTheKeyAndFollowsTheInput) {
  Fixture f;
  const auto t0 = Clock::now();
  ProcessResult r = result_with("same", 1000);
  Message own;
  own.value = "own";
  own.timestamp = 42;
  r.transformed_messages.push_back(own);
  f.offer(input("x", 1000), r, t0);
  ProcessResult hit;
  ASSERT_TRUE(f.find(input("x", 5000), t0, &hit));
  ASSERT_EQ(hit.transformed_messages.size(), 2u);
  EXPECT_EQ(hit.transformed_messages[0].timestamp, 5000);
  EXPECT_EQ(hit.transformed_messages[1].timestamp, 42);
}

TEST(ResultCache, KeysDifferByModuleChecksumConfigurationAndEveryInputField) {
  const ModuleRecord m = record("m-v1.0.0", "aa");
  const uint64_t salt = ResultCache::salt_for(m, "{\"a\":1}");
  EXPECT_EQ(salt, ResultCache::salt_for(m, "{\"a\":1}"));
  EXPECT_NE(salt, ResultCache::salt_for(record("m-v1.0.1", "aa"), "{\"a\":1}"));
  EXPECT_NE(salt, ResultCache::salt_for(record("m-v1.0.0", "bb"), "{\"a\":1}"));
  EXPECT_NE(salt, ResultCache::salt_for(m, "{\"a\":2}"));
  EXPECT_NE(salt, ResultCache::salt_for(m, ""));

  Fixture f;
  const auto t0 = Clock::now();
  const Message base = input("x");
  f.offer(base, result_with("v"), t0);
  EXPECT_TRUE(f.find(base, t0));
  Message other = base;
  other.value = "y";
  EXPECT_FALSE(f.find(other, t0));
  other = base;
  other.key.reset();
  EXPECT_FALSE(f.find(other, t0));
  other = base;
  other.key = "";
  EXPECT_FALSE(f.find(other, t0)) << "an empty key is not a missing one";
  other = base;
  other.headers[0].second = "2";
  EXPECT_FALSE(f.find(other, t0));
  other = base;
  other.headers.push_back({"x", ""});
  EXPECT_FALSE(f.find(other, t0));
  // Field boundaries count: "ab" + "" is not "a" + "b".
  Message split1 = base, split2 = base;
  split1.headers = {{"ab", ""}};
  split2.headers = {{"a", "b"}};
  f.offer(split1, result_with("1"), t0);
  EXPECT_FALSE(f.find(split2, t0));
  Fixture g;
  g.salt = ResultCache::salt_for(record("m-v1.0.0", "bb"), "");
  g.offer(base, result_with("v"), t0);
  f.salt = g.salt;
  EXPECT_FALSE(f.find(base, t0)) << "another module's entry";
}

TEST(ResultCache, EvictsTheLeastRecentlyUsedBeyondMaxBytesAndNeverKeepsALargerEntry) {
  // Room for two entries of ~60-byte values (each costs its key, its result and the overhead).
  const size_t entry = 2 * 100 + ResultCache::kEntryOverhead;
  Fixture f(2 * entry + 10);
  const auto t0 = Clock::now();
  f.offer(input("big"), result_with(std::string(3 * entry, 'x')), t0);
  EXPECT_FALSE(f.find(input("big"), t0));
  const std::string v(60, 'v');
  f.offer(input("a"), result_with(v), t0);
  f.offer(input("b"), result_with(v), t0);
  ASSERT_TRUE(f.find(input("a"), t0));  // "b" is now the least recently used
  f.offer(input("c"), result_with(v), t0);
  EXPECT_TRUE(f.find(input("c"), t0));
  EXPECT_TRUE(f.find(input("a"), t0));
  EXPECT_FALSE(f.find(input("b"), t0));
  EXPECT_EQ(f.cache.evictions(), 1u);
  EXPECT_LE(f.cache.bytes(), f.cache.max_bytes());
}

// The first time an input is seen its result is only remembered (by hash), the second time it
// is kept: a stream in which nothing repeats keeps nothing.
TEST(ResultCache, KeepsAResultTheSecondTimeItsInputIsSeen) {
  Fixture f;
  const auto t0 = Clock::now();
  for (int i = 0; i < 1000; ++i) f.offer_once(input(std::to_string(i)), result_with("v"), t0);
  EXPECT_EQ(f.cache.entries(), 0u);
  EXPECT_EQ(f.cache.bytes(), 0u);
  // The doorkeeper is direct-mapped: a later input may take an earlier one's slot. The input
  // seen twice in a row is kept on its second sight.
  f.offer_once(input("again"), result_with("v"), t0);
  EXPECT_EQ(f.cache.entries(), 0u);
  f.offer_once(input("again"), result_with("v"), t0);
  EXPECT_EQ(f.cache.entries(), 1u);
  EXPECT_TRUE(f.find(input("again"), t0));
  EXPECT_FALSE(f.find(input("8"), t0));
}

TEST(ResultCache, ReplacesAnEntryOfferedAgain) {
  Fixture f;
  const auto t0 = Clock::now();
  f.offer(input("x"), result_with("old"), t0);
  f.offer(input("x"), result_with("new"), t0);
  ProcessResult hit;
  ASSERT_TRUE(f.find(input("x"), t0, &hit));
  EXPECT_EQ(hit.transformed_messages.at(0).value, "new");
  EXPECT_EQ(f.cache.entries(), 1u);
}

TEST(ResultCaches, ShareTheBoundBetweenWorkersAndSumTheirFigures) {
  ResultCaches caches;
  caches.configure(8 << 20, 2);
  auto a = caches.create();
  auto b = caches.create();
  EXPECT_EQ(a->max_bytes(), 4u << 20);
  EXPECT_EQ(b->max_bytes(), 4u << 20);
  Fixture f;
  const std::vector<Message> inputs{input("x")};  // the keys view them
  const auto keys = f.keys_of(inputs);
  ProcessResult out;
  const auto t0 = Clock::now();
  a->offer(keys, 0, 1000, result_with("v"), seconds(60), t0);
  a->offer(keys, 0, 1000, result_with("v"), seconds(60), t0);
  EXPECT_TRUE(a->find(keys, 0, 1000, t0, &out));
  EXPECT_FALSE(b->find(keys, 0, 1000, t0, &out)) << "each worker has its own";
  EXPECT_EQ(caches.hits(), 1u);
  EXPECT_EQ(caches.misses(), 1u);
  EXPECT_EQ(caches.entries(), 1u);
}

}  // namespace
}  // namespace wasmq::etl
