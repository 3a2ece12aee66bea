// Security as operators meet it, the real binary on loopback ports: bearer tokens and roles on
// both listeners, the audit log of admin changes, TLS with a configured certificate, signed
// module uploads and allowed module sources.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <boost/json.hpp>
#include <cstdlib>
#include <fstream>

#include "broker_process.h"
#include "command.h"
#include "ed25519_keys.h"
#include "http/client.h"
#include "module_files.h"
#include "temp_dir.h"

namespace wasmq {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using testing::BrokerProcess;
using testing::Ed25519Key;

constexpr char kAdminToken[] = "admin-token-0123456789abcdef";
constexpr char kOperatorToken[] = "operator-token-0123456789ab";
constexpr char kProducerToken[] = "producer-token-0123456789ab";
constexpr char kConsumerToken[] = "consumer-token-0123456789ab";
constexpr char kViewerToken[] = "viewer-token-0123456789abcd";

constexpr char kPipeline[] = R"({"pipeline_id": "p1", "enabled": false, "stages": [
    {"priority": 0, "modules": [{"module_id": "passthrough"}]}]})";

// One admin-API change: what the issue calls an admin mutation.
struct Mutation {
  std::string method;
  std::string target;
  std::string body;
  bool upload = false;  // the body is the passthrough module, with its headers
};

std::vector<Mutation> admin_mutations() {
  return {
      {"POST", "/api/v1/etl/modules", "", true},
      {"POST", "/api/v1/etl/pipelines", kPipeline},
      {"PUT", "/api/v1/etl/pipelines/p1", kPipeline},
      {"PATCH", "/api/v1/etl/pipelines/p1", R"({"description": "patched"})"},
      {"POST", "/api/v1/etl/pipelines/p1/start", ""},
      {"POST", "/api/v1/etl/pipelines/p1/stop", ""},
      {"POST", "/api/v1/etl/pipelines/p1/test", R"({"topic": "t", "messages": [{"value": "x"}]})"},
      {"DELETE", "/api/v1/etl/pipelines/p1", ""},
      {"DELETE", "/api/v1/etl/modules/passthrough-v1.0.0", ""},
      {"POST", "/api/v1/config/reload", R"({"component": "etl", "graceful": true})"},
  };
}

std::vector<json::object> audit_lines(const fs::path& path) {
  std::ifstream in(path);
  std::vector<json::object> lines;
  for (std::string line; std::getline(in, line);) {
    boost::system::error_code ec;
    json::value v = json::parse(line, ec);
    EXPECT_FALSE(ec) << "not JSON: " << line;
    if (!ec) lines.push_back(std::move(v.as_object()));
  }
  return lines;
}

std::string error_code_of(const http::HttpReply& reply) {
  boost::system::error_code ec;
  json::value v = json::parse(reply.body, ec);
  if (ec || !v.is_object() || !v.as_object().contains("error")) return "";
  return std::string(v.at("error").at("code").as_string());
}

std::string error_message_of(const http::HttpReply& reply) {
  boost::system::error_code ec;
  json::value v = json::parse(reply.body, ec);
  if (ec || !v.is_object() || !v.as_object().contains("error")) return "";
  return std::string(v.at("error").at("message").as_string());
}

class SecurityTest : public ::testing::Test {
 protected:
  fs::path dir() const { return testing::test_temp_dir("wasmq-security-e2e"); }
  fs::path tokens_path() const { return dir() / "tokens"; }
  fs::path audit_path() const { return dir() / "audit.jsonl"; }

  // The broker with tokens and an audit log, plus `extra_toml` (more sections); `files` are
  // written into dir() (which BrokerProcess empties) before it starts.
  void start(const std::string& security_toml, const std::string& etl_toml = "",
             const std::vector<std::pair<std::string, std::string>>& files = {}) {
    broker_ = std::make_unique<BrokerProcess>(
        dir(), "", "[etl]\n" + etl_toml + "\n[security]\n" + security_toml);
    for (const auto& [name, text] : files) std::ofstream(dir() / name, std::ios::binary) << text;
    broker_->start();
  }

  void start_with_tokens(const std::string& etl_toml = "",
                         const std::string& more_security_toml = "",
                         std::vector<std::pair<std::string, std::string>> files = {}) {
    files.emplace_back("tokens", std::string("# role name token\n") + "admin alice " + kAdminToken +
                                     "\noperator ops " + kOperatorToken + "\nproducer app " +
                                     kProducerToken + "\nconsumer reader " + kConsumerToken +
                                     "\nviewer dashboard " + kViewerToken + "\n");
    start("tokens_file = \"" + tokens_path().string() + "\"\naudit_log = \"" +
              audit_path().string() + "\"\n" + more_security_toml,
          etl_toml, files);
  }

