// TLS contexts for the listeners and the client, on OpenSSL 3 through Boost.Asio: TLS 1.2 or
// newer, no compression, no renegotiation.
//
// Threads: build a context on one thread; once built it is shared read-only by every
// connection (OpenSSL's SSL_CTX is safe for that).
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <filesystem>
#include <memory>
#include <string>

#include "common/status.h"

namespace wasmq::http {

// A server context with the certificate chain `cert_file` and its private key `key_file`
// (PEM). kIo naming the file when one cannot be read; kInvalidArgument naming both when they
// are not PEM, the key is encrypted, or the key does not belong to the certificate.
Result<std::shared_ptr<boost::asio::ssl::context>> server_tls_context(
    const std::filesystem::path& cert_file, const std::filesystem::path& key_file);

// A client context that verifies the server's certificate against `ca_file` (PEM, one or more
// certificates), or against the system's trusted certificates when `ca_file` is empty.
// kIo / kInvalidArgument naming the file when it cannot be read or holds no certificate.
Result<std::shared_ptr<boost::asio::ssl::context>> client_tls_context(const std::string& ca_file);

}  // namespace wasmq::http
