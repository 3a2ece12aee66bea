// `wasmq module init`'s parts: where the SDK is looked for (WASMQ_SDK, an installation, a
// checkout; in that order), which project names are accepted, and the files a project gets.
#include "cli/module_author.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace wasmq::cli {
namespace {

namespace fs = std::filesystem;

class FindSdk : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/wasmq-find-sdk-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    root_ = pattern;
    fs::create_directories(root_ / "prefix" / "bin");
  }
  void TearDown() override { fs::remove_all(root_); }

  // An SDK root at `dir` with the C SDK, and the Rust one when `rust`.
  static void make_sdk(const fs::path& dir, bool rust) {
    fs::create_directories(dir / "c");
    std::ofstream(dir / "c" / "wasmq_module.h") << "/* */";
    if (rust) {
      fs::create_directories(dir / "rust");
      std::ofstream(dir / "rust" / "Cargo.toml") << "[package]";
    }
  }
  fs::path exe() const { return root_ / "prefix" / "bin" / "wasmq"; }

  fs::path root_;
};

TEST_F(FindSdk, PrefersWasmqSdkThenTheInstallationThenTheCheckout) {
  make_sdk(root_ / "prefix" / "sdk", true);  // a checkout: <bin>/../sdk
  auto found = find_sdk(ModuleLanguage::kC, nullptr, exe());
  ASSERT_TRUE(found.is_ok()) << found.status().message();
  EXPECT_EQ(*found, root_ / "prefix" / "sdk");

  make_sdk(root_ / "prefix" / "share" / "wasmq" / "sdk", false);  // installed, C only
  found = find_sdk(ModuleLanguage::kC, "", exe());
  ASSERT_TRUE(found.is_ok());
  EXPECT_EQ(*found, root_ / "prefix" / "share" / "wasmq" / "sdk");
  // The installation has no Rust SDK: the checkout's is found.
  found = find_sdk(ModuleLanguage::kRust, nullptr, exe());
  ASSERT_TRUE(found.is_ok());
  EXPECT_EQ(*found, root_ / "prefix" / "sdk");

  make_sdk(root_ / "elsewhere", true);
  const std::string relative = fs::relative(root_ / "elsewhere", fs::current_path()).string();
  found = find_sdk(ModuleLanguage::kRust, relative.c_str(), exe());
  ASSERT_TRUE(found.is_ok());
  EXPECT_EQ(*found, root_ / "elsewhere") << "absolute, normal";
}

TEST_F(FindSdk, NamesEveryPlaceLookedAt) {
  auto found = find_sdk(ModuleLanguage::kRust, nullptr, exe());
  ASSERT_FALSE(found.is_ok());
  const std::string& m = found.status().message();
  EXPECT_NE(m.find("cannot find the Rust SDK (rust/Cargo.toml): not in " +
                   (root_ / "prefix" / "share" / "wasmq" / "sdk").string() + ", " +
                   (root_ / "prefix" / "sdk").string()),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("set WASMQ_SDK"), std::string::npos) << m;

  // WASMQ_SDK set: only there, even when another place has it.
  make_sdk(root_ / "prefix" / "sdk", true);
  found = find_sdk(ModuleLanguage::kC, (root_ / "nothing").c_str(), exe());
  ASSERT_FALSE(found.is_ok());
  EXPECT_NE(found.status().message().find("WASMQ_SDK is " + (root_ / "nothing").string() +
                                          ", which does not hold the C SDK (c/wasmq_module.h)"),
            std::string::npos)
      << found.status().message();
}

TEST(ProjectName, AcceptsModuleNamesThatAreAlsoCrateAndFileNames) {
  for (const char* ok : {"celsius", "my-module", "my_module2", "A"}) {
    EXPECT_TRUE(validate_project_name(ok).is_ok()) << ok;
  }
  EXPECT_TRUE(validate_project_name(std::string(64, 'a')).is_ok());
  for (const char* bad : {"", "1abc", "-x", "_x", "a.b", "a b", "a/b", "col-v1", "test", "std",
                          "proc-macro", "wasmq-module", ".hidden"}) {
    Status s = validate_project_name(bad);
    EXPECT_FALSE(s.is_ok()) << bad;
    EXPECT_EQ(s.message().rfind("module name", 0), 0u) << s.message();
  }
  EXPECT_FALSE(validate_project_name(std::string(65, 'a')).is_ok());
}

TEST(ProjectFiles, UseTheSdkByAbsolutePathAndLeaveNoPlaceholder) {
  for (ModuleLanguage language : {ModuleLanguage::kRust, ModuleLanguage::kC}) {
    const auto files = project_files({"celsius", language, "/opt/wasm q/share/wasmq/sdk"});
    std::string names;
    bool sdk_named = false;
    for (const ProjectFile& f : files) {
      names += f.path + " ";
      for (const char* placeholder :
           {"@NAME@", "@TOPIC@", "@SDK_C@", "@SDK_RUST@", "@SDK_RUST_TOML@", "@LANGUAGE@",
            "@SOURCE@", "@WASM@", "@TOOLCHAIN@"}) {
        EXPECT_EQ(f.text.find(placeholder), std::string::npos) << f.path << ": " << placeholder;
      }
      sdk_named |= f.text.find("/opt/wasm q/share/wasmq/sdk/") != std::string::npos;
    }
    EXPECT_TRUE(sdk_named);
    if (language == ModuleLanguage::kRust) {
      EXPECT_EQ(names,
                "Cargo.toml .cargo/config.toml src/lib.rs .gitignore README.md "
                "sample.ndjson pipeline.json ");
      EXPECT_NE(
          files[0].text.find(R"(wasmq-module = { path = "/opt/wasm q/share/wasmq/sdk/rust" })"),
          std::string::npos)
          << files[0].text;
      EXPECT_NE(files[1].text.find(R"(directory = "/usr/share/cargo/registry")"),
                std::string::npos);
    } else {
      EXPECT_EQ(names, "Makefile celsius.c .gitignore README.md sample.ndjson pipeline.json ");
      EXPECT_NE(files[0].text.find("MODULE := celsius\n"), std::string::npos);
    }
    EXPECT_NE(files.back().text.find(R"("pattern": "celsius-events")"), std::string::npos);
  }
}

}  // namespace
}  // namespace wasmq::cli
