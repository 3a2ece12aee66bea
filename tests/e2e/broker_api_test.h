// A test fixture with a running broker (the real binary on loopback ports) and a client for each
// of its listeners, with helpers for the calls end-to-end tests make most.
#pragma once

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <memory>
#include <string>

#include "broker_process.h"
#include "http/client.h"
#include "module_files.h"
#include "temp_dir.h"

namespace wasmq::testing {

class BrokerApiTest : public ::testing::Test {
 protected:
  std::filesystem::path dir() const { return test_temp_dir("wasmq-api-e2e"); }

  // Starts the broker (created with `extra_toml` the first time) and connects the clients.
  void start(const std::string& extra_toml = "") {
    if (!broker_) broker_ = std::make_unique<BrokerProcess>(dir(), "", extra_toml);
    broker_->start();
    data_ = std::make_unique<http::HttpClient>(broker_->data_url());
    admin_ = std::make_unique<http::HttpClient>(broker_->admin_url());
  }
  // Stops the broker cleanly (SIGTERM, exit code 0) and starts it again on the same data. A
  // broker that does not stop cleanly is a fatal failure and is not started again: call it as
  // ASSERT_NO_FATAL_FAILURE(restart()). The API helpers below then fail instead of crashing.
  void restart() {
    data_.reset();
    admin_.reset();
    ASSERT_EQ(broker_->stop(), 0) << "the broker did not stop cleanly";
    start();
  }
  void TearDown() override {
    if (HasFailure() && broker_) std::cerr << "broker log:\n" << broker_->log_tail() << "\n";
    data_.reset();
    admin_.reset();
    broker_.reset();
    std::filesystem::remove_all(dir());
  }

  static boost::json::value parse(const http::HttpReply& reply) {
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(reply.body, ec);
    EXPECT_FALSE(ec) << reply.body;
    return v;
  }

  // A request whose reply must have `status`; returns the parsed body.
  boost::json::value call(http::HttpClient& client, const std::string& method,
                          const std::string& target, const std::string& body, int status) {
    auto reply = client.request(method, target, body);
    EXPECT_TRUE(reply.is_ok()) << reply.status().message();
    if (!reply.is_ok()) return nullptr;
    EXPECT_EQ(reply->status, status) << method << " " << target << " -> " << reply->body;
    return parse(*reply);
  }
  // A call to the admin or data API. With no broker running (never started, or after a failed
  // restart) it is a test failure and returns null, never a crash.
  boost::json::value admin(const std::string& method, const std::string& target,
                           const std::string& body = "", int status = 200) {
    if (!admin_) return no_broker(method, target);
    return call(*admin_, method, target, body, status);
  }
  boost::json::value data(const std::string& method, const std::string& target,
                          const std::string& body = "", int status = 200) {
    if (!data_) return no_broker(method, target);
    return call(*data_, method, target, body, status);
  }
  static boost::json::value no_broker(const std::string& method, const std::string& target) {
    ADD_FAILURE() << method << " " << target << ": no broker is running";
    return nullptr;
  }

  // The seed's upload (000 §4.1): octet-stream body, X-Module-Name and X-Module-Version.
  boost::json::value upload(const std::string& module_file, const std::string& name,
                            const std::string& version = "1.0.0", int status = 201) {
    auto bytes = read_module(module_file);
    EXPECT_FALSE(bytes.empty()) << module_file << " was not built";
    if (!admin_) return no_broker("upload", module_file);
    auto reply = admin_->request(
        "POST", "/api/v1/etl/modules", std::string(bytes.begin(), bytes.end()),
        "application/octet-stream", {{"X-Module-Name", name}, {"X-Module-Version", version}});
    EXPECT_TRUE(reply.is_ok()) << reply.status().message();
    if (!reply.is_ok()) return nullptr;
    EXPECT_EQ(reply->status, status) << reply->body;
    return parse(*reply);
  }

  // The first 1000 messages of partition 0 of `topic`.
  boost::json::array consume(const std::string& topic) {
    boost::json::value v =
        data("GET", "/api/v1/topics/" + topic + "/messages?offset=0&max_messages=1000");
    return v.is_object() ? v.at("messages").as_array() : boost::json::array();
  }

  std::unique_ptr<BrokerProcess> broker_;
  std::unique_ptr<http::HttpClient> data_, admin_;
};

}  // namespace wasmq::testing
