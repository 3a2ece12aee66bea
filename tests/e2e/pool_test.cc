// The instance pool as operators meet it (seed 000 §7.2): the real binary with two ETL workers,
// the instance-pool endpoints of the admin API and `wasmq pool ...`; messages produced over the
// data API through a one-module pipeline.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <thread>

#include "broker_process.h"
#include "command.h"
#include "http/client.h"
#include "module_files.h"
#include "temp_dir.h"

namespace wasmq {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using testing::BrokerProcess;

constexpr int kWorkers = 2;

class PoolTest : public ::testing::Test {
 protected:
  fs::path dir() const { return testing::test_temp_dir("wasmq-pool-e2e"); }

  // Starts the broker with `workers` ETL workers and `pool_toml` as its [etl.instance_pool]
  // lines; `etl_toml` adds [etl] lines.
  void start(const std::string& pool_toml = "", const std::string& etl_toml = "",
             int workers = kWorkers) {
    broker_ = std::make_unique<BrokerProcess>(dir(), "",
                                              "[etl]\nworkers = " + std::to_string(workers) + "\n" +
                                                  etl_toml + "\n[etl.instance_pool]\n" + pool_toml +
                                                  "\n");
    broker_->start();
    data_ = std::make_unique<http::HttpClient>(broker_->data_url());
    admin_ = std::make_unique<http::HttpClient>(broker_->admin_url());
  }
  void TearDown() override {
    if (HasFailure() && broker_) std::cerr << "broker log:\n" << broker_->log_tail() << "\n";
    data_.reset();
    admin_.reset();
    broker_.reset();
    fs::remove_all(dir());
  }

  json::value call(http::HttpClient& client, const std::string& method, const std::string& target,
                   const std::string& body, int status) {
    auto reply = client.request(method, target, body);
    EXPECT_TRUE(reply.is_ok()) << reply.status().message();
    if (!reply.is_ok()) return nullptr;
    EXPECT_EQ(reply->status, status)
        << method << " " << target << " " << body << " -> " << reply->body;
    boost::system::error_code ec;
    json::value v = json::parse(reply->body, ec);
    EXPECT_FALSE(ec) << reply->body;
    return v;
  }
  json::value admin(const std::string& method, const std::string& target, const std::string& body,
                    int status) {
    return call(*admin_, method, target, body, status);
  }

  void upload(const std::string& module_file, const std::string& name) {
    auto bytes = testing::read_module(module_file);
    ASSERT_FALSE(bytes.empty()) << module_file << " was not built";
    auto reply = admin_->request(
        "POST", "/api/v1/etl/modules", std::string(bytes.begin(), bytes.end()),
        "application/octet-stream", {{"X-Module-Name", name}, {"X-Module-Version", "1.0.0"}});
    ASSERT_TRUE(reply.is_ok()) << reply.status().message();
    ASSERT_EQ(reply->status, 201) << reply->body;
  }

  // A pass-through module "pass" and a pipeline running it on every topic.
  void deploy_pass_pipeline() {
    upload("passthrough", "pass");
    admin(
        "POST", "/api/v1/etl/pipelines",
        R"({"pipeline_id": "p", "stages": [{"priority": 0, "modules": [{"module_id": "pass"}]}]})",
        201);
  }

  void produce_one(const std::string& value) {
    json::value r = call(*data_, "POST", "/api/v1/topics/events/messages",
                         json::serialize(json::object{{"value", value}}), 200);
    ASSERT_TRUE(r.is_object());
    ASSERT_EQ(r.at("results").at(0).at("status").as_string(), "stored") << r;
  }

  json::value stats() { return admin("GET", "/api/v1/etl/instance-pool/stats", "", 200); }

  // The stats entry of `module_id` (a full id).
  json::object module(const std::string& module_id) {
    json::value s = stats();
    if (!s.is_object()) return {};
    for (const auto& m : s.at("modules").as_array()) {
      if (m.at("module_id").as_string() == module_id) return m.as_object();
    }
    ADD_FAILURE() << module_id << " is not in the stats: " << s;
    return {};
  }

