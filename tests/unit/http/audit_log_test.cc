// The audit log's lines and its appends from many threads.
#include "http/audit_log.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <boost/json.hpp>
#include <fstream>
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

}  // namespace
}  // namespace wasmq::http
