#include "etl/result_cache.h"

#include "common/bincode.h"
#include "common/hash.h"

namespace wasmq::etl {
namespace {

// Doorkeeper slots: a power of two. 8 bytes each, so 512 KiB per worker.
constexpr size_t kSeenSlots = size_t{1} << 16;

}  // namespace

ResultCache::ResultCache(size_t max_bytes) : max_bytes_(max_bytes) {}

uint64_t ResultCache::salt_for(const ModuleRecord& module, std::string_view config_json) {
  // Neither an id, a hex checksum nor serialized JSON holds a NUL: the parts cannot run into
  // each other.
  std::string identity = module.id;
  identity += '\0';
  identity += module.sha256;
  identity += '\0';
  identity += config_json;
  return hash_bytes(identity, hash_seed());
}

void ResultCache::make_keys(uint64_t salt, std::span<const Message* const> inputs, Keys* keys) {
  keys->salt = salt;
  keys->keys.clear();
  keys->keys.reserve(inputs.size());
  const uint64_t seed = hash_seed() ^ salt;
  for (const Message* m : inputs) {
    // Each part's hash seeds the next; hash_bytes mixes in every part's length, so that parts
    // cannot run into each other ("ab" + "c" is not "a" + "bc").
    uint64_t h = hash_bytes(m->value, seed ^ (m->key ? 1 : 0) ^ (m->headers.size() << 1));
    if (m->key) h = hash_bytes(*m->key, h);
    for (const auto& [name, value] : m->headers) {
      h = hash_bytes(name, h);
      h = hash_bytes(value, h);
    }
    keys->keys.push_back({h, m});
  }
}

bool ResultCache::same_input(const Entry& e, uint64_t salt, const Message& m) {
  return e.salt == salt && e.key == m.key && e.value == m.value && e.headers == m.headers;
}

bool ResultCache::find(const Keys& keys, size_t i, int64_t timestamp, Clock::time_point now,
                       ProcessResult* out) {
  const Keys::Key& k = keys.keys[i];
  auto it = index_.find(k.hash);
  if (it == index_.end() || !same_input(*it->second, keys.salt, *k.input)) {
    misses_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  if (it->second->expires <= now) {
    erase(it->second);
    misses_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  const Entry& e = *it->second;
  *out = e.result;
  for (size_t m = 0; m < out->transformed_messages.size(); ++m) {
    if (e.timestamp_from_input[m]) out->transformed_messages[m].timestamp = timestamp;
  }
  hits_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void ResultCache::offer(const Keys& keys, size_t i, int64_t timestamp, const ProcessResult& result,
                        std::chrono::seconds ttl, Clock::time_point now) {
  const Keys::Key& k = keys.keys[i];
  if (seen_.empty()) seen_.assign(kSeenSlots, 0);
  uint64_t& seen = seen_[k.hash & (kSeenSlots - 1)];
  if (seen != k.hash) {
    seen = k.hash;  // the first time: remembered, nothing kept
    return;
  }
  const Message& in = *k.input;
  size_t input_bytes = in.value.size() + (in.key ? in.key->size() : 0);
  for (const auto& [name, value] : in.headers) {
    input_bytes += name.size() + value.size() + kHeaderOverhead;
  }
  const size_t bytes = input_bytes + bincode::encoded_size(result) + kEntryOverhead;
  if (bytes > max_bytes_) return;
  if (auto it = index_.find(k.hash); it != index_.end()) erase(it->second);
  Entry e;
  e.hash = k.hash;
  e.salt = keys.salt;
  e.key = in.key;
  e.value = in.value;
  e.headers = in.headers;
  e.result = result;
  e.timestamp_from_input.reserve(result.transformed_messages.size());
  for (const Message& m : result.transformed_messages) {
    e.timestamp_from_input.push_back(m.timestamp == timestamp);
  }
  e.expires = now + ttl;
  e.bytes = bytes;
  lru_.push_front(std::move(e));
  index_.emplace(k.hash, lru_.begin());
  used_bytes_ += bytes;
  entries_.store(lru_.size(), std::memory_order_relaxed);
  evict();
  bytes_.store(used_bytes_, std::memory_order_relaxed);
}

void ResultCache::erase(std::list<Entry>::iterator it) {
  used_bytes_ -= it->bytes;
  index_.erase(it->hash);
  lru_.erase(it);
  entries_.store(lru_.size(), std::memory_order_relaxed);
  bytes_.store(used_bytes_, std::memory_order_relaxed);
}

void ResultCache::evict() {
  while (used_bytes_ > max_bytes_ && !lru_.empty()) {
    erase(std::prev(lru_.end()));
    evictions_.fetch_add(1, std::memory_order_relaxed);
  }
}

void ResultCaches::configure(size_t max_bytes, size_t workers) {
  MutexLock lock(mutex_);
  max_bytes_ = max_bytes;
  workers_ = std::max<size_t>(workers, 1);
}

std::shared_ptr<ResultCache> ResultCaches::create() {
  MutexLock lock(mutex_);
  caches_.push_back(std::make_shared<ResultCache>(max_bytes_ / workers_));
  return caches_.back();
}

template <typename F>
uint64_t ResultCaches::sum(F f) const {
  MutexLock lock(mutex_);
  uint64_t total = 0;
  for (const auto& c : caches_) total += f(*c);
  return total;
}

uint64_t ResultCaches::hits() const { return sum([](const ResultCache& c) { return c.hits(); }); }
uint64_t ResultCaches::misses() const {
  return sum([](const ResultCache& c) { return c.misses(); });
}
uint64_t ResultCaches::entries() const {
  return sum([](const ResultCache& c) { return c.entries(); });
}
uint64_t ResultCaches::bytes() const { return sum([](const ResultCache& c) { return c.bytes(); }); }
uint64_t ResultCaches::evictions() const {
  return sum([](const ResultCache& c) { return c.evictions(); });
}
size_t ResultCaches::max_bytes() const {
  MutexLock lock(mutex_);
  return max_bytes_;
}

}  // namespace wasmq::etl
