// Ed25519 key pairs made in tests with OpenSSL: the public key as PEM (what
// security.module_signing_keys points at) and signatures over module bytes.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/base64.h"
#include "etl/module_registry.h"
#include "etl/module_signature.h"

namespace wasmq::testing {

class Ed25519Key {
 public:
  Ed25519Key() {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr);
    EVP_PKEY* key = nullptr;
    if (!ctx || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_keygen(ctx, &key) != 1) {
      EVP_PKEY_CTX_free(ctx);
      throw std::runtime_error("Ed25519 key generation failed");
    }
    EVP_PKEY_CTX_free(ctx);
    key_.reset(key);
  }

  // The public key, "-----BEGIN PUBLIC KEY-----" PEM.
  std::string public_pem() const {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, key_.get());
    char* data = nullptr;
    long size = BIO_get_mem_data(bio, &data);
    std::string pem(data, static_cast<size_t>(size));
    BIO_free(bio);
    return pem;
  }

  // The private key, PKCS#8 PEM (what `openssl pkeyutl -sign -inkey` reads).
  std::string private_pem() const {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, key_.get(), nullptr, nullptr, 0, nullptr, nullptr);
    char* data = nullptr;
    long size = BIO_get_mem_data(bio, &data);
    std::string pem(data, static_cast<size_t>(size));
    BIO_free(bio);
    return pem;
  }

  // The 64-byte signature over `bytes`.
  std::string sign(const std::vector<uint8_t>& bytes) const {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    std::string signature(64, '\0');
    size_t size = signature.size();
    if (EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, key_.get()) != 1 ||
        EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(signature.data()), &size, bytes.data(),
                       bytes.size()) != 1) {
      EVP_MD_CTX_free(ctx);
      throw std::runtime_error("Ed25519 signing failed");
    }
    EVP_MD_CTX_free(ctx);
    return signature;
  }

  // The base64 of the signature over `bytes` as they are.
  std::string sign_base64(const std::vector<uint8_t>& bytes) const {
    return base64_encode(sign(bytes));
  }

  // The X-Module-Signature value for uploading `module` as `name` at `version`.
  std::string sign_module(const std::string& name, const std::string& version,
                          const std::vector<uint8_t>& module) const {
    std::string message = etl::module_signing_message(name, version, etl::sha256_hex(module));
    return sign_base64(std::vector<uint8_t>(message.begin(), message.end()));
  }

 private:
  struct Free {
    void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
  };
  std::unique_ptr<EVP_PKEY, Free> key_;
};

}  // namespace wasmq::testing
