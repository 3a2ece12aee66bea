// Fuzzes the Kafka front end's request decoding (src/kafka/protocol.h, requests.h,
// produce_batch.h): the frames any client on the network may send.
//
// The input is one frame body (request header and request). Invariants: no crash and no
// allocation sized by a length the input did not back (ASan's allocation limits catch those);
// every decoder reads within the frame; a Produce partition's records that check_produce_batch
// accepts are exactly one whole RecordBatch v2 with a right CRC, uncompressed or with one of
// Kafka's codecs, not transactional, whose record count agrees with its header.
#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz_check.h"
#include "kafka/produce_batch.h"
#include "kafka/protocol.h"
#include "kafka/requests.h"
#include "storage/record_batch.h"

using namespace wasmq;
using namespace wasmq::kafka;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> frame(data, size);
  Reader r(frame);
  RequestHeader h = read_request_header(r);
  if (!r.ok()) return 0;
  FUZZ_CHECK(r.position() <= size, "header read past the frame");
  const int16_t v = h.api_version;
  switch (static_cast<ApiKey>(h.api_key)) {
    case ApiKey::kMetadata: (void)read_metadata(r, v); break;
    case ApiKey::kFetch: (void)read_fetch(r, v); break;
    case ApiKey::kListOffsets: (void)read_list_offsets(r, v); break;
    case ApiKey::kCreateTopics: (void)read_create_topics(r, v); break;
    case ApiKey::kDeleteTopics: (void)read_delete_topics(r, v); break;
    case ApiKey::kInitProducerId: (void)read_init_producer_id(r, v); break;
    case ApiKey::kFindCoordinator: (void)read_find_coordinator(r, v); break;
    case ApiKey::kJoinGroup: (void)read_join_group(r, v); break;
    case ApiKey::kSyncGroup: (void)read_sync_group(r, v); break;
    case ApiKey::kHeartbeat: (void)read_heartbeat(r, v); break;
    case ApiKey::kLeaveGroup: (void)read_leave_group(r, v); break;
    case ApiKey::kOffsetCommit: (void)read_offset_commit(r, v); break;
    case ApiKey::kOffsetFetch: (void)read_offset_fetch(r, v); break;
    case ApiKey::kDescribeGroups: (void)read_describe_groups(r, v); break;
    case ApiKey::kListGroups: read_list_groups(r, v); break;
    case ApiKey::kSaslHandshake: (void)read_sasl_handshake(r, v); break;
    case ApiKey::kSaslAuthenticate: (void)read_sasl_authenticate(r, v); break;
    case ApiKey::kDescribeConfigs: (void)read_describe_configs(r, v); break;
    case ApiKey::kProduce: {
      ProduceRequest p = read_produce(r, v);
      if (!r.ok()) break;
      for (const auto& t : p.topics) {
        for (const auto& part : t.partitions) {
          CheckedBatch c = check_produce_batch(part.records, true);
          if (c.error != 0) continue;
          const auto& bytes = *part.records;
          auto header = storage::parse_batch_header(bytes);
          FUZZ_CHECK(header.is_ok() && header->size() == bytes.size(), "accepted batch is not whole");
          FUZZ_CHECK(storage::batch_crc_ok(bytes), "accepted batch has a wrong CRC");
          FUZZ_CHECK(c.records.size() == static_cast<size_t>(header->record_count) &&
                         c.batch.records == static_cast<uint32_t>(header->record_count),
                     "record count");
          FUZZ_CHECK(c.batch.bytes.size() == bytes.size(), "batch bytes copied short");
          FUZZ_CHECK((header->attributes & 0x30) == 0, "transactional or control batch accepted");
          FUZZ_CHECK(storage::batch_codec(*header) <= 4, "unknown codec accepted");
        }
      }
      break;
    }
    default: break;
  }
  FUZZ_CHECK(r.position() <= size, "read past the frame");
  return 0;
}
