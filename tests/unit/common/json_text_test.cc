#include "common/json_text.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cmath>
#include <limits>

namespace wasmq {
namespace {

namespace json = boost::json;

TEST(JsonText, WritesDoublesAsPlainDecimals) {
  EXPECT_EQ(json_text(json::value(283.113129042)), "283.113129042");
  EXPECT_EQ(json_text(json::value(0.0)), "0.0");
  EXPECT_EQ(json_text(json::value(1.934)), "1.934");
  EXPECT_EQ(json_text(json::value(10.0)), "10.0");
  EXPECT_EQ(json_text(json::value(-2.5)), "-2.5");
  EXPECT_EQ(json_text(json::value(1e21)), "1e+21");
  EXPECT_EQ(json_text(json::value(5e-7)), "5e-07");
  EXPECT_EQ(json_text(json::value(std::numeric_limits<double>::infinity())), "null");
  EXPECT_EQ(json_text(json::value(std::nan(""))), "null");
}

TEST(JsonText, WritesEverythingElseAsBoostJsonDoes) {
  json::value v = json::parse(
      R"({"s":"a\"b\\c\n\u0001é","i":-42,"u":18446744073709551615,"t":true,"n":null,)"
      R"("a":[1,2.5,{"x":[]},{}],"empty":""})");
  const std::string text = json_text(v);
  EXPECT_EQ(text,
            R"({"s":"a\"b\\c\n\u0001é","i":-42,"u":18446744073709551615,"t":true,"n":null,)"
            R"("a":[1,2.5,{"x":[]},{}],"empty":""})");
  EXPECT_EQ(json::parse(text), v);
}

// Read back, every double is the same double, and still a double (not an integer).
TEST(JsonText, DoublesReadBackExactlyAndAsDoubles) {
  for (double d : {0.1, 1.0 / 3.0, 2.831e2, 123456789.0, 1e-300, 1.7976931348623157e308, -0.0,
                   4.9e-324, 65.2, 74.3}) {
    json::value back = json::parse(json_text(json::value(d)));
    ASSERT_TRUE(back.is_double()) << json_text(json::value(d));
    EXPECT_EQ(back.get_double(), d) << json_text(json::value(d));
  }
}

}  // namespace
}  // namespace wasmq
