#include "storage/record_batch.h"

#include <gtest/gtest.h>

#include <limits>

#include "common/crc32c.h"

namespace wasmq::storage {
namespace {

std::vector<Message> sample_messages() {
  std::vector<Message> ms;
  Message a;
  a.key = "sensor-001";
  a.value = R"({"temperature_celsius": 23.5})";
  a.headers = {{"content-type", "application/json"}, {"source", "iot"}};
  a.timestamp = 1763800000000;
  ms.push_back(a);
  Message b;  // no key, binary value, earlier timestamp
  b.value = std::string("\x00\xff\x01", 3);
  b.timestamp = 1763799999000;
  ms.push_back(b);
  Message c;
  c.key = "";
  c.value = std::string(300, 'x');  // lengths above one varint byte
  c.timestamp = 1763800005000;
  ms.push_back(c);
  return ms;
}

std::span<const uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Any int64 timestamp is stored and read back as given: the deltas between INT64_MIN and
// INT64_MAX are computed without signed overflow (which UndefinedBehaviorSanitizer reports).
TEST(RecordBatch, RoundTripsTheExtremeTimestamps) {
  const int64_t lowest = std::numeric_limits<int64_t>::min();
  const int64_t highest = std::numeric_limits<int64_t>::max();
  for (std::vector<int64_t> timestamps :
       {std::vector<int64_t>{lowest, highest, 0, -1}, std::vector<int64_t>{highest, lowest, 1}}) {
    std::vector<Message> messages;
    for (int64_t t : timestamps) {
      Message m;
      m.value = std::to_string(t);
      m.timestamp = t;
      messages.push_back(m);
    }
    std::string batch;
    encode_batch(0, messages, &batch);
    std::vector<Record> records;
    ASSERT_TRUE(decode_batch(bytes(batch), &records).is_ok());
    ASSERT_EQ(records.size(), timestamps.size());
    for (size_t i = 0; i < timestamps.size(); ++i) EXPECT_EQ(records[i].message.timestamp, timestamps[i]);
  }
}

// A header whose offsets would run past INT64_MAX is corrupt, not an overflow.
TEST(RecordBatch, RejectsOffsetsPastTheLargest) {
  std::vector<Message> one(1);
  std::string batch;
  encode_batch(std::numeric_limits<int64_t>::max(), one, &batch);
  EXPECT_FALSE(parse_batch_header(bytes(batch)).is_ok());
}

TEST(RecordBatch, RoundTripsMessagesWithOffsets) {
  auto messages = sample_messages();
  std::string batch;
  size_t size = encode_batch(41, messages, &batch);
  EXPECT_EQ(size, batch.size());
  auto header = parse_batch_header(bytes(batch));
  ASSERT_TRUE(header.is_ok()) << header.status().message();
  EXPECT_EQ(header->base_offset, 41);
  EXPECT_EQ(header->record_count, 3);
  EXPECT_EQ(header->last_offset(), 43);
  EXPECT_EQ(header->size(), batch.size());
  EXPECT_EQ(header->base_timestamp, 1763800000000);
  EXPECT_EQ(header->max_timestamp, 1763800005000);
  EXPECT_TRUE(batch_crc_ok(bytes(batch)));

  std::vector<Record> records;
  ASSERT_TRUE(decode_batch(bytes(batch), &records).is_ok());
  ASSERT_EQ(records.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(records[i].offset, 41 + static_cast<int64_t>(i));
    EXPECT_EQ(records[i].message, messages[i]);
  }
}

// The header fields sit where Kafka puts them (big-endian, magic 2 at byte 16).
// compress_batch turns an encoded batch into the one a Kafka producer with that codec sends:
// the same header fields and records, the codec in the attributes, a right length and CRC.
TEST(RecordBatch, CompressedWithEachCodecDecodesToTheSameRecords) {
  std::vector<Message> ms = sample_messages();
  for (int i = 0; i < 50; ++i) ms.push_back(ms[static_cast<size_t>(i) % 3]);
  std::string plain;
  encode_batch(7, ms, &plain);
  std::vector<Record> expected;
  ASSERT_TRUE(decode_batch(bytes(plain), &expected).is_ok());
  for (Codec codec : {Codec::kGzip, Codec::kSnappy, Codec::kLz4, Codec::kZstd}) {
    std::string b = plain;
    ASSERT_TRUE(compress_batch(&b, codec).is_ok()) << codec_name(static_cast<int>(codec));
    EXPECT_LT(b.size(), plain.size()) << codec_name(static_cast<int>(codec));
    auto header = parse_batch_header(bytes(b));
    ASSERT_TRUE(header.is_ok());
    EXPECT_EQ(batch_codec(*header), static_cast<int>(codec));
    EXPECT_EQ(header->size(), b.size());
    EXPECT_EQ(header->record_count, static_cast<int32_t>(ms.size()));
    EXPECT_EQ(header->base_offset, 7);
    EXPECT_TRUE(batch_crc_ok(bytes(b)));
    std::vector<Record> got;
    ASSERT_TRUE(decode_batch(bytes(b), &got).is_ok());
    ASSERT_EQ(got.size(), expected.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].offset, expected[i].offset);
      EXPECT_EQ(got[i].message, expected[i].message);
    }
  }
  std::string unchanged = plain;
  ASSERT_TRUE(compress_batch(&unchanged, Codec::kNone).is_ok());
  EXPECT_EQ(unchanged, plain);
}

