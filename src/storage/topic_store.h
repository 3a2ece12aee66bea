// Topics and their partitions on disk: `<data_dir>/topics/<topic>/topic.json` (the topic's
// settings, written atomically) and `<data_dir>/topics/<topic>/<partition>/` (a PartitionLog).
//
// A background thread flushes, every `fsync_interval_ms` (FsyncPolicy::kInterval), the
// partitions written since the last flush (only those), and enforces retention every
// `retention_check_interval_ms`.
//
// Resources: at most `max_topics` topics; segment files are opened through one FileCache of
// `max_open_files` descriptors (lowered to half the process's RLIMIT_NOFILE when that is
// smaller, so that sockets keep room), so an idle topic holds no descriptor.
//
// Names: a topic name never starts with '.'. Removing a topic renames its directory into
// `<data_dir>/trash/` and deletes it there; whatever is left in trash at start (a removal that
// a crash interrupted) is deleted then, with a log line. Tombstones of older versions
// (`topics/.deleted-<name>-<ms>/`) are recognized and deleted the same way; any other directory
// that cannot be loaded (unreadable topic.json, a name that does not match, a reserved name) is
// left untouched, reported in `unloaded()` and by a warning, and the other topics are served.
//
// Threads: every method may be called from any thread. Creating and removing a topic do their
// disk work outside the store's lock: find() and list() never wait for the disk. Topics are shared_ptrs: a holder of a
// topic that is removed meanwhile gets kNotFound from its reads and appends, never data of a
// deleted topic.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "storage/file_cache.h"
#include "storage/partition_log.h"

namespace wasmq::storage {

// Checks a topic name: 1-249 characters of [A-Za-z0-9._-], not starting with '.' (names with a
// leading dot, "." and ".." among them, are reserved for storage).
Status validate_topic_name(std::string_view name);

struct TopicSettings {
  std::string name;
  uint32_t partitions = 0;              // 0: the store's default
  std::optional<int64_t> retention_ms;  // unset: the store's default
  std::optional<int64_t> retention_bytes;
};

class Topic {
 public:
  Topic(TopicSettings settings, std::vector<std::unique_ptr<PartitionLog>> partitions);

  const std::string& name() const { return settings_.name; }
  // The name, shared: outcomes that name the topic per record hold it without a copy.
  const std::shared_ptr<const std::string>& shared_name() const { return shared_name_; }
  const TopicSettings& settings() const { return settings_; }
  uint32_t partition_count() const { return static_cast<uint32_t>(partitions_.size()); }
  PartitionLog& partition(uint32_t index) { return *partitions_.at(index); }
  const PartitionLog& partition(uint32_t index) const { return *partitions_.at(index); }

  // Kafka's rule: murmur2 of the key when there is one; otherwise spread round-robin.
  uint32_t choose_partition(std::optional<std::string_view> key);

 private:
  TopicSettings settings_;
  std::shared_ptr<const std::string> shared_name_;
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
  uint32_t max_topics = 10'000;    // creation beyond it is refused (kConflict)
  uint32_t max_open_files = 1024;  // segment descriptors kept open (see above)
};

// A directory under `<data_dir>/topics` that start-up could not load as a topic.
struct UnloadedTopic {
  std::string directory;  // its name under topics/
  std::string reason;     // what is wrong, without server paths
};

class TopicStore {
 public:
  // Opens every topic under data_dir/topics, recovering each partition; repairs, skipped
  // directories and cleaned-up removals are appended to `repairs` (one line each, for the log).
  // Fails only when the data directory itself is unusable.
  static Result<std::unique_ptr<TopicStore>> open(const StoreOptions& options,
                                                  std::vector<std::string>* repairs);
  // Stops the background thread and flushes every partition.
  ~TopicStore();

  // Creates a topic; kAlreadyExists when it exists, kInvalidArgument for a bad name or count,
  // kConflict when max_topics topics exist or an unloaded directory holds the name. Errors
  // name no server path.
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
  // Flushes the partitions written since the last call (what the background thread does every
  // fsync_interval_ms with FsyncPolicy::kInterval); returns how many it visited.
  size_t flush_due();

  // Topic directories that start-up skipped, and why.
  const std::vector<UnloadedTopic>& unloaded() const { return unloaded_; }
  // The segment descriptors' cache (its capacity may be below options().max_open_files).
  const FileCache& files() const { return *files_; }

  const StoreOptions& options() const { return options_; }

 private:
  explicit TopicStore(StoreOptions options);
  // create()'s disk work: the directory, the partitions, topic.json; all or nothing.
  Result<std::shared_ptr<Topic>> create_on_disk(const TopicSettings& settings);
  Result<std::shared_ptr<Topic>> open_topic(const TopicSettings& settings,
                                            std::vector<std::string>* repairs);
  LogOptions log_options_for(const TopicSettings& settings) const;
  void run_background();
  // Partitions written since the last flush, by topic name and partition: the flush loop visits
  // only these. Shared with the partitions' on_unsynced callbacks.
  struct FlushQueue {
    Mutex mutex;
    std::set<std::pair<std::string, uint32_t>> due GUARDED_BY(mutex);
  };

  const StoreOptions options_;
  const std::filesystem::path topics_dir_;
  const std::filesystem::path trash_dir_;
  std::shared_ptr<FileCache> files_;
  std::shared_ptr<FlushQueue> flush_queue_ = std::make_shared<FlushQueue>();
  std::vector<UnloadedTopic> unloaded_;  // set by open, then constant
  std::atomic<uint64_t> trash_sequence_{0};

  mutable Mutex mutex_;
  std::map<std::string, std::shared_ptr<Topic>, std::less<>> topics_ GUARDED_BY(mutex_);
  // Names being created or removed: their disk work runs outside mutex_, so that finding and
  // using other topics never waits for it; another create or remove of the same name waits.
  std::set<std::string, std::less<>> busy_ GUARDED_BY(mutex_);
  size_t creating_ GUARDED_BY(mutex_) = 0;  // creations under way (they count against max_topics)
  CondVar busy_done_;

  Mutex background_mutex_;
  CondVar background_wake_;
  bool stopping_ GUARDED_BY(background_mutex_) = false;
  std::thread background_;
};

}  // namespace wasmq::storage
