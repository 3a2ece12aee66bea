// The module registry: semantic versions parse strictly and order by semver 2 precedence;
// uploads are checked whole before anything reaches the disk; a bare name follows the newest
// version; the registry survives a restart and skips damaged modules with a warning.
#include "etl/module_registry.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <string>
#include <vector>

#include "module_files.h"
#include "temp_dir.h"
#include "wasm_builder.h"

namespace wasmq::etl {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

using testing::read_module;
using testing::WasmBuilder;

// --- SemVer --------------------------------------------------------------------------------

SemVer parse_ok(std::string_view text) {
  auto v = SemVer::parse(text);
  EXPECT_TRUE(v.is_ok()) << text << ": " << v.status().message();
  return v.is_ok() ? *v : SemVer{};
}

std::string parse_error(std::string_view text) {
  auto v = SemVer::parse(text);
  EXPECT_FALSE(v.is_ok()) << "accepted \"" << text << "\"";
  if (v.is_ok()) return "";
  EXPECT_EQ(v.status().code(), StatusCode::kInvalidArgument) << text;
  std::string quoted = "\"";
  quoted.append(text).push_back('"');
  EXPECT_NE(v.status().message().find(quoted), std::string::npos)
      << "the message does not quote the version: " << v.status().message();
  return v.status().message();
}

TEST(SemVer, ParsesReleasesAndPreReleases) {
  SemVer v = parse_ok("1.2.3");
  EXPECT_EQ(v.major, 1u);
  EXPECT_EQ(v.minor, 2u);
  EXPECT_EQ(v.patch, 3u);
  EXPECT_EQ(v.pre_release, "");

  v = parse_ok("10.20.30-rc.1");
  EXPECT_EQ(v.major, 10u);
  EXPECT_EQ(v.minor, 20u);
  EXPECT_EQ(v.patch, 30u);
  EXPECT_EQ(v.pre_release, "rc.1");

  EXPECT_EQ(parse_ok("0.0.0").to_string(), "0.0.0");
  EXPECT_EQ(parse_ok("1.0.0-alpha-beta.0.x-y").to_string(), "1.0.0-alpha-beta.0.x-y");
  EXPECT_EQ(parse_ok("18446744073709551615.0.0").major, UINT64_MAX);
}

TEST(SemVer, RefusesMalformedVersionsNamingTheProblem) {
  for (const char* text : {"", "1", "1.2", "1.2.3.4", "v1.2.3", "1.2.x", " 1.2.3", "1..3", "-1.2.3",
                           "18446744073709551616.0.0"}) {
    EXPECT_NE(parse_error(text).find("MAJOR.MINOR.PATCH"), std::string::npos) << text;
  }
  EXPECT_NE(parse_error("01.2.3").find("leading zero"), std::string::npos);
  EXPECT_NE(parse_error("1.02.3").find("leading zero"), std::string::npos);
  EXPECT_NE(parse_error("1.2.3-").find("empty pre-release"), std::string::npos);
  EXPECT_NE(parse_error("1.2.3+build.5").find("build metadata"), std::string::npos);
  EXPECT_NE(parse_error("1.2.3-rc_1").find("letters, digits"), std::string::npos);
}

// Semver 2, rule 9: identifiers are not empty and numeric ones have no leading zeros.
TEST(SemVer, RefusesEmptyAndZeroPaddedPreReleaseIdentifiers) {
  EXPECT_NE(parse_error("1.0.0-rc..1").find("empty identifier"), std::string::npos);
  EXPECT_NE(parse_error("1.0.0-rc.").find("empty identifier"), std::string::npos);
  EXPECT_NE(parse_error("1.0.0-.rc").find("empty identifier"), std::string::npos);
  EXPECT_NE(parse_error("1.0.0-rc.01").find("leading zero"), std::string::npos);
  EXPECT_NE(parse_error("1.0.0-00").find("leading zero"), std::string::npos);
  // Not numeric, so not zero-padded: allowed.
  parse_ok("1.0.0-0a");
  parse_ok("1.0.0-0");
}

TEST(SemVer, OrdersBySemver2Precedence) {
  // semver.org, rule 11, extended with the release lines.
  const std::vector<std::string> ascending = {
      "0.9.9",      "1.0.0-0",      "1.0.0-1",       "1.0.0-2",
      "1.0.0-10",   "1.0.0-alpha",  "1.0.0-alpha.1", "1.0.0-alpha.beta",
      "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1",
      "1.0.0",      "1.0.1",        "1.1.0",         "1.9.0",
      "1.10.0",     "2.0.0"};
  for (size_t i = 0; i < ascending.size(); ++i) {
    SemVer a = parse_ok(ascending[i]);
    EXPECT_EQ(a.compare(a), 0) << ascending[i];
    for (size_t j = i + 1; j < ascending.size(); ++j) {
      SemVer b = parse_ok(ascending[j]);
      EXPECT_LT(a.compare(b), 0) << ascending[i] << " < " << ascending[j];
      EXPECT_GT(b.compare(a), 0) << ascending[j] << " > " << ascending[i];
    }
  }
}

// --- The registry --------------------------------------------------------------------------

TEST(Sha256, MatchesKnownDigests) {
  EXPECT_EQ(sha256_hex({}), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const std::string abc = "abc";
  EXPECT_EQ(sha256_hex({reinterpret_cast<const uint8_t*>(abc.data()), abc.size()}),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

// A JSON string's text, or the serialized value when it is no string.
std::string text(const json::value& v) {
  return v.is_string() ? std::string(v.get_string()) : json::serialize(v);
}

std::string file_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_text(const fs::path& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

class ModuleRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::test_temp_dir("module-registry");
    fs::remove_all(dir_);
    registry_ = open(&warnings_);
    ASSERT_TRUE(registry_);
    EXPECT_TRUE(warnings_.empty());
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<ModuleRegistry> open(std::vector<std::string>* warnings) {
    auto registry = ModuleRegistry::open(dir_, warnings);
    EXPECT_TRUE(registry.is_ok()) << registry.status().message();
    return registry.is_ok() ? std::move(*registry) : nullptr;
  }

  // A valid module; `tag` makes its bytes (and so its checksum) differ from other tags.
  static std::vector<uint8_t> module_bytes(uint32_t tag = 1) {
    return WasmBuilder::abi_module(tag).build();
  }

  std::shared_ptr<const ModuleRecord> add(std::string_view name, std::string_view version,
                                          uint32_t tag = 1) {
    auto added = registry_->add(name, version, module_bytes(tag));
    EXPECT_TRUE(added.is_ok()) << added.status().message();
    return added.is_ok() ? *added : nullptr;
  }

  std::vector<std::string> files() const {
    std::vector<std::string> out;
    for (const auto& entry : fs::directory_iterator(dir_)) {
      out.push_back(entry.path().filename().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  std::string resolved(std::string_view reference) const {
    auto record = registry_->resolve(reference);
    return record ? record->id : "(none)";
  }

  fs::path dir_;
  std::vector<std::string> warnings_;
  std::unique_ptr<ModuleRegistry> registry_;
};

TEST_F(ModuleRegistryTest, AddStoresTheBinaryAndItsMetadata) {
  const std::vector<uint8_t> binary = module_bytes();
  auto added = registry_->add("enricher", "1.2.3", binary);
  ASSERT_TRUE(added.is_ok()) << added.status().message();
  const ModuleRecord& r = **added;
  EXPECT_EQ(r.id, "enricher-v1.2.3");
  EXPECT_EQ(r.name, "enricher");
  EXPECT_EQ(r.version.to_string(), "1.2.3");
  EXPECT_EQ(r.size_bytes, binary.size());
  EXPECT_EQ(r.sha256, sha256_hex(binary));
  EXPECT_EQ(r.sha256.size(), 64u);
  EXPECT_GT(r.uploaded_at_ms, 0);
  EXPECT_EQ(*r.binary, binary);

  EXPECT_EQ(files(), (std::vector<std::string>{"enricher-v1.2.3.json", "enricher-v1.2.3.wasm"}));
  const std::string stored = file_text(dir_ / "enricher-v1.2.3.wasm");
  EXPECT_EQ(std::vector<uint8_t>(stored.begin(), stored.end()), binary);
  json::object meta = json::parse(file_text(dir_ / "enricher-v1.2.3.json")).as_object();
  EXPECT_EQ(text(meta.at("name")), "enricher");
  EXPECT_EQ(text(meta.at("version")), "1.2.3");
  EXPECT_EQ(text(meta.at("sha256")), r.sha256);
  EXPECT_EQ(meta.at("size_bytes").to_number<uint64_t>(), binary.size());
  EXPECT_EQ(meta.at("uploaded_at_ms").to_number<int64_t>(), r.uploaded_at_ms);
  EXPECT_TRUE(meta.contains("exports"));
  EXPECT_TRUE(meta.contains("imports"));
  EXPECT_TRUE(meta.contains("memory"));

  EXPECT_EQ(registry_->find("enricher-v1.2.3"), *added);
  EXPECT_EQ(registry_->list().size(), 1u);
}

TEST_F(ModuleRegistryTest, RefusesTheSameIdTwiceAndKeepsTheFirst) {
  auto first = add("enricher", "1.0.0", 1);
  ASSERT_TRUE(first);
  const std::string before = file_text(dir_ / "enricher-v1.0.0.wasm");
  auto again = registry_->add("enricher", "1.0.0", module_bytes(2));
  ASSERT_FALSE(again.is_ok());
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  EXPECT_NE(again.status().message().find("enricher-v1.0.0"), std::string::npos);
  EXPECT_EQ(file_text(dir_ / "enricher-v1.0.0.wasm"), before);
  EXPECT_EQ(registry_->find("enricher-v1.0.0")->sha256, first->sha256);
}

TEST_F(ModuleRegistryTest, RefusesInvalidNamesAndVersions) {
  for (std::string name : {std::string(), std::string("a/b"), std::string("../x"),
                           std::string("has space"), std::string("é"), std::string(129, 'a')}) {
    auto r = registry_->add(name, "1.0.0", module_bytes());
    ASSERT_FALSE(r.is_ok()) << name;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << name;
    EXPECT_NE(r.status().message().find("module name"), std::string::npos) << r.status().message();
  }
  auto r = registry_->add("good", "1.0", module_bytes());
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("\"1.0\""), std::string::npos) << r.status().message();
  EXPECT_TRUE(files().empty());
  EXPECT_TRUE(registry_->add(std::string(128, 'a'), "1.0.0", module_bytes()).is_ok());
}

TEST_F(ModuleRegistryTest, RefusesModulesThatBreakTheAbiAndWritesNothing) {
  const std::vector<uint8_t> passthrough = read_module("passthrough");
  ASSERT_FALSE(passthrough.empty()) << "test modules were not built";
  struct Case {
    std::string name;
    std::vector<uint8_t> binary;
    std::string problem;
  };
  const std::vector<Case> cases = {
      {"missing-export", read_module("missing_export"), "missing export process_message"},
      {"unsupported-import", read_module("unsupported_import"), "unsupported import env.foo"},
      {"garbage", {'n', 'o', 't', ' ', 'w', 'a', 's', 'm'}, "bad magic"},
      {"truncated",
       std::vector<uint8_t>(passthrough.begin(), passthrough.begin() + passthrough.size() / 2), ""},
      {"empty", {}, ""},
  };
  for (const Case& c : cases) {
    auto r = registry_->add(c.name, "1.0.0", c.binary);
    ASSERT_FALSE(r.is_ok()) << c.name;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidModule) << c.name;
    EXPECT_FALSE(r.status().message().empty()) << c.name;
    EXPECT_NE(r.status().message().find(c.problem), std::string::npos)
        << c.name << ": " << r.status().message();
    EXPECT_FALSE(registry_->find(c.name + "-v1.0.0")) << c.name;
  }
  EXPECT_TRUE(files().empty());
  EXPECT_TRUE(registry_->list().empty());
}

TEST_F(ModuleRegistryTest, RefusesModulesAbove50MiB) {
  std::vector<uint8_t> huge = module_bytes();
  huge.resize((50u << 20) + 1);
  auto r = registry_->add("huge", "1.0.0", std::move(huge));
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kLimitExceeded);
  EXPECT_NE(r.status().message().find("50 MiB"), std::string::npos) << r.status().message();
  EXPECT_TRUE(files().empty());
}

TEST_F(ModuleRegistryTest, AVerifierThatRefusesStopsTheUploadBeforeAnythingIsWritten) {
  const std::vector<uint8_t> binary = module_bytes();
  std::vector<uint8_t> seen;
  auto r = registry_->add("refused", "1.0.0", binary, [&](std::span<const uint8_t> bytes) {
    seen.assign(bytes.begin(), bytes.end());
    EXPECT_TRUE(files().empty()) << "files written before the verifier ran";
    return Status(StatusCode::kInvalidModule, "Compiling function #2 failed");
  });
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidModule);
  EXPECT_EQ(r.status().message(), "Compiling function #2 failed");
  EXPECT_EQ(seen, binary);
  EXPECT_TRUE(files().empty());
  EXPECT_FALSE(registry_->find("refused-v1.0.0"));

  bool called = false;
  auto accepted = registry_->add("accepted", "1.0.0", binary, [&](std::span<const uint8_t>) {
    called = true;
    return Status::ok();
  });
  EXPECT_TRUE(accepted.is_ok());
  EXPECT_TRUE(called);
}

TEST_F(ModuleRegistryTest, RemoveDeletesTheFilesAndReportsUnknownIds) {
  ASSERT_TRUE(add("enricher", "1.0.0"));
  ASSERT_TRUE(add("other", "1.0.0"));
  ASSERT_TRUE(registry_->remove("enricher-v1.0.0").is_ok());
  EXPECT_EQ(files(), (std::vector<std::string>{"other-v1.0.0.json", "other-v1.0.0.wasm"}));
  EXPECT_FALSE(registry_->find("enricher-v1.0.0"));

  Status again = registry_->remove("enricher-v1.0.0");
  EXPECT_EQ(again.code(), StatusCode::kNotFound);
  EXPECT_NE(again.message().find("enricher-v1.0.0"), std::string::npos);
  EXPECT_EQ(registry_->remove("other").code(), StatusCode::kNotFound) << "a bare name is no id";
  EXPECT_TRUE(registry_->find("other-v1.0.0"));
}

// L1: "col" + "1.0.0-v2.0.0" and "col-v1.0.0" + "2.0.0" would both be col-v1.0.0-v2.0.0.
TEST_F(ModuleRegistryTest, RefusesNamesThatMakeAmbiguousIds) {
  ASSERT_TRUE(add("col", "1.0.0-v2.0.0"));
  for (std::string name : {"col-v1.0.0", "a-v1", "x-v0y"}) {
    auto r = registry_->add(name, "2.0.0", module_bytes(2));
    ASSERT_FALSE(r.is_ok()) << name;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << name;
    EXPECT_EQ(r.status().message().rfind("module name \"" + name + "\"", 0), 0u)
        << r.status().message();
    EXPECT_NE(r.status().message().find("\"-v\" followed by a digit"), std::string::npos)
        << r.status().message();
  }
  // "-v" not followed by a digit, or a digit not after "-v", is a plain name.
  EXPECT_TRUE(add("my-validator", "1.0.0"));
  EXPECT_TRUE(add("col-2", "1.0.0"));
  EXPECT_EQ(files().size(), 6u);
}

// L2: the id is a file name; a version of 5000 characters gave "File name too long" with the
// server's path.
TEST_F(ModuleRegistryTest, RefusesVersionsTooLongForAFileName) {
  const std::string longest = "1.0.0-" + std::string(kMaxModuleVersionLength - 6, 'p');
  EXPECT_TRUE(add(std::string(128, 'n'), longest)) << "the longest name and version must fit";
  for (size_t length : {kMaxModuleVersionLength + 1, size_t{5006}}) {
    const std::string version = "1.0.0-" + std::string(length - 6, 'p');
    auto r = registry_->add("m", version, module_bytes(2));
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message(), "version is " + std::to_string(length) +
                                        " characters long; at most " +
                                        std::to_string(kMaxModuleVersionLength) + " are allowed");
    EXPECT_EQ(r.status().message().find(dir_.string()), std::string::npos);
  }
  EXPECT_EQ(files().size(), 2u);
}

// L7: a failed write answered the client with the server's path ("cannot write <dir>/...tmp:
// ..."); the client gets the module and the system's reason, the log keeps the path.
TEST_F(ModuleRegistryTest, AFailedWriteNamesTheModuleNotTheServersPath) {
  fs::create_directories(dir_ / "blocked-v1.0.0.wasm.tmp");  // open(O_WRONLY) fails: a directory
  auto r = registry_->add("blocked", "1.0.0", module_bytes(3));
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::kIo);
  EXPECT_EQ(r.status().message(), "cannot store module blocked-v1.0.0: Is a directory");
  EXPECT_EQ(registry_->find("blocked-v1.0.0"), nullptr);
}

// L3: "." and ".." were stored as "..-v1.0.0.wasm" and "...-v1.0.0.wasm": hidden files.
TEST_F(ModuleRegistryTest, RefusesNamesStartingWithADot) {
  for (std::string name : {".", "..", ".hidden"}) {
    auto r = registry_->add(name, "1.0.0", module_bytes());
    ASSERT_FALSE(r.is_ok()) << name;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << name;
    EXPECT_EQ(r.status().message(), "module name \"" + name + "\" may not start with '.'");
  }
  EXPECT_TRUE(files().empty());
  EXPECT_TRUE(add("a.b.", "1.0.0")) << "a dot elsewhere is fine";
}

// M10: a bare name follows versions of one signing key only.
TEST_F(ModuleRegistryTest, ANameStaysWithTheKeyThatSignedIt) {
  ASSERT_TRUE(registry_->add("s10", "1.0.0", module_bytes(1), {}, "key-a").is_ok());
  auto other = registry_->add("s10", "99.0.0", module_bytes(2), {}, "key-b");
  ASSERT_FALSE(other.is_ok());
  EXPECT_EQ(other.status().code(), StatusCode::kConflict);
  EXPECT_NE(other.status().message().find("module name \"s10\" belongs to signing key key-a"),
            std::string::npos)
      << other.status().message();
  EXPECT_EQ(resolved("s10"), "s10-v1.0.0");
  EXPECT_EQ(files().size(), 2u);
  // The same key may publish newer versions; other names are free.
  EXPECT_TRUE(registry_->add("s10", "1.1.0", module_bytes(3), {}, "key-a").is_ok());
  EXPECT_TRUE(registry_->add("s11", "1.0.0", module_bytes(4), {}, "key-b").is_ok());
  EXPECT_EQ(resolved("s10"), "s10-v1.1.0");
  // The key is kept across a restart.
  registry_ = open(&warnings_);
  ASSERT_TRUE(registry_);
  EXPECT_EQ(registry_->find("s10-v1.1.0")->signed_by, "key-a");
  EXPECT_EQ(registry_->add("s10", "98.0.0", module_bytes(5), {}, "key-b").status().code(),
            StatusCode::kConflict);
  // Once every version of the name is gone, another key may take it.
  ASSERT_TRUE(registry_->remove("s10-v1.0.0").is_ok());
  ASSERT_TRUE(registry_->remove("s10-v1.1.0").is_ok());
  EXPECT_TRUE(registry_->add("s10", "2.0.0", module_bytes(6), {}, "key-b").is_ok());
}

TEST_F(ModuleRegistryTest, AFullIdPinsAndABareNameFollowsTheNewestVersion) {
  ASSERT_TRUE(add("m", "1.9.0"));
  ASSERT_TRUE(add("m", "1.10.0"));
  ASSERT_TRUE(add("m2", "9.0.0"));
  EXPECT_EQ(resolved("m"), "m-v1.10.0") << "1.10.0 is newer than 1.9.0 (not text order)";
  EXPECT_EQ(resolved("m-v1.9.0"), "m-v1.9.0");
  EXPECT_EQ(resolved("m2"), "m2-v9.0.0");
  EXPECT_EQ(resolved("m-v3.0.0"), "(none)");
  EXPECT_EQ(resolved("n"), "(none)");

  ASSERT_TRUE(add("m", "2.0.0-rc.1"));
  EXPECT_EQ(resolved("m"), "m-v2.0.0-rc.1");
  ASSERT_TRUE(add("m", "2.0.0"));
  EXPECT_EQ(resolved("m"), "m-v2.0.0") << "a release is newer than its pre-release";
  ASSERT_TRUE(add("m", "2.0.0-rc.2"));
  EXPECT_EQ(resolved("m"), "m-v2.0.0") << "uploaded later, but older";
  EXPECT_EQ(resolved("m-v2.0.0-rc.1"), "m-v2.0.0-rc.1");
}

TEST_F(ModuleRegistryTest, DeletingTheNewestRollsFollowersBack) {
  ASSERT_TRUE(add("m", "1.0.0"));
  ASSERT_TRUE(add("m", "1.1.0"));
  ASSERT_TRUE(add("m", "2.0.0"));
  EXPECT_EQ(resolved("m"), "m-v2.0.0");
  ASSERT_TRUE(registry_->remove("m-v2.0.0").is_ok());
  EXPECT_EQ(resolved("m"), "m-v1.1.0");
  ASSERT_TRUE(registry_->remove("m-v1.1.0").is_ok());
  EXPECT_EQ(resolved("m"), "m-v1.0.0");
  ASSERT_TRUE(registry_->remove("m-v1.0.0").is_ok());
  EXPECT_EQ(resolved("m"), "(none)");
}

TEST_F(ModuleRegistryTest, ReopeningLoadsEveryModuleWithTheSameMetadata) {
  ASSERT_TRUE(add("a", "1.0.0", 1));
  ASSERT_TRUE(add("a", "1.1.0-beta.2", 2));
  ASSERT_TRUE(add("b", "0.1.0", 3));
  auto before = registry_->list();
  registry_.reset();

  std::vector<std::string> warnings;
  auto reopened = open(&warnings);
  ASSERT_TRUE(reopened);
  EXPECT_TRUE(warnings.empty()) << warnings.front();
  auto after = reopened->list();
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_EQ(module_to_json(*after[i]), module_to_json(*before[i])) << before[i]->id;
    EXPECT_EQ(*after[i]->binary, *before[i]->binary) << before[i]->id;
  }
  EXPECT_EQ(reopened->resolve("a")->id, "a-v1.1.0-beta.2");
}

