// Fuzzes RecordBatch v2 decoding (src/storage/record_batch.h), the bytes of every partition log.
// The first input byte chooses whether CRCs are made right first (batch_bytes.h).
//
// Invariants: no crash; a batch decode_batch accepts holds exactly record_count records whose
// offsets lie within [base_offset, last_offset]; and its messages, encoded again by
// encode_batch, decode to the same messages.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "batch_bytes.h"
#include "fuzz_check.h"
#include "storage/record_batch.h"

using namespace wasmq;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string shaped = fuzz::shape_batches(data, size);
  const std::span<const uint8_t> bytes = fuzz::bytes_of(shaped);

  std::vector<storage::Record> records;
  (void)storage::decode_batch(bytes, &records);  // whatever follows the batch makes it fail

  auto header = storage::parse_batch_header(bytes);
  if (!header.is_ok() || header->size() > bytes.size()) return 0;
  const auto batch = bytes.first(header->size());
  (void)storage::batch_crc_ok(batch);
  records.clear();
  if (!storage::decode_batch(batch, &records).is_ok()) return 0;

  FUZZ_CHECK(records.size() == static_cast<size_t>(header->record_count), "record count");
  for (const auto& r : records) {
    FUZZ_CHECK(r.offset >= header->base_offset && r.offset <= header->last_offset(),
               "record offset outside its batch");
  }
  if (records.empty()) return 0;
  std::vector<Message> messages;
  for (const auto& r : records) messages.push_back(r.message);
  std::string again;
  const size_t written = storage::encode_batch(header->base_offset, messages, &again);
  FUZZ_CHECK(written == again.size(), "encode_batch's size");
  std::vector<storage::Record> decoded;
  Status st = storage::decode_batch(fuzz::bytes_of(again), &decoded);
  FUZZ_CHECK(st.is_ok(), "re-encoded batch does not decode: " + st.message());
  FUZZ_CHECK(decoded.size() == messages.size(), "re-encoded record count");
  for (size_t i = 0; i < decoded.size(); ++i) {
    FUZZ_CHECK(decoded[i].message == messages[i], "record " + std::to_string(i) + " changed");
    FUZZ_CHECK(decoded[i].offset == header->base_offset + static_cast<int64_t>(i),
               "re-encoded offsets are not consecutive");
  }
  return 0;
}
