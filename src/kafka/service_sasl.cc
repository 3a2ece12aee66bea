// SASL/PLAIN and the rights of the Service (kafka.md, "Security"): SaslHandshake v0–1,
// SaslAuthenticate v0–1, a handshake v0's bare token frame, and the checks and audit lines the
// other APIs use.
#include <string>

#include "common/log.h"
#include "kafka/requests.h"
#include "kafka/service.h"
#include "kafka/service_internal.h"

namespace wasmq::kafka {
namespace {

using boost::asio::awaitable;
using namespace service_internal;

constexpr std::string_view kPlain = "PLAIN";
// What a client is told when its credentials are refused: the same for an unknown name and a
// wrong token, so that the answer does not say which names exist.
constexpr std::string_view kRefused = "Authentication failed: invalid username or token";

}  // namespace

std::string_view need_name(Need need) {
  switch (need) {
    case Need::kProduce: return "produce";
    case Need::kConsume: return "consume";
    case Need::kDescribeTopics: return "describe_topics";
    case Need::kCreateTopics: return "create_topics";
    case Need::kDeleteTopics: return "delete_topics";
  }
  return "unknown";
}

bool Service::permit(const Session& s, Need need, std::string_view api, std::string_view resource,
                     std::string* why) const {
  if (!options_.security) return true;
  if (s.caller && options_.security->allows(*s.caller, need)) return true;
  std::string message = s.caller ? "token \"" + s.caller->name + "\" has role " + s.caller->role +
                                       ", which lacks the right " + std::string(need_name(need)) +
                                       " needed for " + std::string(api)
                                 : std::string(api) + " before SASL authentication";
  audit(s, api, resource, AuditEvent::Result::kRefused, message);
  if (why) *why = std::move(message);
  return false;
}

void Service::audit(const Session& s, std::string_view api, std::string_view resource,
                    AuditEvent::Result result, std::string_view error) const {
  if (!options_.audit) return;
  AuditEvent e;
  e.caller = s.caller ? &*s.caller : nullptr;
  e.remote = s.address;
  e.api = api;
  e.resource = resource;
  e.result = result;
  e.error = error;
  options_.audit(e);
}

std::optional<std::string> Service::authenticate_plain(Session& s, std::string_view message) {
  // RFC 4616: [authzid] NUL authcid NUL passwd.
  const size_t first = message.find('\0');
  const size_t second = first == std::string_view::npos ? first : message.find('\0', first + 1);
  std::string why;
  std::string claimed;
  if (second == std::string_view::npos || message.find('\0', second + 1) != std::string_view::npos) {
    why = "SASL/PLAIN: the message is not authzid NUL username NUL password";
  } else {
    const std::string_view authzid = message.substr(0, first);
    const std::string_view username = message.substr(first + 1, second - first - 1);
    const std::string_view password = message.substr(second + 1);
    claimed = std::string(username.substr(0, 64));
    if (username.empty() || password.empty()) {
      why = "SASL/PLAIN: empty username or password";
    } else if (!authzid.empty() && authzid != username) {
      why = "SASL/PLAIN: acting for another identity (authzid) is not allowed";
    } else if (auto caller = options_.security->authenticate(username, password)) {
      s.caller = std::move(*caller);
      s.sasl = Session::Sasl::kDone;
      log::get("kafka").debug("kafka: {} authenticated as {}", s.remote, s.caller->name);
      return std::nullopt;
    } else {
      why = "SASL/PLAIN: unknown username or wrong token";
    }
  }
  audit(s, "SaslAuthenticate", claimed.empty() ? "" : "user " + claimed,
        AuditEvent::Result::kRefused, why);
  log::get("kafka").info("kafka: {}: authentication refused: {}", s.remote, why);
  return std::string(kRefused);
}

awaitable<Result<Response>> Service::sasl_handshake(Session& s, const RequestHeader& h, Reader& r) {
  const std::string_view mechanism = read_sasl_handshake(r, h.api_version);
  if (!r.ok()) co_return malformed(h, r);
  int16_t code = error::kNone;
  if (!options_.security) {
    code = error::kUnsupportedSaslMechanism;  // this listener has no SASL: no mechanism offered
  } else if (s.sasl != Session::Sasl::kStart) {
    code = error::kIllegalSaslState;
  } else if (mechanism != kPlain) {
    code = error::kUnsupportedSaslMechanism;
  }
  if (code == error::kNone) {
    s.sasl = h.api_version == 0 ? Session::Sasl::kRawToken : Session::Sasl::kAuthenticate;
  } else {
    s.close_after_response = true;
    if (options_.security) {
      audit(s, "SaslHandshake", "", AuditEvent::Result::kRefused,
            code == error::kIllegalSaslState ? "a second handshake"
                                             : "mechanism \"" + std::string(mechanism.substr(0, 64)) +
                                                   "\" is not offered (PLAIN is)");
    }
  }
  std::string out;
  Writer w(&out);
  w.i32(h.correlation_id);
  w.i16(code);
  w.array_length(options_.security ? 1 : 0);
  if (options_.security) w.string(kPlain);
  co_return Response(std::move(out));
}

awaitable<Result<Response>> Service::sasl_authenticate(Session& s, const RequestHeader& h,
                                                       Reader& r) {
  const std::span<const uint8_t> bytes = read_sasl_authenticate(r, h.api_version);
  if (!r.ok()) co_return malformed(h, r);
  int16_t code = error::kNone;
  std::optional<std::string> message;
  if (!options_.security || s.sasl != Session::Sasl::kAuthenticate) {
    code = error::kIllegalSaslState;
    message = options_.security ? "SaslAuthenticate without a SaslHandshake v1 for PLAIN first"
                                : "this listener does not use SASL";
  } else {
    message = authenticate_plain(
        s, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    if (message) code = error::kSaslAuthenticationFailed;
  }
  if (code != error::kNone) s.close_after_response = true;
  std::string out;
  Writer w(&out);
  w.i32(h.correlation_id);
  w.i16(code);
  w.nullable_string(message ? std::optional<std::string_view>(*message) : std::nullopt);
  w.bytes("");                      // PLAIN has no server challenge
  if (h.api_version >= 1) w.i64(0);     // session_lifetime_ms: no re-authentication
  co_return Response(std::move(out));
}

Result<Response> Service::raw_sasl_token(Session& s, std::span<const uint8_t> frame) {
  auto refused = authenticate_plain(
      s, std::string_view(reinterpret_cast<const char*>(frame.data()), frame.size()));
  // Kafka's handshake v0: an empty frame on success; on failure the connection closes.
  if (refused) return invalid_argument("SASL/PLAIN token refused");
  return Response(std::string());
}

}  // namespace wasmq::kafka