  static int64_t n(const json::object& o, const char* key) {
    return o.at(key).to_number<int64_t>();
  }

  std::unique_ptr<BrokerProcess> broker_;
  std::unique_ptr<http::HttpClient> data_, admin_;
};

TEST_F(PoolTest, AWarmedPoolReportsItsInstancesOnEveryWorker) {
  start("max_pool_size = 4\nwarmup_instances = 0");
  upload("passthrough", "pass");
  json::object before = module("pass-v1.0.0");
  EXPECT_EQ(n(before, "size"), 0);
  json::value warmed = admin("POST", "/api/v1/etl/instance-pool/warmup",
                             R"({"module_id": "pass", "instance_count": 3})", 200);
  EXPECT_EQ(warmed.at("status").as_string(), "warmed");
  EXPECT_EQ(warmed.at("module_id").as_string(), "pass-v1.0.0");
  EXPECT_EQ(warmed.at("created").to_number<int64_t>(), 3 * kWorkers);
  EXPECT_EQ(warmed.at("instances_per_worker").to_number<int64_t>(), 3);
  EXPECT_FALSE(warmed.at("bounded_by_max_pool_size").as_bool());

  json::object m = module("pass-v1.0.0");
  EXPECT_EQ(n(m, "size"), 3 * kWorkers);
  EXPECT_EQ(n(m, "idle"), 3 * kWorkers);
  EXPECT_EQ(n(m, "busy"), 0);
  EXPECT_EQ(n(m, "warmed"), 3 * kWorkers);
  EXPECT_GT(n(m, "memory_bytes"), 0);
  ASSERT_EQ(m.at("workers").as_array().size(), static_cast<size_t>(kWorkers));
  for (const auto& w : m.at("workers").as_array()) EXPECT_EQ(n(w.as_object(), "idle"), 3);
  json::value s = stats();
  EXPECT_EQ(s.at("memory_usage_bytes").to_number<int64_t>(), n(m, "memory_bytes"));
  EXPECT_EQ(s.at("totals").at("size").to_number<int64_t>(), 3 * kWorkers);

  // More than max_pool_size: cut to it, and said so.
  json::value bounded = admin("POST", "/api/v1/etl/instance-pool/warmup",
                              R"({"module_id": "pass-v1.0.0", "instance_count": 10})", 200);
  EXPECT_TRUE(bounded.at("bounded_by_max_pool_size").as_bool());
  EXPECT_EQ(bounded.at("instances_per_worker").to_number<int64_t>(), 4);
  EXPECT_EQ(bounded.at("created").to_number<int64_t>(), 1 * kWorkers);
  EXPECT_EQ(n(module("pass-v1.0.0"), "idle"), 4 * kWorkers);
}

// A pipeline that configures its module (memory limit, custom_config) runs another module
// object than the defaults: the warm-up prepares that one, so no call has to instantiate.
TEST_F(PoolTest, WarmUpPreparesTheInstancesThePipelinesRun) {
  start("warmup_instances = 0");
  upload("passthrough", "pass");
  admin("POST", "/api/v1/etl/pipelines", R"({"pipeline_id": "configured", "stages": [
      {"priority": 0, "modules": [{"module_id": "pass", "instance_config": {
          "memory_limit_bytes": 33554432, "custom_config": {"mode": "strict"}}}]}]})",
        201);
  json::value warmed = admin("POST", "/api/v1/etl/instance-pool/warmup",
                             R"({"module_id": "pass", "instance_count": 1})", 200);
  EXPECT_EQ(warmed.at("module_objects").to_number<int64_t>(), 1);
  EXPECT_EQ(warmed.at("created").to_number<int64_t>(), kWorkers);
  for (int i = 0; i < 6; ++i) produce_one("m" + std::to_string(i));
  json::object m = module("pass-v1.0.0");
  EXPECT_EQ(n(m, "created_for_calls"), 0);
  EXPECT_EQ(n(m, "reused"), 6);
  EXPECT_DOUBLE_EQ(m.at("hit_ratio").as_double(), 1.0);
}

