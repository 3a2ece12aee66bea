#include "common/status.h"

#include <gtest/gtest.h>

namespace wasmq {
namespace {

TEST(Status, AFieldErrorNamesItsFieldInTheMessageAndApart) {
  Status s = field_error("timestamp", "must be an integer");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.field(), "timestamp");
  EXPECT_EQ(s.message(), "timestamp: must be an integer");
}

TEST(Status, WithinPutsTheEnclosingPathBeforeFieldAndMessage) {
  Status s = field_error("headers.a", "must be a string").within("messages[1]");
  EXPECT_EQ(s.field(), "messages[1].headers.a");
  EXPECT_EQ(s.message(), "messages[1].headers.a: must be a string");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);

  // An error about the element as a whole gets the element's path as its field.
  Status whole = invalid_argument("must be a JSON object").within("messages[0]");
  EXPECT_EQ(whole.field(), "messages[0]");
  EXPECT_EQ(whole.message(), "messages[0]: must be a JSON object");

  // An index step joins without a dot; an empty path changes nothing; ok stays ok.
  Status indexed = Status(StatusCode::kInvalidArgument, "[2]: bad", "[2]").within("list");
  EXPECT_EQ(indexed.field(), "list[2]");
  EXPECT_EQ(indexed.message(), "list[2]: bad");
  EXPECT_EQ(s.within("").message(), s.message());
  EXPECT_TRUE(Status::ok().within("messages[0]").is_ok());
}

TEST(Status, ContextKeepsTheField) {
  Status s = field_error("partition", "must be an integer").with_context("produce");
  EXPECT_EQ(s.message(), "produce: partition: must be an integer");
  EXPECT_EQ(s.field(), "partition");
}

TEST(Status, OutOfRangeHasItsOwnName) {
  EXPECT_STREQ(status_code_name(StatusCode::kOutOfRange), "out_of_range");
}

}  // namespace
}  // namespace wasmq
