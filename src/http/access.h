// Access control for both listeners: bearer tokens with roles, the rights each role has, and the
// check the server runs once a request's header is read and its route matched (before the body
// is read, so an unauthenticated client cannot make the broker read a 50 MiB upload).
//
// The tokens file (security.tokens_file) has one token per line, `<role> <name> <token>`,
// separated by spaces or tabs; `#` starts a comment line; blank lines are ignored. Roles: admin,
// operator, producer, consumer, viewer. Names are 1–64 of [A-Za-z0-9._@-]; tokens 16–4096
// printable ASCII characters without spaces. Names and tokens are unique within the file. Only
// the SHA-256 of each token is kept; a presented token is hashed and compared with every stored
// hash in constant time (CRYPTO_memcmp), so the time taken says nothing about the tokens.
//
// Which role has which right is fixed here (role_has); which right a route needs is declared
// where the route is added (RouteOptions::right in router.h; data_api.cc and admin_api.cc).
//
// Threads: a TokenStore and an AccessControl are immutable once built; check() may be called
// from any number of threads at once.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "http/request.h"

namespace wasmq::http {

// What a request needs from its caller. kOpen needs nothing (health probes, Prometheus).
enum class Right : uint8_t {
  kOpen,
  kView,            // GET on either listener, except reading messages: status, metrics, lists
  kDescribeTopics,  // GET /api/v1/topics, GET /api/v1/topics/{topic}
  kConsume,         // GET /api/v1/topics/{topic}/messages
  kProduce,         // POST /api/v1/topics/{topic}/messages
  kCreateTopics,    // POST /api/v1/topics
  kDeleteTopics,    // DELETE /api/v1/topics/{topic}
  kManageEtl,       // admin API changes: modules, pipelines, start/stop, dry runs, instance pool
  kAdmin,           // anything else that changes state
};

enum class Role : uint8_t { kAdmin, kOperator, kProducer, kConsumer, kViewer };

// "view", "manage_etl", ...: the names used in 403 messages and the documentation.
std::string_view right_name(Right right);
// "admin", "operator", ...
std::string_view role_name(Role role);
std::optional<Role> parse_role(std::string_view name);

// Whether `role` has `right` (docs/configuration.md, "Roles and rights"). kOpen: every role.
bool role_has(Role role, Right right);

// The right a route needs when it declares none: kView for GET, kAdmin for anything else.
Right default_right(Verb method);

// Who sent a request: the name of the token it presented, and that token's role.
struct Principal {
  std::string name;
  Role role = Role::kViewer;
};

// The tokens of a tokens file, kept as SHA-256 hashes.
class TokenStore {
 public:
  using Hash = std::array<uint8_t, 32>;

  // Reads and checks the file. kIo naming the path when it cannot be read; kInvalidArgument
  // "<path>:<line>: <what is wrong>" for a malformed line, an unknown role, a duplicate name or
  // token, or a file without any token.
  static Result<TokenStore> load(const std::filesystem::path& path);
  // As load(), on the file's text; `source_name` stands for the file in messages.
  static Result<TokenStore> parse(std::string_view text, std::string_view source_name);

  // The principal whose token is `token`, or null. Hashes the token once and compares the hash
  // with every stored one, without stopping at a match. The pointer lives as long as the store.
  const Principal* find(std::string_view token) const;

  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    Hash hash;
    Principal principal;
  };
  std::vector<Entry> entries_;
};

// The outcome of checking a request against a listener's access policy.
struct AccessDecision {
  const Principal* principal = nullptr;  // the authenticated caller, when a token was presented
  std::optional<Response> refusal;       // 401 or 403 in the API's error shape; unset: admitted
};

// Authenticates requests by their `Authorization: Bearer <token>` header and checks the
// principal's role against the right the route needs.
class AccessControl {
 public:
  explicit AccessControl(TokenStore tokens) : tokens_(std::move(tokens)) {}

  // kOpen: admitted without looking at the header (no principal). Otherwise: a
  // missing, malformed or unknown token is a 401 (`unauthorized`, with `WWW-Authenticate:
  // Bearer`); a role without `needed` is a 403 (`forbidden`) naming the role and the right.
  AccessDecision check(const RequestMessage& header, Right needed) const;

  const TokenStore& tokens() const { return tokens_; }

 private:
  TokenStore tokens_;
};

}  // namespace wasmq::http
