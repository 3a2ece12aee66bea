#include "broker/broker.h"

#include <algorithm>
#include <deque>
#include <future>
#include <tuple>

#include "common/bincode.h"
#include "common/log.h"

namespace wasmq::broker {
namespace {

void fail(ProduceOutcome& out, const std::string& error) {
  out.kind = ProduceOutcome::Kind::kFailed;
  if (out.error.empty()) out.error = error;
}

// Splits one partition's `members` (in order) into batches of at most kMaxAppendRecords records
// and kMaxAppendBytes bytes (a single larger message is a batch of its own), so that a read at
// any offset decodes a bounded amount, and encodes them here, outside any lock. `message_of(k)`
// gives member k's message (a Message&, moved into the batch, or a view), `input_of(k)` the
// input it answers for.
template <typename M, typename MessageOf, typename InputOf, typename Job>
void encode_batches(const std::vector<size_t>& members, MessageOf message_of, InputOf input_of,
                    Job* job, storage::Codec codec = storage::Codec::kNone) {
  std::vector<M> batch;
  batch.reserve(std::min(members.size(), kMaxAppendRecords));
  for (size_t first = 0; first < members.size();) {
    size_t end = first;
    size_t bytes = 0;
    batch.clear();
    std::vector<size_t> inputs;
    inputs.reserve(std::min(members.size() - first, kMaxAppendRecords));
    while (end < members.size() && batch.size() < kMaxAppendRecords) {
      auto&& m = message_of(members[end]);
      const size_t size = bincode::encoded_size(m);
      if (!batch.empty() && bytes + size > kMaxAppendBytes) break;
      bytes += size;
      batch.push_back(std::move(m));  // a Message moves; a view is copied
      inputs.push_back(input_of(members[end]));
      ++end;
    }
    storage::EncodedBatch encoded;
    storage::encode_batch(0, std::span<const M>(batch), &encoded.bytes);
    if (Status s = storage::compress_batch(&encoded.bytes, codec); !s.is_ok()) {
      // Stored uncompressed: still a valid batch, which every consumer reads.
      log::get("broker").warn("a batch stays uncompressed: {}", s.message());
    }
    encoded.records = static_cast<uint32_t>(batch.size());
    job->batches.push_back(std::move(encoded));
    job->inputs.push_back(std::move(inputs));
    first = end;
  }
}

}  // namespace

Broker::Broker(storage::TopicStore& store, BrokerOptions options, etl::Orchestrator* etl)
    : store_(store), options_(options), etl_(etl) {}

Status Broker::check_partition(const storage::Topic& topic, size_t i,
                               std::optional<uint32_t> partition) {
  const uint32_t partitions = topic.partition_count();
  if (!partition || *partition < partitions) return Status::ok();
  return field_error("messages[" + std::to_string(i) + "].partition",
                     std::to_string(*partition) + " is out of range (topic \"" + topic.name() +
                         "\" has " + std::to_string(partitions) + " partition" +
                         (partitions == 1 ? "" : "s") + ")");
}

Status Broker::not_created(std::string_view topic) {
  return Status(StatusCode::kNotFound, "topic \"" + std::string(topic) +
                                           "\" does not exist (auto_create_topics is off)");
}

bool Broker::find_topics(const std::vector<StoreJob>& jobs, Topics* found) const {
  bool creates = false;
  std::string_view last;
  for (const StoreJob& job : jobs) {
    for (const Placement& p : job.placements) {
      // Mostly one name, the same view, over and over.
      if (p.topic.data() == last.data() && p.topic.size() == last.size()) continue;
      last = p.topic;
      auto [it, first] = found->try_emplace(p.topic);
      if (!first) continue;
      it->second = store_.find(p.topic);
      if (!it->second && (p.dead_letter || options_.auto_create_topics)) creates = true;
    }
  }
  return creates;
}

void Broker::store(std::vector<StoreJob> jobs) {
  Topics found;
  if (!find_topics(jobs, &found)) {
    for (StoreJob& job : jobs) store_one(std::move(job), found);
    return;
  }
  // A topic to create first: its disk work (directories, files, fsync) is not for this thread.
  // The jobs go on, in order, from a disk thread, with names it owns (the placements view names
  // owned by the caller).
  auto names = std::make_shared<std::deque<std::string>>();
  std::map<std::string_view, std::string_view> owned;
  for (StoreJob& job : jobs) {
    for (Placement& p : job.placements) {
      auto it = owned.find(p.topic);
      if (it == owned.end()) {
        names->emplace_back(p.topic);
        it = owned.emplace(p.topic, names->back()).first;
      }
      p.topic = it->second;
    }
  }
  auto moved = std::make_shared<std::vector<StoreJob>>(std::move(jobs));
  disk_tasks_.post([this, names, moved] {
    for (StoreJob& job : *moved) store_one(std::move(job), Topics{});
  });
}

void Broker::store_one(StoreJob job, const Topics& found) {
  std::vector<Placement>& placements = job.placements;
  std::vector<ProduceOutcome>& outcomes = job.outcomes;
  StoreDone& done = job.done;
  const storage::Codec codec = job.codec;
  // Group by topic and partition, keeping order within each.
  struct Target {
    std::shared_ptr<storage::Topic> topic;
    std::vector<std::vector<size_t>> by_partition;
    std::string refused;  // why the topic could not be had (then `topic` is null)
  };
  std::map<std::string_view, Target> targets;
  for (size_t i = 0; i < placements.size(); ++i) {
    Placement& p = placements[i];
    auto [target, first] = targets.try_emplace(p.topic);
    Target& t = target->second;
    if (first) {
      auto known = found.find(p.topic);
      t.topic = known != found.end() ? known->second : store_.find(p.topic);
      if (!t.topic && !p.dead_letter && !options_.auto_create_topics) {
        t.refused = not_created(p.topic).message();
      } else if (!t.topic) {
        // On a disk thread (store() saw to it), or a topic removed since store() looked.
        auto created = store_.find_or_create(p.topic);
        if (created.is_ok()) {
          t.topic = *created;
        } else {
          t.refused = created.status().message();
        }
      }
    }
    if (!t.topic) {
      fail(outcomes[p.input], t.refused);
      continue;
    }
    if (t.by_partition.empty()) t.by_partition.resize(t.topic->partition_count());
    uint32_t partition = p.partition && *p.partition < t.topic->partition_count()
                             ? *p.partition
                             : t.topic->choose_partition(p.message.key);
    t.by_partition[partition].push_back(i);
  }
  std::vector<AppendJob> jobs;
  for (auto& [name, t] : targets) {
    for (uint32_t partition = 0; partition < t.by_partition.size(); ++partition) {
      const auto& members = t.by_partition[partition];
      if (members.empty()) continue;
      AppendJob& job = jobs.emplace_back(AppendJob{t.topic, partition, {}, {}});
      encode_batches<Message>(
          members, [&](size_t k) -> Message& { return placements[k].message; },
          [&](size_t k) { return placements[k].input; }, &job, codec);
    }
  }
  queue_appends(std::move(jobs), std::move(outcomes), std::move(done));
}

void Broker::queue_appends(std::vector<AppendJob> jobs, std::vector<ProduceOutcome> outcomes,
                           StoreDone done) {
  if (jobs.empty()) {
    done(std::move(outcomes));
    return;
  }
  // What the partitions' appends share: the outcomes, filled as each partition's batches are
  // written, and how many partitions are still to come.
  struct Pending {
    Pending(std::vector<ProduceOutcome> all, size_t partitions, StoreDone d)
        : outcomes(std::move(all)), partitions_left(partitions), done(std::move(d)) {}
    Mutex mutex;
    std::vector<ProduceOutcome> outcomes GUARDED_BY(mutex);
    size_t partitions_left GUARDED_BY(mutex);
    const StoreDone done;  // called by the last partition's append, outside the lock
  };
  auto pending = std::make_shared<Pending>(std::move(outcomes), jobs.size(), std::move(done));
  for (AppendJob& job : jobs) {
    storage::PartitionLog& log = job.topic->partition(job.partition);
    auto topic = job.topic;
    const uint32_t partition = job.partition;
    appender_.append(
        log, topic, std::move(job.batches),
        [this, pending, topic, partition, inputs = std::move(job.inputs)](
            std::vector<Result<storage::AppendResult>> results) {
          bool appended_any = false;
          bool last = false;
          std::vector<ProduceOutcome> outcomes;  // every input's, taken by the last partition
          {
            MutexLock lock(pending->mutex);
            for (size_t k = 0; k < results.size(); ++k) {
              for (size_t r = 0; r < inputs[k].size(); ++r) {
                ProduceOutcome& out = pending->outcomes[inputs[k][r]];
                if (results[k].is_ok()) {
                  out.records.push_back({topic->shared_name(), partition,
                                         results[k]->base_offset + static_cast<int64_t>(r)});
                } else {
                  fail(out, results[k].status().message());
                }
              }
              appended_any |= results[k].is_ok();
            }
            last = --pending->partitions_left == 0;
            if (last) outcomes = std::move(pending->outcomes);
          }
          if (appended_any) notify(topic->name(), partition);
          if (last) pending->done(std::move(outcomes));
        });
  }
}

void Broker::drain_appends() { appender_.drain(); }

void Broker::append_batch(std::shared_ptr<storage::Topic> topic, uint32_t partition,
                          storage::EncodedBatch batch, BatchDone done) {
  storage::PartitionLog& log = topic->partition(partition);
  std::vector<storage::EncodedBatch> batches;
  batches.push_back(std::move(batch));
  appender_.append(log, topic, std::move(batches),
                   [this, topic, partition, done = std::move(done)](
                       std::vector<Result<storage::AppendResult>> results) {
                     if (results.front().is_ok()) notify(topic->name(), partition);
                     done(std::move(results.front()));
                   });
}

Result<std::vector<ProduceOutcome>> Broker::produce(std::string_view topic_name,
                                                    std::vector<ProduceRecord> records) {
  std::promise<Result<std::vector<ProduceOutcome>>> stored;
  auto future = stored.get_future();
  auto immediate = admit(std::string(topic_name), std::move(records),
                         [&stored](Result<std::vector<ProduceOutcome>> outcomes) {
                           stored.set_value(std::move(outcomes));
                         },
                         Route{});
  if (immediate) return std::move(*immediate);
  return future.get();
}

std::optional<Result<std::vector<ProduceOutcome>>> Broker::produce(
    std::string topic_name, std::vector<ProduceRecord> records, ProduceDone done,
    storage::Codec codec) {
  // The name is checked before any plan is looked up: plans are cached per topic name.
  if (Status s = storage::validate_topic_name(topic_name); !s.is_ok()) {
    return Result<std::vector<ProduceOutcome>>(s);
  }
  Route route = route_for(topic_name);
  return admit(std::move(topic_name), std::move(records), std::move(done), std::move(route),
               codec);
}

std::optional<Result<std::vector<ProduceOutcome>>> Broker::produce(
    std::string topic_name, std::span<const MessageView> messages,
    std::span<const std::optional<uint32_t>> partitions, ProduceDone done) {
  using Refusal = Result<std::vector<ProduceOutcome>>;
  // The name is checked before any plan is looked up: plans are cached per topic name.
  if (Status s = storage::validate_topic_name(topic_name); !s.is_ok()) return Refusal(s);
  if (messages.empty()) return Refusal(invalid_argument("no messages to produce"));
  Route route = route_for(topic_name);
  std::shared_ptr<storage::Topic> topic = route.plan ? nullptr : store_.find(topic_name);
  if (!topic) {
    // Pipelines to run or a topic to create: the messages are copied and go the common way.
    std::vector<ProduceRecord> records(messages.size());
    for (size_t i = 0; i < records.size(); ++i) {
      records[i].message = messages[i].to_message();
      records[i].partition = partitions[i];
    }
    return admit(std::move(topic_name), std::move(records), std::move(done), std::move(route));
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    if (Status s = check_partition(*topic, i, partitions[i]); !s.is_ok()) {
      return Refusal(s);
    }
  }
  // By partition, in order, and encoded now from the views: nothing is copied but into the
  // batches.
  std::vector<uint32_t> chosen(messages.size());
  std::vector<size_t> counts(topic->partition_count(), 0);
  for (size_t i = 0; i < messages.size(); ++i) {
    chosen[i] = partitions[i] ? *partitions[i] : topic->choose_partition(messages[i].key);
    ++counts[chosen[i]];
  }
  std::vector<std::vector<size_t>> by_partition(counts.size());
  for (uint32_t p = 0; p < counts.size(); ++p) by_partition[p].reserve(counts[p]);
  for (size_t i = 0; i < messages.size(); ++i) by_partition[chosen[i]].push_back(i);
  std::vector<AppendJob> jobs;
  for (uint32_t partition = 0; partition < by_partition.size(); ++partition) {
    if (by_partition[partition].empty()) continue;
    AppendJob& job = jobs.emplace_back(AppendJob{topic, partition, {}, {}});
    encode_batches<MessageView>(
        by_partition[partition], [&](size_t k) -> const MessageView& { return messages[k]; },
        [](size_t k) { return k; }, &job);
  }
  queue_appends(std::move(jobs), std::vector<ProduceOutcome>(messages.size()),
                [done = std::move(done)](std::vector<ProduceOutcome> stored) {
                  done(std::move(stored));
                });
  return std::nullopt;
}

Broker::Route Broker::route_for(const std::string& topic) const {
  Route route;
  if (!etl_) return route;
  route.configuration = etl_->configuration();
  route.plan = route.configuration->plan_for(topic);
  if (route.plan->empty()) route = Route{};
  return route;
}

std::optional<Result<std::vector<ProduceOutcome>>> Broker::admit(std::string topic_name,
                                                                 std::vector<ProduceRecord> records,
                                                                 ProduceDone done, Route route,
                                                                 storage::Codec codec) {
  using Refusal = Result<std::vector<ProduceOutcome>>;
  if (Status s = storage::validate_topic_name(topic_name); !s.is_ok()) return Refusal(s);
  if (records.empty()) return Refusal(invalid_argument("no messages to produce"));
  Request request{std::move(topic_name), std::move(records), std::move(done),
                  std::move(route.configuration), std::move(route.plan), {}, codec};
  if (request.plan) {
    // What a module cannot be given is refused before anything is done (Kafka clients may
    // produce binary keys and headers).
    for (size_t i = 0; i < request.records.size(); ++i) {
      if (Status s = text_for_modules(request.records[i].message); !s.is_ok()) {
        return Refusal(field_error("messages[" + std::to_string(i) + "]", s.message()));
      }
    }
    // Admitted before anything is created or queued: a refusal (503) changes nothing.
    uint64_t bytes = 0;
    for (const auto& r : request.records) bytes += bincode::encoded_size(r.message);
    auto admission = etl_->workers().admit(bytes);
    if (!admission.is_ok()) return Refusal(admission.status());
    // Held until the outputs are stored and reported.
    request.admission = std::make_shared<etl::Admission>(std::move(*admission));
  }
  std::shared_ptr<storage::Topic> topic = store_.find(request.topic);
  if (topic) return dispatch(*topic, std::move(request));
  if (!options_.auto_create_topics) return Refusal(not_created(request.topic));
  // Creating the topic is disk work (directories, files, fsync): the request goes on from a
  // disk thread, and its refusals, if any, are answered through `done`.
  auto waiting = std::make_shared<Request>(std::move(request));
  disk_tasks_.post([this, waiting] {
    auto created = store_.find_or_create(waiting->topic);
    if (!created.is_ok()) {
      waiting->done(created.status());
      return;
    }
    ProduceDone done = waiting->done;
    if (auto refused = dispatch(**created, std::move(*waiting))) done(std::move(*refused));
  });
  return std::nullopt;
}

std::optional<Result<std::vector<ProduceOutcome>>> Broker::dispatch(const storage::Topic& topic,
                                                                    Request request) {
  for (size_t i = 0; i < request.records.size(); ++i) {
    if (Status s = check_partition(topic, i, request.records[i].partition); !s.is_ok()) {
      return Result<std::vector<ProduceOutcome>>(s);
    }
  }
  std::vector<ProduceRecord>& records = request.records;
  if (!request.plan) {
    std::vector<ProduceOutcome> outcomes(records.size());
    std::vector<Placement> placements(records.size());
    for (size_t i = 0; i < records.size(); ++i) {
      placements[i].input = i;
      placements[i].topic = topic.name();
      placements[i].partition = records[i].partition;
      placements[i].message = std::move(records[i].message);
    }
    std::vector<StoreJob> jobs(1);
    jobs[0].placements = std::move(placements);
    jobs[0].outcomes = std::move(outcomes);
    jobs[0].codec = request.codec;
    jobs[0].done = [done = std::move(request.done)](std::vector<ProduceOutcome> stored) {
      done(std::move(stored));
    };
    store(std::move(jobs));
    return std::nullopt;
  }
  std::vector<etl::InputMessage> inputs(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    inputs[i].message = std::move(records[i].message);
    inputs[i].partition = records[i].partition;
  }
  std::string topic_name = request.topic;
  etl_->process(std::move(request.configuration), std::move(request.plan), std::move(topic_name),
                std::move(inputs),
                [this, topic_name = request.topic, done = std::move(request.done),
                 held = std::move(request.admission), codec = request.codec](etl::BatchResult result) {
                  // The worker queues the writes and goes on; the appender answers.
                  store_etl_result(
                      topic_name, std::move(result), "",
                      [done, held](std::vector<ProduceOutcome> outcomes) {
                        // Before the answer: a client may send the next at once.
                        held->release();
                        done(std::move(outcomes));
                      },
                      codec);
                });
  return std::nullopt;
}

std::vector<ProduceOutcome> Broker::store_etl_result(const std::string& topic,
                                                     etl::BatchResult result,
                                                     const std::string& destination) {
  std::promise<std::vector<ProduceOutcome>> stored;
  auto future = stored.get_future();
  store_etl_result(topic, std::move(result), destination,
                   [&stored](std::vector<ProduceOutcome> outcomes) {
                     stored.set_value(std::move(outcomes));
                   });
  return future.get();
}

void Broker::store_etl_result(const std::string& topic, etl::BatchResult result,
                              const std::string& destination, StoreDone done,
                              storage::Codec codec) {
  std::vector<ProduceOutcome> outcomes(result.outcomes.size());
  std::vector<Placement> placements;
  for (size_t i = 0; i < result.outcomes.size(); ++i) {
    etl::InputOutcome& in = result.outcomes[i];
    ProduceOutcome& out = outcomes[i];
    switch (in.kind) {
      case etl::InputOutcome::Kind::kPass:
        out.kind = ProduceOutcome::Kind::kStored;
        break;
      case etl::InputOutcome::Kind::kFiltered:
        out.kind = ProduceOutcome::Kind::kFiltered;
        break;
      case etl::InputOutcome::Kind::kDeadLettered:
        out.kind = ProduceOutcome::Kind::kDeadLettered;
        out.error = in.error;
        break;
    }
    out.pipeline_id = std::move(in.pipeline_id);
    out.module_id = std::move(in.module_id);
    for (auto& routed : in.outputs) {
      if (!destination.empty() && routed.topic == topic) {
        placements.push_back({i, destination, std::nullopt, std::move(routed.message), false});
        continue;
      }
      placements.push_back({i, routed.topic, routed.partition, std::move(routed.message), false});
    }
    for (auto& routed : in.dead_letters) {
      placements.push_back({i, routed.topic, std::nullopt, std::move(routed.message), true});
    }
  }
  std::vector<StoreJob> jobs;
  // Error records answer for no input: a failure to write them is logged, not reported. They
  // are queued first, so that they are written when the request is answered.
  if (!result.error_records.empty()) {
    StoreJob errors;
    for (auto& r : result.error_records) {
      errors.placements.push_back({0, r.topic, std::nullopt, std::move(r.message), true});
    }
    errors.outcomes.resize(1);
    errors.done = [topic](std::vector<ProduceOutcome> written) {
      if (written[0].kind == ProduceOutcome::Kind::kFailed) {
        log::get("broker").warn("error records of topic {} not written: {}", topic,
                                written[0].error);
      }
    };
    jobs.push_back(std::move(errors));
  }
  jobs.push_back(StoreJob{std::move(placements), std::move(outcomes), std::move(done), codec});
  store(std::move(jobs));
}

Result<storage::ReadResult> Broker::consume(std::string_view topic_name,
                                            const ConsumeRequest& request) const {
  std::shared_ptr<storage::Topic> topic = store_.find(topic_name);
  if (!topic) {
    return Status(StatusCode::kNotFound,
                  "topic \"" + std::string(topic_name) + "\" does not exist");
  }
  if (request.partition >= topic->partition_count()) {
    return Status(StatusCode::kNotFound,
                  "partition " + std::to_string(request.partition) + " does not exist (topic \"" +
                      topic->name() + "\" has " + std::to_string(topic->partition_count()) + ")");
  }
  return topic->partition(request.partition)
      .read(request.offset, request.max_messages, request.max_bytes);
}

void Broker::consume(std::string topic, ConsumeRequest request, ConsumeDone done) const {
  disk_tasks_.post([this, topic = std::move(topic), request, done = std::move(done)] {
    done(consume(topic, request));
  });
}

uint64_t Broker::wait_for_data(const std::string& topic_name, uint32_t partition, int64_t offset,
                               std::function<void()> callback) {
  const WaitKey key{topic_name, partition};
  uint64_t id;
  {
    MutexLock lock(waiters_mutex_);
    id = next_waiter_id_++;
    waiters_[key].emplace(id, std::move(callback));
    waiter_keys_.emplace(id, key);
  }
  // Checked after registering, so that an append between the check and the registration
  // cannot be missed.
  auto topic = store_.find(topic_name);
  if (topic && partition < topic->partition_count() &&
      topic->partition(partition).next_offset() > offset) {
    std::function<void()> ready = take_waiter(id);
    if (ready) ready();
    return 0;
  }
  return id;
}

std::function<void()> Broker::take_waiter(uint64_t id) {
  MutexLock lock(waiters_mutex_);
  auto key = waiter_keys_.find(id);
  if (key == waiter_keys_.end()) return {};
  auto partition = waiters_.find(key->second);
  std::function<void()> callback;
  if (partition != waiters_.end()) {
    auto it = partition->second.find(id);
    if (it != partition->second.end()) {
      callback = std::move(it->second);
      partition->second.erase(it);
    }
    if (partition->second.empty()) waiters_.erase(partition);
  }
  waiter_keys_.erase(key);
  return callback;
}

bool Broker::cancel_wait(uint64_t id) { return static_cast<bool>(take_waiter(id)); }

void Broker::notify(const std::string& topic, uint32_t partition) {
  std::map<uint64_t, std::function<void()>> ready;
  {
    MutexLock lock(waiters_mutex_);
    auto it = waiters_.find(WaitKey{topic, partition});
    if (it == waiters_.end()) return;
    ready = std::move(it->second);
    waiters_.erase(it);
    for (const auto& [id, callback] : ready) waiter_keys_.erase(id);
  }
  for (auto& [id, callback] : ready) callback();
}

}  // namespace wasmq::broker
