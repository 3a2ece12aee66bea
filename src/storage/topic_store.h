// Topics and their partitions on disk: `<data_dir>/topics/<topic>/topic.json` (the topic's
// settings, written atomically) and `<data_dir>/topics/<topic>/<partition>/` (a PartitionLog).
//
// A background thread flushes partitions every `fsync_interval_ms` (FsyncPolicy::kInterval) and
// enforces retention every `retention_check_interval_ms`.
//
// Threads: every method may be called from any thread. Topics are shared_ptrs: a topic deleted
// while a reader holds it stays readable for that reader.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "storage/partition_log.h"

namespace wasmq::storage {

// Checks a topic name: 1-249 characters of [A-Za-z0-9._-], not "." or "..".
Status validate_topic_name(std::string_view name);

struct TopicSettings {
  std::string name;
  uint32_t partitions = 0;                // 0: the store's default
  std::optional<int64_t> retention_ms;    // unset: the store's default
  std::optional<int64_t> retention_bytes;
};

class Topic {
 public:
  Topic(TopicSettings settings, std::vector<std::unique_ptr<PartitionLog>> partitions);

  const std::string& name() const { return settings_.name; }
  const TopicSettings& settings() const { return settings_; }
  uint32_t partition_count() const { return static_cast<uint32_t>(partitions_.size()); }
  PartitionLog& partition(uint32_t index) { return *partitions_.at(index); }
  const PartitionLog& partition(uint32_t index) const { return *partitions_.at(index); }

  // Kafka's rule: murmur2 of the key when there is one; otherwise spread round-robin.
  uint32_t choose_partition(const std::optional<std::string>& key);

 private:
  TopicSettings settings_;
  std::vector<std::unique_ptr<PartitionLog>> partitions_;
  std::atomic<uint32_t> next_unkeyed_{0};
};

struct StoreOptions {
  std::filesystem::path data_dir = "./data";
  LogOptions log;  // defaults for every partition (retention may be overridden per topic)
  uint32_t default_partitions = 1;
  uint32_t max_partitions = 1024;
  uint32_t fsync_interval_ms = 50;
  uint32_t retention_check_interval_ms = 60'000;
};

class TopicStore {
 public:
  // Opens every topic under data_dir/topics, recovering each partition; repairs are appended to
  // `repairs` (one line each, for the log).
  static Result<std::unique_ptr<TopicStore>> open(const StoreOptions& options,
                                                  std::vector<std::string>* repairs);
  // Stops the background thread and flushes every partition.
  ~TopicStore();

  // Creates a topic; kAlreadyExists when it exists, kInvalidArgument for a bad name or count.
  Result<std::shared_ptr<Topic>> create(TopicSettings settings);
  // The topic, or nullptr.
  std::shared_ptr<Topic> find(std::string_view name) const;
  // The topic, created with the defaults when absent.
  Result<std::shared_ptr<Topic>> find_or_create(std::string_view name);
  std::vector<std::shared_ptr<Topic>> list() const;
  // Removes the topic and its data; kNotFound when absent.
  Status remove(std::string_view name);

  // Flushes every partition now.
  Status flush_all();

  const StoreOptions& options() const { return options_; }

 private:
  explicit TopicStore(StoreOptions options);
  Result<std::shared_ptr<Topic>> open_topic(const TopicSettings& settings,
                                            std::vector<std::string>* repairs);
  LogOptions log_options_for(const TopicSettings& settings) const;
  void run_background();

  const StoreOptions options_;
  const std::filesystem::path topics_dir_;

  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Topic>, std::less<>> topics_;  // guarded by mutex_

  std::mutex background_mutex_;
  std::condition_variable background_wake_;
  bool stopping_ = false;  // guarded by background_mutex_
  std::thread background_;
};

}  // namespace wasmq::storage
