// Suspendable runs on an ETL worker: a run that must wait (a retry's backoff, a concurrency
// permit, an instance pool's creation rate) suspends instead of putting its worker to sleep, and
// the worker serves other jobs meanwhile. C++20 coroutines:
//
//   Task<T>    a lazy coroutine returning T; `co_await task` runs it and resumes the awaiting
//              one when it ends (symmetric transfer, so deep chains do not grow the stack).
//   Scheduler  where a suspended run continues: its worker (Workers), or a thread that waits
//              for it (BlockingScheduler, for callers that are not workers).
//   sleep_until(scheduler, t)  suspends until t.
//
// Rules for coroutines here: every Task is awaited at once (its arguments live in the awaiting
// frame meanwhile), and no object whose lifetime must nest (a V8 HandleScope, a lock) is held
// across a co_await.
#pragma once

#include <algorithm>
#include <chrono>
#include <coroutine>
#include <exception>
#include <optional>
#include <utility>
#include <vector>

#include "common/mutex.h"

namespace wasmq::etl {

class Scheduler {
 public:
  using Clock = std::chrono::steady_clock;
  virtual ~Scheduler() = default;
  // Resumes `h` on this scheduler's thread once `when` has come. Called on that thread.
  virtual void resume_at(Clock::time_point when, std::coroutine_handle<> h) = 0;
  // Resumes `h` on this scheduler's thread as soon as it can. Any thread.
  virtual void resume_soon(std::coroutine_handle<> h) = 0;
};

namespace task_detail {

struct PromiseBase {
  std::coroutine_handle<> continuation;
  std::exception_ptr error;

  std::suspend_always initial_suspend() noexcept { return {}; }
  struct Final {
    bool await_ready() noexcept { return false; }
    template <typename P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
      std::coroutine_handle<> next = h.promise().continuation;
      return next ? next : std::noop_coroutine();
    }
    void await_resume() noexcept {}
  };
  Final final_suspend() noexcept { return {}; }
  void unhandled_exception() { error = std::current_exception(); }
};

template <typename T>
struct Promise : PromiseBase {
  std::optional<T> value;
  void return_value(T v) { value.emplace(std::move(v)); }
  T take() {
    if (error) std::rethrow_exception(error);
    return std::move(*value);
  }
};

template <>
struct Promise<void> : PromiseBase {
  void return_void() {}
  void take() {
    if (error) std::rethrow_exception(error);
  }
};

}  // namespace task_detail

template <typename T = void>
class [[nodiscard]] Task {
 public:
  struct promise_type : task_detail::Promise<T> {
    Task get_return_object() {
      return Task(std::coroutine_handle<promise_type>::from_promise(*this));
    }
  };
  using Handle = std::coroutine_handle<promise_type>;

  Task(Task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      if (handle_) handle_.destroy();
      handle_ = std::exchange(other.handle_, {});
    }
    return *this;
  }
  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() {
    if (handle_) handle_.destroy();
  }

  // Awaiting a task starts it; the awaiting coroutine continues when it ends, with its result
  // (or its exception).
  auto operator co_await() && noexcept {
    struct Awaiter {
      Handle handle;
      bool await_ready() noexcept { return false; }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) noexcept {
        handle.promise().continuation = awaiting;
        return handle;
      }
      T await_resume() { return handle.promise().take(); }
    };
    return Awaiter{handle_};
  }

  // For a task no coroutine awaits (BlockingScheduler::run, spawn): starts it; it runs until it first
  // suspends or ends.
  void start() { handle_.resume(); }
  bool done() const { return handle_.done(); }
  // The result of a task that is done (rethrows its exception).
  T take() { return handle_.promise().take(); }

 private:
  explicit Task(Handle h) : handle_(h) {}
  Handle handle_;
};

// Suspends the awaiting coroutine until `when` (not at all when it has come).
inline auto sleep_until(Scheduler& scheduler, Scheduler::Clock::time_point when) {
  struct Awaiter {
    Scheduler& scheduler;
    Scheduler::Clock::time_point when;
    bool await_ready() const { return Scheduler::Clock::now() >= when; }
    void await_suspend(std::coroutine_handle<> h) { scheduler.resume_at(when, h); }
    void await_resume() noexcept {}
  };
  return Awaiter{scheduler, when};
}

// A Scheduler for a thread that only waits for one task: run() runs the task (made with this
// scheduler) and sleeps through its waits. For callers that are not workers (tests, tools).
class BlockingScheduler : public Scheduler {
 public:
  void resume_at(Clock::time_point when, std::coroutine_handle<> h) override {
    MutexLock lock(mutex_);
    timers_.emplace_back(when, h);
  }
  void resume_soon(std::coroutine_handle<> h) override {
    {
      MutexLock lock(mutex_);
      ready_.push_back(h);
    }
    wake_.notify_one();
  }

  template <typename T>
  T run(Task<T> task) {
    task.start();
    while (!task.done()) next().resume();
    return task.take();
  }

 private:
  // Waits for the next coroutine to resume: a ready one, else the first timer once due.
  std::coroutine_handle<> next() {
    MutexLock lock(mutex_);
    while (true) {
      if (!ready_.empty()) {
        auto h = ready_.front();
        ready_.erase(ready_.begin());
        return h;
      }
      auto first = std::min_element(timers_.begin(), timers_.end(),
                                    [](const auto& a, const auto& b) { return a.first < b.first; });
      if (first == timers_.end()) {
        wake_.wait(mutex_);
      } else if (Clock::now() >= first->first) {
        auto h = first->second;
        timers_.erase(first);
        return h;
      } else {
        wake_.wait_until(mutex_, first->first);
      }
    }
  }

  Mutex mutex_;
  CondVar wake_;
  std::vector<std::pair<Clock::time_point, std::coroutine_handle<>>> timers_ GUARDED_BY(mutex_);
  std::vector<std::coroutine_handle<>> ready_ GUARDED_BY(mutex_);
};

}  // namespace wasmq::etl
