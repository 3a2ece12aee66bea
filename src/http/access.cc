#include "http/access.h"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>
#include <boost/beast/core/string.hpp>
#include <set>

#include "common/file.h"
#include "http/json_response.h"

namespace wasmq::http {
namespace {

constexpr uint64_t kMaxTokensFileBytes = 4 << 20;
constexpr size_t kMaxNameLength = 64;
constexpr size_t kMinTokenLength = 16;
constexpr size_t kMaxTokenLength = 4096;

constexpr std::string_view kRoleNames[] = {"admin", "operator", "producer", "consumer", "viewer"};

TokenStore::Hash sha256(std::string_view text) {
  TokenStore::Hash hash;
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), hash.data());
  return hash;
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-' || c == '@';
}

// Printable ASCII other than space (RFC 6750's b64token is narrower; any of these is accepted).
bool is_token_char(char c) { return c > ' ' && c < 0x7f; }

bool is_blank(char c) { return c == ' ' || c == '\t'; }

// Splits a line into fields separated by runs of spaces and tabs.
std::vector<std::string_view> fields_of(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_blank(line[i])) ++i;
    size_t start = i;
    while (i < line.size() && !is_blank(line[i])) ++i;
    if (i > start) fields.push_back(line.substr(start, i - start));
  }
  return fields;
}

Response unauthorized(std::string_view message) {
  Response response = error_response(HttpStatus::unauthorized, "unauthorized", message);
  response.set(Field::www_authenticate, "Bearer realm=\"wasmq\"");
  return response;
}

}  // namespace

std::string_view right_name(Right right) {
  switch (right) {
    case Right::kOpen:
      return "open";
    case Right::kView:
      return "view";
    case Right::kDescribeTopics:
      return "describe_topics";
    case Right::kConsume:
      return "consume";
    case Right::kProduce:
      return "produce";
    case Right::kCreateTopics:
      return "create_topics";
    case Right::kDeleteTopics:
      return "delete_topics";
    case Right::kManageEtl:
      return "manage_etl";
    case Right::kAdmin:
      return "admin";
  }
  return "admin";
}

std::string_view role_name(Role role) { return kRoleNames[static_cast<size_t>(role)]; }

std::optional<Role> parse_role(std::string_view name) {
  for (size_t i = 0; i < std::size(kRoleNames); ++i) {
    if (kRoleNames[i] == name) return static_cast<Role>(i);
  }
  return std::nullopt;
}

bool role_has(Role role, Right right) {
  if (right == Right::kOpen || role == Role::kAdmin) return true;
  switch (role) {
    case Role::kOperator:
      return right == Right::kView || right == Right::kDescribeTopics || right == Right::kConsume ||
             right == Right::kManageEtl;
    case Role::kProducer:
      return right == Right::kProduce || right == Right::kCreateTopics ||
             right == Right::kDescribeTopics;
    case Role::kConsumer:
      return right == Right::kConsume || right == Right::kDescribeTopics;
    case Role::kViewer:
      return right == Right::kView || right == Right::kDescribeTopics;
    case Role::kAdmin:
      break;
  }
  return false;
}

Right default_right(Verb method) { return method == Verb::get ? Right::kView : Right::kAdmin; }

Result<TokenStore> TokenStore::load(const std::filesystem::path& path) {
  auto text = read_file(path, kMaxTokensFileBytes);
  if (!text.is_ok()) return text.status().with_context("security.tokens_file");
  return parse(*text, path.string());
}

Result<TokenStore> TokenStore::parse(std::string_view text, std::string_view source_name) {
  TokenStore store;
  std::set<std::string, std::less<>> names;
  std::set<Hash> hashes;
  size_t line_number = 0;
  while (!text.empty()) {
    ++line_number;
    size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    auto fail = [&](const std::string& what) {
      return invalid_argument(fmt::format("{}:{}: {}", source_name, line_number, what));
    };
    std::vector<std::string_view> fields = fields_of(line);
    if (fields.empty() || fields[0].front() == '#') continue;
    if (fields.size() != 3) {
      return fail(
          fmt::format("expected \"<role> <name> <token>\", got {} field(s)", fields.size()));
    }
    auto role = parse_role(fields[0]);
    if (!role) {
      return fail(
          fmt::format("unknown role \"{}\" (expected admin, operator, producer, consumer "
                      "or viewer)",
                      fields[0]));
    }
    std::string_view name = fields[1];
    if (name.size() > kMaxNameLength || !std::all_of(name.begin(), name.end(), is_name_char)) {
      return fail(fmt::format("token name \"{}\" must be 1 to {} of [A-Za-z0-9._@-]", name,
                              kMaxNameLength));
    }
    std::string_view token = fields[2];
    if (token.size() < kMinTokenLength || token.size() > kMaxTokenLength ||
        !std::all_of(token.begin(), token.end(), is_token_char)) {
      // The token itself is never repeated in a message: messages end up in logs.
      return fail(
          fmt::format("the token of \"{}\" must be {} to {} printable characters without "
                      "spaces",
                      name, kMinTokenLength, kMaxTokenLength));
    }
    if (!names.insert(std::string(name)).second) {
      return fail(fmt::format("token name \"{}\" is used by an earlier line", name));
    }
    Hash hash = sha256(token);
    if (!hashes.insert(hash).second) {
      return fail(fmt::format("the token of \"{}\" is the same as an earlier line's", name));
    }
    store.entries_.push_back(Entry{hash, Principal{std::string(name), *role}});
  }
  if (store.entries_.empty()) {
    return invalid_argument(std::string(source_name) +
                            ": no tokens (lines \"<role> <name> <token>\"); every request "
                            "would be refused");
  }
  return store;
}

const Principal* TokenStore::find(std::string_view token) const {
  Hash hash = sha256(token);
  const Principal* found = nullptr;
  for (const Entry& entry : entries_) {
    bool same = CRYPTO_memcmp(entry.hash.data(), hash.data(), hash.size()) == 0;
    if (same) found = &entry.principal;
  }
  return found;
}

AccessDecision AccessControl::check(const RequestMessage& header, Right needed) const {
  AccessDecision decision;
  if (needed == Right::kOpen) return decision;
  auto field = header.find(Field::authorization);
  if (field == header.end()) {
    decision.refusal = unauthorized(
        "authentication required: send \"Authorization: Bearer <token>\" (security.tokens_file)");
    return decision;
  }
  std::string_view value(field->value().data(), field->value().size());
  constexpr std::string_view kScheme = "bearer ";
  if (value.size() <= kScheme.size() ||
      !boost::beast::iequals(value.substr(0, kScheme.size()), kScheme)) {
    decision.refusal = unauthorized("the Authorization header must be \"Bearer <token>\"");
    return decision;
  }
  std::string_view token = value.substr(kScheme.size());
  while (!token.empty() && is_blank(token.front())) token.remove_prefix(1);
  while (!token.empty() && is_blank(token.back())) token.remove_suffix(1);
  decision.principal = tokens_.find(token);
  if (decision.principal == nullptr) {
    decision.refusal = unauthorized("the bearer token is not valid");
    return decision;
  }
  if (!role_has(decision.principal->role, needed)) {
    std::string_view method(header.method_string().data(), header.method_string().size());
    std::string_view target(header.target().data(), header.target().size());
    decision.refusal = error_response(
        HttpStatus::forbidden, "forbidden",
        fmt::format("token \"{}\" has role {}, which lacks the right {} needed for {} {}",
                    decision.principal->name, role_name(decision.principal->role),
                    right_name(needed), method, target.substr(0, target.find('?'))));
  }
  return decision;
}

}  // namespace wasmq::http
