#include "wasm/watchdog.h"

#include <v8-isolate.h>

#include <algorithm>
#include <chrono>
#include <list>
#include <thread>

#include "common/mutex.h"

namespace wasmq::wasm {
namespace {

constexpr uint64_t kIdle = 0;
constexpr uint64_t kArmed = 1;
constexpr uint64_t kTerminating = 2;
constexpr uint64_t kTerminated = 3;
// Longest sleep while nothing is due; an arm with an earlier deadline wakes the thread.
constexpr int64_t kMaxSleepNs = 1'000'000'000;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct Watchdog::State {
  Mutex mutex;
  CondVar wake;
  std::list<Slot> slots GUARDED_BY(mutex);  // stable addresses
  std::atomic<int64_t> next_wake_ns{0};  // when the thread will look next
};

Watchdog& Watchdog::instance() {
  // Never destroyed: the thread may still be sleeping when the process exits.
  static Watchdog* watchdog = new Watchdog();
  return *watchdog;
}

Watchdog::Watchdog() : state_(new State()) {
  std::thread([this] { run(); }).detach();
}

Watchdog::Slot* Watchdog::register_isolate(v8::Isolate* isolate) {
  MutexLock lock(state_->mutex);
  Slot& slot = state_->slots.emplace_back();
  slot.isolate = isolate;
  return &slot;
}

void Watchdog::unregister_isolate(Slot* slot) {
  MutexLock lock(state_->mutex);
  state_->slots.remove_if([slot](const Slot& s) { return &s == slot; });
}

void Watchdog::arm(Slot* slot, uint32_t timeout_ms) { arm_steps(slot, timeout_ms, 0, nullptr); }

void Watchdog::arm_steps(Slot* slot, uint32_t timeout_ms, uint32_t step_timeout_ms,
                         const int32_t* progress) {
  const int64_t now = now_ns();
  int64_t deadline = now + static_cast<int64_t>(timeout_ms) * 1'000'000;
  uint64_t generation = (slot->state.load(std::memory_order_relaxed) >> 2) + 1;
  slot->deadline_ns.store(deadline, std::memory_order_relaxed);
  slot->progress.store(step_timeout_ms > 0 ? progress : nullptr, std::memory_order_relaxed);
  slot->step_ns.store(static_cast<int64_t>(step_timeout_ms) * 1'000'000, std::memory_order_relaxed);
  slot->armed_ns.store(now, std::memory_order_relaxed);
  if (step_timeout_ms > 0) {
    deadline = std::min(deadline, now + static_cast<int64_t>(step_timeout_ms) * 1'000'000 / 4);
  }
  slot->state.store(generation << 2 | kArmed, std::memory_order_seq_cst);
  // The thread publishes when it will look next before it scans; a deadline earlier than that
  // must wake it, or the call could overrun by up to a full sleep.
  if (deadline < state_->next_wake_ns.load(std::memory_order_seq_cst)) {
    MutexLock lock(state_->mutex);
    state_->wake.notify_one();
  }
}

bool Watchdog::disarm(Slot* slot) {
  uint64_t s = slot->state.load(std::memory_order_relaxed);
  uint64_t idle = (s >> 2) << 2 | kIdle;
  if ((s & 3) == kArmed && slot->state.compare_exchange_strong(s, idle)) return false;
  // The watchdog won: wait until its TerminateExecution() has returned.
  while ((slot->state.load() & 3) == kTerminating) std::this_thread::yield();
  slot->state.store(idle);
  return true;
}

void Watchdog::run() {
  MutexLock lock(state_->mutex);
  for (;;) {
    int64_t now = now_ns();
    int64_t next = now + kMaxSleepNs;
    state_->next_wake_ns.store(next, std::memory_order_seq_cst);
    for (Slot& slot : state_->slots) {
      uint64_t s = slot.state.load(std::memory_order_seq_cst);
      if ((s & 3) != kArmed) continue;
      int64_t deadline = slot.deadline_ns.load(std::memory_order_relaxed);
      if (const int32_t* progress = slot.progress.load(std::memory_order_relaxed)) {
        // A call of many steps: each step has its own limit from when it was seen to start.
        const int64_t step = slot.step_ns.load(std::memory_order_relaxed);
        const int32_t p = __atomic_load_n(progress, __ATOMIC_RELAXED);
        if (slot.seen_generation != s >> 2) {
          slot.seen_generation = s >> 2;
          slot.seen_progress = p;
          slot.step_deadline_ns = slot.armed_ns.load(std::memory_order_relaxed) + step;
        } else if (p != slot.seen_progress) {
          slot.seen_progress = p;
          slot.step_deadline_ns = now + step;
        }
        if (slot.step_deadline_ns <= now) deadline = now;
        else next = std::min(next, now + std::max<int64_t>(step / 4, 1'000'000));
      }
      if (deadline > now) {
        next = std::min(next, deadline);
        continue;
      }
      uint64_t terminating = (s >> 2) << 2 | kTerminating;
      if (slot.state.compare_exchange_strong(s, terminating)) {
        slot.isolate->TerminateExecution();
        slot.state.store((s >> 2) << 2 | kTerminated);
      }
    }
    state_->next_wake_ns.store(next, std::memory_order_seq_cst);
    (void)state_->wake.wait_for(state_->mutex,
                                std::chrono::nanoseconds(std::max<int64_t>(next - now_ns(), 0)));
  }
}

}  // namespace wasmq::wasm
