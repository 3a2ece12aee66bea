// Parses fuzz input as the HTTP API parses request bodies (src/http/json_response.cc,
// parse_json_body): one JSON document, nesting at most 64 deep.
#pragma once

#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace wasmq::fuzz {

inline constexpr unsigned kApiMaxDepth = 64;

inline std::optional<boost::json::value> parse_api_json(const uint8_t* data, size_t size,
                                                        boost::json::storage_ptr storage = {}) {
  boost::json::parse_options options;
  options.max_depth = kApiMaxDepth;
  boost::json::parser parser(boost::json::storage_ptr(), options);
  parser.reset(std::move(storage));
  boost::json::error_code error;
  parser.write(reinterpret_cast<const char*>(data), size, error);
  if (error) return std::nullopt;
  return parser.release();
}

}  // namespace wasmq::fuzz
