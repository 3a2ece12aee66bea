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
    case StatusCode::kAlreadyExists: return "already_exists";
    case StatusCode::kConflict: return "conflict";
    case StatusCode::kIo: return "io_error";
    case StatusCode::kInternal: return "internal";
    case StatusCode::kUnavailable:
      return "unavailable";
  }
  return "unknown";
}

}  // namespace wasmq
