// The ETL workers (workers.h): a broadcast runs once on every worker, each with its own sandbox,
// before the shared queue's waiting jobs, and reports once when the last worker is done.
#include "etl/workers.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <thread>

namespace wasmq::etl {
namespace {

class WorkersTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { ASSERT_TRUE(wasm::initialize_engine().is_ok()); }

  std::unique_ptr<Workers> start(size_t count) {
    auto workers = Workers::start(count, runtime_);
    EXPECT_TRUE(workers.is_ok()) << workers.status().message();
    return workers.is_ok() ? std::move(*workers) : nullptr;
  }

  Runtime runtime_;
};

TEST_F(WorkersTest, ABroadcastRunsOnceOnEveryWorkerThenReportsOnce) {
  auto workers = start(3);
  ASSERT_TRUE(workers);
  std::mutex mutex;
  std::multiset<size_t> indexes;
  std::set<std::thread::id> threads;
  std::set<wasm::Sandbox*> sandboxes;
  std::atomic<int> done_calls{0};
  std::promise<void> finished;
  workers->broadcast(
      [&](size_t worker, wasm::Sandbox& sandbox, Executor&) {
        std::lock_guard lock(mutex);
        indexes.insert(worker);
        threads.insert(std::this_thread::get_id());
        sandboxes.insert(&sandbox);
      },
      [&] {
        ++done_calls;
        finished.set_value();
      });
  finished.get_future().wait();
  std::lock_guard lock(mutex);
  EXPECT_EQ(indexes, (std::multiset<size_t>{0, 1, 2}));
  EXPECT_EQ(threads.size(), 3u);
  EXPECT_EQ(sandboxes.size(), 3u);
  EXPECT_EQ(done_calls.load(), 1);
}

TEST_F(WorkersTest, ABroadcastGoesBeforeTheJobsWaitingInTheSharedQueue) {
  auto workers = start(1);
  ASSERT_TRUE(workers);
  std::mutex mutex;
  std::condition_variable cv;
  bool release = false, blocked = false;
  std::vector<std::string> order;
  workers->submit([&](wasm::Sandbox&, Executor&) {
    std::unique_lock lock(mutex);
    blocked = true;
    cv.notify_all();
    cv.wait(lock, [&] { return release; });
    order.push_back("running");
  });
  {
    std::unique_lock lock(mutex);
    cv.wait(lock, [&] { return blocked; });
  }
  for (int i = 0; i < 3; ++i) {
    workers->submit([&, i](wasm::Sandbox&, Executor&) {
      std::lock_guard lock(mutex);
      order.push_back("queued " + std::to_string(i));
    });
  }
  std::promise<void> finished;
  workers->broadcast(
      [&](size_t, wasm::Sandbox&, Executor&) {
        std::lock_guard lock(mutex);
        order.push_back("broadcast");
      },
      [&] { finished.set_value(); });
  {
    std::lock_guard lock(mutex);
    release = true;
  }
  cv.notify_all();
  finished.get_future().wait();
  workers.reset();  // runs what is left, then joins
  EXPECT_EQ(order,
            (std::vector<std::string>{"running", "broadcast", "queued 0", "queued 1", "queued 2"}));
}

TEST_F(WorkersTest, EachWorkersPoolFiguresAreReachable) {
  wasm::PoolOptions pool;
  pool.defaults.max_pool_size = 7;
  auto workers = Workers::start(2, runtime_, pool);
  ASSERT_TRUE(workers.is_ok());
  ASSERT_EQ((*workers)->pool_figures().size(), 2u);
  std::promise<std::vector<uint32_t>> seen;
  auto sizes = std::make_shared<std::vector<uint32_t>>(2);
  (*workers)->broadcast(
      [sizes](size_t worker, wasm::Sandbox& sandbox, Executor&) {
        (*sizes)[worker] = sandbox.pool_settings("any").max_pool_size;
      },
      [&seen, sizes] { seen.set_value(*sizes); });
  EXPECT_EQ(seen.get_future().get(), (std::vector<uint32_t>{7, 7}))
      << "every sandbox runs its pool by the options given at start";
}

}  // namespace
}  // namespace wasmq::etl
