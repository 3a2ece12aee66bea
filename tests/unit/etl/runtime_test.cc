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

TEST(ConcurrencyLimits, WaitsWhileAModuleRunsItsMaximumOfCalls) {
  ConcurrencyLimits limits;
  std::atomic<bool> second_acquired{false};
  std::thread other;
  {
    auto permit = limits.acquire("m", 1, 10);
    EXPECT_EQ(limits.running(), 1u);
    auto unrelated = limits.acquire("n", 1, 10);  // another module is not held up
    EXPECT_EQ(limits.running(), 2u);
    other = std::thread([&] {
      auto second = limits.acquire("m", 1, 10);
      second_acquired = true;
    });
    std::this_thread::sleep_for(milliseconds(50));
    EXPECT_FALSE(second_acquired.load());
  }
  other.join();
  EXPECT_TRUE(second_acquired.load());
  EXPECT_EQ(limits.running(), 0u);
}

}  // namespace
}  // namespace wasmq::etl
