// Tokens files, the rights of each role, and the 401/403 decisions of AccessControl.
#include "http/access.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace wasmq::http {
namespace {

namespace json = boost::json;

constexpr char kTokens[] = R"(# wasmq tokens: <role> <name> <token>
admin    ci-deploy   tok-admin-0123456789abcdef

operator ops         tok-operator-0123456789ab
producer app	tok-producer-0123456789ab
consumer reader      tok-consumer-0123456789ab
viewer   dashboard   tok-viewer-0123456789abcd
)";

TokenStore tokens() {
  auto store = TokenStore::parse(kTokens, "tokens");
  EXPECT_TRUE(store.is_ok()) << store.status().message();
  return std::move(store).value();
}

std::string parse_error(std::string_view text) {
  auto store = TokenStore::parse(text, "tokens.txt");
  EXPECT_FALSE(store.is_ok());
  if (store.is_ok()) return "";
  EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument);
  return store.status().message();
}

RequestMessage request(Verb method, std::string target, std::string authorization = "") {
  RequestMessage message(method, target, 11);
  if (!authorization.empty()) message.set(Field::authorization, authorization);
  return message;
}

std::string error_code_of(const Response& response) {
  return std::string(json::parse(response.body()).at("error").at("code").as_string());
}

std::string error_message_of(const Response& response) {
  return std::string(json::parse(response.body()).at("error").at("message").as_string());
}

TEST(TokenStore, FindsEachTokensPrincipalAndNothingElse) {
  TokenStore store = tokens();
  EXPECT_EQ(store.size(), 5u);
  const Principal* admin = store.find("tok-admin-0123456789abcdef");
  ASSERT_NE(admin, nullptr);
  EXPECT_EQ(admin->name, "ci-deploy");
  EXPECT_EQ(admin->role, Role::kAdmin);
  const Principal* producer = store.find("tok-producer-0123456789ab");  // tab-separated line
  ASSERT_NE(producer, nullptr);
  EXPECT_EQ(producer->name, "app");
  EXPECT_EQ(producer->role, Role::kProducer);
  EXPECT_EQ(store.find("tok-admin-0123456789abcde"), nullptr);    // a prefix
  EXPECT_EQ(store.find("tok-admin-0123456789abcdef0"), nullptr);  // longer
  EXPECT_EQ(store.find(""), nullptr);
  EXPECT_EQ(store.find("ci-deploy"), nullptr);  // the name is not the token
}

TEST(TokenStore, AcceptsWindowsLineEndingsAndATrailingLineWithoutNewline) {
  auto store = TokenStore::parse(
      "# c\r\nadmin a tok-aaaaaaaaaaaaaaaa\r\nviewer v tok-vvvvvvvvvvvvvvvv", "t");
  ASSERT_TRUE(store.is_ok()) << store.status().message();
  EXPECT_NE(store->find("tok-aaaaaaaaaaaaaaaa"), nullptr);
  EXPECT_NE(store->find("tok-vvvvvvvvvvvvvvvv"), nullptr);
}

TEST(TokenStore, RefusesMalformedLinesNamingFileAndLine) {
  EXPECT_EQ(parse_error("admin a tok-aaaaaaaaaaaaaaaa\nroot r tok-rrrrrrrrrrrrrrrr\n"),
            "tokens.txt:2: unknown role \"root\" (expected admin, operator, producer, consumer or "
            "viewer)");
  EXPECT_EQ(parse_error("# tokens\n\nadmin tok-aaaaaaaaaaaaaaaa\n"),
            "tokens.txt:3: expected \"<role> <name> <token>\", got 2 field(s)");
  EXPECT_EQ(parse_error("admin a tok-aaaaaaaaaaaaaaaa extra\n"),
            "tokens.txt:1: expected \"<role> <name> <token>\", got 4 field(s)");
  EXPECT_EQ(parse_error("admin a short\n"),
            "tokens.txt:1: the token of \"a\" must be 16 to 4096 printable characters without "
            "spaces");
  EXPECT_EQ(parse_error("admin na/me tok-aaaaaaaaaaaaaaaa\n"),
            "tokens.txt:1: token name \"na/me\" must be 1 to 64 of [A-Za-z0-9._@-]");
}

TEST(TokenStore, RefusesDuplicateNamesAndTokens) {
  EXPECT_EQ(parse_error("admin a tok-aaaaaaaaaaaaaaaa\nviewer a tok-bbbbbbbbbbbbbbbb\n"),
            "tokens.txt:2: token name \"a\" is used by an earlier line");
  // The message names the line and the name, never the token itself.
  std::string duplicate =
      parse_error("admin a tok-aaaaaaaaaaaaaaaa\nviewer b tok-aaaaaaaaaaaaaaaa\n");
  EXPECT_EQ(duplicate, "tokens.txt:2: the token of \"b\" is the same as an earlier line's");
}

TEST(TokenStore, RefusesAFileWithoutTokens) {
  EXPECT_NE(parse_error("# nothing yet\n\n").find("tokens.txt: no tokens"), std::string::npos);
}

