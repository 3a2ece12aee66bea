#include "common/message.h"

#include <algorithm>

namespace wasmq {

const std::string* Message::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (n == name) return &v;
  }
  return nullptr;
}

void Message::set_header(std::string name, std::string value) {
  for (auto& [n, v] : headers) {
    if (n == name) {
      v = std::move(value);
      return;
    }
  }
  headers.emplace_back(std::move(name), std::move(value));
}

bool Message::operator==(const Message& other) const {
  if (key != other.key || value != other.value || timestamp != other.timestamp ||
      headers.size() != other.headers.size()) {
    return false;
  }
  // Header order is not significant (a HashMap on the guest side).
  auto a = headers;
  auto b = other.headers;
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  return a == b;
}

}  // namespace wasmq