  void TearDown() override {
    if (HasFailure() && broker_) std::cerr << "broker log:\n" << broker_->log_tail() << "\n";
    broker_.reset();
    fs::remove_all(dir());
  }

  http::HttpClient client(const std::string& url, const std::string& token,
                          const std::string& ca_file = "") {
    return http::HttpClient(
        url, http::ClientOptions{.timeout_ms = 30'000, .token = token, .ca_file = ca_file});
  }

  http::HttpReply send(const std::string& url, const std::string& token, const std::string& method,
                       const std::string& target, const std::string& body = "",
                       const std::vector<std::pair<std::string, std::string>>& headers = {},
                       std::string_view content_type = "application/json") {
    http::HttpClient c = client(url, token);
    auto reply = c.request(method, target, body, content_type, headers);
    EXPECT_TRUE(reply.is_ok()) << method << " " << target << ": " << reply.status().message();
    return reply.is_ok() ? *reply : http::HttpReply{};
  }

  http::HttpReply admin(const std::string& token, const std::string& method,
                        const std::string& target, const std::string& body = "") {
    return send(broker_->admin_url(), token, method, target, body);
  }
  http::HttpReply data(const std::string& token, const std::string& method,
                       const std::string& target, const std::string& body = "") {
    return send(broker_->data_url(), token, method, target, body);
  }

  http::HttpReply upload(const std::string& token, const std::string& signature = "",
                         const std::string& name = "passthrough") {
    auto bytes = testing::read_module("passthrough");
    EXPECT_FALSE(bytes.empty()) << "passthrough.wasm was not built";
    std::vector<std::pair<std::string, std::string>> headers = {{"X-Module-Name", name},
                                                                {"X-Module-Version", "1.0.0"}};
    if (!signature.empty()) headers.emplace_back("X-Module-Signature", signature);
    return send(broker_->admin_url(), token, "POST", "/api/v1/etl/modules",
                std::string(bytes.begin(), bytes.end()), headers, "application/octet-stream");
  }

  http::HttpReply mutate(const std::string& token, const Mutation& m) {
    if (m.upload) return upload(token);
    return admin(token, m.method, m.target, m.body);
  }

  size_t module_count() {
    http::HttpReply list = admin(kAdminToken, "GET", "/api/v1/etl/modules");
    EXPECT_EQ(list.status, 200) << list.body;
    if (list.status != 200) return 0;
    return json::parse(list.body).at("modules").as_array().size();
  }

  std::unique_ptr<BrokerProcess> broker_;
};

TEST_F(SecurityTest, EveryAdminMutationWithoutATokenIs401AndAudited) {
  start_with_tokens();
  for (const Mutation& m : admin_mutations()) {
    http::HttpReply reply = mutate("", m);
    EXPECT_EQ(reply.status, 401) << m.method << " " << m.target << " -> " << reply.body;
    EXPECT_EQ(error_code_of(reply), "unauthorized") << reply.body;
    EXPECT_EQ(reply.header("WWW-Authenticate").substr(0, 6), "Bearer") << m.target;
  }
  // An unknown token is no better than none.
  EXPECT_EQ(admin("not-a-token-not-a-token", "POST", "/api/v1/etl/pipelines", kPipeline).status,
            401);
  EXPECT_EQ(module_count(), 0u);
  EXPECT_EQ(admin(kAdminToken, "GET", "/api/v1/etl/pipelines/p1").status, 404);

  const std::vector<Mutation> mutations = admin_mutations();
  std::vector<json::object> lines = audit_lines(audit_path());
  ASSERT_EQ(lines.size(), mutations.size() + 1);
  for (size_t i = 0; i < mutations.size(); ++i) {
    const Mutation& m = mutations[i];
    EXPECT_EQ(lines[i].at("who"), "anonymous");
    EXPECT_TRUE(lines[i].at("role").is_null());
    EXPECT_EQ(lines[i].at("method"), json::value(m.method));
    EXPECT_EQ(lines[i].at("path"), json::value(m.target));
    EXPECT_EQ(lines[i].at("status"), 401);
    EXPECT_EQ(lines[i].at("result"), "refused");
    EXPECT_EQ(lines[i].at("remote"), "127.0.0.1");
    EXPECT_NE(std::string(lines[i].at("error").as_string()).find("authentication required"),
              std::string::npos);
  }
}

TEST_F(SecurityTest, EveryAdminMutationWithAViewerTokenIs403AndAudited) {
  start_with_tokens();
  for (const Mutation& m : admin_mutations()) {
    http::HttpReply reply = mutate(kViewerToken, m);
    EXPECT_EQ(reply.status, 403) << m.method << " " << m.target << " -> " << reply.body;
    EXPECT_EQ(error_code_of(reply), "forbidden");
    EXPECT_EQ(error_message_of(reply),
              "token \"dashboard\" has role viewer, which lacks the right manage_etl needed for " +
                  m.method + " " + m.target);
  }
  EXPECT_EQ(module_count(), 0u);
  // What a viewer may do: every read of the admin API.
  EXPECT_EQ(admin(kViewerToken, "GET", "/api/v1/etl/modules").status, 200);
  EXPECT_EQ(admin(kViewerToken, "GET", "/api/v1/etl/pipelines").status, 200);

  std::vector<json::object> lines = audit_lines(audit_path());
  ASSERT_EQ(lines.size(), admin_mutations().size());  // reads are not audited
  for (const json::object& line : lines) {
    EXPECT_EQ(line.at("who"), "dashboard");
    EXPECT_EQ(line.at("role"), "viewer");
    EXPECT_EQ(line.at("status"), 403);
    EXPECT_EQ(line.at("result"), "refused");
  }
}

TEST_F(SecurityTest, EveryAdminMutationWithAnAdminTokenSucceedsAndIsAudited) {
  start_with_tokens();
  const std::vector<int> expected = {201, 201, 200, 200, 200, 200, 200, 200, 200, 200};
  std::vector<Mutation> mutations = admin_mutations();
  for (size_t i = 0; i < mutations.size(); ++i) {
    http::HttpReply reply = mutate(kAdminToken, mutations[i]);
    EXPECT_EQ(reply.status, expected[i])
        << mutations[i].method << " " << mutations[i].target << " -> " << reply.body;
  }
  // A change that fails is audited as failed, with the API's error.
  EXPECT_EQ(admin(kAdminToken, "DELETE", "/api/v1/etl/pipelines/p1").status, 404);

  std::vector<json::object> lines = audit_lines(audit_path());
  ASSERT_EQ(lines.size(), mutations.size() + 1);
  for (size_t i = 0; i < mutations.size(); ++i) {
    EXPECT_EQ(lines[i].at("who"), "alice");
    EXPECT_EQ(lines[i].at("role"), "admin");
    EXPECT_EQ(lines[i].at("method"), json::value(mutations[i].method));
    EXPECT_EQ(lines[i].at("path"), json::value(mutations[i].target));
    EXPECT_EQ(lines[i].at("status"), expected[i]);
    EXPECT_EQ(lines[i].at("result"), "ok");
    EXPECT_FALSE(lines[i].contains("error"));
    std::string time(lines[i].at("time").as_string());
    EXPECT_EQ(time.size(), 24u) << time;  // 2026-01-27T10:11:12.345Z
    EXPECT_EQ(time.back(), 'Z');
  }
  const json::object& failed = lines.back();
  EXPECT_EQ(failed.at("result"), "failed");
  EXPECT_EQ(failed.at("status"), 404);
  EXPECT_NE(std::string(failed.at("error").as_string()).find("p1"), std::string::npos);

  struct stat info {};
  ASSERT_EQ(::stat(audit_path().c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 077, 0u);  // not readable by others
}

TEST_F(SecurityTest, OperatorManagesEtlButNotTopics) {
  start_with_tokens();
  EXPECT_EQ(upload(kOperatorToken).status, 201);
  EXPECT_EQ(admin(kOperatorToken, "POST", "/api/v1/etl/pipelines", kPipeline).status, 201);
  EXPECT_EQ(data(kAdminToken, "POST", "/api/v1/topics", R"({"name": "orders"})").status, 201);
  EXPECT_EQ(data(kOperatorToken, "GET", "/api/v1/topics/orders/messages").status, 200);
  EXPECT_EQ(data(kOperatorToken, "DELETE", "/api/v1/topics/orders").status, 403);
  EXPECT_EQ(
      data(kOperatorToken, "POST", "/api/v1/topics/orders/messages", R"({"value":"x"})").status,
      403);
}

TEST_F(SecurityTest, ProducerProducesButCannotCreatePipelinesOrConsume) {
  start_with_tokens();
  http::HttpReply produced =
      data(kProducerToken, "POST", "/api/v1/topics/orders/messages", R"({"value": "o-1"})");
  EXPECT_EQ(produced.status, 200) << produced.body;
  EXPECT_EQ(data(kProducerToken, "POST", "/api/v1/topics", R"({"name": "invoices"})").status, 201);
  http::HttpReply pipeline = admin(kProducerToken, "POST", "/api/v1/etl/pipelines", kPipeline);
  EXPECT_EQ(pipeline.status, 403);
  EXPECT_NE(error_message_of(pipeline).find("role producer"), std::string::npos);
  EXPECT_EQ(data(kProducerToken, "GET", "/api/v1/topics/orders/messages").status, 403);
  EXPECT_EQ(data(kProducerToken, "DELETE", "/api/v1/topics/orders").status, 403);
}

TEST_F(SecurityTest, ConsumerConsumesButCannotProduce) {
  start_with_tokens();
  ASSERT_EQ(
      data(kProducerToken, "POST", "/api/v1/topics/orders/messages", R"({"value": "o-1"})").status,
      200);
  http::HttpReply consumed = data(kConsumerToken, "GET", "/api/v1/topics/orders/messages");
  ASSERT_EQ(consumed.status, 200) << consumed.body;
  EXPECT_EQ(json::parse(consumed.body).at("messages").at(0).at("value"), "o-1");
  EXPECT_EQ(data(kConsumerToken, "GET", "/api/v1/topics").status, 200);
  http::HttpReply produced =
      data(kConsumerToken, "POST", "/api/v1/topics/orders/messages", R"({"value": "o-2"})");
  EXPECT_EQ(produced.status, 403);
  EXPECT_EQ(error_message_of(produced),
            "token \"reader\" has role consumer, which lacks the right produce needed for POST "
            "/api/v1/topics/orders/messages");
  EXPECT_EQ(data(kConsumerToken, "POST", "/api/v1/topics", R"({"name": "x"})").status, 403);
  // The viewer sees topics but not their messages.
  EXPECT_EQ(data(kViewerToken, "GET", "/api/v1/topics/orders").status, 200);
  EXPECT_EQ(data(kViewerToken, "GET", "/api/v1/topics/orders/messages").status, 403);
  // Without a token, nothing on the data API either.
  EXPECT_EQ(data("", "GET", "/api/v1/topics/orders/messages").status, 401);
  EXPECT_EQ(data("", "POST", "/api/v1/topics/orders/messages", R"({"value": "o-3"})").status, 401);
}

TEST_F(SecurityTest, HealthAndReadyNeedNoToken) {
  start_with_tokens();
  EXPECT_EQ(data("", "GET", "/health").status, 200);
  EXPECT_EQ(data("", "GET", "/ready").status, 200);
  EXPECT_EQ(admin("", "GET", "/health").status, 200);
  EXPECT_EQ(admin("", "GET", "/metrics").status, 200);
  EXPECT_EQ(admin("", "GET", "/api/v1/etl/modules").status, 401);
  EXPECT_EQ(admin("", "GET", "/api/v1/status").status, 401);
  EXPECT_EQ(admin(kViewerToken, "GET", "/api/v1/status").status, 200);
  EXPECT_EQ(admin(kViewerToken, "GET", "/api/v1/metrics").status, 200);
}

TEST_F(SecurityTest, TopicCreationAndDeletionOnTheDataApiAreAudited) {
  start_with_tokens();
  EXPECT_EQ(data(kProducerToken, "POST", "/api/v1/topics", R"({"name": "orders"})").status, 201);
  EXPECT_EQ(data(kProducerToken, "DELETE", "/api/v1/topics/orders").status, 403);
  EXPECT_EQ(data(kAdminToken, "DELETE", "/api/v1/topics/orders").status, 200);
  // Re-created by a produce request: audited too (L6), with the action and the topic.
  data(kProducerToken, "POST", "/api/v1/topics/orders/messages", R"({"value": "x"})");
  data(kProducerToken, "POST", "/api/v1/topics/orders/messages", R"({"value": "y"})");  // not

  std::vector<json::object> lines = audit_lines(audit_path());
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0].at("who"), "app");
  EXPECT_EQ(lines[0].at("path"), "/api/v1/topics");
  EXPECT_EQ(lines[0].at("result"), "ok");
  EXPECT_EQ(lines[1].at("result"), "refused");
  EXPECT_EQ(lines[1].at("method"), "DELETE");
  EXPECT_EQ(lines[2].at("who"), "alice");
  EXPECT_EQ(lines[2].at("result"), "ok");
  EXPECT_EQ(lines[3].at("who"), "app");
  EXPECT_EQ(lines[3].at("action"), "auto_create_topic");
  EXPECT_EQ(lines[3].at("topic"), "orders");
  EXPECT_EQ(lines[3].at("remote"), "127.0.0.1");
}

TEST_F(SecurityTest, RefusesToStartWithABadTokensFileNamingFileAndLine) {
  broker_ = std::make_unique<BrokerProcess>(
      dir(), "", "[security]\ntokens_file = \"" + tokens_path().string() + "\"\n");
  std::ofstream(tokens_path()) << "admin alice " << kAdminToken << "\nsuperuser bob "
                               << kViewerToken << "\n";
  try {
    broker_->start();
    FAIL() << "the broker started with an unknown role";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(tokens_path().string() + ":2: unknown role \"superuser\""),
              std::string::npos)
        << e.what();
  }
}

