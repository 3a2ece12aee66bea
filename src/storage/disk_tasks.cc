#include "storage/disk_tasks.h"

#include <exception>

#include "common/log.h"

namespace wasmq::storage {

DiskTasks::DiskTasks(size_t threads) {
  if (threads == 0) threads = 1;
  threads_.reserve(threads);
  for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
}

DiskTasks::~DiskTasks() {
  {
    MutexLock lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void DiskTasks::post(Task task) {
  {
    MutexLock lock(mutex_);
    queue_.push_back(std::move(task));
  }
  wake_.notify_one();
}

size_t DiskTasks::queued() const {
  MutexLock lock(mutex_);
  return queue_.size();
}

void DiskTasks::run() {
  for (;;) {
    Task task;
    {
      MutexLock lock(mutex_);
      while (!stopping_ && queue_.empty()) wake_.wait(mutex_);
      if (queue_.empty()) return;  // stopping, and nothing left
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    // A task reports its own failures through its callback; one that throws anyway must not
    // take the thread (and every later task) with it.
    try {
      task();
    } catch (const std::exception& e) {
      log::get("storage").error("a disk task failed: {}", e.what());
    } catch (...) {
      log::get("storage").error("a disk task failed");
    }
  }
}

}  // namespace wasmq::storage
