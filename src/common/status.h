// Error values used at every boundary of wasmq: a code and a message that names what was wrong.
#pragma once

#include <cassert>
#include <optional>
#include <string>
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
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() { return {}; }

  bool is_ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Returns a Status with the same code and "context: message".
  Status with_context(const std::string& context) const {
    return is_ok() ? *this : Status(code_, context + ": " + message_);
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string message) {
  return {StatusCode::kInvalidArgument, std::move(message)};
}

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