// --- TLS -----------------------------------------------------------------------------------

// A self-signed certificate for 127.0.0.1 and localhost, and its key, in `dir`.
void make_certificate(const fs::path& dir, const std::string& name) {
  std::string command =
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1"
      " -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost"
      " -keyout " +
      (dir / (name + ".key")).string() + " -out " + (dir / (name + ".crt")).string() +
      " 2>/dev/null";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
}

class SecurityTlsTest : public SecurityTest {
 protected:
  fs::path cert_dir() const { return testing::test_temp_dir("wasmq-security-certs"); }
  void SetUp() override {
    fs::remove_all(cert_dir());
    fs::create_directories(cert_dir());
    make_certificate(cert_dir(), "broker");
    make_certificate(cert_dir(), "other");
  }
  void TearDown() override {
    SecurityTest::TearDown();
    fs::remove_all(cert_dir());
  }
  std::string tls_toml(const std::string& key = "broker") {
    return "tls_cert = \"" + (cert_dir() / "broker.crt").string() + "\"\ntls_key = \"" +
           (cert_dir() / (key + ".key")).string() + "\"\n";
  }
  std::string ca() const { return (cert_dir() / "broker.crt").string(); }
};

TEST_F(SecurityTlsTest, ServesBothListenersWithTheConfiguredCertificate) {
  start_with_tokens("", tls_toml());
  ASSERT_EQ(broker_->data_url().rfind("https://127.0.0.1:", 0), 0u) << broker_->data_url();
  ASSERT_EQ(broker_->admin_url().rfind("https://127.0.0.1:", 0), 0u) << broker_->admin_url();

  http::HttpClient data_client = client(broker_->data_url(), kAdminToken, ca());
  auto produced = data_client.request("POST", "/api/v1/topics/secure/messages",
                                      R"([{"value": "one"}, {"value": "two"}])");
  ASSERT_TRUE(produced.is_ok()) << produced.status().message();
  EXPECT_EQ(produced->status, 200) << produced->body;
  // Keep-alive over TLS: the same connection serves the next request.
  auto consumed = data_client.request("GET", "/api/v1/topics/secure/messages?offset=0");
  ASSERT_TRUE(consumed.is_ok()) << consumed.status().message();
  ASSERT_EQ(consumed->status, 200);
  json::array messages = json::parse(consumed->body).at("messages").as_array();
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(messages[1].at("value"), "two");

  http::HttpClient admin_client = client(broker_->admin_url(), kAdminToken, ca());
  auto modules = admin_client.request("GET", "/api/v1/etl/modules");
  ASSERT_TRUE(modules.is_ok()) << modules.status().message();
  EXPECT_EQ(modules->status, 200);
}

