#include "etl/module_signature.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "common/base64.h"
#include "common/file.h"
#include "etl/module_registry.h"

namespace wasmq::etl {
namespace {

constexpr size_t kSignatureBytes = 64;
constexpr uint64_t kMaxKeyFileBytes = 64 << 10;

struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

}  // namespace

struct ModuleSigners::Key {
  std::string file;
  std::string id;
  std::unique_ptr<EVP_PKEY, PkeyFree> key;
};

std::string module_signing_message(std::string_view name, std::string_view version,
                                   std::string_view sha256_hex) {
  std::string message = "wasmq-module-v1\n";
  message.append(name).append("\n").append(version).append("\n").append(sha256_hex);
  return message;
}

Result<std::string> sign_module(std::string_view private_key_pem, std::string_view name,
                                std::string_view version, std::span<const uint8_t> binary) {
  std::unique_ptr<BIO, BioFree> bio(
      BIO_new_mem_buf(private_key_pem.data(), static_cast<int>(private_key_pem.size())));
  ERR_clear_error();
  std::unique_ptr<EVP_PKEY, PkeyFree> key(
      bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  ERR_clear_error();
  if (!key || EVP_PKEY_id(key.get()) != EVP_PKEY_ED25519) {
    return invalid_argument("the signing key is not an Ed25519 private key (PKCS#8 PEM)");
  }
  const std::string message = module_signing_message(name, version, sha256_hex(binary));
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  std::string signature(kSignatureBytes, '\0');
  size_t size = signature.size();
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &size,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1) {
    ERR_clear_error();
    return Status(StatusCode::kInternal, "Ed25519 signing failed");
  }
  return base64_encode(signature);
}

std::string ModuleSigners::key_id(std::span<const uint8_t> raw_public_key) {
  return "ed25519:" + sha256_hex(raw_public_key).substr(0, 16);
}

ModuleSigners::ModuleSigners() = default;
ModuleSigners::ModuleSigners(ModuleSigners&&) noexcept = default;
ModuleSigners& ModuleSigners::operator=(ModuleSigners&&) noexcept = default;
ModuleSigners::~ModuleSigners() = default;

Result<ModuleSigners> ModuleSigners::load(const std::vector<std::filesystem::path>& files) {
  if (files.empty()) {
    return invalid_argument(
        "security.module_signing_keys: no key; with etl.enable_module_signature_verification = "
        "true every upload would be refused");
  }
  ModuleSigners signers;
  for (const auto& file : files) {
    const std::string name = file.string();
    auto text = read_file(file, kMaxKeyFileBytes);
    if (!text.is_ok()) return text.status().with_context("security.module_signing_keys");
    std::unique_ptr<BIO, BioFree> bio(
        BIO_new_mem_buf(text->data(), static_cast<int>(text->size())));
    ERR_clear_error();
    std::unique_ptr<EVP_PKEY, PkeyFree> key(
        bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr);
    ERR_clear_error();
    if (!key) {
      return invalid_argument("security.module_signing_keys: " + name +
                              " is not a PEM public key (\"-----BEGIN PUBLIC KEY-----\")");
    }
    if (EVP_PKEY_id(key.get()) != EVP_PKEY_ED25519) {
      return invalid_argument("security.module_signing_keys: " + name +
                              " is not an Ed25519 public key");
    }
    uint8_t raw[32];
    size_t raw_size = sizeof raw;
    if (EVP_PKEY_get_raw_public_key(key.get(), raw, &raw_size) != 1 || raw_size != sizeof raw) {
      ERR_clear_error();
      return invalid_argument("security.module_signing_keys: " + name +
                              " is not an Ed25519 public key");
    }
    signers.keys_.push_back(std::make_unique<Key>(
        Key{name, key_id(std::span<const uint8_t>(raw, raw_size)), std::move(key)}));
  }
  return signers;
}

SignatureCheck ModuleSigners::verify(std::string_view name, std::string_view version,
                                     std::span<const uint8_t> module,
                                     std::string_view signature_base64) const {
  using Kind = SignatureCheck::Kind;
  if (signature_base64.empty()) {
    return {Kind::kMissing, "", "",
            "module signature required: X-Module-Signature is missing (base64 Ed25519 signature "
            "over \"wasmq-module-v1\\n<name>\\n<version>\\n<sha256>\", see wasmq module sign)"};
  }
  auto signature = base64_decode(signature_base64);
  if (!signature) {
    return {Kind::kMalformed, "", "", "X-Module-Signature is not valid base64 (RFC 4648, padded)"};
  }
  if (signature->size() != kSignatureBytes) {
    return {Kind::kMalformed, "", "",
            "X-Module-Signature decodes to " + std::to_string(signature->size()) +
                " bytes; an Ed25519 signature has 64"};
  }
  const std::string message = module_signing_message(name, version, sha256_hex(module));
  for (const auto& key : keys_) {
    std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key->key.get()) != 1) {
      ERR_clear_error();
      continue;
    }
    int verified = EVP_DigestVerify(
        ctx.get(), reinterpret_cast<const unsigned char*>(signature->data()), signature->size(),
        reinterpret_cast<const unsigned char*>(message.data()), message.size());
    ERR_clear_error();
    if (verified == 1) return {Kind::kTrusted, key->file, key->id, ""};
  }
  return {Kind::kUntrusted, "", "",
          "X-Module-Signature does not verify with any trusted key "
          "(security.module_signing_keys) for module \"" +
              std::string(name) + "\" version \"" + std::string(version) +
              "\": it was signed with another key, for another name or version, or the module "
              "changed after signing"};
}

}  // namespace wasmq::etl
