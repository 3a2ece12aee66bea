// The check of configuration text before toml++ sees it (cli/toml_text.h): the inputs on which
// toml++ 3.3.0 reaches undefined behaviour are refused with "<file>:<line>:<column>: <what>",
// and valid TOML, non-ASCII text in strings and comments included, still passes.
#include "cli/toml_text.h"

#include <gtest/gtest.h>

#include <string>

#include "cli/config.h"

namespace wasmq::cli {
namespace {

std::string config_error(const std::string& text) {
  auto loaded = parse_config(text, "broker.toml", {});
  EXPECT_FALSE(loaded.is_ok()) << "accepted:\n" << text;
  return loaded.is_ok() ? "" : loaded.status().message();
}

TEST(TomlText, RefusesAControlCharacterInATableHeader) {
  EXPECT_EQ(config_error("[broker]\ndata_dir = \"d\"\n[\x01ttp]\n"),
            "broker.toml:3:2: control character U+0001 is not allowed");
  EXPECT_EQ(config_error(std::string("[\0]\n", 4)),
            "broker.toml:1:2: control character U+0000 is not allowed");
}

TEST(TomlText, RefusesATableHeaderThatDoesNotStartWithAKey) {
  EXPECT_EQ(config_error("[admin]\n[?ttp]\n"), "broker.toml:2:1: table header: expected a key after [");
  EXPECT_EQ(config_error("[[ =x]]\n"), "broker.toml:1:1: table header: expected a key after [");
  EXPECT_EQ(config_error("a = 1\n  [\n"), "broker.toml:2:3: table header: expected a key after [");
}

TEST(TomlText, RefusesNonAsciiOutsideStringsAndComments) {
  EXPECT_EQ(config_error("[\xc3\xa9]\n"),
            "broker.toml:1:2: character U+00E9 is only allowed inside a string or a comment");
  EXPECT_EQ(config_error("a = 1 \xe3\x80\x80\n"),
            "broker.toml:1:7: character U+3000 is only allowed inside a string or a comment");
}

TEST(TomlText, RefusesNonAsciiRightAfterALineEndingBackslash) {
  EXPECT_EQ(config_error("s = \"\"\"\\\n   \xc2\xa7\"\"\"\n"),
            "broker.toml:2:4: character U+00A7 right after a line-ending backslash is not "
            "supported; write it as an escape (\\uXXXX)");
}

TEST(TomlText, RefusesNonAsciiRightAfterABackslashInAMultiLineString) {
  EXPECT_EQ(config_error("s = \"\"\"\\\xc2\xa7\"\n\"\"\n"),
            "broker.toml:1:9: character U+00A7 after a backslash is not an escape");
}

TEST(TomlText, RefusesBytesThatAreNotUtf8) {
  EXPECT_EQ(config_error("# caf\xe9\n"), "broker.toml:1:6: the text is not valid UTF-8");
  EXPECT_EQ(config_error("s = \"\xed\xa0\x80\"\n"), "broker.toml:1:6: the text is not valid UTF-8");
}

// toml++ asserts that a value never starts with "}" or "]"; the loader turns its assertions off
// (an assertion build aborted here), so the document is refused like any syntax error.
TEST(TomlText, AValueTerminatorWhereAValueIsExpectedIsASyntaxErrorInEveryBuild) {
  const std::string error = config_error("x = [1,}]\n");
  EXPECT_EQ(error.rfind("broker.toml:1:", 0), 0u) << error;
}

TEST(TomlText, PassesValidTomlWithNonAsciiInStringsAndComments) {
  EXPECT_FALSE(check_toml_text("# caf\xc3\xa9 \xe2\x80\x94 comment\n"
                               "[broker]  # \xc2\xa7\n"
                               "data_dir = \"/srv/caf\xc3\xa9\"\n"
                               "\"quoted \xc3\xa9 key\" = '\xc2\xa7'\n"
                               "m = \"\"\"\n\xc2\xa7 first \\\n  line \\\" \"\"\"\n"
                               "l = '''\n\xc2\xa7\\ '''\n"));
  // A "[" at the start of a line inside a value is an array, not a table header.
  EXPECT_FALSE(check_toml_text("a = [\n  [ {x = 1} ],\n  [ +1 ],\n]\n[table]\n"));
  EXPECT_FALSE(check_toml_text("[ \"quoted\" ]\n[[array]]\n[ a . b ]\n"));

  auto loaded = parse_config("[broker]\ndata_dir = \"/srv/caf\xc3\xa9\"  # \xc2\xa7\n", "broker.toml", {});
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().message();
  EXPECT_EQ(loaded->config.broker.data_dir, "/srv/caf\xc3\xa9");
}

}  // namespace
}  // namespace wasmq::cli
