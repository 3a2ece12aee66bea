// Idempotent producers (Kafka's KIP-98 without transactions): the producer ids InitProducerId
// hands out, and per (topic, partition, producer id) the epoch and the sequences of the last
// five batches stored, so that a retried batch is answered with its first offset instead of
// being stored twice, and a gap in the sequences is refused.
//
// Ids: each start of the broker hands out ids from its start time in milliseconds times 1,024
// on, above any id its logs hold, so ids are not reused across restarts.
// Restart: rebuild() reads the last batches of every partition (their producer id, epoch and
// sequences are in the batch header), so a retry that comes after a restart is still known.
//
// Threads: every method may be called from any thread (one mutex).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <span>
#include <string>
#include <tuple>

#include "common/mutex.h"
#include "storage/record_batch.h"
#include "storage/topic_store.h"

namespace wasmq::kafka {

// What a batch's header says of its producer (producer_id -1: not idempotent).
struct ProducerBatch {
  int64_t producer_id = -1;
  int16_t epoch = -1;
  int32_t first_sequence = -1;
  int32_t records = 0;
  int32_t last_sequence() const;  // first + records - 1, wrapping past INT32_MAX to 0
};
// What a batch's header says of its producer.
ProducerBatch producer_batch(const storage::BatchHeader& header);

class ProducerStates {
 public:
  // Batches remembered per producer and partition (Kafka's max.in.flight bound).
  static constexpr size_t kRemembered = 5;

  ProducerStates();

  int64_t next_producer_id();

  enum class Verdict {
    kNew,          // store it, then record()
    kDuplicate,    // stored before: answer with `base_offset`
    kOutOfOrder,   // a sequence gap: OUT_OF_ORDER_SEQUENCE_NUMBER
    kStaleEpoch,   // an older epoch than one seen: INVALID_PRODUCER_EPOCH
  };
  struct Check {
    Verdict verdict = Verdict::kNew;
    int64_t base_offset = -1;
  };
  Check check(const std::string& topic, uint32_t partition, const ProducerBatch& batch) const;
  // A batch stored at `base_offset`.
  void record(const std::string& topic, uint32_t partition, const ProducerBatch& batch,
              int64_t base_offset);

  // Reads the last batches of every partition of `store` (up to `tail_offsets` offsets from
  // each end) and records their producers. Returns how many idempotent batches it found. Reads
  // the disk on the calling thread: call at start, before serving.
  size_t rebuild(const storage::TopicStore& store, int64_t tail_offsets = 100'000);

 private:
  struct Stored {
    int32_t first_sequence;
    int32_t last_sequence;
    int64_t base_offset;
  };
  struct State {
    int16_t epoch = -1;
    std::deque<Stored> batches;  // oldest first, at most kRemembered
  };
  using Key = std::tuple<std::string, uint32_t, int64_t>;
  void record_locked(const Key& key, const ProducerBatch& batch, int64_t base_offset)
      REQUIRES(mutex_);

  mutable Mutex mutex_;
  std::map<Key, State> states_ GUARDED_BY(mutex_);
  int64_t next_id_ GUARDED_BY(mutex_);
};

}  // namespace wasmq::kafka
