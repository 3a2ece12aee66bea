#include "storage/topic_store.h"

#include "common/file.h"

#include "common/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <fstream>
#include <sstream>

namespace wasmq::storage {
namespace fs = std::filesystem;

namespace {

constexpr const char* kSettingsFile = "topic.json";
constexpr const char* kDeletedPrefix = ".deleted-";

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

Result<TopicSettings> settings_from_file(const fs::path& path) {
  auto text = read_file(path, 1 << 20);
  if (!text.is_ok()) return text.status();
  boost::system::error_code ec;
  auto json = boost::json::parse(*text, ec);
  auto bad = [&](const std::string& why) {
    return Status(StatusCode::kIo, path.string() + ": " + why);
  };
  if (ec || !json.is_object()) return bad("not a JSON object");
  const auto& o = json.get_object();
  TopicSettings s;
  if (!o.contains("name") || !o.at("name").is_string()) return bad("name missing");
  s.name = std::string(o.at("name").get_string());
  if (!o.contains("partitions") || !o.at("partitions").is_int64() ||
      o.at("partitions").get_int64() < 1) {
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

}  // namespace

Status validate_topic_name(std::string_view name) {
  if (name.empty() || name.size() > 249) {
    return invalid_argument("topic name must be 1 to 249 characters long");
  }
  if (name == "." || name == "..") return invalid_argument("topic name cannot be \".\" or \"..\"");
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) {
      return invalid_argument("topic name \"" + std::string(name) +
                              "\" may contain only letters, digits, '.', '_' and '-'");
    }
  }
  return Status::ok();
}

Topic::Topic(TopicSettings settings, std::vector<std::unique_ptr<PartitionLog>> partitions)
    : settings_(std::move(settings)), partitions_(std::move(partitions)) {}

uint32_t Topic::choose_partition(const std::optional<std::string>& key) {
  if (key) return partition_for_key(*key, partition_count());
  return next_unkeyed_.fetch_add(1, std::memory_order_relaxed) % partition_count();
}

TopicStore::TopicStore(StoreOptions options)
    : options_(std::move(options)), topics_dir_(options_.data_dir / "topics") {}

LogOptions TopicStore::log_options_for(const TopicSettings& settings) const {
  LogOptions log = options_.log;
  if (settings.retention_ms) log.retention_ms = *settings.retention_ms;
  if (settings.retention_bytes) log.retention_bytes = *settings.retention_bytes;
  return log;
}

Result<std::shared_ptr<Topic>> TopicStore::open_topic(const TopicSettings& settings,
                                                      std::vector<std::string>* repairs) {
  std::vector<std::unique_ptr<PartitionLog>> partitions;
  const LogOptions log = log_options_for(settings);
  for (uint32_t p = 0; p < settings.partitions; ++p) {
    auto partition = PartitionLog::open(topics_dir_ / settings.name / std::to_string(p), log, repairs);
    if (!partition.is_ok()) return partition.status();
    partitions.push_back(std::move(*partition));
  }
  return std::make_shared<Topic>(settings, std::move(partitions));
}

Result<std::unique_ptr<TopicStore>> TopicStore::open(const StoreOptions& options,
                                                     std::vector<std::string>* repairs) {
  std::unique_ptr<TopicStore> store(new TopicStore(options));
  std::error_code ec;
  fs::create_directories(store->topics_dir_, ec);
  if (ec) {
    return Status(StatusCode::kIo,
                  "cannot create " + store->topics_dir_.string() + ": " + ec.message());
  }
  for (const auto& entry : fs::directory_iterator(store->topics_dir_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(kDeletedPrefix, 0) == 0) {
      // A deletion that a crash interrupted.
      fs::remove_all(entry.path(), ec);
      continue;
    }
    if (!entry.is_directory()) continue;
    fs::path settings_path = entry.path() / kSettingsFile;
    if (!fs::exists(settings_path)) {
      if (repairs) repairs->push_back(entry.path().string() + ": no " + kSettingsFile + ", skipped");
      continue;
    }
    auto settings = settings_from_file(settings_path);
    if (!settings.is_ok()) return settings.status();
    if (settings->name != name) {
      return Status(StatusCode::kIo, settings_path.string() + ": names topic \"" +
                                         settings->name + "\" but lies in \"" + name + "\"");
    }
    auto topic = store->open_topic(*settings, repairs);
    if (!topic.is_ok()) return topic.status();
    store->topics_.emplace(name, std::move(*topic));
  }
  if (ec) return Status(StatusCode::kIo, "cannot list " + store->topics_dir_.string());
  store->background_ = std::thread([s = store.get()] { s->run_background(); });
  return store;
}

TopicStore::~TopicStore() {
  {
    std::lock_guard lock(background_mutex_);
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
  std::lock_guard lock(mutex_);
  if (topics_.count(settings.name)) {
    return Status(StatusCode::kAlreadyExists, "topic \"" + settings.name + "\" already exists");
  }
  const fs::path dir = topics_dir_ / settings.name;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Status(StatusCode::kIo, "cannot create " + dir.string() + ": " + ec.message());
  auto topic = open_topic(settings, nullptr);
  Status written = topic.is_ok()
                       ? write_file_atomically(dir / kSettingsFile,
                                          boost::json::serialize(settings_to_json(settings)))
                       : topic.status();
  if (!written.is_ok()) {
    fs::remove_all(dir, ec);  // all or nothing
    return written;
  }
  topics_.emplace(settings.name, *topic);
  return *topic;
}

std::shared_ptr<Topic> TopicStore::find(std::string_view name) const {
  std::lock_guard lock(mutex_);
  auto it = topics_.find(name);
  return it == topics_.end() ? nullptr : it->second;
}

Result<std::shared_ptr<Topic>> TopicStore::find_or_create(std::string_view name) {
  if (auto topic = find(name)) return topic;
  TopicSettings settings;
  settings.name = std::string(name);
  auto created = create(settings);
  if (!created.is_ok() && created.status().code() == StatusCode::kAlreadyExists) {
    if (auto topic = find(name)) return topic;  // created concurrently
  }
  return created;
}

std::vector<std::shared_ptr<Topic>> TopicStore::list() const {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<Topic>> out;
  for (const auto& [name, topic] : topics_) out.push_back(topic);
  return out;
}

Status TopicStore::remove(std::string_view name) {
  std::shared_ptr<Topic> topic;
  {
    std::lock_guard lock(mutex_);
    auto it = topics_.find(name);
    if (it == topics_.end()) {
      return Status(StatusCode::kNotFound, "topic \"" + std::string(name) + "\" does not exist");
    }
    topic = it->second;
    topics_.erase(it);
  }
  // Renamed first so that a crash mid-removal never leaves a half topic behind.
  const fs::path dir = topics_dir_ / std::string(name);
  const fs::path doomed =
      topics_dir_ / (std::string(kDeletedPrefix) + std::string(name) + "-" + std::to_string(now_ms()));
  std::error_code ec;
  fs::rename(dir, doomed, ec);
  if (ec) return Status(StatusCode::kIo, "cannot remove " + dir.string() + ": " + ec.message());
  fs::remove_all(doomed, ec);
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

void TopicStore::run_background() {
  using Clock = std::chrono::steady_clock;
  auto next_retention = Clock::now() + std::chrono::milliseconds(options_.retention_check_interval_ms);
  std::unique_lock lock(background_mutex_);
  while (!stopping_) {
    background_wake_.wait_for(lock, std::chrono::milliseconds(options_.fsync_interval_ms));
    if (stopping_) break;
    lock.unlock();
    if (options_.log.fsync == FsyncPolicy::kInterval) {
      if (Status s = flush_all(); !s.is_ok()) log::get("storage").error("{}", s.message());
    }
    if (Clock::now() >= next_retention) {
      next_retention = Clock::now() + std::chrono::milliseconds(options_.retention_check_interval_ms);
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
    lock.lock();
  }
}

}  // namespace wasmq::storage
