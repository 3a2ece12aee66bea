// The ETL figures: a lane per worker, summed when read.
#include "etl/figures.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace wasmq::etl {
namespace {

// Adds on `threads` threads, each in the lane of a worker of its own index.
template <typename F>
void on_workers(size_t threads, F add) {
  std::vector<std::thread> running;
  for (size_t i = 0; i < threads; ++i) {
    running.emplace_back([i, &add] {
      figure_lanes::set_current(i);
      add(i);
    });
  }
  for (auto& t : running) t.join();
}

TEST(Figures, ACounterSumsWhatEveryWorkerAdded) {
  Counter counter;
  const size_t workers = figure_lanes::count() + 3;  // more workers than lanes share lanes
  on_workers(workers, [&](size_t i) {
    for (size_t k = 0; k < 10'000; ++k) counter.fetch_add(i + 1);
  });
  uint64_t expected = 0;
  for (size_t i = 0; i < workers; ++i) expected += 10'000 * (i + 1);
  EXPECT_EQ(counter.load(), expected);
}

TEST(Figures, AHistogramSumsEveryWorkersRecords) {
  LatencyHistogram histogram;
  const size_t workers = figure_lanes::count() + 1;
  on_workers(workers, [&](size_t i) {
    for (size_t k = 0; k < 1'000; ++k) histogram.record(i == 0 ? 0.5 : 50.0);
  });
  EXPECT_EQ(histogram.count(), workers * 1'000);
  EXPECT_NEAR(histogram.sum_ms(), 500.0 + 50.0 * 1'000 * (workers - 1), 1e-6);
  uint64_t in_buckets = 0;
  for (size_t b = 0; b < LatencyHistogram::kBuckets; ++b) in_buckets += histogram.bucket_count(b);
  EXPECT_EQ(in_buckets, workers * 1'000);
  EXPECT_LE(histogram.quantile_ms(0.5), 62.5);
  EXPECT_GE(histogram.quantile_ms(0.99), 40.0);
}

// A batch whose messages shared one time is recorded at once, as if one by one.
TEST(Figures, AHistogramRecordsManyOfOneTimeAsOneByOne) {
  LatencyHistogram at_once, one_by_one;
  at_once.record(3.0, 250);
  at_once.record(0.2, 0);  // nothing
  for (int k = 0; k < 250; ++k) one_by_one.record(3.0);
  EXPECT_EQ(at_once.count(), 250u);
  EXPECT_NEAR(at_once.sum_ms(), one_by_one.sum_ms(), 1e-9);
  for (size_t b = 0; b < LatencyHistogram::kBuckets; ++b) {
    EXPECT_EQ(at_once.bucket_count(b), one_by_one.bucket_count(b)) << "bucket " << b;
  }
}

TEST(Figures, ALaneIsAThreadsOwn) {
  Counter counter;
  std::thread([&] {
    figure_lanes::set_current(1);
    EXPECT_EQ(figure_lanes::current(), 1 % figure_lanes::count());
    counter.fetch_add(5);
  }).join();
  EXPECT_EQ(figure_lanes::current(), 0u) << "another thread's lane is not this one's";
  counter.fetch_add(2);
  EXPECT_EQ(counter.load(), 7u);
}

}  // namespace
}  // namespace wasmq::etl
