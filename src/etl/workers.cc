#include "etl/workers.h"

#include <atomic>
#include <future>

#include "common/log.h"

namespace wasmq::etl {

Result<std::unique_ptr<Workers>> Workers::start(size_t count, Runtime& runtime,
                                                wasm::PoolOptions pool) {
  std::unique_ptr<Workers> workers(new Workers());
  count = std::max<size_t>(count, 1);
  // Every queue exists before any thread reads them.
  {
    MutexLock lock(workers->mutex_);
    workers->own_.resize(count);
  }
  for (size_t i = 0; i < count; ++i) {
    workers->worker_.push_back(std::make_unique<Worker>());
    workers->worker_.back()->workers = workers.get();
    workers->worker_.back()->index = i;
  }
  for (size_t i = 0; i < count; ++i) {
    std::promise<Status> started;
    auto ready = started.get_future();
    // std::thread gets glibc's default stack (8 MiB), well above V8's stack limit for guests
    // (wasm::EngineOptions::stack_size_kb), as a deep recursion in a guest requires.
    workers->threads_.emplace_back([w = workers.get(), i, &runtime, &pool, &started] {
      figure_lanes::set_current(i);
      auto sandbox = wasm::Sandbox::create(pool);
      if (!sandbox.is_ok()) {
        started.set_value(sandbox.status());
        return;
      }
      w->figures_.push_back((*sandbox)->pool_figures());
      Executor executor(**sandbox, runtime);
      executor.set_scheduler(w->worker_[i].get());
      started.set_value(Status::ok());
      w->run(i, **sandbox, executor);
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
    MutexLock lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void Workers::submit(Job job) {
  {
    MutexLock lock(mutex_);
    queue_.push_back(std::move(job));
  }
  wake_.notify_one();
}

void Workers::broadcast(WorkerJob job, std::function<void()> done) {
  struct Shared {
    Shared(WorkerJob j, std::function<void()> d, size_t n)
        : job(std::move(j)), done(std::move(d)), left(n) {}
    WorkerJob job;
    std::function<void()> done;
    std::atomic<size_t> left;
  };
  auto shared = std::make_shared<Shared>(std::move(job), std::move(done), threads_.size());
  {
    MutexLock lock(mutex_);
    for (size_t i = 0; i < own_.size(); ++i) {
      own_[i].jobs.push_back([shared, i](wasm::Sandbox& sandbox, Executor& executor) {
        shared->job(i, sandbox, executor);
        if (shared->left.fetch_sub(1) == 1 && shared->done) shared->done();
      });
    }
  }
  // Every worker has a job of its own now.
  wake_.notify_all();
}

Result<Admission> Workers::admit(uint64_t bytes) {
  const size_t max_batches = max_admitted_batches_.load(std::memory_order_relaxed);
  const uint64_t max_bytes = max_admitted_bytes_.load(std::memory_order_relaxed);
  size_t batches = admitted_batches_.load(std::memory_order_relaxed);
  do {
    if (batches >= max_batches) {
      return Status(StatusCode::kUnavailable,
                    "the ETL workers are busy: " + std::to_string(batches) +
                        " produce batches wait or run, the limit (etl.max_queued_batches); "
                        "retry later");
    }
  } while (!admitted_batches_.compare_exchange_weak(batches, batches + 1));
  const uint64_t before = admitted_bytes_.fetch_add(bytes);
  if (before > 0 && before + bytes > max_bytes) {
    admitted_bytes_.fetch_sub(bytes);
    admitted_batches_.fetch_sub(1);
    return Status(StatusCode::kUnavailable,
                  "the ETL workers are busy: produce batches of " + std::to_string(before) +
                      " bytes wait or run, and " + std::to_string(bytes) +
                      " more would pass the limit of " + std::to_string(max_bytes) +
                      " (etl.max_queued_bytes); retry later");
  }
  return Admission(this, bytes);
}

void Workers::set_admission_limits(AdmissionLimits limits) {
  max_admitted_batches_.store(limits.max_batches);
  max_admitted_bytes_.store(limits.max_bytes);
}

void Workers::release(uint64_t bytes) {
  admitted_bytes_.fetch_sub(bytes);
  admitted_batches_.fetch_sub(1);
}

Admission& Admission::operator=(Admission&& other) noexcept {
  if (this != &other) {
    release();
    workers_ = std::exchange(other.workers_, nullptr);
    bytes_ = other.bytes_;
  }
  return *this;
}

void Admission::release() {
  if (workers_) std::exchange(workers_, nullptr)->release(bytes_);
}

size_t Workers::queued() const {
  MutexLock lock(mutex_);
  return queue_.size();
}

void Workers::Worker::resume_at(Clock::time_point when, std::coroutine_handle<> h) {
  MutexLock lock(workers->mutex_);
  workers->own_[index].timers.emplace(when, h);
}

void Workers::Worker::resume_soon(std::coroutine_handle<> h) {
  {
    MutexLock lock(workers->mutex_);
    workers->own_[index].ready.push_back(h);
  }
  // The shared condition: wake them all, so that this worker is among them.
  workers->wake_.notify_all();
}

void Workers::run(size_t index, wasm::Sandbox& sandbox, Executor& executor) {
  while (true) {
    Job job;
    std::coroutine_handle<> resume;
    {
      MutexLock lock(mutex_);
      // own_ is not resized once the threads run: the reference stays valid (used under the lock).
      Own& me = own_[index];
      while (true) {
        if (!me.ready.empty()) {
          resume = me.ready.front();
          me.ready.pop_front();
          break;
        }
        if (!me.timers.empty() && me.timers.begin()->first <= Scheduler::Clock::now()) {
          resume = me.timers.begin()->second;
          me.timers.erase(me.timers.begin());
          break;
        }
        std::deque<Job>& from = !me.jobs.empty() ? me.jobs : queue_;
        if (!from.empty()) {
          job = std::move(from.front());
          from.pop_front();
          break;
        }
        // Stopping, every job has run and no run of this worker is left (live runs wait for a
        // timer or a permit another worker hands over).
        if (stopping_ && executor.live_runs() == 0) return;
        if (me.timers.empty()) {
          wake_.wait(mutex_);
        } else {
          wake_.wait_until(mutex_, me.timers.begin()->first);
        }
      }
    }
    // The isolate stays entered for the job or the stretch of a run, not across a suspension
    // (its handle scope must not outlive a run that ends later than one that started after it).
    wasm::Sandbox::Scope scope(sandbox);
    try {
      if (resume) {
        resume.resume();
      } else {
        job(sandbox, executor);
      }
    } catch (const std::exception& e) {
      // Jobs report failures as values; this is a bug or memory exhaustion. The worker goes on.
      log::get("etl").error("ETL job failed: {}", e.what());
    }
  }
}

}  // namespace wasmq::etl
