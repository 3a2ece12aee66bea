// The server's access check and audit hook on real sockets: refused before the body is read,
// the principal and the peer's address handed to the handler, audited routes recorded.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>

#include "http/access.h"
#include "http/audit_log.h"
#include "http/json_response.h"
#include "http/server.h"
#include "http_test_client.h"
#include "temp_dir.h"

namespace wasmq::http {
namespace {

namespace asio = boost::asio;
namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;
using testing::ClientResponse;
using testing::HttpTestClient;

constexpr char kAdminToken[] = "tok-admin-0123456789abcdef";
constexpr char kViewerToken[] = "tok-viewer-0123456789abcd";

class ServerAccessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = wasmq::testing::test_temp_dir("wasmq-server-access");
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto tokens = TokenStore::parse(
        std::string("admin alice ") + kAdminToken + "\nviewer dash " + kViewerToken + "\n", "t");
    ASSERT_TRUE(tokens.is_ok()) << tokens.status().message();
    auto audit = AuditLog::open(dir_ / "audit.jsonl");
    ASSERT_TRUE(audit.is_ok()) << audit.status().message();

    Router router;
    auto whoami = [this](Request& request) -> asio::awaitable<Response> {
      ++handled_;
      json::object o{{"remote", request.remote_address()}, {"body_bytes", request.body().size()}};
      if (const Principal* p = request.principal()) o["who"] = p->name;
      co_return json_response(HttpStatus::ok, o);
    };
    RouteOptions change;
    change.right = Right::kManageEtl;
    change.audited = true;
    change.max_body_bytes = 1 << 20;
    ASSERT_TRUE(router.add(Verb::post, "/change", whoami, change).is_ok());
    ASSERT_TRUE(router.add(Verb::get, "/read", whoami).is_ok());  // default: view
    RouteOptions open;
    open.right = Right::kOpen;
    ASSERT_TRUE(router.add(Verb::get, "/health", whoami, open).is_ok());

    ServerOptions options;
    options.port = 0;
    options.access = std::make_shared<const AccessControl>(std::move(*tokens));
    options.audit = std::move(*audit);
    server_ = std::make_unique<Server>(options, std::move(router));
    ASSERT_TRUE(server_->start().is_ok());
  }

  void TearDown() override {
    server_->stop(1s);
    fs::remove_all(dir_);
  }

  std::vector<json::object> audit_lines() {
    std::ifstream in(dir_ / "audit.jsonl");
    std::vector<json::object> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line).as_object());
    return lines;
  }

  fs::path dir_;
  std::unique_ptr<Server> server_;
  std::atomic<int> handled_{0};
};

TEST_F(ServerAccessTest, RefusesAnUnauthenticatedUploadBeforeReadingItsBody) {
  HttpTestClient client(server_->port());
  // The header announces a body the client never sends, and asks to be told before sending it.
  client.send_raw(
      "POST /change HTTP/1.1\r\nHost: x\r\nContent-Length: 500000\r\nExpect: 100-continue\r\n\r\n");
  ClientResponse response = client.read_response();
  ASSERT_TRUE(client.ok()) << client.error().message();
  EXPECT_EQ(response.result(), HttpStatus::unauthorized);
  EXPECT_EQ(response[Field::www_authenticate], "Bearer realm=\"wasmq\"");
  EXPECT_FALSE(response.keep_alive());
  EXPECT_TRUE(client.closed_by_server(3s));
  EXPECT_EQ(handled_, 0);
  std::vector<json::object> lines = audit_lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].at("result"), "refused");
  EXPECT_EQ(lines[0].at("path"), "/change");
}

TEST_F(ServerAccessTest, ARefusalWithoutABodyKeepsTheConnection) {
  HttpTestClient client(server_->port());
  ClientResponse refused = client.request(Verb::get, "/read");
  EXPECT_EQ(refused.result(), HttpStatus::unauthorized);
  ClientResponse admitted = client.request(
      Verb::get, "/read", "", {{"Authorization", std::string("Bearer ") + kViewerToken}});
  ASSERT_TRUE(client.ok()) << client.error().message();
  EXPECT_EQ(admitted.result(), HttpStatus::ok);
  EXPECT_EQ(json::parse(admitted.body()).at("who"), "dash");
  EXPECT_TRUE(audit_lines().empty());  // reads are not audited
}

TEST_F(ServerAccessTest, HandlerSeesThePrincipalAndThePeerAndTheChangeIsAudited) {
  HttpTestClient client(server_->port());
  ClientResponse viewer = client.request(
      Verb::post, "/change", "{}", {{"Authorization", std::string("Bearer ") + kViewerToken}});
  EXPECT_EQ(viewer.result(), HttpStatus::forbidden);
  HttpTestClient admin(server_->port());
  ClientResponse admitted =
      admin.request(Verb::post, "/change", "{\"a\": 1}",
                    {{"Authorization", std::string("Bearer ") + kAdminToken}});
  ASSERT_TRUE(admin.ok()) << admin.error().message();
  ASSERT_EQ(admitted.result(), HttpStatus::ok);
  json::value body = json::parse(admitted.body());
  EXPECT_EQ(body.at("who"), "alice");
  EXPECT_EQ(body.at("remote"), "127.0.0.1");
  EXPECT_EQ(body.at("body_bytes"), 8);
  std::vector<json::object> lines = audit_lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].at("who"), "dash");
  EXPECT_EQ(lines[0].at("status"), 403);
  EXPECT_EQ(lines[1].at("who"), "alice");
  EXPECT_EQ(lines[1].at("result"), "ok");
}

TEST_F(ServerAccessTest, OpenRoutesAnswerWithoutAToken) {
  HttpTestClient client(server_->port());
  ClientResponse health = client.request(Verb::get, "/health");
  EXPECT_EQ(health.result(), HttpStatus::ok);
  EXPECT_FALSE(json::parse(health.body()).as_object().contains("who"));
}

// Without a valid token, no request learns which routes exist: an unknown path and a known path
// with another method both get the same 401. A valid token of any role gets the 404 and 405.
TEST_F(ServerAccessTest, UnmatchedRequestsNeedAValidTokenToLearnTheyAreUnmatched) {
  HttpTestClient client(server_->port());
  for (auto [method, path] :
       {std::pair{Verb::get, "/nothing-here"}, std::pair{Verb::delete_, "/change"},
        std::pair{Verb::post, "/read"}}) {
    ClientResponse anonymous = client.request(method, path);
    ASSERT_TRUE(client.ok()) << client.error().message();
    EXPECT_EQ(anonymous.result(), HttpStatus::unauthorized) << path;
    EXPECT_EQ(anonymous.count(Field::allow), 0u);
    ClientResponse wrong =
        client.request(method, path, "", {{"Authorization", "Bearer not-a-token-0123456789"}});
    EXPECT_EQ(wrong.result(), HttpStatus::unauthorized) << path;
  }
  const std::vector<std::pair<std::string, std::string>> viewer = {
      {"Authorization", std::string("Bearer ") + kViewerToken}};
  EXPECT_EQ(client.request(Verb::get, "/nothing-here", "", viewer).result(), HttpStatus::not_found);
  ClientResponse not_allowed = client.request(Verb::delete_, "/change", "", viewer);
  EXPECT_EQ(not_allowed.result(), HttpStatus::method_not_allowed);
  EXPECT_EQ(not_allowed[Field::allow], "POST");
  EXPECT_EQ(handled_, 0);
}

}  // namespace
}  // namespace wasmq::http
