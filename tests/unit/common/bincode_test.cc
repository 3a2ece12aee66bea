#include "common/bincode.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace wasmq {
namespace {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

Message message_from_vector(const boost::json::value& v) {
  const auto& o = v.as_object();
  Message m;
  if (!o.at("key").is_null()) m.key = std::string(o.at("key").as_string());
  m.value = std::string(o.at("value").as_string());
  for (const auto& [name, value] : o.at("headers").as_object()) {
    m.headers.emplace_back(std::string(name), std::string(value.as_string()));
  }
  m.timestamp = o.at("timestamp").as_int64();
  return m;
}

ProcessResult result_from_vector(const boost::json::value& v) {
  const auto& o = v.as_object();
  ProcessResult r;
  for (const auto& m : o.at("transformed_messages").as_array()) {
    r.transformed_messages.push_back(message_from_vector(m));
  }
  r.should_continue = o.at("should_continue").as_bool();
  if (!o.at("error").is_null()) r.error = std::string(o.at("error").as_string());
  return r;
}

// Every vector of the ABI decodes to its logical value and encodes back byte for byte.
TEST(Bincode, RoundTripsEveryAbiVector) {
  std::filesystem::path dir = std::filesystem::path(WASMQ_TEST_DATA_DIR) / "abi-vectors";
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".json") continue;
    SCOPED_TRACE(entry.path().filename().string());
    auto json = boost::json::parse(read_file(entry.path()));
    std::string bin = read_file(std::filesystem::path(entry.path()).replace_extension(".bin"));
    ASSERT_FALSE(bin.empty());
    std::string kind(json.at("kind").as_string());
    if (kind == "Message") {
      Message expected = message_from_vector(json.at("value"));
      Message decoded;
      ASSERT_TRUE(bincode::decode(bincode::as_bytes(bin), &decoded).is_ok());
      EXPECT_EQ(decoded, expected);
      EXPECT_EQ(bincode::encoded_size(decoded), bin.size());
      EXPECT_EQ(bincode::to_bytes(decoded), bin);
    } else {
      ASSERT_EQ(kind, "ProcessResult");
      ProcessResult expected = result_from_vector(json.at("value"));
      ProcessResult decoded;
      ASSERT_TRUE(bincode::decode(bincode::as_bytes(bin), &decoded).is_ok());
      EXPECT_EQ(decoded, expected);
      EXPECT_EQ(bincode::to_bytes(decoded), bin);
    }
    ++checked;
  }
  EXPECT_EQ(checked, 6);
}

Message sample() {
  Message m;
  m.key = "k1";
  m.value = "hello";
  m.headers = {{"a", "1"}, {"b", "2"}};
  m.timestamp = 1700000000000;
  return m;
}

TEST(Bincode, RejectsEveryTruncation) {
  std::string bytes = bincode::to_bytes(sample());
  for (size_t n = 0; n < bytes.size(); ++n) {
    Message m;
    EXPECT_FALSE(bincode::decode(bincode::as_bytes(std::string_view(bytes).substr(0, n)), &m).is_ok())
        << "prefix of " << n << " bytes";
  }
}

TEST(Bincode, RejectsTrailingBytes) {
  std::string bytes = bincode::to_bytes(sample()) + "x";
  Message m;
  Status s = bincode::decode(bincode::as_bytes(bytes), &m);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("trailing"), std::string::npos) << s.message();
}

TEST(Bincode, RejectsLengthBeyondInputWithoutAllocating) {
  std::string bytes = bincode::to_bytes(sample());
  // The value length field follows the key: tag (1) + len (8) + "k1" (2).
  uint64_t huge = ~0ull;
  std::memcpy(bytes.data() + 11, &huge, 8);
  Message m;
  Status s = bincode::decode(bincode::as_bytes(bytes), &m);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("value length"), std::string::npos) << s.message();
}

TEST(Bincode, RejectsHugeCountsWithoutAllocating) {
  std::string bytes(8, '\xff');  // Vec<ProcessResult> of 2^64-1 elements
  std::vector<ProcessResult> results;
  Status s = bincode::decode(bincode::as_bytes(bytes), &results);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("count"), std::string::npos) << s.message();
}

TEST(Bincode, RejectsInvalidUtf8InStrings) {
  Message m = sample();
  m.key = std::string("\xc3\x28", 2);
  std::string bytes = bincode::to_bytes(m);
  Message out;
  Status s = bincode::decode(bincode::as_bytes(bytes), &out);
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("UTF-8"), std::string::npos) << s.message();
}

TEST(Bincode, AcceptsArbitraryBytesInValue) {
  Message m = sample();
  m.value = std::string("\x00\xff\xfe\x80", 4);
  Message out;
  ASSERT_TRUE(bincode::decode(bincode::as_bytes(bincode::to_bytes(m)), &out).is_ok());
  EXPECT_EQ(out, m);
}

TEST(Bincode, RejectsBadBoolAndOptionTags) {
  ProcessResult r;
  r.transformed_messages.push_back(sample());
  std::string bytes = bincode::to_bytes(r);
  std::string bad_bool = bytes;
  bad_bool[bad_bool.size() - 2] = 2;  // should_continue
  ProcessResult out;
  EXPECT_FALSE(bincode::decode(bincode::as_bytes(bad_bool), &out).is_ok());
  std::string bad_tag = bytes;
  bad_tag[bad_tag.size() - 1] = 7;  // error option tag
  EXPECT_FALSE(bincode::decode(bincode::as_bytes(bad_tag), &out).is_ok());
  std::string bad_key_tag = bincode::to_bytes(sample());
  bad_key_tag[0] = 2;
  Message m;
  EXPECT_FALSE(bincode::decode(bincode::as_bytes(bad_key_tag), &m).is_ok());
}

TEST(Bincode, RepeatedHeaderKeepsLastValue) {
  Message m = sample();
  m.headers = {{"a", "1"}, {"a", "2"}};
  Message out;
  ASSERT_TRUE(bincode::decode(bincode::as_bytes(bincode::to_bytes(m)), &out).is_ok());
  ASSERT_EQ(out.headers.size(), 1u);
  EXPECT_EQ(out.headers[0].second, "2");
}

TEST(Bincode, BatchRoundTrip) {
  std::vector<Message> batch = {sample(), Message{}, sample()};
  std::vector<Message> out;
  ASSERT_TRUE(bincode::decode(bincode::as_bytes(bincode::to_bytes(std::span<const Message>(batch))), &out).is_ok());
  EXPECT_EQ(out, batch);
}

// Arbitrary bytes never crash the decoder (a cheap deterministic fuzz).
TEST(Bincode, SurvivesRandomInput) {
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < 20000; ++i) {
    std::string bytes = bincode::to_bytes(sample());
    for (int j = 0; j < 3; ++j) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      bytes[x % bytes.size()] = static_cast<char>(x >> 32);
    }
    Message m;
    ProcessResult r;
    std::vector<ProcessResult> rs;
    (void)bincode::decode(bincode::as_bytes(bytes), &m);
    (void)bincode::decode(bincode::as_bytes(bytes), &r);
    (void)bincode::decode(bincode::as_bytes(bytes), &rs);
  }
}

}  // namespace
}  // namespace wasmq