TEST_F(ModuleRegistryTest, SkipsDamagedModulesAtOpenWithAWarningNamingEach) {
  ASSERT_TRUE(add("good", "1.0.0", 1));
  ASSERT_TRUE(add("no-binary", "1.0.0", 2));
  ASSERT_TRUE(add("tampered", "1.0.0", 3));
  ASSERT_TRUE(add("bad-json", "1.0.0", 4));
  ASSERT_TRUE(add("bad-version", "1.0.0", 5));
  ASSERT_TRUE(add("renamed", "1.0.0", 6));
  registry_.reset();
  fs::remove(dir_ / "no-binary-v1.0.0.wasm");
  {
    std::ofstream out(dir_ / "tampered-v1.0.0.wasm", std::ios::binary | std::ios::app);
    out << '\0';
  }
  write_text(dir_ / "bad-json-v1.0.0.json", "{\"name\": \"bad-json\", ");
  std::string meta = file_text(dir_ / "bad-version-v1.0.0.json");
  meta.replace(meta.find("\"1.0.0\""), 7, "\"1.0\"");
  write_text(dir_ / "bad-version-v1.0.0.json", meta);
  // Metadata under another file name would survive a removal of the module by its id.
  fs::rename(dir_ / "renamed-v1.0.0.json", dir_ / "copy.json");

  std::vector<std::string> warnings;
  auto reopened = open(&warnings);
  ASSERT_TRUE(reopened);
  ASSERT_EQ(reopened->list().size(), 1u);
  EXPECT_EQ(reopened->list()[0]->id, "good-v1.0.0");
  ASSERT_EQ(warnings.size(), 5u);
  std::sort(warnings.begin(), warnings.end());
  EXPECT_NE(warnings[0].find("bad-json-v1.0.0"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[1].find("bad-version-v1.0.0"), std::string::npos) << warnings[1];
  EXPECT_NE(warnings[1].find("\"1.0\""), std::string::npos) << warnings[1];
  EXPECT_NE(warnings[2].find("copy"), std::string::npos) << warnings[2];
  EXPECT_NE(warnings[3].find("no-binary-v1.0.0"), std::string::npos) << warnings[3];
  EXPECT_NE(warnings[4].find("tampered-v1.0.0"), std::string::npos) << warnings[4];
  EXPECT_NE(warnings[4].find("sha256"), std::string::npos) << warnings[4];
}

TEST_F(ModuleRegistryTest, GenerationChangesOnEveryAddAndRemoveOnly) {
  const uint64_t g0 = registry_->generation();
  ASSERT_TRUE(add("m", "1.0.0"));
  const uint64_t g1 = registry_->generation();
  EXPECT_NE(g1, g0);
  EXPECT_FALSE(registry_->add("m", "1.0.0", module_bytes()).is_ok());
  EXPECT_FALSE(registry_->add("bad", "1.0.0", {1, 2, 3}).is_ok());
  EXPECT_EQ(registry_->generation(), g1) << "a refused upload changes nothing";
  ASSERT_TRUE(registry_->remove("m-v1.0.0").is_ok());
  const uint64_t g2 = registry_->generation();
  EXPECT_NE(g2, g1);
  EXPECT_FALSE(registry_->remove("m-v1.0.0").is_ok());
  EXPECT_EQ(registry_->generation(), g2);
}

TEST_F(ModuleRegistryTest, ModuleJsonHasTheDocumentedFields) {
  auto record = add("enricher", "1.2.3-rc.1");
  ASSERT_TRUE(record);
  json::object o = module_to_json(*record);
  EXPECT_EQ(text(o.at("module_id")), "enricher-v1.2.3-rc.1");
  EXPECT_EQ(text(o.at("name")), "enricher");
  EXPECT_EQ(text(o.at("version")), "1.2.3-rc.1");
  EXPECT_EQ(o.at("size_bytes").to_number<uint64_t>(), record->size_bytes);
  EXPECT_EQ(text(o.at("sha256")), record->sha256);
  EXPECT_EQ(o.at("uploaded_at_ms").to_number<int64_t>(), record->uploaded_at_ms);
  EXPECT_TRUE(std::regex_match(std::string(o.at("uploaded_at").as_string()),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")))
      << o.at("uploaded_at");
  std::vector<std::string> exports;
  for (const auto& e : o.at("exports").as_array()) {
    exports.push_back(std::string(e.at("name").as_string()));
    EXPECT_TRUE(e.as_object().contains("kind"));
  }
  EXPECT_EQ(exports, (std::vector<std::string>{"memory", "alloc", "dealloc", "process_message"}));
  EXPECT_EQ(text(o.at("exports").at(3).at("signature")), "(i32, i32) -> i32");
  EXPECT_TRUE(o.at("imports").as_array().empty());
  EXPECT_EQ(o.at("memory").at("initial_pages").to_number<uint64_t>(), 1u);
  EXPECT_EQ(o.at("memory").at("initial_bytes").to_number<uint64_t>(), 65536u);
  EXPECT_EQ(o.at("process_batch"), json::value(false));

  ModuleRecord fixed = *record;
  fixed.uploaded_at_ms = 1763800000123;
  EXPECT_EQ(text(module_to_json(fixed).at("uploaded_at")), "2025-11-22T08:26:40.123Z");
}

TEST_F(ModuleRegistryTest, ModuleJsonListsImportsWithTheirSignatures) {
  auto binary = read_module("wasi_probe");
  ASSERT_FALSE(binary.empty());
  auto added = registry_->add("probe", "1.0.0", binary);
  ASSERT_TRUE(added.is_ok()) << added.status().message();
  json::object o = module_to_json(**added);
  ASSERT_FALSE(o.at("imports").as_array().empty());
  for (const auto& i : o.at("imports").as_array()) {
    EXPECT_EQ(text(i.at("module")), "wasi_snapshot_preview1");
    EXPECT_FALSE(i.at("name").as_string().empty());
    EXPECT_FALSE(i.at("signature").as_string().empty());
  }
}

}  // namespace
}  // namespace wasmq::etl
