#include "etl/json_path.h"

#include <limits>

namespace wasmq::etl {

namespace {

Status path_error(std::string_view path, size_t offset, std::string_view what) {
  return invalid_argument("invalid JSONPath \"" + std::string(path) + "\" at offset " +
                          std::to_string(offset) + ": " + std::string(what));
}

bool is_dot_name_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u < 0x20 || u == 0x7f) return false;
  switch (c) {
    case '.':
    case '[':
    case ']':
    case '\'':
    case '"':
    case ' ':
    case '*':
    case '\\':
      return false;
    default:
      return true;
  }
}

}  // namespace

Result<std::vector<PathStep>> parse_json_path(std::string_view path) {
  if (path.empty() || path[0] != '$') return path_error(path, 0, "must start with '$'");
  std::vector<PathStep> steps;
  size_t i = 1;
  while (i < path.size()) {
    if (path[i] == '.') {
      const size_t start = ++i;
      while (i < path.size() && is_dot_name_char(path[i])) ++i;
      if (i == start) {
        if (i < path.size() && path[i] == '*')
          return path_error(path, i, "wildcards are not supported");
        if (i < path.size() && path[i] == '.') {
          return path_error(path, i, "recursive descent ('..') is not supported");
        }
        return path_error(path, start, "expected a field name after '.'");
      }
      PathStep step;
      step.name.assign(path.substr(start, i - start));
      steps.push_back(std::move(step));
    } else if (path[i] == '[') {
      ++i;
      if (i >= path.size()) return path_error(path, i, "unterminated '['");
      const char open = path[i];
      if (open == '\'' || open == '"') {
        PathStep step;
        ++i;
        bool closed = false;
        while (i < path.size()) {
          const char c = path[i];
          if (c == open) {
            closed = true;
            ++i;
            break;
          }
          if (c == '\\') {
            if (i + 1 >= path.size()) break;
            const char escaped = path[i + 1];
            if (escaped != '\\' && escaped != '\'' && escaped != '"') {
              return path_error(path, i, "only \\\\, \\' and \\\" escapes are supported");
            }
            step.name.push_back(escaped);
            i += 2;
            continue;
          }
          step.name.push_back(c);
          ++i;
        }
        if (!closed) return path_error(path, i, "unterminated quoted name");
        if (i >= path.size() || path[i] != ']') return path_error(path, i, "expected ']'");
        ++i;
        steps.push_back(std::move(step));
      } else if (open >= '0' && open <= '9') {
        PathStep step;
        step.is_index = true;
        uint64_t index = 0;
        while (i < path.size() && path[i] >= '0' && path[i] <= '9') {
          const uint64_t digit = static_cast<uint64_t>(path[i] - '0');
          if (index > (std::numeric_limits<uint64_t>::max() - digit) / 10) {
            return path_error(path, i, "array index too large");
          }
          index = index * 10 + digit;
          ++i;
        }
        if (i >= path.size() || path[i] != ']') return path_error(path, i, "expected ']'");
        ++i;
        step.index = index;
        steps.push_back(std::move(step));
      } else {
        return path_error(path, i, "expected an array index or a quoted name after '['");
      }
    } else {
      return path_error(path, i, "expected '.' or '['");
    }
  }
  return steps;
}

}  // namespace wasmq::etl
