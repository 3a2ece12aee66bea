#include "storage/appender.h"

#include <unordered_map>

namespace wasmq::storage {

Appender::Appender() : thread_([this] { run(); }) {}

Appender::~Appender() {
  {
    MutexLock lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void Appender::append(PartitionLog& log, std::shared_ptr<const void> owner,
                      std::vector<EncodedBatch> batches, Done done) {
  {
    MutexLock lock(mutex_);
    queue_.push_back(Job{&log, std::move(owner), std::move(batches), std::move(done)});
    ++queued_;
  }
  wake_.notify_one();
}

void Appender::drain() {
  MutexLock lock(mutex_);
  const uint64_t target = queued_;
  while (finished_ < target) drained_.wait(mutex_);
}

void Appender::run() {
  std::vector<Job> jobs;
  for (;;) {
    {
      MutexLock lock(mutex_);
      while (!stopping_ && queue_.empty()) wake_.wait(mutex_);
      if (queue_.empty()) return;  // stopping, and nothing left
      jobs.swap(queue_);
    }
    // Per partition, in queue order: all its batches of this round in one append_batches call.
    std::unordered_map<PartitionLog*, std::vector<size_t>> by_log;
    std::vector<PartitionLog*> order;
    for (size_t i = 0; i < jobs.size(); ++i) {
      auto [it, inserted] = by_log.try_emplace(jobs[i].log);
      if (inserted) order.push_back(jobs[i].log);
      it->second.push_back(i);
    }
    for (PartitionLog* log : order) {
      const auto& members = by_log[log];
      std::vector<EncodedBatch> batches;
      for (size_t i : members) {
        for (auto& b : jobs[i].batches) batches.push_back(std::move(b));
      }
      auto results = log->append_batches(batches);
      size_t at = 0;
      for (size_t i : members) {
        const size_t n = jobs[i].batches.size();
        std::vector<Result<AppendResult>> mine(std::make_move_iterator(results.begin() + at),
                                               std::make_move_iterator(results.begin() + at + n));
        at += n;
        if (jobs[i].done) jobs[i].done(std::move(mine));
      }
    }
    const uint64_t done = jobs.size();
    jobs.clear();
    {
      MutexLock lock(mutex_);
      finished_ += done;
    }
    drained_.notify_all();
  }
}

}  // namespace wasmq::storage
