// Kafka's primitive wire types (kafka.apache.org/protocol, "Protocol Primitive Types"): big-endian
// fixed-width integers, zigzag varints, strings and bytes with i16/i32 lengths, arrays with an
// i32 count, and for flexible versions compact strings, compact arrays (unsigned varint length
// plus one) and tagged-field sections.
//
// Reader is bounded and never trusts a length: every read checks the bytes left, a length or a
// count larger than what is left fails, and the first failure sticks (later reads return zero
// values), so a decoder reads a whole request and checks ok() once. Writer appends to a string.
// Pure functions on bytes; any thread.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace wasmq::kafka {

class Reader {
 public:
  explicit Reader(std::span<const uint8_t> bytes) : bytes_(bytes) {}
  explicit Reader(std::string_view bytes)
      : bytes_(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()) {}

  bool ok() const { return error_ == nullptr; }
  // What failed first ("truncated int32", "string length -2", ...); empty when ok.
  std::string_view error() const { return error_ ? error_ : ""; }
  size_t remaining() const { return bytes_.size() - at_; }
  size_t position() const { return at_; }
  // Marks the reader failed with `why` (a static string), unless it already failed.
  void fail(const char* why) {
    if (!error_) error_ = why;
    at_ = bytes_.size();
  }

  int8_t i8();
  int16_t i16();
  int32_t i32();
  int64_t i64();
  uint32_t u32();
  // Zigzag varints (records) and unsigned varints (compact lengths, tagged fields).
  int32_t varint();
  int64_t varlong();
  uint32_t uvarint();
  bool boolean() { return i8() != 0; }

  // STRING: i16 length, never null.
  std::string_view string();
  // NULLABLE_STRING: i16 length, -1 null.
  std::optional<std::string_view> nullable_string();
  // COMPACT_STRING / COMPACT_NULLABLE_STRING: uvarint length + 1 (0 null).
  std::string_view compact_string();
  std::optional<std::string_view> compact_nullable_string();
  // BYTES / NULLABLE_BYTES: i32 length (-1 null).
  std::optional<std::span<const uint8_t>> nullable_bytes();
  std::span<const uint8_t> bytes();
  // An array's element count: i32 (-1 null, read as 0) or compact (uvarint, 0 null). The count
  // must not exceed the bytes left divided by `min_element_bytes`, so a hostile count can never
  // size an allocation.
  int32_t array_length(size_t min_element_bytes = 1);
  int32_t compact_array_length(size_t min_element_bytes = 1);
  // A tagged-field section of a flexible version: skipped (no tag is understood here).
  void skip_tagged_fields();

  // `n` raw bytes (a view into the input).
  std::span<const uint8_t> raw(size_t n);

 private:
  bool need(size_t n, const char* why) {
    if (remaining() >= n) return true;
    fail(why);
    return false;
  }

  std::span<const uint8_t> bytes_;
  size_t at_ = 0;
  const char* error_ = nullptr;
};

class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}

  void i8(int8_t v) { out_->push_back(static_cast<char>(v)); }
  void i16(int16_t v) { be(static_cast<uint16_t>(v), 2); }
  void i32(int32_t v) { be(static_cast<uint32_t>(v), 4); }
  void i64(int64_t v) { be(static_cast<uint64_t>(v), 8); }
  void u32(uint32_t v) { be(v, 4); }
  void boolean(bool v) { i8(v ? 1 : 0); }
  void uvarint(uint32_t v);
  void varint(int32_t v) { uvarint((static_cast<uint32_t>(v) << 1) ^ static_cast<uint32_t>(v >> 31)); }

  void string(std::string_view s);
  void nullable_string(std::optional<std::string_view> s);
  void compact_string(std::string_view s);
  void compact_nullable_string(std::optional<std::string_view> s);
  void bytes(std::string_view b);
  void nullable_bytes(std::optional<std::string_view> b);
  void array_length(size_t n) { i32(static_cast<int32_t>(n)); }
  void compact_array_length(size_t n) { uvarint(static_cast<uint32_t>(n + 1)); }
  void empty_tagged_fields() { uvarint(0); }

 private:
  void be(uint64_t v, int n) {
    char b[8];
    for (int i = n - 1; i >= 0; --i, v >>= 8) b[i] = static_cast<char>(v & 0xff);
    out_->append(b, static_cast<size_t>(n));
  }
  std::string* out_;
};

}  // namespace wasmq::kafka
