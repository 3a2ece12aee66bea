#include "etl/module_signature.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "common/base64.h"
#include "common/file.h"

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
  std::unique_ptr<EVP_PKEY, PkeyFree> key;
};

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
    signers.keys_.push_back(std::make_unique<Key>(Key{name, std::move(key)}));
  }
  return signers;
}

SignatureCheck ModuleSigners::verify(std::span<const uint8_t> module,
                                     std::string_view signature_base64) const {
  using Kind = SignatureCheck::Kind;
  if (signature_base64.empty()) {
    return {Kind::kMissing, "",
            "module signature required: X-Module-Signature is missing (base64 Ed25519 signature "
            "over the module's bytes)"};
  }
  auto signature = base64_decode(signature_base64);
  if (!signature) {
    return {Kind::kMalformed, "", "X-Module-Signature is not valid base64 (RFC 4648, padded)"};
  }
  if (signature->size() != kSignatureBytes) {
    return {Kind::kMalformed, "",
            "X-Module-Signature decodes to " + std::to_string(signature->size()) +
                " bytes; an Ed25519 signature has 64"};
  }
  for (const auto& key : keys_) {
    std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key->key.get()) != 1) {
      ERR_clear_error();
      continue;
    }
    int verified =
        EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature->data()),
                         signature->size(), module.data(), module.size());
    ERR_clear_error();
    if (verified == 1) return {Kind::kTrusted, key->file, ""};
  }
  return {Kind::kUntrusted, "",
          "X-Module-Signature does not verify with any trusted key "
          "(security.module_signing_keys): the module was signed with another key or changed "
          "after signing"};
}

}  // namespace wasmq::etl
