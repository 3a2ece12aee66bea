// The threads that do the storage work that is neither appending nor background flushing:
// consumers' reads and topic creation and removal. The I/O threads and the ETL workers hand such
// work here and go on; its result goes back through the caller's callback (for an HTTP handler:
// a Handoff). So a read that misses the page cache, or the mkdir and fsyncs of a new topic,
// never holds a thread that serves other connections or runs modules.
//
// Order: none between tasks (there are several threads); a task that must follow another is
// queued by it.
// Threads: post() from any thread; tasks run on one of the pool's threads and may block on the
// disk, never on the network or on another task.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "common/mutex.h"

namespace wasmq::storage {

class DiskTasks {
 public:
  using Task = std::function<void()>;

  explicit DiskTasks(size_t threads = 2);
  // Runs what is queued, then stops.
  ~DiskTasks();
  DiskTasks(const DiskTasks&) = delete;
  DiskTasks& operator=(const DiskTasks&) = delete;

  void post(Task task);

  // Tasks queued and not yet started (for figures and tests).
  size_t queued() const;

 private:
  void run();

  mutable Mutex mutex_;
  CondVar wake_;
  std::deque<Task> queue_ GUARDED_BY(mutex_);
  bool stopping_ GUARDED_BY(mutex_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace wasmq::storage
