#include "common/status.h"

namespace wasmq {

const char* status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid_argument";
    case StatusCode::kInvalidModule: return "invalid_module";
    case StatusCode::kModuleFailed: return "module_failed";
    case StatusCode::kTimeout: return "timeout";
    case StatusCode::kLimitExceeded: return "limit_exceeded";
    case StatusCode::kNotFound: return "not_found";
    case StatusCode::kOutOfRange: return "out_of_range";
    case StatusCode::kAlreadyExists: return "already_exists";
    case StatusCode::kConflict: return "conflict";
    case StatusCode::kIo: return "io_error";
    case StatusCode::kInternal: return "internal";
    case StatusCode::kUnavailable:
      return "unavailable";
  }
  return "unknown";
}

Status Status::within(std::string_view path) const {
  if (is_ok() || path.empty()) return *this;
  std::string field(path);
  std::string message(path);
  if (!field_.empty()) {
    const bool index = field_.front() == '[';
    field += index ? "" : ".";
    field += field_;
    message += index ? "" : ".";
    message += message_;
  } else {
    message += ": ";
    message += message_;
  }
  return Status(code_, std::move(message), std::move(field));
}

Status field_error(std::string_view field, std::string_view what) {
  std::string message(field);
  message += ": ";
  message += what;
  return Status(StatusCode::kInvalidArgument, std::move(message), std::string(field));
}

}  // namespace wasmq
