#include "etl/runtime.h"

#include "common/bincode.h"
#include "etl/compiler.h"

namespace wasmq::etl {

void ModuleCache::set_limits(size_t max_entries, std::chrono::seconds ttl) {
  MutexLock lock(mutex_);
  max_entries_ = std::max<size_t>(max_entries, 1);
  ttl_ = ttl;
  evict_locked();
}

void ModuleCache::set_compiler(ModuleCompiler* compiler) {
  MutexLock lock(mutex_);
  compiler_ = compiler;
}

void ModuleCache::set_in_use(std::set<std::string, std::less<>> module_ids) {
  MutexLock lock(mutex_);
  in_use_ = std::move(module_ids);
  evict_locked();
}

Result<std::shared_ptr<const wasm::Module>> ModuleCache::get(const ModuleRecord& record,
                                                             const wasm::InstanceSettings& settings,
                                                             wasm::Sandbox& sandbox,
                                                             Clock::time_point now) {
  // The time limit is passed per call, so it is not part of the key.
  // The checksum too: a module deleted and uploaded again keeps its id but not its binary.
  std::string key = record.id + '\0' + record.sha256 + '\0' +
                    std::to_string(settings.memory_limit_bytes) + '\0' +
                    std::to_string(settings.max_output_bytes) + '\0' + settings.config_json;
  std::shared_ptr<Entry> entry;
  ModuleCompiler* compiler = nullptr;
  {
    MutexLock lock(mutex_);
    auto& slot = entries_[key];
    if (slot) {
      entry = slot;
      while (!entry->ready) compiled_.wait(mutex_);
      if (!entry->module) return entry->error;
      ++hits_;
      // Still cached (not evicted while this call waited): now the most recently used.
      auto it = entries_.find(key);
      if (it != entries_.end() && it->second == entry) {
        entry->last_used = std::max(entry->last_used, now);
        lru_.splice(lru_.begin(), lru_, entry->lru);
      }
      return entry->module;
    }
    slot = std::make_shared<Entry>();
    entry = slot;
    ++compilations_;
    compiler = compiler_;
  }
  auto loaded = compiler ? compiler->compile(record.id, *record.binary, settings)
                         : sandbox.load(record.id, *record.binary, settings);
  MutexLock lock(mutex_);
  entry->ready = true;
  if (loaded.is_ok()) {
    entry->module = *loaded;
    entry->last_used = now;
    lru_.push_front(key);
    entry->lru = lru_.begin();
    evict_locked();
  } else {
    entry->error = loaded.status();
    entries_.erase(key);  // a later call may try again (the failure is reported to this one)
  }
  compiled_.notify_all();
  if (entry->module) return entry->module;
  return entry->error;
}

void ModuleCache::evict_locked() {
  // The bound counts the modules not in use; from the least recently used end, skipping those
  // in use, until the rest fits.
  size_t count = 0;
  for (const auto& key : lru_) {
    if (!in_use_.count(entries_.find(key)->second->module->id())) ++count;
  }
  for (auto key = lru_.end(); count > max_entries_ && key != lru_.begin();) {
    --key;
    auto it = entries_.find(*key);
    if (in_use_.count(it->second->module->id())) continue;
    entries_.erase(it);
    key = lru_.erase(key);
    --count;
    ++evicted_lru_;
  }
}

void ModuleCache::prune(const ModuleRegistry& registry) {
  MutexLock lock(mutex_);
  for (auto it = entries_.begin(); it != entries_.end();) {
    const auto& e = *it;
    if (!e.second->ready || !e.second->module || registry.find(e.second->module->id())) {
      ++it;
      continue;
    }
    lru_.erase(e.second->lru);
    it = entries_.erase(it);
  }
}

size_t ModuleCache::collect(Clock::time_point now) {
  MutexLock lock(mutex_);
  size_t dropped = 0;
  for (auto key = lru_.begin(); key != lru_.end();) {
    auto it = entries_.find(*key);
    if (it->second->last_used + ttl_ > now) {
      ++key;
      continue;
    }
    entries_.erase(it);
    key = lru_.erase(key);
    ++dropped;
  }
  evicted_ttl_ += dropped;
  return dropped;
}

std::vector<std::shared_ptr<const wasm::Module>> ModuleCache::modules_of(
    std::string_view module_id) const {
  MutexLock lock(mutex_);
  std::vector<std::shared_ptr<const wasm::Module>> out;
  for (const auto& [key, entry] : entries_) {
    if (entry->ready && entry->module && entry->module->id() == module_id) {
      out.push_back(entry->module);
    }
  }
  return out;
}

size_t ModuleCache::size() const {
  MutexLock lock(mutex_);
  return entries_.size();
}

ModuleCache::Stats ModuleCache::stats() const {
  MutexLock lock(mutex_);
  Stats s;
  s.size = lru_.size();
  s.max_entries = max_entries_;
  s.ttl_seconds = static_cast<uint64_t>(ttl_.count());
  s.hits = hits_;
  s.compilations = compilations_;
  s.evicted_lru = evicted_lru_;
  s.evicted_ttl = evicted_ttl_;
  return s;
}

CircuitBreakers::Admission CircuitBreakers::Breaker::admit(
    std::chrono::steady_clock::time_point now) {
  if (!open_.load(std::memory_order_acquire)) return Admission::kClosed;
  MutexLock lock(mutex_);
  if (!open_.load(std::memory_order_relaxed)) return Admission::kClosed;
  if (now < open_until_ || trial_running_) return Admission::kOpen;
  trial_running_ = true;
  return Admission::kTrial;
}

CircuitBreakers::Transition CircuitBreakers::Breaker::record(
    bool success, uint32_t threshold, std::chrono::milliseconds open_for,
    std::chrono::steady_clock::time_point now) {
  if (success && quiet_.load(std::memory_order_acquire)) return Transition::kNone;
  MutexLock lock(mutex_);
  // Open with no trial running: the call was admitted before the breaker opened. Only the trial
  // decides what happens next (pipelines.md), so a late success does not close the breaker and
  // a late failure does not extend its open time.
  const bool was_open = open_.load(std::memory_order_relaxed);
  if (was_open && !trial_running_) return Transition::kNone;
  if (success) {
    consecutive_failures_ = 0;
    trial_running_ = false;
    open_.store(false, std::memory_order_release);
    quiet_.store(true, std::memory_order_release);
    return was_open ? Transition::kClosed : Transition::kNone;
  }
  ++consecutive_failures_;
  quiet_.store(false, std::memory_order_release);
  if (trial_running_ || consecutive_failures_ >= threshold) {
    open_.store(true, std::memory_order_release);
    trial_running_ = false;
    open_until_ = now + open_for;
    ++times_opened_;
    return was_open ? Transition::kReopened : Transition::kOpened;
  }
  return Transition::kNone;
}

bool CircuitBreakers::Breaker::is_open(std::chrono::steady_clock::time_point now) const {
  MutexLock lock(mutex_);
  return open_.load(std::memory_order_relaxed) && now < open_until_;
}

CircuitBreakers::Snapshot CircuitBreakers::Breaker::snapshot(
    std::chrono::steady_clock::time_point now) const {
  MutexLock lock(mutex_);
  Snapshot out;
  out.consecutive_failures = consecutive_failures_;
  out.times_opened = times_opened_;
  if (!open_.load(std::memory_order_relaxed)) {
    out.state = "closed";
  } else if (now < open_until_ && !trial_running_) {
    out.state = "open";
    out.open_remaining_ms =
        std::chrono::ceil<std::chrono::milliseconds>(open_until_ - now).count();
  } else {
    out.state = "half_open";
  }
  return out;
}

void CircuitBreakers::Breaker::reset() {
  MutexLock lock(mutex_);
  consecutive_failures_ = 0;
  trial_running_ = false;
  open_until_ = {};
  open_.store(false, std::memory_order_release);
  quiet_.store(true, std::memory_order_release);
}

std::shared_ptr<CircuitBreakers::Breaker> CircuitBreakers::get(const std::string& key) {
  MutexLock lock(mutex_);
  auto& breaker = breakers_[key];
  if (!breaker) breaker = std::make_shared<Breaker>();
  return breaker;
}

void CircuitBreakers::reset(std::string_view key_prefix) {
  MutexLock lock(mutex_);
  for (auto& [key, breaker] : breakers_) {
    if (key.starts_with(key_prefix)) breaker->reset();
  }
}

std::vector<std::pair<std::string, CircuitBreakers::Snapshot>> CircuitBreakers::list(
    std::string_view key_prefix, std::chrono::steady_clock::time_point now) const {
  std::vector<std::pair<std::string, Snapshot>> out;
  MutexLock lock(mutex_);
  for (const auto& [key, breaker] : breakers_) {
    if (key.starts_with(key_prefix)) out.emplace_back(key, breaker->snapshot(now));
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

bool CircuitBreakers::is_open(const std::string& key,
                              std::chrono::steady_clock::time_point now) const {
  std::shared_ptr<Breaker> breaker;
  {
    MutexLock lock(mutex_);
    auto it = breakers_.find(key);
    if (it == breakers_.end()) return false;
    breaker = it->second;
  }
  return breaker->is_open(now);
}

ConcurrencyLimits::Permit::~Permit() {
  if (limits_) limits_->release(key_);
}

bool ConcurrencyLimits::try_take(const std::string& key, uint32_t per_module, uint32_t total) {
  if (total_running_ >= std::max<uint32_t>(total, 1)) return false;
  auto it = running_.find(key);
  const uint32_t mine = it == running_.end() ? 0 : it->second;
  if (mine >= std::max<uint32_t>(per_module, 1)) return false;
  if (it == running_.end()) {
    running_.emplace(key, 1);
  } else {
    ++it->second;
  }
  ++total_running_;
  return true;
}

void ConcurrencyLimits::release(const std::string& key) {
  std::vector<Waiter> granted;
  {
    MutexLock lock(mutex_);
    if (--running_[key] == 0) running_.erase(key);
    --total_running_;
    // The oldest waiters the freed place lets run (one of another module may run when the
    // oldest waits for its own module's limit).
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if (try_take(it->key, it->per_module, it->total)) {
        granted.push_back(std::move(*it));
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (const Waiter& w : granted) w.scheduler->resume_soon(w.handle);
}

uint32_t ConcurrencyLimits::running() const {
  MutexLock lock(mutex_);
  return total_running_;
}

size_t ConcurrencyLimits::waiting() const {
  MutexLock lock(mutex_);
  return waiters_.size();
}

}  // namespace wasmq::etl
