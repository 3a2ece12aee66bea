// Module signatures (etl.enable_module_signature_verification): the trusted Ed25519 public keys
// (security.module_signing_keys, PEM "PUBLIC KEY" files) and the check of an upload's
// `X-Module-Signature`: the standard base64 (RFC 4648, padded) of a 64-byte Ed25519 signature
// (pure Ed25519, no pre-hashing, no context) over the signed message of the upload:
//
//   wasmq-module-v1\n<name>\n<version>\n<sha256 of the .wasm, 64 lower-case hex digits>
//
// (no trailing newline). Name, version and bytes are bound together: a signature made for one
// module cannot carry another name or version. Sign with `wasmq module sign`, or with
//   printf 'wasmq-module-v1\n%s\n%s\n%s' NAME VERSION "$(sha256sum m.wasm | cut -d' ' -f1)" >msg
//   openssl pkeyutl -sign -rawin -inkey team.key -in msg | base64 -w0
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

// The message a module's signature covers (see above).
std::string module_signing_message(std::string_view name, std::string_view version,
                                   std::string_view sha256_hex);

// Signs `binary` as module `name` at `version` with the Ed25519 private key `private_key_pem`
// (PKCS#8 PEM): the X-Module-Signature value. kInvalidArgument when the key is not an Ed25519
// private key.
Result<std::string> sign_module(std::string_view private_key_pem, std::string_view name,
                                std::string_view version, std::span<const uint8_t> binary);

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
  std::string key_id;   // its id (ModuleSigners::key_id), when kTrusted
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

  // Checks `signature_base64` (the header's value, empty when absent) against the upload of
  // `module` as `name` at `version`.
  SignatureCheck verify(std::string_view name, std::string_view version,
                        std::span<const uint8_t> module, std::string_view signature_base64) const;

  // A key's id, shown to clients and kept with the modules it signed: "ed25519:" and the first
  // 16 hex digits of the SHA-256 of its 32 raw public bytes (no server path in it).
  static std::string key_id(std::span<const uint8_t> raw_public_key);

  size_t size() const { return keys_.size(); }

 private:
  struct Key;
  ModuleSigners();
  std::vector<std::unique_ptr<Key>> keys_;
};

}  // namespace wasmq::etl
