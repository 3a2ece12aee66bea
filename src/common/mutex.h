// A mutex, its scoped lock and a condition variable that clang's thread safety analysis
// (-Wthread-safety, in `make tsan`) understands: a member declared GUARDED_BY(mutex_) read or
// written without the lock held, or a function declared REQUIRES(mutex_) called without it, is
// a compile error there. std::mutex carries no such annotations, hence these thin wrappers
// (the same idea as LevelDB's port::Mutex and Abseil's Mutex). Other compilers see plain
// std::mutex and std::condition_variable.
//
// Conditions are waited for in a loop written out in the function that holds the lock
// (`while (!ready_) wake_.wait(mutex_);`), not in a predicate lambda: the analysis does not see
// the lock held inside a lambda.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>

#if defined(__clang__)
#define WASMQ_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define WASMQ_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) WASMQ_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY WASMQ_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) WASMQ_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) WASMQ_THREAD_ANNOTATION(pt_guarded_by(x))
#define ACQUIRE(...) WASMQ_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) WASMQ_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) WASMQ_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) WASMQ_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
#define RELEASE_GENERIC(...) WASMQ_THREAD_ANNOTATION(release_generic_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) WASMQ_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define REQUIRES(...) WASMQ_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define EXCLUDES(...) WASMQ_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) WASMQ_THREAD_ANNOTATION(assert_capability(x))
#define NO_THREAD_SAFETY_ANALYSIS WASMQ_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace wasmq {

class CondVar;

class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() ACQUIRE() { mutex_.lock(); }
  void unlock() RELEASE() { mutex_.unlock(); }
  bool try_lock() TRY_ACQUIRE(true) { return mutex_.try_lock(); }
  // Tells the analysis the lock is held where it cannot see it (a callback run under it).
  void assert_held() const ASSERT_CAPABILITY(this) {}

 private:
  friend class CondVar;
  std::mutex mutex_;
};

// A readers-writer lock (std::shared_mutex): many readers, or one writer.
class CAPABILITY("mutex") SharedMutex {
 public:
  SharedMutex() = default;
  SharedMutex(const SharedMutex&) = delete;
  SharedMutex& operator=(const SharedMutex&) = delete;

  void lock() ACQUIRE() { mutex_.lock(); }
  void unlock() RELEASE() { mutex_.unlock(); }
  void lock_shared() ACQUIRE_SHARED() { mutex_.lock_shared(); }
  void unlock_shared() RELEASE_SHARED() { mutex_.unlock_shared(); }

 private:
  std::shared_mutex mutex_;
};

// Holds `mutex` for reading for its scope (std::shared_lock).
class SCOPED_CAPABILITY ReaderLock {
 public:
  explicit ReaderLock(SharedMutex& mutex) ACQUIRE_SHARED(mutex) : mutex_(mutex) {
    mutex_.lock_shared();
  }
  ~ReaderLock() RELEASE_GENERIC() { mutex_.unlock_shared(); }
  ReaderLock(const ReaderLock&) = delete;
  ReaderLock& operator=(const ReaderLock&) = delete;

 private:
  SharedMutex& mutex_;
};

// Holds `mutex` for writing for its scope.
class SCOPED_CAPABILITY WriterLock {
 public:
  explicit WriterLock(SharedMutex& mutex) ACQUIRE(mutex) : mutex_(mutex) { mutex_.lock(); }
  ~WriterLock() RELEASE() { mutex_.unlock(); }
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

 private:
  SharedMutex& mutex_;
};

// Holds `mutex` for its scope (std::lock_guard).
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mutex) ACQUIRE(mutex) : mutex_(mutex) { mutex_.lock(); }
  ~MutexLock() RELEASE() { mutex_.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& mutex_;
};

// Holds `mutex` from its construction until unlock() or the end of its scope, whichever comes
// first (std::unique_lock released early): for code that must let go of the lock before it
// does something else, such as running a callback.
class SCOPED_CAPABILITY ReleasableMutexLock {
 public:
  explicit ReleasableMutexLock(Mutex& mutex) ACQUIRE(mutex) : mutex_(&mutex) { mutex_->lock(); }
  ~ReleasableMutexLock() RELEASE() {
    if (mutex_ != nullptr) mutex_->unlock();
  }
  ReleasableMutexLock(const ReleasableMutexLock&) = delete;
  ReleasableMutexLock& operator=(const ReleasableMutexLock&) = delete;

  // Lets go of the lock now; the destructor then does nothing. At most once.
  void unlock() RELEASE() {
    Mutex* mutex = mutex_;
    mutex_ = nullptr;
    mutex->unlock();
  }

 private:
  Mutex* mutex_;
};

// A condition variable waited on with a Mutex held (released while waiting, held again after).
class CondVar {
 public:
  void wait(Mutex& mutex) REQUIRES(mutex) {
    std::unique_lock<std::mutex> lock(mutex.mutex_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();
  }
  // False when `deadline` passed (the lock is held again either way).
  template <typename Clock, typename Duration>
  bool wait_until(Mutex& mutex, std::chrono::time_point<Clock, Duration> deadline)
      REQUIRES(mutex) {
    std::unique_lock<std::mutex> lock(mutex.mutex_, std::adopt_lock);
    const bool woken = cv_.wait_until(lock, deadline) == std::cv_status::no_timeout;
    lock.release();
    return woken;
  }
  template <typename Rep, typename Period>
  bool wait_for(Mutex& mutex, std::chrono::duration<Rep, Period> timeout) REQUIRES(mutex) {
    return wait_until(mutex, std::chrono::steady_clock::now() + timeout);
  }
  void notify_one() noexcept { cv_.notify_one(); }
  void notify_all() noexcept { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace wasmq
