// The ETL worker threads (`etl.workers`): each owns one V8 isolate (a wasm::Sandbox, with its
// instance pool) and an Executor, and takes jobs from one shared queue. Produce batches, module
// compilations and dry runs are jobs; I/O threads only submit them and never run WebAssembly.
// Work that must touch every sandbox (pool warm-ups, cleanups, settings) is broadcast: each
// worker also has a queue of its own, which it serves before the shared one.
//
// Threads: submit() and broadcast() from any thread. A job runs on one worker thread with that
// worker's sandbox and executor; it must not block on another job. The destructor runs the jobs
// still queued, then joins the threads.
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
  // A job of a broadcast: `worker` is the index of the worker running it (0 .. size()-1).
  using WorkerJob = std::function<void(size_t worker, wasm::Sandbox&, Executor&)>;

  // Starts `count` workers (at least one) sharing `runtime`, which must outlive them; each
  // sandbox's pool runs by `pool`. Fails when a worker cannot create its isolate.
  static Result<std::unique_ptr<Workers>> start(size_t count, Runtime& runtime,
                                                wasm::PoolOptions pool = {});
  ~Workers();
  Workers(const Workers&) = delete;
  Workers& operator=(const Workers&) = delete;

  void submit(Job job);
  // Runs `job` once on every worker, each as the next job it takes (after the job it is
  // running, before the shared queue), then calls `done` once, on the worker that finished
  // last. `job` is shared by the workers: it must be safe to call on several at once.
  void broadcast(WorkerJob job, std::function<void()> done = {});

  size_t size() const { return threads_.size(); }
  // Jobs waiting for a worker (the shared queue).
  size_t queued() const;
  // Each worker's pool figures, by worker index; readable from any thread.
  const std::vector<std::shared_ptr<const wasm::PoolFigures>>& pool_figures() const {
    return figures_;
  }

 private:
  Workers() = default;
  void run(size_t index, wasm::Sandbox& sandbox, Executor& executor);

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> queue_;             // guarded by mutex_
  std::vector<std::deque<Job>> own_;  // per worker; guarded by mutex_
  bool stopping_ = false;             // guarded by mutex_
  std::vector<std::thread> threads_;
  std::vector<std::shared_ptr<const wasm::PoolFigures>> figures_;  // set at start
};

}  // namespace wasmq::etl
