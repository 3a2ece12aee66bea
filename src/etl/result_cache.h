// Module results by input (pipelines.md, "Module result caching"): one cache per ETL worker,
// used by that worker's thread only, so a lookup takes no lock and allocates nothing.
//
// Key: the module use's salt (module id, checksum and init configuration: salt_for()) and the
// input's key, value and headers, hashed in place with a fast seeded hash (no copy of the
// input: a miss costs the hash and a probe) and compared in full on a match. The input's timestamp is not part of it: the broker stamps every produced message, so
// with it no repeated message would ever hit. An output whose timestamp was its input's gets
// the new input's timestamp on a hit; any other timestamp is returned as the module set it.
// (A module whose output depends on the timestamp otherwise should not cache.)
//
// Admission: a result is kept the second time its input is seen (a table of 65,536 recent key
// hashes, TinyLFU's "doorkeeper"), and served from the third on; so a stream in which nothing
// repeats costs a hash and a table probe per message, not an insert and an eviction.
//
// Bounds: `max_bytes` over the entries' keys, results and bookkeeping; beyond it the least
// recently used entries go. An entry expires after its TTL.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <optional>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/message.h"
#include "common/mutex.h"
#include "etl/module_registry.h"

namespace wasmq::etl {

class ResultCache {
 public:
  using Clock = std::chrono::steady_clock;

  // The keys of one batch of inputs, made once for find() and offer(): the hash of each, and
  // the input itself (which must outlive the Keys).
  struct Keys {
    struct Key {
      uint64_t hash;
      const Message* input;
    };
    uint64_t salt = 0;
    std::vector<Key> keys;
  };

  explicit ResultCache(size_t max_bytes = 64 << 20);
  ResultCache(const ResultCache&) = delete;
  ResultCache& operator=(const ResultCache&) = delete;

  // The salt of a module version run with init configuration `config_json` (empty: none).
  static uint64_t salt_for(const ModuleRecord& module, std::string_view config_json);
  // The keys of `inputs` for a module use with `salt`, into `keys` (replacing what it held).
  static void make_keys(uint64_t salt, std::span<const Message* const> inputs, Keys* keys);

  // The cached result for input `i` of `keys` (whose timestamp is `timestamp`), if present and
  // fresh, into `out`.
  bool find(const Keys& keys, size_t i, int64_t timestamp, Clock::time_point now,
            ProcessResult* out);
  // Offers the result of input `i` of `keys` (whose timestamp was `timestamp`): kept for `ttl`
  // (see "Admission").
  void offer(const Keys& keys, size_t i, int64_t timestamp, const ProcessResult& result,
             std::chrono::seconds ttl, Clock::time_point now);

  // Figures, readable from any thread.
  uint64_t hits() const { return hits_.load(std::memory_order_relaxed); }
  uint64_t misses() const { return misses_.load(std::memory_order_relaxed); }
  uint64_t entries() const { return entries_.load(std::memory_order_relaxed); }
  uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  uint64_t evictions() const { return evictions_.load(std::memory_order_relaxed); }
  size_t max_bytes() const { return max_bytes_; }

  // What an entry costs besides its key and result bytes (list and map nodes, the entry).
  static constexpr size_t kEntryOverhead = 160;
  // What each header of a kept input costs besides its bytes (the pair of strings).
  static constexpr size_t kHeaderOverhead = 64;

 private:
  struct Entry {
    uint64_t hash;
    uint64_t salt;
    // The input's key, value and headers (its timestamp is no part of the key).
    std::optional<std::string> key;
    std::string value;
    std::vector<Header> headers;
    ProcessResult result;
    std::vector<bool> timestamp_from_input;  // per output
    Clock::time_point expires;
    size_t bytes;
  };
  // Whether `e` was made for input `m` of a use with `salt`.
  static bool same_input(const Entry& e, uint64_t salt, const Message& m);
  void erase(std::list<Entry>::iterator it);
  void evict();

  const size_t max_bytes_;
  std::list<Entry> lru_;  // most recent first
  std::unordered_map<uint64_t, std::list<Entry>::iterator> index_;
  std::vector<uint64_t> seen_;  // doorkeeper: recent key hashes, direct-mapped
  size_t used_bytes_ = 0;
  std::atomic<uint64_t> hits_{0}, misses_{0}, entries_{0}, bytes_{0}, evictions_{0};
};

// The workers' caches: each worker creates its own; figures are summed over them.
class ResultCaches {
 public:
  // The bound over all workers' caches (etl.result_cache_max_bytes), shared equally by
  // `workers`. Applies to caches created afterwards.
  void configure(size_t max_bytes, size_t workers);
  std::shared_ptr<ResultCache> create();

  uint64_t hits() const;
  uint64_t misses() const;
  uint64_t entries() const;
  uint64_t bytes() const;
  uint64_t evictions() const;
  size_t max_bytes() const;

 private:
  template <typename F>
  uint64_t sum(F f) const;
  mutable Mutex mutex_;
  size_t max_bytes_ GUARDED_BY(mutex_) = 64 << 20;
  size_t workers_ GUARDED_BY(mutex_) = 1;
  std::vector<std::shared_ptr<ResultCache>> caches_ GUARDED_BY(mutex_);
};

}  // namespace wasmq::etl
