// The router, request parsing and JSON helpers, without sockets.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>

#include "http/json_response.h"
#include "http/request.h"
#include "http/router.h"

namespace wasmq::http {
namespace {

namespace json = boost::json;

Handler reply_with(std::string text) {
  return [text](Request&) -> boost::asio::awaitable<Response> {
    co_return text_response(HttpStatus::ok, text);
  };
}

json::value body_json(const Response& response) { return json::parse(response.body()); }

TEST(PercentDecode, DecodesEscapesAndPlusInQueries) {
  EXPECT_EQ(*percent_decode("a%20b%2Fc+d", true), "a b/c d");
  EXPECT_EQ(*percent_decode("a%20b%2Fc+d", false), "a b/c+d");
  EXPECT_EQ(*percent_decode("%e2%82%AC", false), "\xe2\x82\xac");
}

TEST(PercentDecode, RejectsMalformedEscapeNamingPosition) {
  for (const char* bad : {"abc%", "abc%4", "abc%zz", "%g0"}) {
    auto decoded = percent_decode(bad, true);
    ASSERT_FALSE(decoded.is_ok()) << bad;
    EXPECT_EQ(decoded.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(decoded.status().message().find("malformed percent escape at character"),
              std::string::npos);
  }
}

TEST(ParseQuery, SplitsDecodesAndKeepsOrder) {
  Params params;
  ASSERT_TRUE(parse_query("offset=0&max_messages=10&name=a%20b+c&flag&&empty=&name=second", params)
                  .is_ok());
  EXPECT_EQ(params.size(), 6u);
  EXPECT_EQ(params.get("offset"), "0");
  EXPECT_EQ(params.get("max_messages"), "10");
  EXPECT_EQ(params.get("name"), "a b c");
  EXPECT_TRUE(params.contains("flag"));
  EXPECT_EQ(params.get("flag", "x"), "");
  EXPECT_EQ(params.get("empty", "x"), "");
  EXPECT_EQ(params.get("missing", "fallback"), "fallback");
}

TEST(ParseQuery, NamesTheParameterWithABadEscape) {
  Params params;
  Status status = parse_query("offset=0&group=a%2", params);
  ASSERT_FALSE(status.is_ok());
  EXPECT_NE(status.message().find("query parameter \"group\""), std::string::npos);
}

TEST(Request, SplitsTargetIntoPathAndQuery) {
  Request request;
  ASSERT_TRUE(request.reset(RequestMessage(Verb::get, "/api/v1/topics/t/messages?offset=5", 11))
                  .is_ok());
  EXPECT_EQ(request.path(), "/api/v1/topics/t/messages");
  EXPECT_EQ(request.query_string(), "offset=5");
  EXPECT_EQ(*request.query_int64("offset", 0), 5);
  EXPECT_EQ(*request.query_int64("max_messages", 100), 100);

  ASSERT_TRUE(request.reset(RequestMessage(Verb::get, "/health", 11)).is_ok());
  EXPECT_EQ(request.path(), "/health");
  EXPECT_EQ(request.query_string(), "");
  EXPECT_TRUE(request.query().empty());
}

TEST(Request, QueryInt64NamesTheBadParameter) {
  Request request;
  ASSERT_TRUE(request.reset(RequestMessage(Verb::get, "/x?offset=12abc&big=99999999999999999999", 11))
                  .is_ok());
  auto offset = request.query_int64("offset", 0);
  ASSERT_FALSE(offset.is_ok());
  EXPECT_EQ(offset.status().message(), "query parameter \"offset\" must be an integer, got \"12abc\"");
  EXPECT_FALSE(request.query_int64("big", 0).is_ok());
}

TEST(Router, MatchesNamedSegmentsAndDecodesThem) {
  Router router;
  ASSERT_TRUE(router.add(Verb::get, "/api/v1/topics/{topic}/messages", reply_with("m")).is_ok());
  Params params;
  RouteMatch match = router.match(Verb::get, "/api/v1/topics/raw%2Devents/messages", params);
  ASSERT_EQ(match.kind, RouteMatch::Kind::kFound);
  EXPECT_EQ(match.route->pattern, "/api/v1/topics/{topic}/messages");
  EXPECT_EQ(params.get("topic"), "raw-events");

  EXPECT_EQ(router.match(Verb::get, "/api/v1/topics//messages", params).kind,
            RouteMatch::Kind::kNotFound);
  EXPECT_EQ(router.match(Verb::get, "/api/v1/topics/a/b/messages", params).kind,
            RouteMatch::Kind::kNotFound);
}

TEST(Router, IgnoresOneTrailingSlash) {
  Router router;
  ASSERT_TRUE(router.add(Verb::get, "/api/v1/topics", reply_with("list")).is_ok());
  ASSERT_TRUE(router.add(Verb::get, "/", reply_with("root")).is_ok());
  Params params;
  EXPECT_EQ(router.match(Verb::get, "/api/v1/topics/", params).kind, RouteMatch::Kind::kFound);
  EXPECT_EQ(router.match(Verb::get, "/api/v1/topics", params).kind, RouteMatch::Kind::kFound);
  EXPECT_EQ(router.match(Verb::get, "/", params).route->pattern, "/");
}

TEST(Router, PrefersLiteralSegmentOverParameter) {
  Router router;
  ASSERT_TRUE(router.add(Verb::patch, "/api/v1/etl/instance-pool/{module_id}", reply_with("patch"))
                  .is_ok());
  ASSERT_TRUE(router.add(Verb::get, "/api/v1/etl/instance-pool/stats", reply_with("stats")).is_ok());
  Params params;
  RouteMatch get = router.match(Verb::get, "/api/v1/etl/instance-pool/stats", params);
  ASSERT_EQ(get.kind, RouteMatch::Kind::kFound);
  EXPECT_EQ(get.route->pattern, "/api/v1/etl/instance-pool/stats");

  // The literal route has no PATCH: the parameter route takes it.
  RouteMatch patch = router.match(Verb::patch, "/api/v1/etl/instance-pool/stats", params);
  ASSERT_EQ(patch.kind, RouteMatch::Kind::kFound);
  EXPECT_EQ(params.get("module_id"), "stats");

  RouteMatch post = router.match(Verb::post, "/api/v1/etl/instance-pool/stats", params);
  EXPECT_EQ(post.kind, RouteMatch::Kind::kMethodNotAllowed);
  EXPECT_EQ(post.allow, "GET, PATCH");
}

TEST(Router, ReportsMethodNotAllowedWithEveryAllowedMethod) {
  Router router;
  ASSERT_TRUE(router.add(Verb::get, "/api/v1/topics", reply_with("list")).is_ok());
  ASSERT_TRUE(router.add(Verb::post, "/api/v1/topics", reply_with("create")).is_ok());
  Params params;
  RouteMatch match = router.match(Verb::delete_, "/api/v1/topics", params);
  EXPECT_EQ(match.kind, RouteMatch::Kind::kMethodNotAllowed);
  EXPECT_EQ(match.allow, "GET, POST");
  EXPECT_EQ(router.match(Verb::get, "/api/v1/nothing", params).kind, RouteMatch::Kind::kNotFound);
  EXPECT_EQ(router.match(Verb::get, "no-slash", params).kind, RouteMatch::Kind::kNotFound);
}

TEST(Router, ReportsBadlyEncodedPathParameter) {
  Router router;
  ASSERT_TRUE(router.add(Verb::get, "/topics/{topic}", reply_with("t")).is_ok());
  Params params;
  RouteMatch match = router.match(Verb::get, "/topics/a%zz", params);
  EXPECT_EQ(match.kind, RouteMatch::Kind::kBadPath);
  EXPECT_NE(match.error.message().find("path parameter \"topic\""), std::string::npos);
}

TEST(Router, RefusesMalformedPatternsAndDuplicates) {
  Router router;
  EXPECT_FALSE(router.add(Verb::get, "topics", reply_with("x")).is_ok());
  EXPECT_FALSE(router.add(Verb::get, "/topics//x", reply_with("x")).is_ok());
  EXPECT_FALSE(router.add(Verb::get, "/topics/{}", reply_with("x")).is_ok());
  EXPECT_FALSE(router.add(Verb::get, "/topics/{a-b}", reply_with("x")).is_ok());
  EXPECT_FALSE(router.add(Verb::get, "/topics/x{a}", reply_with("x")).is_ok());
  EXPECT_FALSE(router.add(Verb::get, "/{a}/{a}", reply_with("x")).is_ok());
  EXPECT_FALSE(router.add(Verb::get, "/topics", Handler()).is_ok());

  ASSERT_TRUE(router.add(Verb::get, "/topics/{topic}", reply_with("x")).is_ok());
  Status duplicate = router.add(Verb::get, "/topics/{topic}", reply_with("y"));
  EXPECT_EQ(duplicate.code(), StatusCode::kAlreadyExists);
  EXPECT_FALSE(router.add(Verb::post, "/topics/{name}", reply_with("y")).is_ok());
  EXPECT_TRUE(router.add(Verb::post, "/topics/{topic}", reply_with("y")).is_ok());
}

TEST(Router, HandleRunsTheHandlerOrAnswersWithTheErrorShape) {
  Router router;
  ASSERT_TRUE(router
                  .add(Verb::get, "/topics/{topic}",
                       [](Request& request) -> boost::asio::awaitable<Response> {
                         co_return json_response(HttpStatus::ok,
                                                 {{"topic", request.path_param("topic")}});
                       })
                  .is_ok());
  boost::asio::io_context io;
  auto run = [&](Verb method, std::string target) {
    Request request;
    EXPECT_TRUE(request.reset(RequestMessage(method, target, 11)).is_ok());
    auto future = boost::asio::co_spawn(io, router.handle(request), boost::asio::use_future);
    io.restart();
    io.run();
    return future.get();
  };
  Response found = run(Verb::get, "/topics/t1");
  EXPECT_EQ(found.result(), HttpStatus::ok);
  EXPECT_EQ(body_json(found), json::parse(R"({"topic": "t1"})"));

  Response missing = run(Verb::get, "/nothing");
  EXPECT_EQ(missing.result(), HttpStatus::not_found);
  EXPECT_EQ(missing.body(), R"({"error":{"code":"not_found","message":"no route for GET /nothing"}})");

  Response wrong_method = run(Verb::delete_, "/topics/t1");
  EXPECT_EQ(wrong_method.result(), HttpStatus::method_not_allowed);
  EXPECT_EQ(wrong_method[Field::allow], "GET");
  EXPECT_EQ(body_json(wrong_method).at("error").at("code"), "method_not_allowed");
}

TEST(JsonResponse, ErrorShapeHasFieldOnlyWhenGiven) {
  Response without = error_response(HttpStatus::bad_request, "invalid_argument", "bad topic");
  EXPECT_EQ(without.result(), HttpStatus::bad_request);
  EXPECT_EQ(without[Field::content_type], "application/json");
  EXPECT_EQ(without.body(), R"({"error":{"code":"invalid_argument","message":"bad topic"}})");

  Response with = error_response(HttpStatus::unprocessable_entity, "invalid_pipeline", "bad regex",
                                 "stages[1].modules[0].topic_filters[0].pattern");
  EXPECT_EQ(with.body(),
            R"({"error":{"code":"invalid_pipeline","message":"bad regex","field":"stages[1].modules[0].topic_filters[0].pattern"}})");
}

TEST(JsonResponse, StatusResponseMapsCodesToHttpStatuses) {
  EXPECT_EQ(status_response(Status(StatusCode::kNotFound, "topic \"x\" not found")).result(),
            HttpStatus::not_found);
  EXPECT_EQ(status_response(Status(StatusCode::kAlreadyExists, "exists")).result(),
            HttpStatus::conflict);
  EXPECT_EQ(status_response(invalid_argument("bad")).result(), HttpStatus::bad_request);
  EXPECT_EQ(status_response(Status(StatusCode::kTimeout, "late")).result(),
            HttpStatus::gateway_timeout);
  Response internal = status_response(Status(StatusCode::kIo, "disk full"), "x");
  EXPECT_EQ(internal.result(), HttpStatus::internal_server_error);
  EXPECT_EQ(internal.body(), R"({"error":{"code":"io_error","message":"disk full","field":"x"}})");
}

TEST(ParseJsonBody, ParsesOneDocument) {
  JsonBody body = parse_json_body(R"(  {"messages": [{"value": "x"}]}  )");
  ASSERT_TRUE(body.is_ok());
  EXPECT_EQ(body.value.at("messages").as_array().size(), 1u);
}

TEST(ParseJsonBody, MalformedJsonIsA400NamingErrorAndOffset) {
  struct Case {
    std::string body;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {R"({"a": 1,, })", "request body is not valid JSON: syntax error at byte 8"},
           {R"({"a": [1, 2)", "request body is not valid JSON: incomplete JSON at byte 11"},
           {R"({} x)", "request body is not valid JSON: extra data at byte 3"},
           {"", "request body is empty, expected a JSON document"},
       }) {
    JsonBody body = parse_json_body(c.body);
    ASSERT_FALSE(body.is_ok()) << c.body;
    EXPECT_EQ(body.error->result(), HttpStatus::bad_request);
    json::value error = body_json(*body.error).at("error");
    EXPECT_EQ(error.at("code"), "invalid_json");
    EXPECT_EQ(error.at("message").as_string(), c.message) << c.body;
    EXPECT_FALSE(error.as_object().contains("field"));
  }
}

TEST(ParseJsonBody, RefusesNestingDeeperThanTheLimit) {
  std::string deep(100, '[');
  deep += std::string(100, ']');
  EXPECT_FALSE(parse_json_body(deep).is_ok());
  EXPECT_TRUE(parse_json_body(deep, {.max_depth = 200}).is_ok());
}

}  // namespace
}  // namespace wasmq::http
