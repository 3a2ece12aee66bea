#include "storage/topic_store.h"

#include <sys/resource.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <regex>

#include "common/file.h"
#include "common/log.h"

namespace wasmq::storage {
namespace fs = std::filesystem;

namespace {

constexpr const char* kSettingsFile = "topic.json";
constexpr const char* kTrashDir = "trash";
// Tombstones of versions that renamed a removed topic inside topics/.
constexpr const char* kLegacyDeletedPrefix = ".deleted-";

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

boost::json::object settings_to_json(const TopicSettings& s) {
  boost::json::object o;
  o["name"] = s.name;
  o["partitions"] = s.partitions;
  if (s.retention_ms) o["retention_ms"] = *s.retention_ms;
  if (s.retention_bytes) o["retention_bytes"] = *s.retention_bytes;
  return o;
}

// The settings in `path`. Errors say what is wrong with the file, not where it is.
Result<TopicSettings> settings_from_file(const fs::path& path) {
  auto text = read_file(path, 1 << 20);
  if (!text.is_ok()) {
    const std::string& m = text.status().message();
    const size_t colon = m.rfind(": ");
    return Status(StatusCode::kIo, std::string(kSettingsFile) + ": cannot be read" +
                                       (colon == std::string::npos ? "" : m.substr(colon)));
  }
  boost::system::error_code ec;
  auto json = boost::json::parse(*text, ec);
  auto bad = [&](const std::string& why) {
    return Status(StatusCode::kIo, std::string(kSettingsFile) + ": " + why);
  };
  if (ec || !json.is_object()) return bad("not a JSON object");
  const auto& o = json.get_object();
  TopicSettings s;
  if (!o.contains("name") || !o.at("name").is_string()) return bad("name missing");
  s.name = std::string(o.at("name").get_string());
  if (!o.contains("partitions") || !o.at("partitions").is_int64() ||
      o.at("partitions").get_int64() < 1 || o.at("partitions").get_int64() > 1'000'000) {
    return bad("partitions missing or invalid");
  }
  s.partitions = static_cast<uint32_t>(o.at("partitions").get_int64());
  if (o.contains("retention_ms") && o.at("retention_ms").is_int64()) {
    s.retention_ms = o.at("retention_ms").get_int64();
  }
  if (o.contains("retention_bytes") && o.at("retention_bytes").is_int64()) {
    s.retention_bytes = o.at("retention_bytes").get_int64();
  }
  return s;
}

// The descriptors the cache may keep: the configured bound, but at most half of what the
// process may open, so that listeners and connections keep room.
size_t file_cache_capacity(uint32_t configured, std::string* note) {
  size_t capacity = configured;
  struct rlimit limit;
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY &&
      capacity > limit.rlim_cur / 2) {
    capacity = std::max<size_t>(16, limit.rlim_cur / 2);
    *note = "storage.max_open_files " + std::to_string(configured) + " lowered to " +
            std::to_string(capacity) + ": half of the process's open-file limit (" +
            std::to_string(limit.rlim_cur) + ")";
  }
  return capacity;
}

// True when a file under `dir` is not empty (or `dir` cannot be listed).
bool holds_data(const fs::path& dir) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it->is_regular_file(ec) && it->file_size(ec) > 0) return true;
  }
  return static_cast<bool>(ec);
}

}  // namespace

Status validate_topic_name(std::string_view name) {
  if (name.empty() || name.size() > 249) {
    return invalid_argument("topic name must be 1 to 249 characters long");
  }
  if (name.front() == '.') {
    return invalid_argument("topic name \"" + std::string(name) +
                            "\" cannot start with '.' (reserved for storage)");
  }
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) {
      return invalid_argument("topic name \"" + std::string(name) +
                              "\" may contain only letters, digits, '.', '_' and '-'");
    }
  }
  return Status::ok();
}

Topic::Topic(TopicSettings settings, std::vector<std::unique_ptr<PartitionLog>> partitions)
    : settings_(std::move(settings)),
      shared_name_(std::make_shared<const std::string>(settings_.name)),
      partitions_(std::move(partitions)) {}

uint32_t Topic::choose_partition(std::optional<std::string_view> key) {
  if (key) return partition_for_key(*key, partition_count());
  return next_unkeyed_.fetch_add(1, std::memory_order_relaxed) % partition_count();
}

TopicStore::TopicStore(StoreOptions options)
    : options_(std::move(options)),
      topics_dir_(options_.data_dir / "topics"),
      trash_dir_(options_.data_dir / kTrashDir) {}

