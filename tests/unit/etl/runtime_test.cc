// What the ETL workers share (runtime.h): the circuit breakers' states and the concurrency
// bounds. Time is passed in, so no test sleeps.
#include "etl/runtime.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

namespace wasmq::etl {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Admission = CircuitBreakers::Admission;

// --- CircuitBreakers -----------------------------------------------------------------------------

// A handle, as a bound module use holds one: reset() closes it in place.
TEST(CircuitBreakers, AHandleSeesTheBreakerItNamesAndItsReset) {
  CircuitBreakers breakers;
  const auto t0 = Clock::now();
  auto handle = breakers.get("p/0/0@m");
  EXPECT_EQ(handle, breakers.get("p/0/0@m"));
  handle->record(false, 1, milliseconds(100), t0);
  EXPECT_TRUE(breakers.is_open("p/0/0@m", t0));
  EXPECT_EQ(handle->admit(t0), Admission::kOpen);
  breakers.reset("p/");
  EXPECT_EQ(handle->admit(t0), Admission::kClosed);
  EXPECT_FALSE(breakers.is_open("p/0/0@m", t0));
}

TEST(CircuitBreakers, OpensAfterThresholdConsecutiveFailures) {
  CircuitBreakers breakers;
  const auto t0 = Clock::now();
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(breakers.admit("m", t0), Admission::kClosed);
    breakers.record("m", false, 3, milliseconds(100), t0);
  }
  breakers.record("m", true, 3, milliseconds(100), t0);  // a success starts the count again
  for (int i = 0; i < 2; ++i) breakers.record("m", false, 3, milliseconds(100), t0);
  EXPECT_EQ(breakers.admit("m", t0), Admission::kClosed);
  breakers.record("m", false, 3, milliseconds(100), t0);
  EXPECT_EQ(breakers.admit("m", t0), Admission::kOpen);
  EXPECT_TRUE(breakers.is_open("m", t0 + milliseconds(99)));
  EXPECT_EQ(breakers.admit("other", t0), Admission::kClosed);
}

TEST(CircuitBreakers, AdmitsOneTrialAfterOpenForAndClosesOnItsSuccess) {
  CircuitBreakers breakers;
  const auto t0 = Clock::now();
  breakers.record("m", false, 1, milliseconds(100), t0);
  const auto later = t0 + milliseconds(100);
  EXPECT_EQ(breakers.admit("m", later), Admission::kTrial);
  EXPECT_EQ(breakers.admit("m", later), Admission::kOpen) << "one trial at a time";
  breakers.record("m", true, 1, milliseconds(100), later);
  EXPECT_EQ(breakers.admit("m", later), Admission::kClosed);
}

TEST(CircuitBreakers, ReopensForOpenForOnAFailedTrial) {
  CircuitBreakers breakers;
  const auto t0 = Clock::now();
  breakers.record("m", false, 1, milliseconds(100), t0);
  const auto trial = t0 + milliseconds(150);
  ASSERT_EQ(breakers.admit("m", trial), Admission::kTrial);
  breakers.record("m", false, 1, milliseconds(100), trial);
  EXPECT_EQ(breakers.admit("m", trial + milliseconds(99)), Admission::kOpen);
  EXPECT_EQ(breakers.admit("m", trial + milliseconds(100)), Admission::kTrial);
}

TEST(CircuitBreakers, IgnoresOutcomesOfCallsAdmittedBeforeItOpened) {
  CircuitBreakers breakers;
  const auto t0 = Clock::now();
  breakers.record("m", false, 1, milliseconds(100), t0);
  // Reported while open with no trial running: a call that started before the breaker opened.
  breakers.record("m", true, 1, milliseconds(100), t0 + milliseconds(10));
  EXPECT_EQ(breakers.admit("m", t0 + milliseconds(20)), Admission::kOpen);
  breakers.record("m", false, 1, milliseconds(100), t0 + milliseconds(50));
  EXPECT_EQ(breakers.admit("m", t0 + milliseconds(100)), Admission::kTrial)
      << "a late failure does not extend the open time";
}

// --- ConcurrencyLimits ---------------------------------------------------------------------------

