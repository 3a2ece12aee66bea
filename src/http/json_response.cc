#include "http/json_response.h"

#include <boost/json/parser.hpp>
#include <boost/json/serialize.hpp>
#include <fmt/format.h>

#include "common/json_text.h"

namespace wasmq::http {
namespace json = boost::json;

Response text_response(HttpStatus status, std::string body, std::string_view content_type) {
  Response response(status, 11);
  response.set(Field::content_type,
               boost::beast::string_view(content_type.data(), content_type.size()));
  response.body() = std::move(body);
  return response;
}

Response json_response(HttpStatus status, const json::value& body) {
  return text_response(status, json_text(body), "application/json");
}

Response error_response(HttpStatus status, std::string_view code, std::string_view message,
                        std::string_view field) {
  json::object error;
  error["code"] = code;
  error["message"] = message;
  if (!field.empty()) error["field"] = field;
  json::object body;
  body["error"] = std::move(error);
  return json_response(status, body);
}

HttpStatus http_status_for(StatusCode code) {
  switch (code) {
    case StatusCode::kInvalidArgument:
    case StatusCode::kInvalidModule:
    case StatusCode::kOutOfRange:
      return HttpStatus::bad_request;
    case StatusCode::kNotFound:
      return HttpStatus::not_found;
    case StatusCode::kAlreadyExists:
    case StatusCode::kConflict:
      return HttpStatus::conflict;
    case StatusCode::kLimitExceeded:
      return HttpStatus::payload_too_large;
    case StatusCode::kTimeout:
      return HttpStatus::gateway_timeout;
    case StatusCode::kUnavailable:
      return HttpStatus::service_unavailable;
    case StatusCode::kOk:
    case StatusCode::kModuleFailed:
    case StatusCode::kIo:
    case StatusCode::kInternal:
      break;
  }
  return HttpStatus::internal_server_error;
}

Response status_response(const Status& status, std::string_view field) {
  Response response = error_response(http_status_for(status.code()),
                                     status_code_name(status.code()), status.message(),
                                     field.empty() ? std::string_view(status.field()) : field);
  if (status.code() == StatusCode::kUnavailable) response.set(Field::retry_after, "1");
  return response;
}

Response invalid_message_response(const Status& status) {
  return error_response(HttpStatus::bad_request, "invalid_message", status.message(),
                        status.field());
}

JsonBody parse_json_body(std::string_view body, const JsonParseOptions& options) {
  json::parse_options parse_options;
  parse_options.max_depth = options.max_depth;
  // The parser's scratch space lives on this stack frame: small documents parse without any
  // allocation besides the resulting value.
  unsigned char scratch[4096];
  json::parser parser(json::storage_ptr(), parse_options, scratch, sizeof(scratch));
  parser.reset(options.storage);
  json::error_code error;
  size_t consumed = parser.write(body.data(), body.size(), error);
  if (error) {
    std::string message =
        body.empty() ? std::string("request body is empty, expected a JSON document")
                     : fmt::format("request body is not valid JSON: {} at byte {}",
                                   error.message(), consumed);
    JsonBody result;
    result.error = error_response(HttpStatus::bad_request, "invalid_json", message);
    return result;
  }
  // Move-constructed, so that the document keeps the caller's storage: assigning it to a value
  // of another storage would copy all of it (Boost.JSON never moves across storages).
  return JsonBody{parser.release(), std::nullopt};
}

}  // namespace wasmq::http