LogOptions TopicStore::log_options_for(const TopicSettings& settings) const {
  LogOptions log = options_.log;
  if (settings.retention_ms) log.retention_ms = *settings.retention_ms;
  if (settings.retention_bytes) log.retention_bytes = *settings.retention_bytes;
  log.files = files_;
  return log;
}

Result<std::shared_ptr<Topic>> TopicStore::open_topic(const TopicSettings& settings,
                                                      std::vector<std::string>* repairs) {
  std::vector<std::unique_ptr<PartitionLog>> partitions;
  for (uint32_t p = 0; p < settings.partitions; ++p) {
    LogOptions log = log_options_for(settings);
    log.on_unsynced = [queue = flush_queue_, name = settings.name, p] {
      MutexLock lock(queue->mutex);
      queue->due.emplace(name, p);
    };
    auto partition =
        PartitionLog::open(topics_dir_ / settings.name / std::to_string(p), log, repairs);
    if (!partition.is_ok()) return partition.status();
    partitions.push_back(std::move(*partition));
  }
  return std::make_shared<Topic>(settings, std::move(partitions));
}

Result<std::unique_ptr<TopicStore>> TopicStore::open(const StoreOptions& options,
                                                     std::vector<std::string>* repairs) {
  std::unique_ptr<TopicStore> store(new TopicStore(options));
  auto report = [&](const std::string& line) {
    if (repairs) repairs->push_back(line);
  };
  std::string note;
  store->files_ = std::make_shared<FileCache>(file_cache_capacity(options.max_open_files, &note));
  if (!note.empty()) report(note);
  std::error_code ec;
  fs::create_directories(store->topics_dir_, ec);
  if (ec) {
    return Status(StatusCode::kIo,
                  "cannot create " + store->topics_dir_.string() + ": " + ec.message());
  }
  // Removals that a crash interrupted.
  if (fs::exists(store->trash_dir_, ec)) {
    size_t left = 0;
    for (const auto& entry : fs::directory_iterator(store->trash_dir_, ec)) {
      (void)entry;
      ++left;
    }
    if (left > 0) {
      fs::remove_all(store->trash_dir_, ec);
      report("deleted " + std::to_string(left) + " leftover(s) of interrupted topic removals in " +
             store->trash_dir_.string() + (ec ? ": " + ec.message() : ""));
    }
  }
  // A tombstone of an older version: ".deleted-<name>-<ms>", whose topic.json (if still there)
  // names <name>.
  static const std::regex legacy_tombstone(R"(\.deleted-(.+)-[0-9]+)");
  for (const auto& entry : fs::directory_iterator(store->topics_dir_, ec)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_directory()) continue;
    const fs::path settings_path = entry.path() / kSettingsFile;
    auto skip = [&](const std::string& reason) {
      report(entry.path().string() + ": not loaded (left as it is): " + reason);
      store->unloaded_.push_back({name, reason});
    };
    std::smatch match;
    if (name.rfind(kLegacyDeletedPrefix, 0) == 0 &&
        std::regex_match(name, match, legacy_tombstone)) {
      bool tombstone = !fs::exists(settings_path);
      if (!tombstone) {
        auto settings = settings_from_file(settings_path);
        tombstone = settings.is_ok() && settings->name == match[1].str();
      }
      if (tombstone) {
        fs::remove_all(entry.path(), ec);
        report("deleted " + entry.path().string() + ": an interrupted topic removal" +
               (ec ? std::string(" (incomplete: ") + ec.message() + ")" : ""));
        ec.clear();
        continue;
      }
    }
    if (!fs::exists(settings_path)) {
      if (holds_data(entry.path())) {
        skip(std::string("no ") + kSettingsFile);
      } else {
        report(entry.path().string() + ": no " + kSettingsFile +
               ", skipped");  // a creation cut short
      }
      continue;
    }
    if (!validate_topic_name(name).is_ok()) {
      skip("\"" + name +
           "\" is not a valid topic name (names starting with '.' are reserved); rename the "
           "directory and the name in its topic.json to serve it");
      continue;
    }
    auto settings = settings_from_file(settings_path);
    if (!settings.is_ok()) {
      skip(settings.status().message());
      continue;
    }
    if (settings->name != name) {
      skip(std::string(kSettingsFile) + " names topic \"" + settings->name + "\" but lies in \"" +
           name + "\"");
      continue;
    }
    auto topic = store->open_topic(*settings, repairs);
    if (!topic.is_ok()) {
      // The partition logs the path; the report keeps the cause.
      const std::string& m = topic.status().message();
      skip(m);
      continue;
    }
    MutexLock lock(store->mutex_);  // no other thread has the store yet: for the analysis
    store->topics_.emplace(name, std::move(*topic));
  }
  if (ec) return Status(StatusCode::kIo, "cannot list " + store->topics_dir_.string());
  store->background_ = std::thread([s = store.get()] { s->run_background(); });
  return store;
}