TEST_F(SecurityTlsTest, PlainHttpAndUntrustedCertificatesFail) {
  start_with_tokens("", tls_toml());
  std::string port = broker_->data_url().substr(broker_->data_url().rfind(':'));
  http::HttpClient plain("http://127.0.0.1" + port,
                         http::ClientOptions{.timeout_ms = 5000, .token = {}, .ca_file = {}});
  auto reply = plain.request("GET", "/health");
  EXPECT_FALSE(reply.is_ok()) << "plain HTTP got an answer: " << reply->status;

  // Verified against another CA, the broker's certificate is refused.
  http::HttpClient wrong_ca = client(broker_->data_url(), "", (cert_dir() / "other.crt").string());
  auto refused = wrong_ca.request("GET", "/health");
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.status().message().find("TLS handshake"), std::string::npos)
      << refused.status().message();

  // The broker still serves a verified client afterwards.
  auto health = client(broker_->data_url(), "", ca()).request("GET", "/health");
  ASSERT_TRUE(health.is_ok()) << health.status().message();
  EXPECT_EQ(health->status, 200);
}

TEST_F(SecurityTlsTest, RefusesToStartWithAKeyThatIsNotTheCertificates) {
  broker_ = std::make_unique<BrokerProcess>(dir(), "", "[security]\n" + tls_toml("other"));
  try {
    broker_->start();
    FAIL() << "the broker started with a mismatched key";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("is not the private key of the certificate"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(SecurityTlsTest, CliTalksHttpsWithTokenAndCaFile) {
  start_with_tokens("", tls_toml());
  auto produced = testing::wasmq({"produce", "cli-topic", "--broker", broker_->data_url(),
                                  "--token", kProducerToken, "--ca-file", ca()},
                                 "hello\nworld\n");
  EXPECT_EQ(produced.exit_code, 0) << produced.err;
  ::setenv("WASMQ_TOKEN", kConsumerToken, 1);
  auto consumed = testing::wasmq(
      {"consume", "cli-topic", "--broker", broker_->data_url(), "--ca-file", ca()}, "");
  ::unsetenv("WASMQ_TOKEN");
  EXPECT_EQ(consumed.exit_code, 0) << consumed.err;
  ASSERT_EQ(consumed.lines.size(), 2u) << consumed.out;
  EXPECT_EQ(consumed.lines[1].at("value"), "world");

  auto anonymous =
      testing::wasmq({"module", "list", "--admin", broker_->admin_url(), "--ca-file", ca()}, "");
  EXPECT_EQ(anonymous.exit_code, 1);
  EXPECT_NE(anonymous.err.find("HTTP 401"), std::string::npos) << anonymous.err;
  auto listed = testing::wasmq({"module", "list", "--admin", broker_->admin_url(), "--ca-file",
                                ca(), "--token", kViewerToken},
                               "");
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  auto forbidden = testing::wasmq({"pipeline", "delete", "p1", "--admin", broker_->admin_url(),
                                   "--ca-file", ca(), "--token", kViewerToken},
                                  "");
  EXPECT_EQ(forbidden.exit_code, 1);
  EXPECT_NE(forbidden.err.find("HTTP 403"), std::string::npos) << forbidden.err;
}

// --- module signatures and sources ------------------------------------------------------------

TEST_F(SecurityTest, SignedModuleIsAcceptedUnsignedAndUntrustedAreRefused) {
  Ed25519Key team, stranger;
  start("module_signing_keys = [\"" + (dir() / "team.pub.pem").string() + "\"]\n",
        "enable_module_signature_verification = true\n", {{"team.pub.pem", team.public_pem()}});
  std::vector<uint8_t> module = testing::read_module("passthrough");

  http::HttpReply unsigned_upload = upload("");
  EXPECT_EQ(unsigned_upload.status, 400) << unsigned_upload.body;
  EXPECT_EQ(error_code_of(unsigned_upload), "signature_required");
  EXPECT_NE(error_message_of(unsigned_upload)
                .find("module signature required: X-Module-Signature is missing"),
            std::string::npos);

  http::HttpReply untrusted = upload("", stranger.sign_module("passthrough", "1.0.0", module));
  EXPECT_EQ(untrusted.status, 403) << untrusted.body;
  EXPECT_EQ(error_code_of(untrusted), "untrusted_signature");

  http::HttpReply garbage = upload("", "not*base64");
  EXPECT_EQ(garbage.status, 400) << garbage.body;
  EXPECT_EQ(error_code_of(garbage), "invalid_signature");

  // The team's signature over other bytes (a module changed after signing).
  std::vector<uint8_t> other = module;
  other.push_back(0);
  EXPECT_EQ(upload("", team.sign_module("passthrough", "1.0.0", other)).status, 403);
  // The team's signature made for another name, or over the bytes alone.
  EXPECT_EQ(upload("", team.sign_module("other-name", "1.0.0", module)).status, 403);
  EXPECT_EQ(upload("", team.sign_base64(module)).status, 403);

  http::HttpReply list = admin("", "GET", "/api/v1/etl/modules");
  EXPECT_TRUE(json::parse(list.body).at("modules").as_array().empty()) << "a refused upload "
                                                                          "was stored";

  http::HttpReply trusted = upload("", team.sign_module("passthrough", "1.0.0", module));
  EXPECT_EQ(trusted.status, 201) << trusted.body;
}

// M10: with the signature over the bytes alone, any module the team ever signed (here a trap)
// could be uploaded as s10@99.0.0, and pipeline psig, following the bare name s10, switched to it.
TEST_F(SecurityTest, ASignedModuleCannotBeUploadedUnderAnotherNameOrVersion) {
  Ed25519Key team, ci;
  start("module_signing_keys = [\"" + (dir() / "team.pub.pem").string() + "\", \"" +
            (dir() / "ci.pub.pem").string() + "\"]\n",
        "enable_module_signature_verification = true\n",
        {{"team.pub.pem", team.public_pem()}, {"ci.pub.pem", ci.public_pem()}});
  const std::vector<uint8_t> passthrough = testing::read_module("passthrough");
  const std::vector<uint8_t> trap = testing::read_module("trap");
  auto upload_as = [&](const std::string& name, const std::string& version,
                       const std::vector<uint8_t>& bytes, const std::string& signature) {
    return send(
        broker_->admin_url(), "", "POST", "/api/v1/etl/modules",
        std::string(bytes.begin(), bytes.end()),
        {{"X-Module-Name", name}, {"X-Module-Version", version}, {"X-Module-Signature", signature}},
        "application/octet-stream");
  };
  ASSERT_EQ(
      upload_as("s10", "1.0.0", passthrough, team.sign_module("s10", "1.0.0", passthrough)).status,
      201);
  ASSERT_EQ(upload_as("trap", "1.0.0", trap, team.sign_module("trap", "1.0.0", trap)).status, 201);
  ASSERT_EQ(admin("", "POST", "/api/v1/etl/pipelines",
                  R"({"pipeline_id": "psig", "error_handling": "SendToDeadLetter",
                      "stages": [{"priority": 0, "modules": [{"module_id": "s10"}]}]})")
                .status,
            201);

  // The trap's own signature, replayed for s10@99.0.0: refused.
  http::HttpReply replayed =
      upload_as("s10", "99.0.0", trap, team.sign_module("trap", "1.0.0", trap));
  EXPECT_EQ(replayed.status, 403) << replayed.body;
  EXPECT_EQ(error_code_of(replayed), "untrusted_signature");
  // Another trusted key signs s10@99.0.0 properly: the name stays with the team's key.
  http::HttpReply other_key =
      upload_as("s10", "99.0.0", trap, ci.sign_module("s10", "99.0.0", trap));
  EXPECT_EQ(other_key.status, 409) << other_key.body;
  EXPECT_NE(error_message_of(other_key).find("module name \"s10\" belongs to signing key ed25519:"),
            std::string::npos)
      << other_key.body;

  http::HttpReply produced = data("", "POST", "/api/v1/topics/t/messages", R"({"value":"x"})");
  ASSERT_EQ(produced.status, 200) << produced.body;
  EXPECT_EQ(json::parse(produced.body).at("results").at(0).at("status").as_string(), "stored")
      << produced.body;
  json::value s10 = json::parse(admin("", "GET", "/api/v1/etl/modules/s10").body);
  EXPECT_EQ(s10.at("module_id").as_string(), "s10-v1.0.0");
  EXPECT_EQ(s10.at("signed_by").as_string().size(), 24u) << s10;
}

TEST_F(SecurityTest, CliDeploysASignedModule) {
  Ed25519Key team;
  start("module_signing_keys = [\"" + (dir() / "team.pub.pem").string() + "\"]\n",
        "enable_module_signature_verification = true\n",
        {{"team.pub.pem", team.public_pem()}, {"team.key", team.private_pem()}});
  std::string wasm = testing::module_path("passthrough").string();
  std::string signature = (dir() / "passthrough.sig").string();
  auto signed_run = testing::wasmq({"module", "sign", wasm, "--name", "pt", "--version", "1.0.0",
                                    "--key", (dir() / "team.key").string()},
                                   "");
  ASSERT_EQ(signed_run.exit_code, 0) << signed_run.err;
  std::ofstream(signature) << signed_run.out;
  auto refused = testing::wasmq({"module", "deploy", wasm, "--name", "pt", "--version", "1.0.0",
                                 "--admin", broker_->admin_url()},
                                "");
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("module signature required"), std::string::npos) << refused.err;
  auto deployed = testing::wasmq({"module", "deploy", wasm, "--name", "pt", "--version", "1.0.0",
                                  "--admin", broker_->admin_url(), "--signature", signature},
                                 "");
  EXPECT_EQ(deployed.exit_code, 0) << deployed.err;
}

TEST_F(SecurityTest, RefusesToStartWhenASigningKeyIsNotEd25519) {
  broker_ = std::make_unique<BrokerProcess>(
      dir(), "",
      "[etl]\nenable_module_signature_verification = true\n[security]\nmodule_signing_keys = [\"" +
          (dir() / "key.pem").string() + "\"]\n");
  std::ofstream(dir() / "key.pem") << "not a key\n";
  try {
    broker_->start();
    FAIL() << "the broker started with a bad signing key";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("key.pem is not a PEM public key"), std::string::npos)
        << e.what();
  }
}

