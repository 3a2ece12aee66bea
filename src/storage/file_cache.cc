#include "storage/file_cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace wasmq::storage {

OpenFile::~OpenFile() { ::close(fd_); }

FileCache::FileCache(size_t capacity) : capacity_(capacity < 2 ? 2 : capacity) {}

uint64_t FileCache::new_keys(uint64_t count) {
  return next_key_.fetch_add(count, std::memory_order_relaxed);
}

Result<std::shared_ptr<OpenFile>> FileCache::acquire(uint64_t key,
                                                     const std::filesystem::path& path, int flags) {
  {
    MutexLock lock(mutex_);
    auto it = entries_.find(key);
    if (it != entries_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.position);
      return it->second.file;
    }
  }
  // Opened outside the lock: a slow disk must not stall every other partition's lookups.
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
    // Out of descriptors (sockets or other files took them): give back half of ours, retry.
    std::vector<std::shared_ptr<OpenFile>> closing;
    {
      MutexLock lock(mutex_);
      while (entries_.size() > capacity_ / 2) {
        auto victim = entries_.find(lru_.back());
        closing.push_back(std::move(victim->second.file));
        entries_.erase(victim);
        lru_.pop_back();
      }
    }
    closing.clear();
    fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  }
  if (fd < 0) {
    const int saved = errno;
    Status failed(StatusCode::kIo, std::strerror(saved));
    errno = saved;
    return failed;
  }
  opens_.fetch_add(1, std::memory_order_relaxed);
  auto file = std::make_shared<OpenFile>(fd);
  std::shared_ptr<OpenFile> evicted_holder;
  MutexLock lock(mutex_);
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    // Another thread opened it meanwhile: use theirs, close ours (after the lock).
    lru_.splice(lru_.begin(), lru_, it->second.position);
    evicted_holder = std::move(file);
    return it->second.file;
  }
  insert_locked(key, file);
  return file;
}

void FileCache::insert_locked(uint64_t key, std::shared_ptr<OpenFile> file) {
  lru_.push_front(key);
  entries_.emplace(key, Entry{std::move(file), lru_.begin()});
  trim_locked(capacity_);
}

void FileCache::trim_locked(size_t keep) {
  // Closing a descriptor is cheap (the data stays in the page cache; a later fdatasync through a
  // new descriptor still reports a write-back error nobody has seen), so it is done here.
  while (entries_.size() > keep) {
    entries_.erase(lru_.back());
    lru_.pop_back();
  }
}

void FileCache::forget(uint64_t key) {
  std::shared_ptr<OpenFile> closing;
  MutexLock lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  closing = std::move(it->second.file);
  lru_.erase(it->second.position);
  entries_.erase(it);
}

size_t FileCache::cached() const {
  MutexLock lock(mutex_);
  return entries_.size();
}

}  // namespace wasmq::storage
