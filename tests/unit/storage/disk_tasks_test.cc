// The disk threads (disk_tasks.h): tasks run off the posting thread, all of them before the
// pool is gone, and one that throws does not take a thread with it.
#include "storage/disk_tasks.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <set>
#include <stdexcept>
#include <thread>

namespace wasmq::storage {
namespace {

TEST(DiskTasks, RunsTasksOnItsOwnThreadsAtOnceSeveralAtATime) {
  DiskTasks tasks(2);
  // Two tasks that each wait for the other: they finish only if they run at the same time.
  std::promise<void> a_started, b_started;
  auto a = a_started.get_future().share();
  auto b = b_started.get_future().share();
  std::promise<std::thread::id> a_done, b_done;
  tasks.post([&] {
    a_started.set_value();
    b.wait();
    a_done.set_value(std::this_thread::get_id());
  });
  tasks.post([&] {
    b_started.set_value();
    a.wait();
    b_done.set_value(std::this_thread::get_id());
  });
  auto first = a_done.get_future();
  auto second = b_done.get_future();
  ASSERT_EQ(first.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  ASSERT_EQ(second.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  const auto one = first.get(), two = second.get();
  EXPECT_NE(one, two);
  EXPECT_NE(one, std::this_thread::get_id());
}

TEST(DiskTasks, RunsWhatIsQueuedBeforeItIsGone) {
  std::atomic<int> ran{0};
  {
    DiskTasks tasks(1);
    std::promise<void> gate;
    auto opened = gate.get_future().share();
    tasks.post([opened] { opened.wait(); });
    for (int i = 0; i < 100; ++i) tasks.post([&] { ++ran; });
    EXPECT_GE(tasks.queued(), 99u);
    gate.set_value();
  }
  EXPECT_EQ(ran.load(), 100);
}

TEST(DiskTasks, ATaskThatThrowsLeavesTheThreadServing) {
  DiskTasks tasks(1);
  tasks.post([] { throw std::runtime_error("disk on fire"); });
  tasks.post([] { throw 42; });
  std::promise<void> after;
  auto done = after.get_future();
  tasks.post([&] { after.set_value(); });
  EXPECT_EQ(done.wait_for(std::chrono::seconds(10)), std::future_status::ready);
}

}  // namespace
}  // namespace wasmq::storage
