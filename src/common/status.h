// Error values used at every boundary of wasmq: a code and a message that names what was wrong.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace wasmq {

// What kind of failure a Status carries. Callers branch on the code; people read the message.
enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // bad input from a user: malformed JSON, wrong type, bad flag
  kInvalidModule,    // a WebAssembly binary that fails validation against the module ABI
  kModuleFailed,     // a module call failed: trap, error result, bad result encoding
  kTimeout,          // a module call ran past its deadline
  kLimitExceeded,    // memory, output size or another hard limit
  kNotFound,
  kOutOfRange,  // a position outside what exists, e.g. an offset past a partition's end
  kAlreadyExists,
  kConflict,  // the request contradicts the current state (e.g. a module still in use)
  kIo,
  kInternal,
  kUnavailable,  // overloaded for now: the same request may succeed later (HTTP 503)
};

// Returns the snake_case name of a code, e.g. "invalid_module".
const char* status_code_name(StatusCode code);

// The outcome of an operation that can fail. Cheap to copy when ok. [[nodiscard]]: an error
// value may not be dropped silently (cast to void where that is meant).
//
// An error about one field of the caller's input also carries that field's path
// ("timestamp", "headers.h1", "stages[1].modules[0].module_id"), so that an API can name it
// without reading the message. The message still starts with the path, for people.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message, std::string field = {})
      : code_(code), message_(std::move(message)), field_(std::move(field)) {}

  static Status ok() { return {}; }

  bool is_ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // The path of the input field at fault; empty when the error is not about one field.
  const std::string& field() const { return field_; }

  // Returns a Status with the same code and field and "context: message".
  Status with_context(const std::string& context) const {
    return is_ok() ? *this : Status(code_, context + ": " + message_, field_);
  }

  // Returns the error as seen from an enclosing element at `path` ("messages[3]"): the field
  // becomes "messages[3].timestamp" (or "messages[3]" when there was none) and the message
  // "messages[3].timestamp: ..." (or "messages[3]: ..."). An empty path changes nothing.
  Status within(std::string_view path) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  std::string field_;
};

inline Status invalid_argument(std::string message) {
  return {StatusCode::kInvalidArgument, std::move(message)};
}

// kInvalidArgument about one field: message "field: what", field() "field".
Status field_error(std::string_view field, std::string_view what);

// Either a value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  // A Result needs a value or an error: one made from an ok Status is an internal error (and
  // trips the assertion in builds that keep them), never an error without a message.
  Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    assert(!status_.is_ok());
    if (status_.is_ok()) status_ = Status(StatusCode::kInternal, "a Result was made without a value");
  }

  bool is_ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }

  T& value() & {
    assert(value_);
    return *value_;
  }
  const T& value() const& {
    assert(value_);
    return *value_;
  }
  T&& value() && {
    assert(value_);
    return std::move(*value_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace wasmq
