// The ETL worker threads (`etl.workers`): each owns one V8 isolate (a wasm::Sandbox) and an
// Executor, and takes jobs from one shared queue. Produce batches, module compilations and dry
// runs are jobs; I/O threads only submit them and never run WebAssembly.
//
// Threads: submit() from any thread. A job runs on one worker thread with that worker's sandbox
// and executor; it must not block on another job. The destructor runs the jobs still queued,
// then joins the threads.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/status.h"
#include "etl/executor.h"
#include "etl/runtime.h"
#include "wasm/sandbox.h"

namespace wasmq::etl {

class Workers {
 public:
  using Job = std::function<void(wasm::Sandbox&, Executor&)>;

  // Starts `count` workers (at least one) sharing `runtime`, which must outlive them. Fails when
  // a worker cannot create its isolate.
  static Result<std::unique_ptr<Workers>> start(size_t count, Runtime& runtime);
  ~Workers();
  Workers(const Workers&) = delete;
  Workers& operator=(const Workers&) = delete;

  void submit(Job job);

  size_t size() const { return threads_.size(); }
  // Jobs waiting for a worker.
  size_t queued() const;

 private:
  Workers() = default;
  void run(wasm::Sandbox& sandbox, Executor& executor);

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queue_;  // guarded by mutex_
  bool stopping_ = false;  // guarded by mutex_
  std::vector<std::thread> threads_;
};

}  // namespace wasmq::etl
