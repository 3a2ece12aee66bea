#include "http/tls.h"

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/ssl/error.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>

namespace wasmq::http {
namespace {

namespace ssl = boost::asio::ssl;

// The reason for a failure: `ec` when Asio took OpenSSL's error into it, else OpenSSL's queue.
// Clears the queue.
std::string openssl_reason(const boost::system::error_code& ec) {
  std::string reason = ec ? ec.message() : "";
  if (reason.empty()) {
    const char* text = ERR_reason_error_string(ERR_peek_last_error());
    reason = text ? text : "unknown OpenSSL error";
  }
  ERR_clear_error();
  return reason;
}

Status check_readable(const std::filesystem::path& path, std::string_view key) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return Status(StatusCode::kIo,
                  fmt::format("{}: cannot open {}: {}", key, path.string(), std::strerror(errno)));
  }
  return Status::ok();
}

void harden(ssl::context& context) {
  context.set_options(ssl::context::default_workarounds | ssl::context::no_compression |
                      ssl::context::single_dh_use);
  SSL_CTX_set_options(context.native_handle(), SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_min_proto_version(context.native_handle(), TLS1_2_VERSION);
}

}  // namespace

Result<std::shared_ptr<ssl::context>> server_tls_context(const std::filesystem::path& cert_file,
                                                         const std::filesystem::path& key_file) {
  if (Status s = check_readable(cert_file, "security.tls_cert"); !s.is_ok()) return s;
  if (Status s = check_readable(key_file, "security.tls_key"); !s.is_ok()) return s;
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  harden(*context);
  // An encrypted key would otherwise make OpenSSL ask for a passphrase on the terminal.
  context->set_password_callback(
      [](std::size_t, ssl::context::password_purpose) { return std::string(); });
  boost::system::error_code ec;
  ERR_clear_error();
  if (context->use_certificate_chain_file(cert_file.string(), ec)) {
    return invalid_argument(fmt::format("security.tls_cert: {} is not a PEM certificate: {}",
                                        cert_file.string(), openssl_reason(ec)));
  }
  if (context->use_private_key_file(key_file.string(), ssl::context::pem, ec)) {
    // OpenSSL checks the key against the certificate as it loads it; Asio has taken the error
    // off OpenSSL's queue into `ec`.
    if (ec.category() == boost::asio::error::get_ssl_category() &&
        ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH) {
      ERR_clear_error();
      return invalid_argument(
          fmt::format("security.tls_key: {} is not the private key of the certificate in {}",
                      key_file.string(), cert_file.string()));
    }
    return invalid_argument(
        fmt::format("security.tls_key: {} is not an unencrypted PEM private key: {}",
                    key_file.string(), openssl_reason(ec)));
  }
  if (SSL_CTX_check_private_key(context->native_handle()) != 1) {
    return invalid_argument(
        fmt::format("security.tls_key: {} is not the private key of the certificate in {}: {}",
                    key_file.string(), cert_file.string(), openssl_reason({})));
  }
  return context;
}

Result<std::shared_ptr<ssl::context>> client_tls_context(const std::string& ca_file) {
  auto context = std::make_shared<ssl::context>(ssl::context::tls_client);
  harden(*context);
  context->set_verify_mode(ssl::verify_peer);
  boost::system::error_code ec;
  ERR_clear_error();
  if (ca_file.empty()) {
    context->set_default_verify_paths(ec);
    if (ec) {
      return invalid_argument("cannot load the system's trusted certificates: " +
                              openssl_reason(ec));
    }
  } else {
    if (Status s = check_readable(ca_file, "CA file"); !s.is_ok()) return s;
    if (context->load_verify_file(ca_file, ec)) {
      return invalid_argument(
          fmt::format("CA file {} holds no PEM certificate: {}", ca_file, openssl_reason(ec)));
    }
  }
  return context;
}

}  // namespace wasmq::http
