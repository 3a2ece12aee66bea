// Module signatures (etl.enable_module_signature_verification): the trusted Ed25519 public keys
// (security.module_signing_keys, PEM "PUBLIC KEY" files) and the check of an upload's
// `X-Module-Signature`: the standard base64 (RFC 4648, padded) of a 64-byte Ed25519 signature
// over the exact bytes of the .wasm file (pure Ed25519, no pre-hashing, no context). Sign with
// `openssl pkeyutl -sign -rawin -inkey team.key -in module.wasm | base64 -w0`.
//
// Threads: immutable once loaded; verify() may be called from any number of threads at once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace wasmq::etl {

// The outcome of checking one upload's signature.
struct SignatureCheck {
  enum class Kind {
    kTrusted,    // verifies with one of the keys; `key` names it
    kMissing,    // no signature was sent
    kMalformed,  // not base64, or not 64 bytes once decoded
    kUntrusted,  // well-formed, but verifies with none of the keys (tampered, or another key)
  };
  Kind kind = Kind::kMissing;
  std::string key;      // the file of the key that verified, when kTrusted
  std::string message;  // what is wrong, when not kTrusted
};

class ModuleSigners {
 public:
  // Reads every file as a PEM public key. kIo naming the file when it cannot be read;
  // kInvalidArgument naming it when it is not a PEM public key or not an Ed25519 one; and when
  // `files` is empty (nothing could ever verify).
  static Result<ModuleSigners> load(const std::vector<std::filesystem::path>& files);

  ModuleSigners(ModuleSigners&&) noexcept;
  ModuleSigners& operator=(ModuleSigners&&) noexcept;
  ~ModuleSigners();

  // Checks `signature_base64` (the header's value, empty when absent) against `module`.
  SignatureCheck verify(std::span<const uint8_t> module, std::string_view signature_base64) const;

  size_t size() const { return keys_.size(); }

 private:
  struct Key;
  ModuleSigners();
  std::vector<std::unique_ptr<Key>> keys_;
};

}  // namespace wasmq::etl