TEST_F(SecurityTest, AllowedModuleSourcesMatchTheTokenName) {
  start_with_tokens("allowed_module_sources = [\"ci-*\", \"op?\"]\n");
  http::HttpReply refused = upload(kAdminToken);  // "alice"
  EXPECT_EQ(refused.status, 403) << refused.body;
  EXPECT_EQ(error_code_of(refused), "source_not_allowed");
  EXPECT_NE(error_message_of(refused).find("source \"alice\""), std::string::npos);
  EXPECT_EQ(module_count(), 0u);
  EXPECT_EQ(upload(kOperatorToken).status, 201);  // "ops" matches "op?"

  std::vector<json::object> lines = audit_lines(audit_path());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].at("who"), "alice");
  EXPECT_EQ(lines[0].at("result"), "refused");
  EXPECT_EQ(lines[1].at("who"), "ops");
  EXPECT_EQ(lines[1].at("result"), "ok");
}

TEST_F(SecurityTest, AllowedModuleSourcesMatchTheClientAddressWithoutTokens) {
  start("", "allowed_module_sources = [\"10.*\"]\n");
  http::HttpReply refused = upload("");
  EXPECT_EQ(refused.status, 403) << refused.body;
  EXPECT_NE(error_message_of(refused).find("source \"127.0.0.1\""), std::string::npos)
      << refused.body;
  broker_->stop();
  start("", "allowed_module_sources = [\"10.*\", \"127.0.0.?\"]\n");
  EXPECT_EQ(upload("").status, 201);
}

