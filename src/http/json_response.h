// JSON in and out of handlers: responses with `Content-Type: application/json`, the API's error
// shape `{"error": {"code": "...", "message": "...", "field": "..."}}`, and a request-body parser
// whose failure is already the 400 to send.
//
// Threads: any; nothing is shared.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <boost/json/value.hpp>

#include "common/status.h"
#include "http/request.h"

namespace wasmq::http {

// `body` serialized, with `Content-Type: application/json`.
Response json_response(HttpStatus status, const boost::json::value& body);

// `body` as is, with the given content type (e.g. Prometheus text).
Response text_response(HttpStatus status, std::string body,
                       std::string_view content_type = "text/plain; charset=utf-8");

// {"error": {"code": code, "message": message, "field": field}}; "field" only when not empty.
Response error_response(HttpStatus status, std::string_view code, std::string_view message,
                        std::string_view field = {});

// The HTTP status for a Status code: invalid_argument/invalid_module 400, not_found 404,
// already_exists 409, limit_exceeded 413, timeout 504, unavailable 503 (status_response adds
// `Retry-After: 1`), anything else 500.
HttpStatus http_status_for(StatusCode code);

// error_response(http_status_for(code), status_code_name(code), message, field), where the
// field is `field` or else the status's own. `status` must not be ok.
Response status_response(const Status& status, std::string_view field = {});

// 400 invalid_message for a produce (or dry-run) body that read_produce_body (or a later check
// of one message) refused, naming the status's field ("messages[0].key").
Response invalid_message_response(const Status& status);

// Limits of parse_json_body.
struct JsonParseOptions {
  unsigned max_depth = 64;  // deeper nesting is refused (bounded recursion)
  // Where the document's memory comes from; default: the heap. A monotonic_resource turns the
  // many small allocations of a large document into a few (hot paths such as produce).
  boost::json::storage_ptr storage = {};
};

// A parsed JSON request body, or the 400 response explaining why the body is not JSON.
struct JsonBody {
  boost::json::value value;       // the document, when ok
  std::optional<Response> error;  // set when the body is not one valid JSON document

  bool is_ok() const { return !error.has_value(); }
};

// Parses `body` as exactly one JSON document (surrounding whitespace allowed). On failure the
// error is a 400 with code "invalid_json" and a message naming the parser's error and the byte
// offset where it was found, e.g. "request body is not valid JSON: syntax error at byte 12".
// Usage:
//   auto json = parse_json_body(request.body());
//   if (!json.is_ok()) co_return std::move(*json.error);
JsonBody parse_json_body(std::string_view body, const JsonParseOptions& options = {});

}  // namespace wasmq::http
