// The audit log's lines and its appends from many threads.
#include "http/audit_log.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <boost/json.hpp>
#include <fstream>
#include <optional>
#include <thread>
#include <vector>

#include "http/json_response.h"
#include "temp_dir.h"

namespace wasmq::http {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

std::vector<json::object> read_lines(const fs::path& path) {
  std::ifstream in(path);
  std::vector<json::object> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line).as_object());
  return lines;
}

TEST(AuditLog, LineSaysWhoWhatWhenAndTheResult) {
  Principal admin{"ci-deploy", Role::kAdmin};
  Response created = json_response(HttpStatus::created, json::object{{"status", "created"}});
  json::object ok = json::parse(AuditLog::line(1769508672345, &admin, "127.0.0.1", Verb::post,
                                               "/api/v1/etl/pipelines", created))
                        .as_object();
  EXPECT_EQ(ok, (json::object{{"time", "2026-01-27T10:11:12.345Z"},
                              {"who", "ci-deploy"},
                              {"role", "admin"},
                              {"remote", "127.0.0.1"},
                              {"method", "POST"},
                              {"path", "/api/v1/etl/pipelines"},
                              {"status", 201},
                              {"result", "ok"}}));
}

TEST(AuditLog, RefusedAndFailedAttemptsCarryTheError) {
  Response unauthorized = error_response(HttpStatus::unauthorized, "unauthorized", "no token");
  json::object refused = json::parse(AuditLog::line(0, nullptr, "::1", Verb::delete_,
                                                    "/api/v1/etl/modules/m-v1.0.0", unauthorized))
                             .as_object();
  EXPECT_EQ(refused.at("time"), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(refused.at("who"), "anonymous");
  EXPECT_TRUE(refused.at("role").is_null());
  EXPECT_EQ(refused.at("result"), "refused");
  EXPECT_EQ(refused.at("error"), "no token");

  Principal ops{"ops", Role::kOperator};
  Response conflict = error_response(HttpStatus::conflict, "conflict", "module in use");
  json::object failed =
      json::parse(AuditLog::line(0, &ops, "10.0.0.1", Verb::delete_, "/x", conflict)).as_object();
  EXPECT_EQ(failed.at("result"), "failed");
  EXPECT_EQ(failed.at("status"), 409);
  EXPECT_EQ(failed.at("error"), "module in use");
}

TEST(AuditLog, AppendsWholeLinesFromManyThreadsToAPrivateFile) {
  fs::path dir = testing::test_temp_dir("wasmq-audit");
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::path path = dir / "audit.jsonl";
  std::ofstream(path) << R"({"earlier":"line"})"
                      << "\n";
  {
    auto log = AuditLog::open(path);
    ASSERT_TRUE(log.is_ok()) << log.status().message();
    Principal who{"ci", Role::kAdmin};
    Response response = json_response(HttpStatus::ok, json::object{});
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 250; ++i) {
          (*log)->record(&who, "127.0.0.1", Verb::post, "/api/v1/t" + std::to_string(t), response);
        }
      });
    }
    for (auto& thread : threads) thread.join();
  }
  std::vector<json::object> lines = read_lines(path);  // every line parses: none interleaved
  ASSERT_EQ(lines.size(), 1001u);
  EXPECT_EQ(lines[0].at("earlier"), "line");  // appended, not truncated
  EXPECT_EQ(lines[1000].at("who"), "ci");

  fs::path fresh = dir / "fresh.jsonl";
  ASSERT_TRUE(AuditLog::open(fresh).is_ok());
  struct stat info {};
  ASSERT_EQ(::stat(fresh.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  fs::remove_all(dir);
}

TEST(AuditLog, ReportsAPathThatCannotBeOpened) {
  auto log = AuditLog::open("/nonexistent-dir/audit.jsonl");
  ASSERT_FALSE(log.is_ok());
  EXPECT_EQ(log.status().code(), StatusCode::kIo);
  EXPECT_NE(log.status().message().find("security.audit_log: cannot open /nonexistent-dir/"),
            std::string::npos)
      << log.status().message();
}

class AuditLogBoundsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::test_temp_dir("wasmq-audit-bounds");
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path path() const { return dir_ / "audit.jsonl"; }
  fs::path dir_;
};

