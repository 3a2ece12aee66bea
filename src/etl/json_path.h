// The JSONPath subset of PayloadField rules, read once for the pipeline parser (which checks a
// rule's field_path) and the rule compiler (which walks it).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace wasmq::etl {

// The JSONPath subset of PayloadField rules: "$" followed by any of ".name", "[N]",
// "['name']" / "[\"name\"]". One step of a parsed path. "$" alone is the whole payload. A
// dotted name is any run of characters other than . [ ] ' " \ * space and control characters;
// a quoted name may hold anything, with \\, \' and \" as its only escapes. No wildcards,
// slices, filters or recursive descent.
struct PathStep {
  bool is_index = false;
  std::string name;  // object key, when !is_index
  uint64_t index = 0;
};

// Parses a field path; kInvalidArgument saying where it departs from the subset.
Result<std::vector<PathStep>> parse_json_path(std::string_view path);

}  // namespace wasmq::etl
