// The message model shared by storage, ETL and the module ABI (module-abi.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"

namespace wasmq {

// One header. Names are unique within a message; the order carries no meaning.
using Header = std::pair<std::string, std::string>;

// Headers one message may carry, wherever messages come in (the produce API, a module's
// outputs): at most kMaxHeaders distinct names, and at most kMaxHeaderBytes of names and values
// together. Kafka has no count limit of its own, but its default max.message.bytes (1 MB) holds
// the whole record; a thousand headers is far beyond what tracing and routing metadata use.
inline constexpr size_t kMaxHeaders = 1024;
inline constexpr size_t kMaxHeaderBytes = 1 << 20;

// A message as modules see it. `value` holds arbitrary bytes; `key`, header names and header
// values are UTF-8. `timestamp` is milliseconds since the Unix epoch.
struct Message {
  std::optional<std::string> key;
  std::string value;
  std::vector<Header> headers;
  int64_t timestamp = 0;

  // Returns the value of header `name`, or nullptr when absent.
  const std::string* header(std::string_view name) const;
  // Sets header `name`, replacing an existing one. Linear in the number of headers: for building
  // a message from many headers use HeaderSet.
  void set_header(std::string name, std::string value);

  bool operator==(const Message& other) const;
};

// A message whose bytes live elsewhere (a parsed request): encoded into a batch without a copy.
// Whoever holds one keeps what it views alive.
using HeaderView = std::pair<std::string_view, std::string_view>;
struct MessageView {
  std::optional<std::string_view> key;
  std::string_view value;
  std::span<const HeaderView> headers;
  int64_t timestamp = 0;

  Message to_message() const;
};

// Whether a module can be given `message`: the module ABI has its key and header names and
// values as strings (module-abi.md), so they must be UTF-8; the value may be any bytes. Kafka
// clients may produce binary keys and header values, which topics without inline pipelines
// store as they are. kInvalidArgument naming what is not UTF-8 and what to do.
Status text_for_modules(const Message& message);

// "headers of <bytes> bytes exceed the limit of <max_bytes> per message" (kInvalidArgument).
Status headers_too_large(size_t bytes, size_t max_bytes);

// Builds a message's headers from (name, value) pairs in linear time: a repeated name keeps its
// first position and its last value (as a HashMap does), and the limits are checked as pairs
// come in, so a hostile input is refused after at most max_count + 1 distinct names. The usual
// few names are found by a scan; a hash index is built only past kLinearHeaders, so a message
// with a few headers costs no more than its header list.
// Not thread-safe; one per message being built.
class HeaderSet {
 public:
  explicit HeaderSet(size_t max_count = kMaxHeaders, size_t max_bytes = kMaxHeaderBytes)
      : max_count_(max_count), max_bytes_(max_bytes) {}

  // Adds or replaces `name`. kInvalidArgument when the distinct names would exceed max_count or
  // their names and values max_bytes: "<n> headers exceed the limit of <max_count> per message"
  // or "headers of <n> bytes exceed the limit of <max_bytes> per message"; the set is then
  // unchanged.
  Status add(std::string name, std::string value);
  // Room for `count` names, when the caller knows how many come (up to kLinearHeaders).
  void reserve(size_t count);
  size_t size() const { return headers_.size(); }
  // The headers, in first-seen order; the set is empty afterwards.
  std::vector<Header> release();

 private:
  static constexpr size_t kLinearHeaders = 16;
  // Where `name` is in headers_, or headers_.size().
  size_t find(std::string_view name) const;

  const size_t max_count_;
  const size_t max_bytes_;
  size_t bytes_ = 0;
  std::vector<Header> headers_;
  // name (in headers_) → position; built once there are more than kLinearHeaders names
  std::unordered_map<std::string_view, size_t> index_;
};

// What a module returns for one input message (module-abi.md, "Meaning of a ProcessResult").
struct ProcessResult {
  std::vector<Message> transformed_messages;
  bool should_continue = true;
  std::optional<std::string> error;

  bool operator==(const ProcessResult& other) const = default;
};

}  // namespace wasmq
