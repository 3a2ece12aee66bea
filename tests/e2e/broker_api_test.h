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
  // Stops the broker cleanly (SIGTERM, exit code 0) and starts it again on the same data.
  void restart() {
    data_.reset();
    admin_.reset();
    ASSERT_EQ(broker_->stop(), 0);
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
  boost::json::value admin(const std::string& method, const std::string& target,
                           const std::string& body = "", int status = 200) {
    return call(*admin_, method, target, body, status);
  }
  boost::json::value data(const std::string& method, const std::string& target,
                          const std::string& body = "", int status = 200) {
    return call(*data_, method, target, body, status);
  }

  // The seed's upload (000 §4.1): octet-stream body, X-Module-Name and X-Module-Version.
  boost::json::value upload(const std::string& module_file, const std::string& name,
                            const std::string& version = "1.0.0", int status = 201) {
    auto bytes = read_module(module_file);
    EXPECT_FALSE(bytes.empty()) << module_file << " was not built";
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
