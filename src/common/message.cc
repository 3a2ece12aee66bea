#include "common/message.h"

#include <algorithm>

#include "common/utf8.h"

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

size_t HeaderSet::find(std::string_view name) const {
  if (!index_.empty()) {
    auto it = index_.find(name);
    return it == index_.end() ? headers_.size() : it->second;
  }
  for (size_t i = 0; i < headers_.size(); ++i) {
    if (headers_[i].first == name) return i;
  }
  return headers_.size();
}

void HeaderSet::reserve(size_t count) {
  if (index_.empty()) headers_.reserve(std::min(count, kLinearHeaders));
}

Status HeaderSet::add(std::string name, std::string value) {
  if (const size_t at = find(name); at < headers_.size()) {
    std::string& old = headers_[at].second;
    const size_t bytes = bytes_ - old.size() + value.size();
    if (bytes > max_bytes_) return headers_too_large(bytes, max_bytes_);
    bytes_ = bytes;
    old = std::move(value);
    return Status::ok();
  }
  if (headers_.size() + 1 > max_count_) {
    return invalid_argument(std::to_string(headers_.size() + 1) + " headers exceed the limit of " +
                            std::to_string(max_count_) + " per message");
  }
  const size_t bytes = bytes_ + name.size() + value.size();
  if (bytes > max_bytes_) return headers_too_large(bytes, max_bytes_);
  bytes_ = bytes;
  // Past the scan's few, an index. Its keys view the names inside headers_: grow the list
  // before indexing, so that they never move (std::string's small-buffer names would move with
  // the vector).
  if (headers_.size() >= kLinearHeaders &&
      (index_.empty() || headers_.size() == headers_.capacity())) {
    const size_t capacity = std::max<size_t>(2 * kLinearHeaders, headers_.capacity() * 2);
    std::vector<Header> grown;
    grown.reserve(capacity);
    for (auto& h : headers_) grown.push_back(std::move(h));
    headers_ = std::move(grown);
    index_.clear();
    for (size_t i = 0; i < headers_.size(); ++i) index_.emplace(headers_[i].first, i);
  }
  headers_.emplace_back(std::move(name), std::move(value));
  if (!index_.empty()) index_.emplace(headers_.back().first, headers_.size() - 1);
  return Status::ok();
}

std::vector<Header> HeaderSet::release() {
  index_.clear();
  bytes_ = 0;
  return std::move(headers_);
}

Status text_for_modules(const Message& message) {
  const char* what = nullptr;
  if (message.key && !is_valid_utf8(*message.key)) what = "the key";
  for (const auto& [name, value] : message.headers) {
    if (what) break;
    if (!is_valid_utf8(name) || !is_valid_utf8(value)) what = "a header";
  }
  if (!what) return Status::ok();
  return invalid_argument(std::string(what) +
                          " is not UTF-8 text, which modules cannot be given (they see keys and "
                          "headers as strings): produce it to a topic without inline pipelines, "
                          "or as text");
}

Status headers_too_large(size_t bytes, size_t max_bytes) {
  return invalid_argument("headers of " + std::to_string(bytes) + " bytes exceed the limit of " +
                          std::to_string(max_bytes) + " per message");
}

Message MessageView::to_message() const {
  Message m;
  if (key) m.key.emplace(*key);
  m.value.assign(value);
  m.headers.reserve(headers.size());
  for (const auto& [name, v] : headers) m.headers.emplace_back(std::string(name), std::string(v));
  m.timestamp = timestamp;
  return m;
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
