#include "common/message_json.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace wasmq {
namespace {

Status parse(std::string_view text, Message* m) {
  return message_from_json(boost::json::parse(text), 42, m);
}

// A request's messages as views into its document: values, keys and headers point into it;
// a decoded value_base64 lives in the views; each message's headers are its own; a refused
// message leaves nothing behind.
TEST(MessageViews, ViewTheDocumentAndKeepWhatTheyDecode) {
  boost::json::value doc = boost::json::parse(R"([
    {"key": "a", "value": "first", "headers": {"h1": "x", "h2": "y"}},
    {"value_base64": "AAEC", "timestamp": 5},
    {"value": "bad", "headers": {"h3": 1}},
    {"value": "third", "headers": {"h4": "z"}}])");
  const auto& list = doc.as_array();
  MessageViews views;
  ASSERT_TRUE(views.add(list[0], 99).is_ok());
  ASSERT_TRUE(views.add(list[1], 99).is_ok());
  Status bad = views.add(list[2], 99);
  EXPECT_EQ(bad.field(), "headers.h3");
  ASSERT_TRUE(views.add(list[3], 99).is_ok());
  views.finish();
  ASSERT_EQ(views.messages.size(), 3u);
  const MessageView& first = views.messages[0];
  EXPECT_EQ(first.key, std::optional<std::string_view>("a"));
  EXPECT_EQ(first.value.data(), list[0].at("value").as_string().data());  // a view, not a copy
  ASSERT_EQ(first.headers.size(), 2u);
  EXPECT_EQ(first.headers[1], HeaderView("h2", "y"));
  EXPECT_EQ(first.timestamp, 99);
  EXPECT_EQ(views.messages[1].value, std::string_view("\x00\x01\x02", 3));
  EXPECT_EQ(views.messages[1].timestamp, 5);
  EXPECT_TRUE(views.messages[1].headers.empty());
  ASSERT_EQ(views.messages[2].headers.size(), 1u);
  EXPECT_EQ(views.messages[2].headers[0], HeaderView("h4", "z"));
  EXPECT_EQ(views.headers.size(), 3u);  // h3 of the refused message is not among them
  // Copied out, a view is the message message_from_json reads.
  Message read;
  ASSERT_TRUE(message_from_json(list[0], 99, &read).is_ok());
  EXPECT_EQ(first.to_message(), read);
}

// Headers past kMaxHeaderBytes are refused with the size, as HeaderSet refuses them.
TEST(MessageViews, RefuseHeadersPastTheirByteBound) {
  boost::json::object headers;
  headers["a"] = std::string(kMaxHeaderBytes / 2, 'a');
  headers["b"] = std::string(kMaxHeaderBytes / 2, 'b');
  boost::json::value doc = boost::json::object{{"value", "v"}, {"headers", headers}};
  MessageViews views;
  Status s = views.add(doc, 0);
  EXPECT_EQ(s.field(), "headers");
  EXPECT_NE(s.message().find("exceed the limit of " + std::to_string(kMaxHeaderBytes)),
            std::string::npos)
      << s.message();
  EXPECT_TRUE(views.messages.empty());
  EXPECT_TRUE(views.headers.empty());
}

TEST(MessageJson, ReadsTheProduceShape) {
  Message m;
  ASSERT_TRUE(parse(R"({"key":"k","value":"v","headers":{"a":"b"},"timestamp":7,"partition":0})", &m).is_ok());
  EXPECT_EQ(m.key, "k");
  EXPECT_EQ(m.value, "v");
  ASSERT_NE(m.header("a"), nullptr);
  EXPECT_EQ(*m.header("a"), "b");
  EXPECT_EQ(m.timestamp, 7);
}

TEST(MessageJson, DefaultsTimestampAndKey) {
  Message m;
  ASSERT_TRUE(parse(R"({"value":"v"})", &m).is_ok());
  EXPECT_FALSE(m.key);
  EXPECT_EQ(m.timestamp, 42);
}

TEST(MessageJson, DecodesValueBase64) {
  Message m;
  ASSERT_TRUE(parse(R"({"value_base64":"AP8="})", &m).is_ok());
  EXPECT_EQ(m.value, std::string("\x00\xff", 2));
}

TEST(MessageJson, NamesTheBadField) {
  Message m;
  EXPECT_NE(parse(R"({"value":1})", &m).message().find("value:"), std::string::npos);
  EXPECT_NE(parse(R"({"value":"v","headers":{"a":1}})", &m).message().find("headers.a"), std::string::npos);
  EXPECT_NE(parse(R"({"value":"v","timestamp":"x"})", &m).message().find("timestamp"), std::string::npos);
  EXPECT_NE(parse(R"({"value":"v","bogus":1})", &m).message().find("bogus"), std::string::npos);
  EXPECT_NE(parse(R"({"key":"k"})", &m).message().find("value"), std::string::npos);
  EXPECT_NE(parse(R"({"value_base64":"!!"})", &m).message().find("base64"), std::string::npos);
  EXPECT_FALSE(parse(R"([1])", &m).is_ok());
}