// One worker, so that which worker runs a batch cannot change the figures.
TEST_F(PoolTest, HitRatioRisesWithReuseAsMessagesAreProduced) {
  start("warmup_instances = 0", "", 1);
  deploy_pass_pipeline();
  produce_one("first");
  json::object first = module("pass-v1.0.0");
  EXPECT_EQ(n(first, "created_for_calls"), 1);
  EXPECT_EQ(n(first, "reused"), 0);
  EXPECT_DOUBLE_EQ(first.at("hit_ratio").as_double(), 0.0);

  double last = 0;
  for (int i = 0; i < 20; ++i) {
    produce_one("m" + std::to_string(i));
    if (i % 5 == 4) {
      double ratio = module("pass-v1.0.0").at("hit_ratio").as_double();
      EXPECT_GT(ratio, last) << "after " << i + 2 << " messages";
      last = ratio;
    }
  }
  json::object after = module("pass-v1.0.0");
  EXPECT_EQ(n(after, "created_for_calls"), 1);
  EXPECT_EQ(n(after, "reused"), 20);
  EXPECT_DOUBLE_EQ(after.at("hit_ratio").as_double(), 20.0 / 21.0);
  json::value s = stats();
  EXPECT_EQ(s.at("instance_pool_stats").at("instances_reused").to_number<int64_t>(),
            n(after, "reused"));
  EXPECT_DOUBLE_EQ(s.at("instance_pool_stats").at("pool_hit_ratio").as_double(),
                   after.at("hit_ratio").as_double());
}

TEST_F(PoolTest, CleanupEvictsIdleInstances) {
  start("warmup_instances = 0");
  upload("passthrough", "pass");
  upload("splitter", "split");
  admin("POST", "/api/v1/etl/instance-pool/warmup", R"({"module_id": "pass", "instance_count": 3})",
        200);
  admin("POST", "/api/v1/etl/instance-pool/warmup",
        R"({"module_id": "split", "instance_count": 2})", 200);
  // One module only.
  json::value one =
      admin("POST", "/api/v1/etl/instance-pool/cleanup", R"({"module_id": "split"})", 200);
  EXPECT_EQ(one.at("evicted").to_number<int64_t>(), 2 * kWorkers);
  EXPECT_EQ(one.at("module_id").as_string(), "split-v1.0.0");
  EXPECT_EQ(n(module("split-v1.0.0"), "idle"), 0);
  EXPECT_EQ(n(module("pass-v1.0.0"), "idle"), 3 * kWorkers);
  // Every module: the seed's request, no body.
  json::value all = admin("POST", "/api/v1/etl/instance-pool/cleanup", "", 200);
  EXPECT_EQ(all.at("status").as_string(), "cleaned");
  EXPECT_EQ(all.at("evicted").to_number<int64_t>(), 3 * kWorkers);
  EXPECT_GT(all.at("memory_freed_bytes").to_number<int64_t>(), 0);
  EXPECT_EQ(all.at("memory_usage_bytes").to_number<int64_t>(), 0);
  json::object pass = module("pass-v1.0.0");
  EXPECT_EQ(n(pass, "idle"), 0);
  EXPECT_EQ(n(pass, "memory_bytes"), 0);
  EXPECT_EQ(pass.at("evicted_by_reason").at("cleanup").to_number<int64_t>(), 3 * kWorkers);
}

TEST_F(PoolTest, IdleInstancesAreEvictedAfterTheIdleTimeout) {
  start("warmup_instances = 1\nidle_timeout_seconds = 1", "gc_interval_ms = 100");
  upload("passthrough", "pass");
  admin("POST", "/api/v1/etl/instance-pool/warmup", R"({"module_id": "pass", "instance_count": 4})",
        200);
  EXPECT_EQ(n(module("pass-v1.0.0"), "idle"), 4 * kWorkers);
  // Idle for 1 s, collected within 100 ms of that; the warm instance of each worker stays.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  json::object m;
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    m = module("pass-v1.0.0");
  } while (n(m, "idle") > kWorkers && std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(n(m, "idle"), kWorkers);
  EXPECT_EQ(m.at("evicted_by_reason").at("idle_timeout").to_number<int64_t>(), 3 * kWorkers);
}

