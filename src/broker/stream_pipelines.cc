#include "broker/stream_pipelines.h"

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <future>
#include <set>

#include "common/file.h"
#include "common/log.h"

namespace wasmq::broker {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

constexpr size_t kMaxBatchBytes = 4 << 20;

}  // namespace

struct StreamPipelines::Runner {
  Broker& broker;
  std::shared_ptr<const etl::Configuration> configuration;
  std::shared_ptr<const etl::CompiledPipeline> pipeline;
  fs::path positions_path;
  std::atomic<bool> stop{false};
  Mutex wake_mutex;
  CondVar wake;
  mutable Mutex status_mutex;
  StreamStatus status GUARDED_BY(status_mutex);
  std::thread thread;

  Runner(Broker& b, std::shared_ptr<const etl::Configuration> c,
         std::shared_ptr<const etl::CompiledPipeline> p, fs::path path)
      : broker(b),
        configuration(std::move(c)),
        pipeline(std::move(p)),
        positions_path(std::move(path)) {}

  const etl::PipelineSpec& spec() const { return pipeline->spec; }

  // Sleeps up to `d`, or less when asked to stop.
  void pause(std::chrono::milliseconds d) {
    MutexLock lock(wake_mutex);
    const auto deadline = std::chrono::steady_clock::now() + d;
    while (!stop.load() && wake.wait_until(wake_mutex, deadline)) {
    }
  }

  // What the broker's wake-up callbacks set when a source partition receives data. Shared with
  // them: a callback may still run after the runner has stopped waiting (or has gone).
  struct Arrival {
    Mutex mutex;
    CondVar cv;
    bool data GUARDED_BY(mutex) = false;
    bool stopped GUARDED_BY(mutex) = false;
  };
  const std::shared_ptr<Arrival> arrival = std::make_shared<Arrival>();

  // Waits until one of `positions` (partition -> next offset) of `topic` receives data, the
  // runner is asked to stop, or `most` passes (new partitions, a topic removed or created).
  void wait_for_data(const std::string& topic, const std::map<uint32_t, int64_t>& positions,
                     std::chrono::milliseconds most) {
    {
      MutexLock lock(arrival->mutex);
      arrival->data = false;
    }
    std::vector<uint64_t> waits;
    for (const auto& [partition, offset] : positions) {
      const uint64_t id = broker.wait_for_data(topic, partition, offset, [a = arrival] {
        {
          MutexLock lock(a->mutex);
          a->data = true;
        }
        a->cv.notify_all();
      });
      if (id != 0) waits.push_back(id);
    }
    {
      MutexLock lock(arrival->mutex);
      const auto deadline = std::chrono::steady_clock::now() + most;
      while (!arrival->data && !arrival->stopped &&
             arrival->cv.wait_until(arrival->mutex, deadline)) {
      }
    }
    for (uint64_t id : waits) broker.cancel_wait(id);
  }

  void fail(const std::string& why) {
    log::get("etl").warn("stream pipeline {}: {}", spec().pipeline_id, why);
    MutexLock lock(status_mutex);
    status.last_error = why;
  }

  // The committed positions, when they are for the current source topic.
  std::map<uint32_t, int64_t> load_positions() {
    std::map<uint32_t, int64_t> positions;
    auto text = read_file(positions_path, 1 << 20);
    if (!text.is_ok()) return positions;
    boost::system::error_code ec;
    json::value v = json::parse(*text, ec);
    if (ec || !v.is_object()) {
      // The path goes to the log only: the status is read by API clients.
      log::get("etl").warn("stream pipeline {}: unreadable positions file {}", spec().pipeline_id,
                           positions_path.string());
      fail("ignoring its unreadable positions file; start_from applies");
      return positions;
    }
    const json::value* source = v.get_object().if_contains("source_topic");
    const json::value* saved = v.get_object().if_contains("positions");
    if (!source || !source->is_string() || source->get_string() != spec().source_topic || !saved ||
        !saved->is_object()) {
      return positions;  // another source: start_from applies
    }
    for (const auto& [partition, offset] : saved->get_object()) {
      uint32_t p = 0;
      auto [end, perr] = std::from_chars(partition.data(), partition.data() + partition.size(), p);
      if (perr == std::errc() && offset.is_int64()) positions[p] = offset.get_int64();
    }
    return positions;
  }

  Status commit(const std::map<uint32_t, int64_t>& positions) {
    json::object saved;
    for (const auto& [p, offset] : positions) saved[std::to_string(p)] = offset;
    json::object doc{{"pipeline_id", spec().pipeline_id},
                     {"source_topic", spec().source_topic},
                     {"positions", std::move(saved)}};
    Status written = write_file_atomically(positions_path, json::serialize(doc));
    if (written.is_ok()) return written;
    log::get("etl").error("stream pipeline {}: {}", spec().pipeline_id, written.message());
    return without_path(written, "cannot commit positions");
  }