// Kafka clients produce binary keys and header values: every byte comes back, in valid JSON,
// and goes in again through the same names.
TEST(MessageJson, BinaryKeysAndHeaderValuesRoundTripAsBase64) {
  Message m;
  m.key = std::string("\xff\x00k", 3);
  m.value = "v";
  m.headers = {{"text", "plain"}, {"raw", std::string("\xfe\x01", 2)}};
  m.timestamp = 5;
  const std::string text = boost::json::serialize(message_to_json(m));
  EXPECT_EQ(text, R"({"key_base64":"/wBr","value":"v","headers":{"text":"plain"},)"
                  R"("headers_base64":{"raw":"/gE="},"timestamp":5})");
  Message back;
  ASSERT_TRUE(parse(text, &back).is_ok());
  EXPECT_EQ(back.key, m.key);
  EXPECT_EQ(back.value, m.value);
  EXPECT_EQ(back.headers, m.headers);
  // A header name that is not UTF-8 (stored before names were checked) still gives valid JSON.
  Message odd;
  odd.value = "v";
  odd.headers = {{std::string("\xff"), "x"}};
  boost::system::error_code ec;
  boost::json::value parsed = boost::json::parse(boost::json::serialize(message_to_json(odd)), ec);
  EXPECT_FALSE(ec);
  EXPECT_EQ(parsed.at("headers_base64").at("base64:/w==").as_string(), "eA==");

  EXPECT_NE(parse(R"({"value":"v","key":"a","key_base64":"YQ=="})", &back).message().find("key_base64: give either"),
            std::string::npos);
  EXPECT_NE(parse(R"({"value":"v","key_base64":"!"})", &back).message().find("key_base64: not valid base64"),
            std::string::npos);
  EXPECT_NE(parse(R"({"value":"v","headers_base64":{"h":"!"}})", &back).message().find("headers_base64.h"),
            std::string::npos);
}

TEST(MessageJson, WritesBinaryValuesAsBase64) {
  Message m;
  m.value = std::string("\xff\x00", 2);
  auto obj = message_to_json(m);
  EXPECT_FALSE(obj.contains("value"));
  EXPECT_EQ(obj.at("value_base64").as_string(), "/wA=");
  EXPECT_TRUE(obj.at("key").is_null());
}

TEST(MessageJson, RefusesMoreHeadersThanTheLimit) {
  std::string body = R"({"value":"v","headers":{)";
  for (size_t i = 0; i <= kMaxHeaders; ++i)
    body += (i ? "," : "") + ("\"h" + std::to_string(i) + "\":\"\"");
  body += "}}";
  Message m;
  Status s = parse(body, &m);
  EXPECT_EQ(s.message(), "headers: 1025 headers exceed the limit of 1024 per message");
}

TEST(MessageJson, RepeatedHeaderKeepsTheLastValue) {
  Message m;
  ASSERT_TRUE(parse(R"({"value":"v","headers":{"a":"1","b":"2","a":"3","a":"4"}})", &m).is_ok());
  ASSERT_EQ(m.headers.size(), 2u);
  EXPECT_EQ(*m.header("a"), "4");
}

TEST(MessageJson, BoundsTimestamps) {
  Message m;
  ASSERT_TRUE(parse(R"({"value":"v","timestamp":253402300799999})", &m).is_ok());
  EXPECT_EQ(m.timestamp, 253402300799999);
  ASSERT_TRUE(parse(R"({"value":"v","timestamp":0})", &m).is_ok());
  ASSERT_TRUE(parse(R"({"value":"v","timestamp":-1})", &m).is_ok());
  EXPECT_EQ(m.timestamp, 42);  // -1: the time of the request
  for (const char* bad : {"-2", "253402300800000", "-9223372036854775808", "9223372036854775807",
                          "18446744073709551615"}) {
    Status s = parse(std::string(R"({"value":"v","timestamp":)") + bad + "}", &m);
    EXPECT_EQ(s.message().rfind("timestamp: must be from 0 to 253402300799999", 0), 0u)
        << bad << ": " << s.message();
  }
}

TEST(MessageJson, ANonObjectNamesNoField) {
  Message m;
  EXPECT_EQ(parse("1", &m).message(), "must be a JSON object");
}

}  // namespace
}  // namespace wasmq