TopicStore::~TopicStore() {
  {
    MutexLock lock(background_mutex_);
    stopping_ = true;
  }
  background_wake_.notify_all();
  if (background_.joinable()) background_.join();
  if (Status s = flush_all(); !s.is_ok()) log::get("storage").error("{}", s.message());
}

Result<std::shared_ptr<Topic>> TopicStore::create(TopicSettings settings) {
  if (Status s = validate_topic_name(settings.name); !s.is_ok()) return s;
  if (settings.partitions == 0) settings.partitions = options_.default_partitions;
  if (settings.partitions > options_.max_partitions) {
    return invalid_argument("partitions: at most " + std::to_string(options_.max_partitions));
  }
  {
    MutexLock lock(mutex_);
    // Another thread creating or removing this name: its outcome decides ours.
    while (busy_.count(settings.name)) busy_done_.wait(mutex_);
    if (topics_.count(settings.name)) {
      return Status(StatusCode::kAlreadyExists, "topic \"" + settings.name + "\" already exists");
    }
    const size_t held = topics_.size() + creating_;
    if (held >= options_.max_topics) {
      return Status(StatusCode::kConflict,
                    "topic \"" + settings.name + "\" not created: the broker holds " +
                        std::to_string(held) + " topics, its limit (broker.max_topics = " +
                        std::to_string(options_.max_topics) + ")");
    }
    busy_.insert(settings.name);
    ++creating_;
  }
  // The disk work outside the lock: other topics are found, used, created and removed
  // meanwhile; the name is held in busy_ until it is done.
  Result<std::shared_ptr<Topic>> created = create_on_disk(settings);
  {
    MutexLock lock(mutex_);
    busy_.erase(settings.name);
    --creating_;
    if (created.is_ok()) topics_.emplace(settings.name, *created);
  }
  busy_done_.notify_all();
  return created;
}

Result<std::shared_ptr<Topic>> TopicStore::create_on_disk(const TopicSettings& settings) {
  const fs::path dir = topics_dir_ / settings.name;
  std::error_code ec;
  const bool unloaded =
      std::any_of(unloaded_.begin(), unloaded_.end(),
                  [&](const UnloadedTopic& u) { return u.directory == settings.name; });
  if (unloaded || (fs::exists(dir, ec) && holds_data(dir))) {
    // A directory that start-up could not load: its data must not be adopted or overwritten.
    return Status(StatusCode::kConflict,
                  "topic \"" + settings.name +
                      "\" not created: its directory exists but could not be loaded at start "
                      "(see /api/v1/status)");
  }
  // What an interrupted creation leaves (no topic.json, empty segments) goes.
  fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  if (ec) {
    log::get("storage").error("cannot create {}: {}", dir.string(), ec.message());
    return Status(StatusCode::kIo,
                  "topic \"" + settings.name + "\": cannot create its directory: " + ec.message());
  }
  auto topic = open_topic(settings, nullptr);
  Status written = topic.is_ok()
                       ? write_file_atomically(dir / kSettingsFile,
                                               boost::json::serialize(settings_to_json(settings)))
                       : topic.status();
  if (!written.is_ok()) {
    if (topic.is_ok()) {
      log::get("storage").error("{}", written.message());
      const std::string& m = written.message();
      const size_t colon = m.rfind(": ");
      written =
          Status(StatusCode::kIo, "topic \"" + settings.name + "\": cannot write " + kSettingsFile +
                                      (colon == std::string::npos ? "" : m.substr(colon)));
      for (uint32_t p = 0; p < (*topic)->partition_count(); ++p) (*topic)->partition(p).close();
    }
    fs::remove_all(dir, ec);  // all or nothing
    return written;
  }
  return *topic;
}

std::shared_ptr<Topic> TopicStore::find(std::string_view name) const {
  MutexLock lock(mutex_);
  auto it = topics_.find(name);
  return it == topics_.end() ? nullptr : it->second;
}

