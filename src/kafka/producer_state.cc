#include "kafka/producer_state.h"

#include <chrono>
#include <limits>

#include "storage/record_batch.h"

namespace wasmq::kafka {
namespace {

int32_t next_sequence(int32_t s) { return s == std::numeric_limits<int32_t>::max() ? 0 : s + 1; }

}  // namespace

int32_t ProducerBatch::last_sequence() const {
  const int64_t last = int64_t{first_sequence} + records - 1;
  return static_cast<int32_t>(last % (int64_t{std::numeric_limits<int32_t>::max()} + 1));
}

ProducerBatch producer_batch(const storage::BatchHeader& header) {
  return {header.producer_id, header.producer_epoch, header.base_sequence, header.record_count};
}

ProducerStates::ProducerStates() {
  const int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  next_id_ = ms * 1024;
}

int64_t ProducerStates::next_producer_id() {
  MutexLock lock(mutex_);
  return next_id_++;
}

ProducerStates::Check ProducerStates::check(const std::string& topic, uint32_t partition,
                                            const ProducerBatch& batch) const {
  MutexLock lock(mutex_);
  auto it = states_.find(Key{topic, partition, batch.producer_id});
  // A producer not seen here (new, or its batches are past what is remembered): its batch
  // starts its state.
  if (it == states_.end()) return {};
  const State& s = it->second;
  if (batch.epoch < s.epoch) return {Verdict::kStaleEpoch};
  if (batch.epoch > s.epoch) {
    // A new epoch starts its sequences at 0.
    return batch.first_sequence == 0 ? Check{} : Check{Verdict::kOutOfOrder};
  }
  for (const Stored& b : s.batches) {
    if (b.first_sequence == batch.first_sequence && b.last_sequence == batch.last_sequence()) {
      return {Verdict::kDuplicate, b.base_offset};
    }
  }
  if (!s.batches.empty() && batch.first_sequence != next_sequence(s.batches.back().last_sequence)) {
    return {Verdict::kOutOfOrder};
  }
  return {};
}

void ProducerStates::record(const std::string& topic, uint32_t partition,
                            const ProducerBatch& batch, int64_t base_offset) {
  MutexLock lock(mutex_);
  record_locked(Key{topic, partition, batch.producer_id}, batch, base_offset);
}

void ProducerStates::record_locked(const Key& key, const ProducerBatch& batch, int64_t base_offset) {
  State& s = states_[key];
  if (batch.epoch != s.epoch) {
    s.epoch = batch.epoch;
    s.batches.clear();
  }
  s.batches.push_back({batch.first_sequence, batch.last_sequence(), base_offset});
  while (s.batches.size() > kRemembered) s.batches.pop_front();
  if (batch.producer_id >= next_id_) next_id_ = batch.producer_id + 1;
}

size_t ProducerStates::rebuild(const storage::TopicStore& store, int64_t tail_offsets) {
  size_t found = 0;
  for (const auto& topic : store.list()) {
    for (uint32_t p = 0; p < topic->partition_count(); ++p) {
      const auto& log = topic->partition(p);
      int64_t offset = std::max(log.start_offset(), log.next_offset() - tail_offsets);
      while (offset < log.next_offset()) {
        auto read = log.read_batches(offset, 16 << 20);
        if (!read.is_ok() || read->bytes.empty()) break;
        const auto* bytes = reinterpret_cast<const uint8_t*>(read->bytes.data());
        size_t at = 0;
        int64_t next = offset;
        while (at < read->bytes.size()) {
          auto header = storage::parse_batch_header({bytes + at, read->bytes.size() - at});
          if (!header.is_ok()) break;
          ProducerBatch b = producer_batch(*header);
          if (b.producer_id >= 0 && b.first_sequence >= 0) {
            MutexLock lock(mutex_);
            record_locked(Key{topic->name(), p, b.producer_id}, b, header->base_offset);
            ++found;
          }
          next = header->next_offset();
          at += header->size();
        }
        if (next <= offset) break;
        offset = next;
      }
    }
  }
  return found;
}

}  // namespace wasmq::kafka