// M3: anonymous refusals cannot grow the audit log without bound: long paths are cut, refusals
// from one address are logged 20 times per 10 s and counted beyond, while every admitted change
// is still logged.
TEST_F(SecurityTest, RefusedFloodGrowsTheAuditLogByABoundedAmount) {
  start_with_tokens();
  const std::string long_id(15'000, 'A');
  http::HttpClient anonymous = client(broker_->admin_url(), "");
  for (int i = 0; i < 300; ++i) {
    auto reply = anonymous.request("DELETE", "/api/v1/etl/pipelines/" + long_id, "");
    ASSERT_TRUE(reply.is_ok()) << reply.status().message();
    ASSERT_EQ(reply->status, 401);
  }
  EXPECT_NE(admin(kAdminToken, "POST", "/api/v1/etl/pipelines", kPipeline).status, 401);
  const auto size = fs::file_size(audit_path());
  EXPECT_LT(size, 20u * 1024) << "300 refusals of 15 KB paths were 4.5 MB";
  std::vector<json::object> lines = audit_lines(audit_path());
  ASSERT_EQ(lines.size(), 21u);
  EXPECT_EQ(std::string(lines[0].at("path").as_string()).find("…[truncated from 15022 bytes]"),
            256u);
  EXPECT_EQ(lines.back().at("who"), "alice");  // admitted: logged despite the flood
}

// L9: without a token, the admin listener does not say which routes exist (405 vs 404).
TEST_F(SecurityTest, RouteExistenceCannotBeProbedWithoutAToken) {
  start_with_tokens();
  EXPECT_EQ(admin("", "POST", "/api/v1/config/").status, 401);
  EXPECT_EQ(admin("", "POST", "/api/v1/no-such-route").status, 401);
  EXPECT_EQ(admin(kViewerToken, "POST", "/api/v1/config/").status, 405);
  EXPECT_EQ(admin(kViewerToken, "POST", "/api/v1/no-such-route").status, 404);
}

}  // namespace
}  // namespace wasmq