TEST_F(AuditLogBoundsTest, CutsLongPathsAndMarksThem) {
  Response unauthorized = error_response(HttpStatus::unauthorized, "unauthorized", "no token");
  std::string path = "/api/v1/etl/pipelines/" + std::string(15'000, 'A');
  json::object o =
      json::parse(AuditLog::line(0, nullptr, "::1", Verb::delete_, path, unauthorized)).as_object();
  std::string logged(o.at("path").as_string());
  EXPECT_EQ(logged.substr(0, 256), path.substr(0, 256));
  EXPECT_EQ(logged.substr(256), "…[truncated from 15022 bytes]");
}

// M3: an anonymous flood of refused requests (with 15 KB paths) from one address grows the log by
// a bounded amount; the count of what was left out is written once the window has ended; changes
// that were let in are all logged throughout.
TEST_F(AuditLogBoundsTest, RefusedFloodFromOneAddressIsBoundedAndCounted) {
  AuditLogOptions options;  // 20 refused lines per address per 10 s
  auto log = AuditLog::open(path(), options);
  ASSERT_TRUE(log.is_ok()) << log.status().message();
  Response unauthorized = error_response(HttpStatus::unauthorized, "unauthorized", "no token");
  Response created = json_response(HttpStatus::created, json::object{});
  Principal admin{"ci", Role::kAdmin};
  const std::string long_path = "/api/v1/etl/pipelines/" + std::string(15'000, 'A');
  const int64_t t0 = 1'769'508'672'000;
  for (int i = 0; i < 10'000; ++i) {
    (*log)->record_at(t0 + i / 2, nullptr, "10.0.0.66", Verb::delete_, long_path, unauthorized);
    if (i % 1000 == 0) {
      (*log)->record_at(t0 + i / 2, &admin, "10.0.0.66", Verb::post, "/api/v1/etl/pipelines",
                        created);
    }
  }
  (*log)->record_at(t0 + 1000, nullptr, "10.0.0.7", Verb::delete_, "/x", unauthorized);
  EXPECT_LT(fs::file_size(path()), 40u * 1024);  // was 10,000 lines of 15 KB: 150 MB
  // After the window: the next refusal from the address starts a new window, after the count.
  (*log)->record_at(t0 + 10'001, nullptr, "10.0.0.66", Verb::delete_, "/y", unauthorized);
  std::vector<json::object> lines = read_lines(path());
  size_t refused = 0, admitted = 0;
  std::optional<json::object> summary;
  for (const auto& line : lines) {
    if (line.at("result") == "refused" && line.at("remote") == "10.0.0.66") ++refused;
    if (line.at("result") == "ok") ++admitted;
    if (line.at("result") == "suppressed") summary = line;
  }
  EXPECT_EQ(refused, 21u);  // 20 in the first window, 1 in the second
  EXPECT_EQ(admitted, 10u);
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->at("remote"), "10.0.0.66");
  EXPECT_EQ(summary->at("suppressed"), 9'980);
  EXPECT_EQ(lines.back().at("path"), "/y");
  // Another address has a window of its own.
  EXPECT_EQ(std::count_if(lines.begin(), lines.end(),
                          [](const json::object& l) { return l.at("remote") == "10.0.0.7"; }),
            1);
}

// The Kafka listener's lines: protocol, API and resource; refusals bounded per address like
// HTTP's; never a field the caller did not give.
TEST_F(AuditLogBoundsTest, KafkaLinesNameTheApiAndAreBoundedLikeHttps) {
  auto log = AuditLog::open(path(), AuditLogOptions{});
  ASSERT_TRUE(log.is_ok());
  Principal app{"app", Role::kProducer};
  (*log)->record_kafka(&app, "10.0.0.8", "DeleteTopics", "topic orders", "refused",
                       "lacks the right delete_topics");
  (*log)->record_kafka(nullptr, "10.0.0.8", "SaslAuthenticate", "user app", "refused", "wrong token");
  for (int i = 0; i < 100; ++i) {
    (*log)->record_kafka(nullptr, "10.0.0.9", "Metadata", "", "refused", "before SASL authentication");
  }
  (*log)->record_kafka(&app, "10.0.0.9", "CreateTopics", "topic t", "ok", "");
  std::vector<json::object> lines = read_lines(path());
  ASSERT_GE(lines.size(), 3u);
  EXPECT_EQ(lines[0].at("protocol"), "kafka");
  EXPECT_EQ(lines[0].at("who"), "app");
  EXPECT_EQ(lines[0].at("role"), "producer");
  EXPECT_EQ(lines[0].at("api"), "DeleteTopics");
  EXPECT_EQ(lines[0].at("resource"), "topic orders");
  EXPECT_EQ(lines[0].at("error"), "lacks the right delete_topics");
  EXPECT_EQ(lines[1].at("who"), "anonymous");
  EXPECT_TRUE(lines[1].at("role").is_null());
  const auto from_9 = std::count_if(lines.begin(), lines.end(), [](const json::object& l) {
    return l.at("remote") == "10.0.0.9" && l.at("result") == "refused";
  });
  EXPECT_EQ(from_9, 20);  // refused_per_window
  EXPECT_EQ(lines.back().at("api"), "CreateTopics");
  EXPECT_FALSE(lines.back().contains("error"));
  EXPECT_FALSE(lines.back().contains("status"));
}

TEST_F(AuditLogBoundsTest, WritesThePendingCountWhenClosed) {
  {
    auto log = AuditLog::open(path());
    ASSERT_TRUE(log.is_ok());
    Response forbidden = error_response(HttpStatus::forbidden, "forbidden", "no right");
    for (int i = 0; i < 25; ++i) (*log)->record(nullptr, "::1", Verb::post, "/z", forbidden);
  }
  std::vector<json::object> lines = read_lines(path());
  ASSERT_EQ(lines.size(), 21u);
  EXPECT_EQ(lines.back().at("suppressed"), 5);
}

TEST_F(AuditLogBoundsTest, RotatesAtMaxBytesKeepingOneOlderFile) {
  AuditLogOptions options;
  options.max_bytes = 4096;
  auto log = AuditLog::open(path(), options);
  ASSERT_TRUE(log.is_ok());
  Principal admin{"ci", Role::kAdmin};
  Response ok = json_response(HttpStatus::ok, json::object{});
  for (int i = 0; i < 200; ++i) {
    (*log)->record(&admin, "127.0.0.1", Verb::post, "/api/v1/etl/pipelines/p" + std::to_string(i),
                   ok);
  }
  fs::path rotated = path();
  rotated += ".1";
  ASSERT_TRUE(fs::exists(rotated));
  EXPECT_LE(fs::file_size(path()), 4096u);
  EXPECT_LE(fs::file_size(rotated), 4096u);
  EXPECT_GT(fs::file_size(rotated), 3000u);
  std::vector<json::object> lines = read_lines(path());  // whole lines in both files
  std::vector<json::object> older = read_lines(rotated);
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back().at("path"), "/api/v1/etl/pipelines/p199");
  EXPECT_EQ(lines.size() + older.size() <= 200, true);
  EXPECT_EQ(fs::status(path()).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
}

}  // namespace
}  // namespace wasmq::http