// A scheduler that only records what it is asked to resume; the test resumes by hand.
struct RecordingScheduler : Scheduler {
  std::vector<std::coroutine_handle<>> ready;
  void resume_at(Clock::time_point, std::coroutine_handle<> h) override { ready.push_back(h); }
  void resume_soon(std::coroutine_handle<> h) override { ready.push_back(h); }
  void resume_all() {
    auto now = std::move(ready);
    ready.clear();
    for (auto h : now) h.resume();
  }
};

// Suspends until opened.
struct Gate {
  std::coroutine_handle<> waiting;
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) noexcept { waiting = h; }
  void await_resume() const noexcept {}
  void open() { std::exchange(waiting, {}).resume(); }
};

// Takes a permit, then holds it until `gate` opens. `state`: 0 waiting, 1 holding, 2 released.
Task<> hold(ConcurrencyLimits& limits, Scheduler& scheduler, std::string key, uint32_t per_module,
            uint32_t total, Gate& gate, int& state) {
  {
    auto permit = co_await limits.acquire(scheduler, key, per_module, total);
    state = 1;
    co_await gate;
  }
  state = 2;
}

TEST(ConcurrencyLimits, ARunWaitsWithoutItsThreadWhileAModuleRunsItsMaximumOfCalls) {
  ConcurrencyLimits limits;
  RecordingScheduler scheduler;
  Gate gate_a, gate_b, gate_c;
  int a = 0, b = 0, c = 0;
  auto first = hold(limits, scheduler, "m", 1, 10, gate_a, a);
  first.start();
  EXPECT_EQ(a, 1);
  auto unrelated = hold(limits, scheduler, "n", 1, 10, gate_b, b);
  unrelated.start();
  EXPECT_EQ(b, 1) << "another module is not held up";
  EXPECT_EQ(limits.running(), 2u);

  auto second = hold(limits, scheduler, "m", 1, 10, gate_c, c);
  second.start();  // returns: the run is suspended, this thread goes on
  EXPECT_EQ(c, 0);
  EXPECT_EQ(limits.waiting(), 1u);
  EXPECT_TRUE(scheduler.ready.empty());

  gate_a.open();  // the first call ends: its place goes to the waiting run
  EXPECT_EQ(a, 2);
  EXPECT_TRUE(first.done());
  EXPECT_EQ(limits.waiting(), 0u);
  ASSERT_EQ(scheduler.ready.size(), 1u) << "the waiting run is handed to its scheduler";
  EXPECT_EQ(c, 0) << "it continues on its scheduler, not on the releasing thread";
  scheduler.resume_all();
  EXPECT_EQ(c, 1);
  EXPECT_EQ(limits.running(), 2u);
  gate_b.open();
  gate_c.open();
  EXPECT_TRUE(second.done());
  EXPECT_EQ(limits.running(), 0u);
}

TEST(ConcurrencyLimits, AFreedPlaceGoesToTheOldestRunItLets) {
  ConcurrencyLimits limits;
  RecordingScheduler scheduler;
  Gate gates[4];
  int state[4] = {0, 0, 0, 0};
  // Two calls in all; "m" one at a time.
  auto m1 = hold(limits, scheduler, "m", 1, 2, gates[0], state[0]);
  auto n1 = hold(limits, scheduler, "n", 5, 2, gates[1], state[1]);
  auto m2 = hold(limits, scheduler, "m", 1, 2, gates[2], state[2]);  // waits for m1
  auto p1 = hold(limits, scheduler, "p", 5, 2, gates[3], state[3]);  // waits for any place
  m1.start();
  n1.start();
  m2.start();
  p1.start();
  EXPECT_EQ(limits.waiting(), 2u);
  gates[1].open();  // n1 ends: m2 (older) cannot take it ("m" is at its limit), p1 can
  scheduler.resume_all();
  EXPECT_EQ(state[2], 0);
  EXPECT_EQ(state[3], 1);
  gates[0].open();  // m1 ends: m2 takes its place
  scheduler.resume_all();
  EXPECT_EQ(state[2], 1);
  gates[2].open();
  gates[3].open();
  EXPECT_EQ(limits.running(), 0u);
  EXPECT_EQ(limits.waiting(), 0u);
}

}  // namespace
}  // namespace wasmq::etl
