#include "common/message_json.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace wasmq {
namespace {

Status parse(std::string_view text, Message* m) {
  return message_from_json(boost::json::parse(text), 42, m);
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