TEST_F(PoolTest, ResizeTakesEffectOnEveryWorker) {
  start("max_pool_size = 10\nwarmup_instances = 0");
  deploy_pass_pipeline();
  admin("POST", "/api/v1/etl/instance-pool/warmup", R"({"module_id": "pass", "instance_count": 6})",
        200);
  // The seed's request shape, with a bare name.
  json::value shrunk = admin("PATCH", "/api/v1/etl/instance-pool/pass",
                             R"({"max_pool_size": 2, "warmup_instances": 1})", 200);
  EXPECT_EQ(shrunk.at("status").as_string(), "resized");
  EXPECT_EQ(shrunk.at("module_id").as_string(), "pass-v1.0.0");
  EXPECT_EQ(shrunk.at("max_pool_size").to_number<int64_t>(), 2);
  EXPECT_EQ(shrunk.at("warmup_instances").to_number<int64_t>(), 1);
  EXPECT_EQ(shrunk.at("evicted").to_number<int64_t>(), 4 * kWorkers);
  json::object m = module("pass-v1.0.0");
  EXPECT_EQ(n(m, "idle"), 2 * kWorkers);
  EXPECT_EQ(m.at("settings").at("max_pool_size").to_number<int64_t>(), 2);
  EXPECT_EQ(m.at("settings_source").as_string(), "api");
  EXPECT_EQ(m.at("evicted_by_reason").at("resize").to_number<int64_t>(), 4 * kWorkers);

  // A larger warm-up fills the pools at once.
  json::value grown = admin("PATCH", "/api/v1/etl/instance-pool/pass-v1.0.0",
                            R"({"max_pool_size": 5, "warmup_instances": 5})", 200);
  EXPECT_EQ(grown.at("created").to_number<int64_t>(), 3 * kWorkers);
  EXPECT_EQ(n(module("pass-v1.0.0"), "idle"), 5 * kWorkers);

  // max_pool_size 0: nothing is kept, every call instantiates.
  admin("PATCH", "/api/v1/etl/instance-pool/pass", R"({"max_pool_size": 0, "warmup_instances": 0})",
        200);
  json::object cold = module("pass-v1.0.0");
  EXPECT_EQ(n(cold, "idle"), 0);
  const int64_t created = n(cold, "created_for_calls");
  for (int i = 0; i < 3; ++i) produce_one("cold " + std::to_string(i));
  cold = module("pass-v1.0.0");
  EXPECT_EQ(n(cold, "created_for_calls"), created + 3);
  EXPECT_EQ(n(cold, "idle"), 0);
  EXPECT_EQ(cold.at("evicted_by_reason").at("pool_full").to_number<int64_t>(), 3);
}