Result<std::shared_ptr<Topic>> TopicStore::find_or_create(std::string_view name) {
  for (;;) {
    if (auto topic = find(name)) return topic;
    TopicSettings settings;
    settings.name = std::string(name);
    auto created = create(settings);
    if (created.is_ok() || created.status().code() != StatusCode::kAlreadyExists) return created;
    // Created concurrently: found next round (or, removed again meanwhile, created by it).
  }
}

std::vector<std::shared_ptr<Topic>> TopicStore::list() const {
  MutexLock lock(mutex_);
  std::vector<std::shared_ptr<Topic>> out;
  for (const auto& [name, topic] : topics_) out.push_back(topic);
  return out;
}

Status TopicStore::remove(std::string_view name) {
  const std::string key(name);
  std::shared_ptr<Topic> topic;
  {
    MutexLock lock(mutex_);
    while (busy_.count(key)) busy_done_.wait(mutex_);
    auto it = topics_.find(name);
    if (it == topics_.end()) {
      return Status(StatusCode::kNotFound, "topic \"" + key + "\" does not exist");
    }
    topic = it->second;
    // Found by no one from now on; the name stays held until its directory is gone from
    // topics/, so that it cannot be created again over it.
    topics_.erase(it);
    busy_.insert(key);
  }
  // Holders of the topic get kNotFound from now on; its descriptors are closed.
  for (uint32_t p = 0; p < topic->partition_count(); ++p) topic->partition(p).close();
  // Moved out of topics/ first, so that a crash mid-removal never leaves a half topic behind.
  const fs::path dir = topics_dir_ / key;
  const fs::path doomed = trash_dir_ / (key + "-" + std::to_string(now_ms()) + "-" +
                                        std::to_string(trash_sequence_.fetch_add(1)));
  std::error_code ec;
  fs::create_directories(trash_dir_, ec);
  fs::rename(dir, doomed, ec);
  {
    MutexLock lock(mutex_);
    busy_.erase(key);
  }
  busy_done_.notify_all();
  if (ec) {
    log::get("storage").error("cannot move {} to {}: {}", dir.string(), doomed.string(),
                              ec.message());
    return Status(StatusCode::kIo,
                  "topic \"" + key + "\": cannot remove its data: " + ec.message());
  }
  // Deleting may take long for a large topic: after the name is free again.
  fs::remove_all(doomed, ec);
  if (ec)
    log::get("storage").warn("cannot delete {}: {} (deleted at next start)", doomed.string(),
                             ec.message());
  return Status::ok();
}

Status TopicStore::flush_all() {
  Status first;
  for (const auto& topic : list()) {
    for (uint32_t p = 0; p < topic->partition_count(); ++p) {
      Status s = topic->partition(p).flush();
      if (!s.is_ok() && first.is_ok()) first = s;
    }
  }
  return first;
}

size_t TopicStore::flush_due() {
  // Only the partitions written since the last round: idle topics cost nothing here.
  std::set<std::pair<std::string, uint32_t>> due;
  {
    MutexLock lock(flush_queue_->mutex);
    due.swap(flush_queue_->due);
  }
  for (const auto& [name, partition] : due) {
    auto topic = find(name);
    if (!topic || partition >= topic->partition_count()) continue;
    // A failed flush queues the partition again (PartitionLog restores its unsynced state).
    if (Status s = topic->partition(partition).flush(); !s.is_ok()) {
      log::get("storage").error("{}", s.message());
    }
  }
  return due.size();
}

void TopicStore::run_background() {
  using Clock = std::chrono::steady_clock;
  auto next_retention =
      Clock::now() + std::chrono::milliseconds(options_.retention_check_interval_ms);
  background_mutex_.lock();
  while (!stopping_) {
    background_wake_.wait_for(background_mutex_,
                              std::chrono::milliseconds(options_.fsync_interval_ms));
    if (stopping_) break;
    background_mutex_.unlock();
    if (options_.log.fsync == FsyncPolicy::kInterval) flush_due();
    if (Clock::now() >= next_retention) {
      next_retention =
          Clock::now() + std::chrono::milliseconds(options_.retention_check_interval_ms);
      for (const auto& topic : list()) {
        for (uint32_t p = 0; p < topic->partition_count(); ++p) {
          auto deleted = topic->partition(p).enforce_retention(now_ms());
          if (deleted.is_ok() && *deleted > 0) {
            log::get("storage").info("retention removed {} segment(s) of {}/{}", *deleted,
                                     topic->name(), p);
          }
        }
      }
    }
    background_mutex_.lock();
  }
  background_mutex_.unlock();
}

}  // namespace wasmq::storage
