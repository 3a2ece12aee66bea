#include "etl/workers.h"

#include <future>

#include "common/log.h"

namespace wasmq::etl {

Result<std::unique_ptr<Workers>> Workers::start(size_t count, Runtime& runtime) {
  std::unique_ptr<Workers> workers(new Workers());
  count = std::max<size_t>(count, 1);
  for (size_t i = 0; i < count; ++i) {
    std::promise<Status> started;
    auto ready = started.get_future();
    // std::thread gets glibc's default stack (8 MiB), well above V8's stack limit for guests
    // (wasm::EngineOptions::stack_size_kb), as a deep recursion in a guest requires.
    workers->threads_.emplace_back([w = workers.get(), &runtime, &started] {
      auto sandbox = wasm::Sandbox::create();
      if (!sandbox.is_ok()) {
        started.set_value(sandbox.status());
        return;
      }
      Executor executor(**sandbox, runtime);
      started.set_value(Status::ok());
      w->run(**sandbox, executor);
    });
    if (Status s = ready.get(); !s.is_ok()) {
      workers->threads_.back().join();
      workers->threads_.pop_back();
      return s.with_context("cannot start ETL worker " + std::to_string(i));
    }
  }
  log::get("etl").info("{} ETL worker(s) started", count);
  return workers;
}

Workers::~Workers() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void Workers::submit(Job job) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(job));
  }
  wake_.notify_one();
}

size_t Workers::queued() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

void Workers::run(wasm::Sandbox& sandbox, Executor& executor) {
  while (true) {
    Job job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and every job has run
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    try {
      job(sandbox, executor);
    } catch (const std::exception& e) {
      // Jobs report failures as values; this is a bug or memory exhaustion. The worker goes on.
      log::get("etl").error("ETL job failed: {}", e.what());
    }
  }
}

}  // namespace wasmq::etl