TEST_F(PoolTest, BadRequestsAreRefusedWithTheFieldAndChangeNothing) {
  start("max_pool_size = 8\nwarmup_instances = 0");
  upload("passthrough", "pass");
  admin("POST", "/api/v1/etl/instance-pool/warmup", R"({"module_id": "pass", "instance_count": 2})",
        200);
  const json::object before = module("pass-v1.0.0");

  auto refused = [&](const std::string& method, const std::string& target, const std::string& body,
                     int status, const std::string& field) {
    json::value r = admin(method, target, body, status);
    ASSERT_TRUE(r.is_object()) << body;
    const json::object& error = r.at("error").as_object();
    EXPECT_FALSE(error.at("message").as_string().empty());
    if (field.empty()) {
      EXPECT_FALSE(error.contains("field")) << body << " -> " << r;
    } else {
      ASSERT_TRUE(error.contains("field")) << body << " -> " << r;
      EXPECT_EQ(error.at("field").as_string(), field) << body << " -> " << r;
    }
  };
  const std::string warmup = "/api/v1/etl/instance-pool/warmup";
  refused("POST", warmup, R"({"module_id": "nope", "instance_count": 2})", 404, "");
  refused("POST", warmup, R"({"module_id": "pass", "instance_count": -1})", 400, "instance_count");
  refused("POST", warmup, R"({"module_id": "pass", "instance_count": 0})", 400, "instance_count");
  refused("POST", warmup, R"({"module_id": "pass", "instance_count": 10001})", 400,
          "instance_count");
  refused("POST", warmup, R"({"module_id": "pass", "instance_count": 99999999999999999999})", 400,
          "instance_count");
  refused("POST", warmup, R"({"module_id": "pass", "instance_count": "3"})", 400, "instance_count");
  refused("POST", warmup, R"({"module_id": "pass", "instance_count": 2.5})", 400, "instance_count");
  refused("POST", warmup, R"({"module_id": "pass"})", 400, "instance_count");
  refused("POST", warmup, R"({"instance_count": 2})", 400, "module_id");
  refused("POST", warmup, R"({"module_id": 7, "instance_count": 2})", 400, "module_id");
  refused("POST", warmup, R"({"module_id": "pass", "instance_count": 2, "extra": 1})", 400,
          "extra");
  refused("POST", warmup, R"([1, 2])", 400, "");
  refused("POST", warmup, R"({"module_id": "pass",)", 400, "");
  refused("POST", "/api/v1/etl/instance-pool/cleanup", R"({"module_id": "nope"})", 404, "");
  refused("POST", "/api/v1/etl/instance-pool/cleanup", R"({"module_id": ["pass"]})", 400,
          "module_id");

  const std::string patch = "/api/v1/etl/instance-pool/pass";
  refused("PATCH", "/api/v1/etl/instance-pool/nope", R"({"max_pool_size": 3})", 404, "");
  refused("PATCH", patch, R"({"max_pool_size": -1})", 400, "max_pool_size");
  refused("PATCH", patch, R"({"max_pool_size": 10001})", 400, "max_pool_size");
  refused("PATCH", patch, R"({"max_pool_size": true})", 400, "max_pool_size");
  refused("PATCH", patch, R"({"warmup_instances": 9})", 400, "warmup_instances");
  refused("PATCH", patch, R"({"max_pool_size": 1, "warmup_instances": 3})", 400,
          "warmup_instances");
  refused("PATCH", patch, R"({"creation_rate_limit": 0})", 400, "creation_rate_limit");
  refused("PATCH", patch, R"({"idle_timeout_seconds": 0})", 400, "idle_timeout_seconds");
  refused("PATCH", patch, R"({"max_pool_size": 3, "size": 3})", 400, "size");
  refused("PATCH", patch, R"({})", 400, "");

  json::object after = module("pass-v1.0.0");
  for (const char* key : {"size", "idle", "created", "evicted"}) {
    EXPECT_EQ(n(after, key), n(before, key)) << key;
  }
  EXPECT_EQ(after.at("settings"), before.at("settings"));
  EXPECT_EQ(after.at("settings_source").as_string(), "config");
}