  // Where a partition starts when nothing was committed for it.
  int64_t initial_position(const storage::PartitionLog& log) {
    const std::string& from = spec().start_from;
    if (from == "earliest") return log.start_offset();
    if (from == "latest" || from.empty()) return log.next_offset();
    if (from[0] == '@') {
      int64_t at = 0;
      std::from_chars(from.data() + 1, from.data() + from.size(), at);
      int64_t offset = log.start_offset();
      while (offset < log.next_offset()) {
        auto read = log.read(offset, 1000, kMaxBatchBytes);
        if (!read.is_ok() || read->records.empty()) break;
        for (const auto& r : read->records) {
          if (r.message.timestamp >= at) return r.offset;
        }
        offset = read->next_offset;
      }
      return log.next_offset();
    }
    int64_t offset = 0;
    std::from_chars(from.data(), from.data() + from.size(), offset);
    return std::clamp(offset, log.start_offset(), log.next_offset());
  }

  void run() {
    const etl::PipelineSpec& p = spec();
    log::get("etl").info("stream pipeline {}: {} -> {}", p.pipeline_id, p.source_topic,
                         p.destination_topic);
    std::map<uint32_t, int64_t> positions = load_positions();
    size_t batch_size = broker.etl()->options().defaults.max_batch_size;
    if (p.configuration.batch_size)
      batch_size = std::min<size_t>(batch_size, *p.configuration.batch_size);
    batch_size = std::max<size_t>(batch_size, 1);
    auto plan = std::make_shared<const etl::TopicPlan>(
        etl::Configuration::plan_of(*pipeline, p.source_topic));
    // "latest" means the moment the runner starts: positions for the partitions that exist now
    // are taken and committed at once. A topic or partition that appears later is read from its
    // start (everything in it came after).
    if (auto topic = broker.store().find(p.source_topic)) {
      bool added = false;
      for (uint32_t partition = 0; partition < topic->partition_count(); ++partition) {
        if (positions.count(partition)) continue;
        positions[partition] = initial_position(topic->partition(partition));
        added = true;
      }
      if (added) {
        if (Status s = commit(positions); !s.is_ok())
          fail("cannot commit positions: " + s.message());
      }
    }
    {
      MutexLock lock(status_mutex);
      status.running = true;
      status.positions = positions;
    }
    const bool from_offset =
        p.start_from != "latest" && p.start_from != "earliest" && !p.start_from.empty();
    while (!stop) {
      auto topic = broker.store().find(p.source_topic);
      if (!topic) {
        pause(100ms);
        continue;
      }
      // One batch from the partitions in turn.
      std::vector<etl::InputMessage> inputs;
      std::map<uint32_t, int64_t> next = positions;
      int64_t lag = 0;
      for (uint32_t partition = 0; partition < topic->partition_count(); ++partition) {
        const storage::PartitionLog& log = topic->partition(partition);
        if (!next.count(partition)) {
          next[partition] = from_offset ? initial_position(log) : log.start_offset();
        }
        int64_t& at = next[partition];
        if (at < log.start_offset()) {
          fail("partition " + std::to_string(partition) + ": offsets " + std::to_string(at) +
               " to " + std::to_string(log.start_offset() - 1) +
               " were removed by retention before they were processed");
          at = log.start_offset();
        }
        if (inputs.size() < batch_size && at < log.next_offset()) {
          auto read = log.read(at, batch_size - inputs.size(), kMaxBatchBytes);
          if (!read.is_ok()) {
            fail("cannot read partition " + std::to_string(partition) + ": " +
                 read.status().message());
            continue;
          }
          for (auto& r : read->records) inputs.push_back({std::move(r.message), std::nullopt});
          at = read->next_offset;
        }
        lag += log.next_offset() - at;
      }
      if (inputs.empty()) {
        if (next != positions && commit(next).is_ok()) positions = next;
        {
          MutexLock lock(status_mutex);
          status.positions = positions;
          status.lag = lag;
        }
        // Woken by the appends to its partitions, not polling.
        wait_for_data(p.source_topic, next, 1000ms);
        continue;
      }
      const size_t count = inputs.size();
      // The promise belongs to the callback: a job that ends without calling it (a worker
      // that threw) destroys it, and get() reports a broken promise instead of waiting forever.
      auto ran = std::make_shared<std::promise<etl::BatchResult>>();
      auto result = ran->get_future();
      broker.etl()->process(configuration, plan, p.source_topic, std::move(inputs),
                            [ran](etl::BatchResult r) { ran->set_value(std::move(r)); });
      etl::BatchResult batch;
      try {
        batch = result.get();
      } catch (const std::future_error& e) {
        fail(std::string("batch not run by the ETL workers, retrying: ") + e.what());
        pause(1000ms);
        continue;
      }
      auto outcomes = broker.store_etl_result(p.source_topic, std::move(batch), p.destination_topic);
      uint64_t stored = 0;
      std::string failure;
      for (const auto& o : outcomes) {
        if (o.kind == ProduceOutcome::Kind::kFailed && failure.empty()) failure = o.error;
        stored += o.records.size();
      }
      if (!failure.empty()) {
        // Not committed: the batch is read and run again (at-least-once).
        fail("batch not stored, retrying: " + failure);
        pause(1000ms);
        continue;
      }
      if (Status s = commit(next); !s.is_ok()) {
        fail("cannot commit positions: " + s.message());
        pause(1000ms);
        continue;
      }
      positions = next;
      MutexLock lock(status_mutex);
      status.positions = positions;
      status.lag = lag;
      ++status.batches;
      status.messages_in += count;
      status.records_out += stored;
      status.last_error.clear();
    }
    MutexLock lock(status_mutex);
    status.running = false;
  }