TEST(RecordBatch, UsesKafkasLayout) {
  std::string batch;
  encode_batch(0x0102030405060708, sample_messages(), &batch);
  EXPECT_EQ(static_cast<uint8_t>(batch[0]), 0x01);
  EXPECT_EQ(static_cast<uint8_t>(batch[7]), 0x08);
  EXPECT_EQ(batch[16], 2);
  uint32_t length = (uint8_t(batch[8]) << 24) | (uint8_t(batch[9]) << 16) |
                    (uint8_t(batch[10]) << 8) | uint8_t(batch[11]);
  EXPECT_EQ(length + 12, batch.size());
  // producerId -1 at bytes 43..50
  for (int i = 43; i < 51; ++i) EXPECT_EQ(static_cast<uint8_t>(batch[i]), 0xFF);
}

TEST(RecordBatch, DetectsEveryFlippedByteAfterTheCrc) {
  std::string batch;
  encode_batch(0, sample_messages(), &batch);
  for (size_t i = 21; i < batch.size(); ++i) {
    std::string bad = batch;
    bad[i] ^= 0x20;
    EXPECT_FALSE(batch_crc_ok(bytes(bad))) << i;
    std::vector<Record> records;
    EXPECT_FALSE(decode_batch(bytes(bad), &records).is_ok()) << i;
  }
}

TEST(RecordBatch, RejectsTruncationAndBadMagic) {
  std::string batch;
  encode_batch(0, sample_messages(), &batch);
  for (size_t n = 0; n < batch.size(); ++n) {
    std::vector<Record> records;
    EXPECT_FALSE(decode_batch(bytes(batch.substr(0, n)), &records).is_ok()) << n;
  }
  std::string bad = batch;
  bad[16] = 1;
  auto header = parse_batch_header(bytes(bad));
  ASSERT_FALSE(header.is_ok());
  EXPECT_NE(header.status().message().find("magic 1"), std::string::npos);
}

// Garbage never crashes the decoder, even with a valid CRC over it.
TEST(RecordBatch, SurvivesGarbageRecordsWithValidCrc) {
  std::string batch;
  encode_batch(0, sample_messages(), &batch);
  uint64_t x = 0x2545F4914F6CDD1Dull;
  for (int round = 0; round < 5000; ++round) {
    std::string bad = batch;
    for (int j = 0; j < 4; ++j) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      bad[kBatchHeaderSize + x % (bad.size() - kBatchHeaderSize)] = static_cast<char>(x >> 40);
    }
    // Re-seal the CRC so that the record parser itself is exercised.
    uint32_t crc = crc32c(0, bad.data() + 21, bad.size() - 21);
    for (int b = 0; b < 4; ++b) bad[17 + b] = static_cast<char>(crc >> (24 - 8 * b));
    ASSERT_TRUE(batch_crc_ok(bytes(bad)));
    std::vector<Record> records;
    (void)decode_batch(bytes(bad), &records);
  }
}

}  // namespace
}  // namespace wasmq::storage
