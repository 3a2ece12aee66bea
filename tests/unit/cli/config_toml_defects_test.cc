// Invalid configuration files that reached undefined behaviour or a failed assertion in Debian's
// toml++ 3.3.0 (found by tests/fuzz/config_fuzz.cc; the workarounds are at the top of
// src/cli/config_loader.cc): each is refused with its line like any syntax error, and valid text
// with the same characters is read as written. Under `make asan` these abort without the
// workarounds.
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

TEST(ConfigTomlDefects, NonAsciiCharacterWhereWhitespaceMayStandIsASyntaxError) {
  EXPECT_EQ(config_error("[\xc3\xa9]\n").rfind("broker.toml:1:", 0), 0u);                // U+00E9
  EXPECT_EQ(config_error("a = 1\xe3\x80\x81\n").rfind("broker.toml:1:", 0), 0u);         // U+3001
  EXPECT_EQ(config_error("a = 182e6'\xcf\xa9\n").rfind("broker.toml:1:", 0), 0u);         // U+03E9
  EXPECT_EQ(config_error("s = \"\"\"\\\xc2\xa7\"\n\"\"\n").rfind("broker.toml:1:", 0), 0u);  // U+00A7
}

TEST(ConfigTomlDefects, ParserStatesToml330AssertsAreSyntaxErrors) {
  EXPECT_EQ(config_error("x = [1,}]\n").rfind("broker.toml:1:", 0), 0u);
  EXPECT_EQ(config_error("[admin]\n[?ttp]\n").rfind("broker.toml:2:", 0), 0u);
  EXPECT_EQ(config_error("[\x01]\n").rfind("broker.toml:1:", 0), 0u);
}

TEST(ConfigTomlDefects, NonAsciiTextInStringsAndCommentsIsReadAsWritten) {
  auto loaded = parse_config(
      "# caf\xc3\xa9 \xc2\xa7\n"
      "[broker]  # \xe3\x80\x81\n"
      "data_dir = \"\"\"\\\n   \xc2\xa7-caf\xc3\xa9\"\"\"\n",
      "broker.toml", {});
  ASSERT_TRUE(loaded.is_ok()) << loaded.status().message();
  EXPECT_EQ(loaded->config.broker.data_dir, "\xc2\xa7-caf\xc3\xa9");
}

}  // namespace
}  // namespace wasmq::cli