  void start() {
    thread = std::thread([this] { run(); });
  }
  void finish() {
    stop = true;
    wake.notify_all();
    {
      MutexLock lock(arrival->mutex);
      arrival->stopped = true;
    }
    arrival->cv.notify_all();
    if (thread.joinable()) thread.join();
  }
};

StreamPipelines::StreamPipelines(Broker& broker) : broker_(broker) {
  if (!broker_.etl()) return;
  std::error_code ec;
  fs::create_directories(broker_.store().options().data_dir / "streams", ec);
  supervisor_ = std::thread([this] { supervise(); });
}

StreamPipelines::~StreamPipelines() {
  stopping_ = true;
  wake_.notify_all();
  if (supervisor_.joinable()) supervisor_.join();
  MutexLock lock(mutex_);
  for (auto& [id, runner] : runners_) runner->finish();
  runners_.clear();
}

void StreamPipelines::supervise() {
  while (!stopping_) {
    reconcile();
    MutexLock lock(wake_mutex_);
    const auto deadline = std::chrono::steady_clock::now() + 100ms;
    while (!stopping_.load() && wake_.wait_until(wake_mutex_, deadline)) {
    }
  }
}

void StreamPipelines::reconcile() {
  auto configuration = broker_.etl()->configuration();
  if (configuration == seen_) return;
  seen_ = configuration;
  std::map<std::string, std::shared_ptr<const etl::CompiledPipeline>> wanted;
  std::set<std::string> existing;
  for (const auto& p : configuration->pipelines()) {
    existing.insert(p->spec.pipeline_id);
    if (p->spec.mode == etl::PipelineMode::kStream && p->spec.enabled)
      wanted[p->spec.pipeline_id] = p;
  }
  const fs::path dir = broker_.store().options().data_dir / "streams";
  MutexLock lock(mutex_);
  for (auto it = runners_.begin(); it != runners_.end();) {
    auto w = wanted.find(it->first);
    if (w != wanted.end() && w->second == it->second->pipeline) {
      ++it;
      continue;
    }
    it->second->finish();
    {
      MutexLock status_lock(it->second->status_mutex);
      finished_[it->first] = it->second->status;
    }
    it = runners_.erase(it);
  }
  for (auto& [id, pipeline] : wanted) {
    if (runners_.count(id)) continue;
    auto runner = std::make_unique<Runner>(broker_, configuration, pipeline, dir / (id + ".json"));
    runner->start();
    runners_[id] = std::move(runner);
  }
  // A deleted pipeline's positions go with it.
  std::error_code ec;
  for (const auto& file : fs::directory_iterator(dir, ec)) {
    if (file.path().extension() == ".json" && !existing.count(file.path().stem().string())) {
      fs::remove(file.path(), ec);
      finished_.erase(file.path().stem().string());
    }
  }
}

std::optional<StreamStatus> StreamPipelines::status(const std::string& pipeline_id) const {
  MutexLock lock(mutex_);
  if (auto it = runners_.find(pipeline_id); it != runners_.end()) {
    MutexLock status_lock(it->second->status_mutex);
    return it->second->status;
  }
  std::optional<StreamStatus> status;
  if (auto it = finished_.find(pipeline_id); it != finished_.end()) status = it->second;
  // Stopped by the broker (a cycle at start): the reason is what a look at its status must see.
  if (auto reason = broker_.etl() ? broker_.etl()->stop_reason(pipeline_id) : std::nullopt) {
    if (!status) status.emplace();
    status->running = false;
    status->last_error = std::move(*reason);
  }
  return status;
}

}  // namespace wasmq::broker
