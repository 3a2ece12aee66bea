#include "common/bincode.h"

#include <cstring>

#include "common/utf8.h"

namespace wasmq::bincode {
namespace {

// Smallest encodings, used to bound element counts before reserving memory.
constexpr size_t kMinMessageSize = 1 + 8 + 8 + 8;  // None key, empty value, no headers, ts
constexpr size_t kMinHeaderSize = 8 + 8;
constexpr size_t kMinResultSize = 8 + 1 + 1;

size_t string_size(size_t n) { return 8 + n; }

uint8_t* put_u64(uint64_t v, uint8_t* out) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
  return out + 8;
}

uint8_t* put_bytes(std::string_view s, uint8_t* out) {
  out = put_u64(s.size(), out);
  if (!s.empty()) std::memcpy(out, s.data(), s.size());
  return out + s.size();
}

// Reads values off a bounded input; the first failure sticks and names the byte offset.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> input)
      : begin_(input.data()), p_(input.data()), end_(input.data() + input.size()) {}

  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  bool failed() const { return !status_.is_ok(); }
  const Status& status() const { return status_; }

  bool fail(const std::string& what) {
    if (!failed()) {
      status_ = invalid_argument("bincode: " + what + " at byte " + std::to_string(p_ - begin_));
    }
    return false;
  }

  bool u8(uint8_t* v) {
    if (remaining() < 1) return fail("truncated input");
    *v = *p_++;
    return true;
  }
  bool u64(uint64_t* v) {
    if (remaining() < 8) return fail("truncated input");
    uint64_t r = 0;
    for (int i = 0; i < 8; ++i) r |= static_cast<uint64_t>(p_[i]) << (8 * i);
    p_ += 8;
    *v = r;
    return true;
  }
  bool i64(int64_t* v) {
    uint64_t u = 0;
    if (!u64(&u)) return false;
    *v = static_cast<int64_t>(u);
    return true;
  }
  bool boolean(bool* v) {
    uint8_t b = 0;
    if (!u8(&b)) return false;
    if (b > 1) {
      --p_;
      return fail("invalid bool byte " + std::to_string(b));
    }
    *v = b == 1;
    return true;
  }
  // A Vec<u8> (utf8 = false) or a String (utf8 = true).
  bool bytes(std::string* out, bool utf8, const char* what) {
    uint64_t n = 0;
    if (!u64(&n)) return false;
    if (n > remaining()) {
      p_ -= 8;
      return fail(std::string(what) + " length " + std::to_string(n) + " exceeds the " +
                  std::to_string(remaining() - 8) + " remaining bytes");
    }
    if (utf8 && !is_valid_utf8(p_, n)) return fail(std::string("invalid UTF-8 in ") + what);
    out->assign(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return true;
  }
  // A u64 element count, bounded by what the remaining input could hold.
  bool count(uint64_t* n, size_t min_element_size, const char* what) {
    if (!u64(n)) return false;
    if (*n > remaining() / min_element_size) {
      p_ -= 8;
      return fail(std::string(what) + " count " + std::to_string(*n) + " exceeds what the " +
                  std::to_string(remaining() - 8) + " remaining bytes can hold");
    }
    return true;
  }
  bool finish() {
    if (failed()) return false;
    if (remaining() != 0) return fail(std::to_string(remaining()) + " trailing bytes");
    return true;
  }

 private:
  const uint8_t* begin_;
  const uint8_t* p_;
  const uint8_t* end_;
  Status status_;
};

bool read_message(Reader& r, Message* m) {
  uint8_t tag = 0;
  if (!r.u8(&tag)) return false;
  if (tag == 0) {
    m->key.reset();
  } else if (tag == 1) {
    m->key.emplace();
    if (!r.bytes(&*m->key, true, "key")) return false;
  } else {
    return r.fail("invalid Option tag " + std::to_string(tag));
  }
  if (!r.bytes(&m->value, false, "value")) return false;
  uint64_t n = 0;
  if (!r.count(&n, kMinHeaderSize, "header")) return false;
  if (n > kMaxHeaders) {
    return r.fail(std::to_string(n) + " headers exceed the limit of " +
                  std::to_string(kMaxHeaders) + " per message");
  }
  // A HashMap keeps the last value of a repeated key; so does the set, in linear time.
  HeaderSet headers;
  headers.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    std::string name, value;
    if (!r.bytes(&name, true, "header name") || !r.bytes(&value, true, "header value")) {
      return false;
    }
    if (Status s = headers.add(std::move(name), std::move(value)); !s.is_ok()) {
      return r.fail(s.message());
    }
  }
  m->headers = headers.release();
  return r.i64(&m->timestamp);
}

