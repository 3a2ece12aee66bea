// Trusted module signing keys: loading them, and the verdict on an upload's signature.
#include "etl/module_signature.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/base64.h"
#include "ed25519_keys.h"
#include "temp_dir.h"

namespace wasmq::etl {
namespace {

namespace fs = std::filesystem;
using Kind = SignatureCheck::Kind;
using testing::Ed25519Key;

class ModuleSignatureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::test_temp_dir("wasmq-signature");
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& name, const std::string& text) {
    fs::path path = dir_ / name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  ModuleSigners signers(const std::vector<fs::path>& files) {
    auto loaded = ModuleSigners::load(files);
    EXPECT_TRUE(loaded.is_ok()) << loaded.status().message();
    return std::move(loaded).value();
  }

  std::string load_error(const std::vector<fs::path>& files) {
    auto loaded = ModuleSigners::load(files);
    EXPECT_FALSE(loaded.is_ok());
    return loaded.is_ok() ? "" : loaded.status().message();
  }

  fs::path dir_;
  const std::vector<uint8_t> module_ = {0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00};
};

TEST_F(ModuleSignatureTest, SignatureByATrustedKeyVerifiesAndNamesTheKey) {
  Ed25519Key team, ci;
  fs::path team_file = write("team.pub.pem", team.public_pem());
  ModuleSigners trusted = signers({write("ci.pub.pem", ci.public_pem()), team_file});
  SignatureCheck check = trusted.verify(module_, team.sign_base64(module_));
  EXPECT_EQ(check.kind, Kind::kTrusted) << check.message;
  EXPECT_EQ(check.key, team_file.string());
}

TEST_F(ModuleSignatureTest, SignatureByAnUntrustedKeyIsRefused) {
  Ed25519Key team, stranger;
  ModuleSigners trusted = signers({write("team.pub.pem", team.public_pem())});
  SignatureCheck check = trusted.verify(module_, stranger.sign_base64(module_));
  EXPECT_EQ(check.kind, Kind::kUntrusted);
  EXPECT_NE(check.message.find("does not verify with any trusted key"), std::string::npos);
}

TEST_F(ModuleSignatureTest, ModuleChangedAfterSigningIsRefused) {
  Ed25519Key team;
  ModuleSigners trusted = signers({write("team.pub.pem", team.public_pem())});
  std::string signature = team.sign_base64(module_);
  std::vector<uint8_t> changed = module_;
  changed.back() ^= 1;
  EXPECT_EQ(trusted.verify(changed, signature).kind, Kind::kUntrusted);
  changed = module_;
  changed.push_back(0);
  EXPECT_EQ(trusted.verify(changed, signature).kind, Kind::kUntrusted);
}

TEST_F(ModuleSignatureTest, MissingAndMalformedSignaturesSayWhatIsWrong) {
  Ed25519Key team;
  ModuleSigners trusted = signers({write("team.pub.pem", team.public_pem())});
  SignatureCheck missing = trusted.verify(module_, "");
  EXPECT_EQ(missing.kind, Kind::kMissing);
  EXPECT_NE(missing.message.find("module signature required: X-Module-Signature is missing"),
            std::string::npos);
  SignatureCheck not_base64 = trusted.verify(module_, "not base64!");
  EXPECT_EQ(not_base64.kind, Kind::kMalformed);
  EXPECT_NE(not_base64.message.find("not valid base64"), std::string::npos);
  SignatureCheck short_one = trusted.verify(module_, base64_encode(std::string(32, 'x')));
  EXPECT_EQ(short_one.kind, Kind::kMalformed);
  EXPECT_EQ(short_one.message,
            "X-Module-Signature decodes to 32 bytes; an Ed25519 signature has 64");
}

TEST_F(ModuleSignatureTest, LoadRefusesFilesThatAreNotEd25519PublicKeys) {
  Ed25519Key team;
  EXPECT_NE(load_error({write("junk.pem", "hello\n")}).find("junk.pem is not a PEM public key"),
            std::string::npos);
  // A private key where the public one belongs.
  EXPECT_NE(load_error({write("team.key", team.private_pem())}).find("is not a PEM public key"),
            std::string::npos);
  std::string rsa = (dir_ / "rsa.pub.pem").string();
  std::string command =
      "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 2>/dev/null"
      " | openssl pkey -pubout -out " +
      rsa + " 2>/dev/null";
  ASSERT_EQ(std::system(command.c_str()), 0);
  EXPECT_NE(load_error({rsa}).find("rsa.pub.pem is not an Ed25519 public key"), std::string::npos);
  EXPECT_NE(load_error({dir_ / "missing.pem"}).find("missing.pem"), std::string::npos);
  EXPECT_NE(load_error({}).find("security.module_signing_keys: no key"), std::string::npos);
}

TEST_F(ModuleSignatureTest, VerifiesASignatureMadeWithTheOpensslCommand) {
  Ed25519Key team;
  fs::path key = write("team.key", team.private_pem());
  fs::path module = dir_ / "module.wasm";
  std::ofstream(module, std::ios::binary)
      .write(reinterpret_cast<const char*>(module_.data()),
             static_cast<std::streamsize>(module_.size()));
  fs::path signature = dir_ / "module.sig.b64";
  std::string command = "openssl pkeyutl -sign -rawin -inkey " + key.string() + " -in " +
                        module.string() + " | base64 -w0 > " + signature.string();
  ASSERT_EQ(std::system(command.c_str()), 0);
  std::ifstream in(signature);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  ModuleSigners trusted = signers({write("team.pub.pem", team.public_pem())});
  EXPECT_EQ(trusted.verify(module_, text).kind, Kind::kTrusted) << text;
}

}  // namespace
}  // namespace wasmq::etl