TEST(TokenStore, ReportsAFileThatCannotBeRead) {
  auto store = TokenStore::load("/nonexistent/wasmq-tokens");
  ASSERT_FALSE(store.is_ok());
  EXPECT_EQ(store.status().code(), StatusCode::kIo);
  EXPECT_NE(store.status().message().find("/nonexistent/wasmq-tokens"), std::string::npos)
      << store.status().message();
}

TEST(Rights, EachRoleHasExactlyItsRights) {
  const Right all[] = {Right::kOpen,         Right::kView,      Right::kDescribeTopics,
                       Right::kConsume,      Right::kProduce,   Right::kCreateTopics,
                       Right::kDeleteTopics, Right::kManageEtl, Right::kAdmin};
  auto rights_of = [&](Role role) {
    std::vector<std::string_view> names;
    for (Right right : all) {
      if (role_has(role, right)) names.push_back(right_name(right));
    }
    return names;
  };
  using V = std::vector<std::string_view>;
  EXPECT_EQ(rights_of(Role::kAdmin), (V{"open", "view", "describe_topics", "consume", "produce",
                                        "create_topics", "delete_topics", "manage_etl", "admin"}));
  EXPECT_EQ(rights_of(Role::kOperator),
            (V{"open", "view", "describe_topics", "consume", "manage_etl"}));
  EXPECT_EQ(rights_of(Role::kProducer), (V{"open", "describe_topics", "produce", "create_topics"}));
  EXPECT_EQ(rights_of(Role::kConsumer), (V{"open", "describe_topics", "consume"}));
  EXPECT_EQ(rights_of(Role::kViewer), (V{"open", "view", "describe_topics"}));
}

TEST(Rights, RoutesWithoutADeclaredRightNeedViewToReadAndAdminToChange) {
  EXPECT_EQ(default_right(Verb::get), Right::kView);
  EXPECT_EQ(default_right(Verb::post), Right::kAdmin);
  EXPECT_EQ(default_right(Verb::delete_), Right::kAdmin);
}

TEST(AccessControl, MissingTokenIs401WithWwwAuthenticate) {
  AccessControl access(tokens());
  AccessDecision decision =
      access.check(request(Verb::post, "/api/v1/etl/pipelines"), Right::kManageEtl);
  ASSERT_TRUE(decision.refusal);
  EXPECT_EQ(decision.refusal->result(), HttpStatus::unauthorized);
  EXPECT_EQ(error_code_of(*decision.refusal), "unauthorized");
  EXPECT_EQ((*decision.refusal)[Field::www_authenticate], "Bearer realm=\"wasmq\"");
  EXPECT_EQ(decision.principal, nullptr);
}

TEST(AccessControl, UnknownOrMalformedTokenIs401) {
  AccessControl access(tokens());
  for (const char* header : {"Bearer nope-nope-nope-nope-nope", "Basic dXNlcjpwYXNz",
                             "tok-admin-0123456789abcdef", "Bearer "}) {
    AccessDecision decision =
        access.check(request(Verb::get, "/api/v1/etl/modules", header), Right::kView);
    ASSERT_TRUE(decision.refusal) << header;
    EXPECT_EQ(decision.refusal->result(), HttpStatus::unauthorized) << header;
  }
}

TEST(AccessControl, RoleWithoutTheRightIs403NamingRoleAndRight) {
  AccessControl access(tokens());
  AccessDecision decision = access.check(
      request(Verb::delete_, "/api/v1/etl/pipelines/p1?x=1", "Bearer tok-viewer-0123456789abcd"),
      Right::kManageEtl);
  ASSERT_TRUE(decision.refusal);
  EXPECT_EQ(decision.refusal->result(), HttpStatus::forbidden);
  EXPECT_EQ(error_code_of(*decision.refusal), "forbidden");
  EXPECT_EQ(error_message_of(*decision.refusal),
            "token \"dashboard\" has role viewer, which lacks the right manage_etl needed for "
            "DELETE /api/v1/etl/pipelines/p1");
  ASSERT_NE(decision.principal, nullptr);  // known, for the audit log
  EXPECT_EQ(decision.principal->name, "dashboard");
}

TEST(AccessControl, AdmitsARoleWithTheRightAndNamesThePrincipal) {
  AccessControl access(tokens());
  AccessDecision decision =
      access.check(request(Verb::post, "/api/v1/topics/t/messages",
                           "bearer   tok-producer-0123456789ab "),  // scheme is case-insensitive
                   Right::kProduce);
  EXPECT_FALSE(decision.refusal);
  ASSERT_NE(decision.principal, nullptr);
  EXPECT_EQ(decision.principal->name, "app");
}

TEST(AccessControl, OpenRoutesNeedNoToken) {
  AccessControl access(tokens());
  AccessDecision decision = access.check(request(Verb::get, "/health"), Right::kOpen);
  EXPECT_FALSE(decision.refusal);
  EXPECT_EQ(decision.principal, nullptr);
}

}  // namespace
}  // namespace wasmq::http