bool read_result(Reader& r, ProcessResult* out) {
  uint64_t n = 0;
  if (!r.count(&n, kMinMessageSize, "message")) return false;
  out->transformed_messages.clear();
  out->transformed_messages.resize(n);
  for (auto& m : out->transformed_messages) {
    if (!read_message(r, &m)) return false;
  }
  if (!r.boolean(&out->should_continue)) return false;
  uint8_t tag = 0;
  if (!r.u8(&tag)) return false;
  if (tag == 0) {
    out->error.reset();
  } else if (tag == 1) {
    out->error.emplace();
    if (!r.bytes(&*out->error, true, "error")) return false;
  } else {
    return r.fail("invalid Option tag " + std::to_string(tag));
  }
  return true;
}

}  // namespace

namespace {
template <typename M>
size_t message_size(const M& m) {
  size_t size = 1 + (m.key ? string_size(m.key->size()) : 0) + string_size(m.value.size()) + 8 + 8;
  for (const auto& [name, value] : m.headers)
    size += string_size(name.size()) + string_size(value.size());
  return size;
}
}  // namespace

size_t encoded_size(const Message& m) { return message_size(m); }
size_t encoded_size(const MessageView& m) { return message_size(m); }

size_t encoded_size(const ProcessResult& r) {
  size_t size = 8 + 1 + 1 + (r.error ? string_size(r.error->size()) : 0);
  for (const auto& m : r.transformed_messages) size += encoded_size(m);
  return size;
}

size_t encoded_size(std::span<const Message> messages) {
  size_t size = 8;
  for (const auto& m : messages) size += encoded_size(m);
  return size;
}

size_t encoded_size(std::span<const Message* const> messages) {
  size_t size = 8;
  for (const Message* m : messages) size += encoded_size(*m);
  return size;
}

uint8_t* encode(const Message& m, uint8_t* out) {
  if (m.key) {
    *out++ = 1;
    out = put_bytes(*m.key, out);
  } else {
    *out++ = 0;
  }
  out = put_bytes(m.value, out);
  out = put_u64(m.headers.size(), out);
  for (const auto& [name, value] : m.headers) {
    out = put_bytes(name, out);
    out = put_bytes(value, out);
  }
  return put_u64(static_cast<uint64_t>(m.timestamp), out);
}

uint8_t* encode(const ProcessResult& r, uint8_t* out) {
  out = put_u64(r.transformed_messages.size(), out);
  for (const auto& m : r.transformed_messages) out = encode(m, out);
  *out++ = r.should_continue ? 1 : 0;
  if (r.error) {
    *out++ = 1;
    out = put_bytes(*r.error, out);
  } else {
    *out++ = 0;
  }
  return out;
}

uint8_t* encode(std::span<const Message> messages, uint8_t* out) {
  out = put_u64(messages.size(), out);
  for (const auto& m : messages) out = encode(m, out);
  return out;
}

uint8_t* encode(std::span<const Message* const> messages, uint8_t* out) {
  out = put_u64(messages.size(), out);
  for (const Message* m : messages) out = encode(*m, out);
  return out;
}

namespace {
template <typename T>
std::string encode_to_string(const T& value) {
  std::string bytes(encoded_size(value), '\0');
  encode(value, reinterpret_cast<uint8_t*>(bytes.data()));
  return bytes;
}
}  // namespace

std::string to_bytes(const Message& m) { return encode_to_string(m); }
std::string to_bytes(const ProcessResult& r) { return encode_to_string(r); }
std::string to_bytes(std::span<const Message> messages) { return encode_to_string(messages); }

std::string to_bytes(std::span<const ProcessResult> results) {
  size_t size = 8;
  for (const auto& r : results) size += encoded_size(r);
  std::string bytes(size, '\0');
  auto* out = put_u64(results.size(), reinterpret_cast<uint8_t*>(bytes.data()));
  for (const auto& r : results) out = encode(r, out);
  return bytes;
}

Status decode(std::span<const uint8_t> input, Message* out) {
  Reader r(input);
  read_message(r, out) && r.finish();
  return r.status();
}

Status decode(std::span<const uint8_t> input, ProcessResult* out) {
  Reader r(input);
  read_result(r, out) && r.finish();
  return r.status();
}

Status decode(std::span<const uint8_t> input, std::vector<Message>* out) {
  Reader r(input);
  uint64_t n = 0;
  if (r.count(&n, kMinMessageSize, "message")) {
    out->resize(n);
    for (auto& m : *out) {
      if (!read_message(r, &m)) break;
    }
    r.finish();
  }
  return r.status();
}

Status decode(std::span<const uint8_t> input, std::vector<ProcessResult>* out) {
  Reader r(input);
  uint64_t n = 0;
  if (r.count(&n, kMinResultSize, "result")) {
    out->resize(n);
    for (auto& res : *out) {
      if (!read_result(r, &res)) break;
    }
    r.finish();
  }
  return r.status();
}

}  // namespace wasmq::bincode
