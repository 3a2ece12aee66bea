// Trusted module signing keys: loading them, and the verdict on an upload's signature, which
// covers the module's name, version and bytes together.
#include "etl/module_signature.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/base64.h"
#include "ed25519_keys.h"
#include "etl/module_registry.h"
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

  // The X-Module-Signature `key` makes for module_ as name@version.
  std::string sign(const Ed25519Key& key, const std::string& name = "m",
                   const std::string& version = "1.0.0") const {
    std::string message = module_signing_message(name, version, sha256_hex(module_));
    return key.sign_base64(std::vector<uint8_t>(message.begin(), message.end()));
  }
  SignatureCheck verify(const ModuleSigners& signers, std::span<const uint8_t> module,
                        const std::string& signature) const {
    return signers.verify("m", "1.0.0", module, signature);
  }

  fs::path dir_;
  const std::vector<uint8_t> module_ = {0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00};
};

TEST_F(ModuleSignatureTest, SignatureByATrustedKeyVerifiesAndNamesTheKey) {
  Ed25519Key team, ci;
  fs::path team_file = write("team.pub.pem", team.public_pem());
  ModuleSigners trusted = signers({write("ci.pub.pem", ci.public_pem()), team_file});
  SignatureCheck check = verify(trusted, module_, sign(team));
  EXPECT_EQ(check.kind, Kind::kTrusted) << check.message;
  EXPECT_EQ(check.key, team_file.string());
  EXPECT_EQ(check.key_id.rfind("ed25519:", 0), 0u) << check.key_id;
  EXPECT_EQ(check.key_id.size(), 8u + 16u);
  EXPECT_NE(check.key_id,
            verify(signers({write("ci2.pub.pem", ci.public_pem())}), module_, sign(ci)).key_id)
      << "each key has its own id";
}

TEST_F(ModuleSignatureTest, SignatureByAnUntrustedKeyIsRefused) {
  Ed25519Key team, stranger;
  ModuleSigners trusted = signers({write("team.pub.pem", team.public_pem())});
  SignatureCheck check = verify(trusted, module_, sign(stranger));
  EXPECT_EQ(check.kind, Kind::kUntrusted);
  EXPECT_NE(check.message.find("does not verify with any trusted key"), std::string::npos);
}

TEST_F(ModuleSignatureTest, ModuleChangedAfterSigningIsRefused) {
  Ed25519Key team;
  ModuleSigners trusted = signers({write("team.pub.pem", team.public_pem())});
  std::string signature = sign(team);
  std::vector<uint8_t> changed = module_;
  changed.back() ^= 1;
  EXPECT_EQ(verify(trusted, changed, signature).kind, Kind::kUntrusted);
  changed = module_;
  changed.push_back(0);
  EXPECT_EQ(verify(trusted, changed, signature).kind, Kind::kUntrusted);
}

// M10: a signature over the bytes alone let any signed module be uploaded as any name@version,
// and a pipeline following the bare name switched to it.
TEST_F(ModuleSignatureTest, ASignatureIsBoundToTheNameAndVersionItWasMadeFor) {
  Ed25519Key team;
  ModuleSigners trusted = signers({write("team.pub.pem", team.public_pem())});
  const std::string signature = sign(team, "trap", "1.0.0");
  EXPECT_EQ(trusted.verify("trap", "1.0.0", module_, signature).kind, Kind::kTrusted);
  SignatureCheck renamed = trusted.verify("s10", "1.0.0", module_, signature);
  EXPECT_EQ(renamed.kind, Kind::kUntrusted);
  EXPECT_NE(renamed.message.find("for module \"s10\" version \"1.0.0\""), std::string::npos)
      << renamed.message;
  EXPECT_EQ(trusted.verify("trap", "99.0.0", module_, signature).kind, Kind::kUntrusted);
  // A signature over the bytes alone (the old format) no longer verifies.
  EXPECT_EQ(trusted.verify("trap", "1.0.0", module_, team.sign_base64(module_)).kind,
            Kind::kUntrusted);
  // Fields cannot slide into each other: name "a\nb" cannot pass (names have no newline) and
  // the version ends at a newline too.
  EXPECT_EQ(module_signing_message("n", "1.0.0", "ab"), "wasmq-module-v1\nn\n1.0.0\nab");
}

TEST_F(ModuleSignatureTest, SignModuleMakesWhatVerifyAccepts) {
  Ed25519Key team;
  ModuleSigners trusted = signers({write("team.pub.pem", team.public_pem())});
  auto signature = sign_module(team.private_pem(), "m", "1.0.0", module_);
  ASSERT_TRUE(signature.is_ok()) << signature.status().message();
  EXPECT_EQ(verify(trusted, module_, *signature).kind, Kind::kTrusted);
  auto not_a_key = sign_module(team.public_pem(), "m", "1.0.0", module_);
  ASSERT_FALSE(not_a_key.is_ok());
  EXPECT_EQ(not_a_key.status().message(),
            "the signing key is not an Ed25519 private key (PKCS#8 PEM)");
}

TEST_F(ModuleSignatureTest, MissingAndMalformedSignaturesSayWhatIsWrong) {
  Ed25519Key team;
  ModuleSigners trusted = signers({write("team.pub.pem", team.public_pem())});
  SignatureCheck missing = verify(trusted, module_, "");
  EXPECT_EQ(missing.kind, Kind::kMissing);
  EXPECT_NE(missing.message.find("module signature required: X-Module-Signature is missing"),
            std::string::npos);
  SignatureCheck not_base64 = verify(trusted, module_, "not base64!");
  EXPECT_EQ(not_base64.kind, Kind::kMalformed);
  EXPECT_NE(not_base64.message.find("not valid base64"), std::string::npos);
  SignatureCheck short_one = verify(trusted, module_, base64_encode(std::string(32, 'x')));
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

// The documented recipe (module_signature.h, docs/etl.md) with the openssl command line.
TEST_F(ModuleSignatureTest, VerifiesASignatureMadeWithTheOpensslCommand) {
  Ed25519Key team;
  fs::path key = write("team.key", team.private_pem());
  fs::path module = dir_ / "module.wasm";
  std::ofstream(module, std::ios::binary)
      .write(reinterpret_cast<const char*>(module_.data()),
             static_cast<std::streamsize>(module_.size()));
  fs::path signature = dir_ / "module.sig.b64";
  std::string command = "printf 'wasmq-module-v1\\n%s\\n%s\\n%s' m 1.0.0 \"$(sha256sum " +
                        module.string() + " | cut -d' ' -f1)\" > " + (dir_ / "message").string() +
                        " && openssl pkeyutl -sign -rawin -inkey " + key.string() + " -in " +
                        (dir_ / "message").string() + " | base64 -w0 > " + signature.string();
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  std::ifstream in(signature);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  ModuleSigners trusted = signers({write("team.pub.pem", team.public_pem())});
  EXPECT_EQ(verify(trusted, module_, text).kind, Kind::kTrusted) << text;
}

}  // namespace
}  // namespace wasmq::etl
