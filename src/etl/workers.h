// The ETL worker threads (`etl.workers`): each owns one V8 isolate (a wasm::Sandbox, with its
// instance pool) and an Executor, and takes jobs from one shared queue. Produce batches, module
// compilations and dry runs are jobs; I/O threads only submit them and never run WebAssembly.
// Work that must touch every sandbox (pool warm-ups, cleanups, settings) is broadcast: each
// worker also has a queue of its own, which it serves before the shared one.
//
// A worker never sleeps while there is work: a run that must wait (a retry's backoff, a
// concurrency permit) is suspended (etl/task.h), and its worker serves other jobs until the run
// may continue. A worker continues its own suspended runs before it takes a new job.
//
// Threads: submit() and broadcast() from any thread. A job runs on one worker thread with that
// worker's sandbox and executor; it must not block on another job. The destructor runs the jobs
// still queued and the suspended runs to their end, then joins the threads.
#pragma once

#include <atomic>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "etl/executor.h"
#include "etl/runtime.h"
#include "etl/task.h"
#include "wasm/sandbox.h"

namespace wasmq::etl {

// How much produce work may wait for or run on the workers at once (Workers::admit).
struct AdmissionLimits {
  size_t max_batches = 64;            // produce batches admitted and not yet finished
  uint64_t max_bytes = 256ull << 20;  // their input messages' bytes (bincode sizes)
};

class Workers;

// One produce batch's place among the admitted ones (Workers::admit); the place is given back
// when the Admission is destroyed, from any thread. Move-only. The Workers must outlive it.
class Admission {
 public:
  Admission() = default;
  Admission(Admission&& other) noexcept
      : workers_(std::exchange(other.workers_, nullptr)), bytes_(other.bytes_) {}
  Admission& operator=(Admission&& other) noexcept;
  ~Admission() { release(); }

  // Gives the place back now (the destructor then does nothing); idempotent.
  void release();

 private:
  friend class Workers;
  Admission(Workers* workers, uint64_t bytes) : workers_(workers), bytes_(bytes) {}
  Workers* workers_ = nullptr;
  uint64_t bytes_ = 0;
};

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

  // Admission of produce batches, before they are submitted: the batches admitted and not yet
  // finished are bounded by count and bytes (set_admission_limits; the defaults of
  // AdmissionLimits until then). Returns the batch's Admission, to be held until its result is
  // in; or kUnavailable naming the limit that is reached ("etl.max_queued_batches" or
  // "etl.max_queued_bytes"). A batch larger than max_bytes alone is admitted when nothing else
  // is. Any thread.
  Result<Admission> admit(uint64_t bytes);
  void set_admission_limits(AdmissionLimits limits);
  // Produce batches admitted and not yet finished, and their bytes.
  size_t admitted_batches() const { return admitted_batches_.load(std::memory_order_relaxed); }
  uint64_t admitted_bytes() const { return admitted_bytes_.load(std::memory_order_relaxed); }
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

  // What one worker has of its own: the jobs broadcast to it, and its suspended runs (those
  // ready to continue, and those waiting for a time). Kept in Workers (own_), under its mutex_.
  struct Own {
    std::deque<Job> jobs;
    std::deque<std::coroutine_handle<>> ready;
    std::multimap<Scheduler::Clock::time_point, std::coroutine_handle<>> timers;
  };
  // The Scheduler of worker `index`: puts its runs back in own_[index].
  struct Worker : Scheduler {
    Workers* workers = nullptr;
    size_t index = 0;
    void resume_at(Clock::time_point when, std::coroutine_handle<> h) override;
    void resume_soon(std::coroutine_handle<> h) override;
  };

  mutable Mutex mutex_;
  CondVar wake_;
  std::deque<Job> queue_ GUARDED_BY(mutex_);
  std::vector<Own> own_ GUARDED_BY(mutex_);      // per worker, sized before any thread starts
  std::vector<std::unique_ptr<Worker>> worker_;  // per worker, made before any thread starts
  bool stopping_ GUARDED_BY(mutex_) = false;
  std::vector<std::thread> threads_;
  std::vector<std::shared_ptr<const wasm::PoolFigures>> figures_;  // set at start

  friend class Admission;
  void release(uint64_t bytes);
  std::atomic<size_t> max_admitted_batches_{AdmissionLimits{}.max_batches};
  std::atomic<uint64_t> max_admitted_bytes_{AdmissionLimits{}.max_bytes};
  std::atomic<size_t> admitted_batches_{0};
  std::atomic<uint64_t> admitted_bytes_{0};
};

}  // namespace wasmq::etl
