#include "http/request.h"

#include <charconv>

#include <fmt/format.h>

namespace wasmq::http {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

Result<std::string> percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      int high = i + 2 < text.size() ? hex_value(text[i + 1]) : -1;
      int low = i + 2 < text.size() ? hex_value(text[i + 2]) : -1;
      if (high < 0 || low < 0) {
        return invalid_argument(
            fmt::format("malformed percent escape at character {} of \"{}\"", i, text));
      }
      out.push_back(static_cast<char>(high * 16 + low));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::optional<std::string_view> Params::find(std::string_view name) const {
  for (const auto& [key, value] : entries_) {
    if (key == name) return std::string_view(value);
  }
  return std::nullopt;
}

std::string_view Params::get(std::string_view name, std::string_view fallback) const {
  auto value = find(name);
  return value ? *value : fallback;
}

Status parse_query(std::string_view query, Params& out) {
  while (!query.empty()) {
    size_t end = query.find('&');
    std::string_view piece = query.substr(0, end);
    query = end == std::string_view::npos ? std::string_view() : query.substr(end + 1);
    if (piece.empty()) continue;
    size_t equals = piece.find('=');
    std::string_view raw_name = piece.substr(0, equals);
    std::string_view raw_value =
        equals == std::string_view::npos ? std::string_view() : piece.substr(equals + 1);
    auto name = percent_decode(raw_name, true);
    if (!name.is_ok()) {
      return invalid_argument(fmt::format("query parameter name: {}", name.status().message()));
    }
    auto value = percent_decode(raw_value, true);
    if (!value.is_ok()) {
      return invalid_argument(
          fmt::format("query parameter \"{}\": {}", *name, value.status().message()));
    }
    out.add(std::move(*name), std::move(*value));
  }
  return Status::ok();
}

Status Request::reset(RequestMessage message) {
  message_ = std::move(message);
  std::string_view target = this->target();
  size_t question = target.find('?');
  path_size_ = question == std::string_view::npos ? target.size() : question;
  query_.clear();
  return parse_query(query_string(), query_);
}

std::string_view Request::target() const {
  auto target = message_.target();
  return {target.data(), target.size()};
}

std::string_view Request::query_string() const {
  std::string_view target = this->target();
  return path_size_ < target.size() ? target.substr(path_size_ + 1) : std::string_view();
}

std::string_view Request::header(Field field) const {
  auto it = message_.find(field);
  if (it == message_.end()) return {};
  return {it->value().data(), it->value().size()};
}

std::string_view Request::header(std::string_view name) const {
  auto it = message_.find(boost::beast::string_view(name.data(), name.size()));
  if (it == message_.end()) return {};
  return {it->value().data(), it->value().size()};
}

Result<int64_t> Request::query_int64(std::string_view name, int64_t fallback) const {
  auto text = query_.find(name);
  if (!text) return fallback;
  int64_t value = 0;
  const char* first = text->data();
  const char* last = first + text->size();
  auto [end, error] = std::from_chars(first, last, value);
  if (text->empty() || error != std::errc() || end != last) {
    return invalid_argument(
        fmt::format("query parameter \"{}\" must be an integer, got \"{}\"", name, *text));
  }
  return value;
}

}  // namespace wasmq::http
