// A bounded cache of open segment files, shared by every partition of a store, so that the
// number of descriptors the broker holds follows the files in use, not the files that exist.
//
// Each file has a key (from new_keys). acquire() returns the file's open descriptor, opening it
// when it is not cached and closing the least recently used ones beyond the capacity. A handle
// keeps its descriptor open while it is held, even after the cache let go of it: a reader or
// writer never sees its descriptor closed under it. So the open descriptors are at most the
// capacity plus the handles in use.
//
// Threads: every method may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "common/mutex.h"
#include "common/status.h"

namespace wasmq::storage {

// An open descriptor, closed when the last holder lets go.
class OpenFile {
 public:
  explicit OpenFile(int fd) : fd_(fd) {}
  ~OpenFile();
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;
  int fd() const { return fd_; }

 private:
  const int fd_;
};

class FileCache {
 public:
  // `capacity`: descriptors kept open when nobody uses them (at least 2).
  explicit FileCache(size_t capacity);

  // `count` consecutive keys no other caller gets.
  uint64_t new_keys(uint64_t count);

  // The open file for `key`, opened at `path` with `flags` (open(2)) when not cached. On failure
  // the Status carries the cause (strerror) but not the path; errno is left set.
  Result<std::shared_ptr<OpenFile>> acquire(uint64_t key, const std::filesystem::path& path,
                                            int flags);
  // Closes the cached descriptor of `key`, if any (a file removed or a log closed).
  void forget(uint64_t key);

  size_t capacity() const { return capacity_; }
  // Descriptors held by the cache now.
  size_t cached() const;
  // Files opened since the start (a figure for tests and metrics).
  uint64_t opens() const { return opens_.load(std::memory_order_relaxed); }

 private:
  void insert_locked(uint64_t key, std::shared_ptr<OpenFile> file) REQUIRES(mutex_);
  void trim_locked(size_t keep) REQUIRES(mutex_);

  const size_t capacity_;
  std::atomic<uint64_t> next_key_{1};
  std::atomic<uint64_t> opens_{0};
  mutable Mutex mutex_;
  struct Entry {
    std::shared_ptr<OpenFile> file;
    std::list<uint64_t>::iterator position;
  };
  std::list<uint64_t> lru_ GUARDED_BY(mutex_);  // most recent first
  std::unordered_map<uint64_t, Entry> entries_ GUARDED_BY(mutex_);
};

}  // namespace wasmq::storage