// M8: every instance's memory reserves ~10 GiB of address space; 10,000 instances per worker
// (what max_pool_size and warm-ups accepted before) exhaust the process's 128 TiB. Requests above
// the per-worker bound are refused with 422 naming the field and the bound, and change nothing.
TEST_F(PoolTest, RequestsAboveTheLiveInstanceBoundAreRefusedAndChangeNothing) {
  start("max_pool_size = 8\nwarmup_instances = 0");
  upload("passthrough", "pass");
  admin("POST", "/api/v1/etl/instance-pool/warmup", R"({"module_id": "pass", "instance_count": 2})",
        200);
  const json::object before = module("pass-v1.0.0");
  const int64_t bound = stats().at("limits").at("max_instances_per_worker").to_number<int64_t>();
  EXPECT_EQ(bound, 6000 / kWorkers);

  auto refused = [&](const std::string& method, const std::string& target, const std::string& body,
                     const std::string& field) {
    json::value r = admin(method, target, body, 422);
    ASSERT_TRUE(r.is_object()) << body;
    const json::object& error = r.at("error").as_object();
    EXPECT_EQ(error.at("code").as_string(), "limit_exceeded") << r;
    EXPECT_EQ(error.at("field").as_string(), field) << r;
    const std::string message(error.at("message").as_string());
    EXPECT_EQ(message.rfind(field + ": 10000 is above the bound of " + std::to_string(bound) +
                                " live instances per worker",
                            0),
              0u)
        << message;
  };
  refused("POST", "/api/v1/etl/instance-pool/warmup",
          R"({"module_id": "pass", "instance_count": 10000})", "instance_count");
  refused("PATCH", "/api/v1/etl/instance-pool/pass",
          R"({"max_pool_size": 10000, "warmup_instances": 0})", "max_pool_size");
  refused("PATCH", "/api/v1/etl/instance-pool/pass", R"({"warmup_instances": 10000})",
          "warmup_instances");

  const json::object after = module("pass-v1.0.0");
  for (const char* key : {"size", "idle", "created", "evicted"}) {
    EXPECT_EQ(n(after, key), n(before, key)) << key;
  }
  EXPECT_EQ(after.at("settings"), before.at("settings"));
  EXPECT_EQ(after.at("settings_source").as_string(), "config");
  // At the bound itself: accepted.
  admin("PATCH", "/api/v1/etl/instance-pool/pass",
        R"({"max_pool_size": )" + std::to_string(bound) + "}", 200);
}

TEST_F(PoolTest, DeletingAModuleDropsItsPools) {
  start("warmup_instances = 0");
  upload("passthrough", "pass");
  admin("POST", "/api/v1/etl/instance-pool/warmup", R"({"module_id": "pass", "instance_count": 2})",
        200);
  admin("DELETE", "/api/v1/etl/modules/pass-v1.0.0", "", 200);
  // The workers drop their pools of it as their next job (the delete does not wait for them).
  json::value s = stats();
  for (int i = 0; i < 500 && !s.at("modules").as_array().empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    s = stats();
  }
  EXPECT_TRUE(s.at("modules").as_array().empty()) << s;
  EXPECT_EQ(s.at("memory_usage_bytes").to_number<int64_t>(), 0);
}

TEST_F(PoolTest, PoolCommandsWarmReportAndClean) {
  start("warmup_instances = 0");
  upload("passthrough", "pass");
  const std::string url = broker_->admin_url();
  auto warm = testing::wasmq({"pool", "warmup", "pass", "-n", "2", "--admin", url}, "");
  ASSERT_EQ(warm.exit_code, 0) << warm.err;
  ASSERT_EQ(warm.lines.size(), 1u) << warm.out;
  EXPECT_EQ(warm.lines[0].at("created").to_number<int64_t>(), 2 * kWorkers);

  auto table = testing::wasmq({"pool", "stats", "--admin", url}, "");
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("HIT RATIO"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("pass-v1.0.0  " + std::to_string(2 * kWorkers)), std::string::npos)
      << table.out;

  auto as_json = testing::wasmq({"pool", "stats", "--json", "--admin", url}, "");
  ASSERT_EQ(as_json.lines.size(), 1u) << as_json.out;
  EXPECT_EQ(as_json.lines[0].at("totals").at("idle").to_number<int64_t>(), 2 * kWorkers);

  auto clean = testing::wasmq({"pool", "cleanup", "--admin", url}, "");
  ASSERT_EQ(clean.exit_code, 0) << clean.err;
  EXPECT_EQ(clean.lines.at(0).at("evicted").to_number<int64_t>(), 2 * kWorkers);

  auto unknown = testing::wasmq({"pool", "warmup", "nope", "--admin", url}, "");
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("module nope does not exist"), std::string::npos) << unknown.err;
}

}  // namespace
}  // namespace wasmq
