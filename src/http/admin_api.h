// The admin API's ETL endpoints (http-api.md, port 9094): modules (upload, list, get, delete),
// pipelines (create, list, get, replace, merge-patch, delete, start, stop, status, dry run), and
// /health.
//
// Access (when the server has tokens): GET routes need `view`; the ETL routes that change state
// (everything under /api/v1/etl that is not a GET, dry runs included) need `manage_etl` and are
// audited; /health is open. Module uploads are also checked against the sources and signing keys
// of AdminApiOptions.
//
// Handlers run on the admin server's I/O threads. Work that compiles or runs WebAssembly
// (uploads, dry runs) goes to the ETL workers and is awaited through a Handoff, so an I/O thread
// never runs a module.
#pragma once

#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "broker/stream_pipelines.h"
#include "common/status.h"
#include "etl/module_signature.h"
#include "etl/orchestrator.h"
#include "http/router.h"

namespace wasmq::http {

// Largest module upload (http-api.md).
inline constexpr uint64_t kMaxModuleUploadBytes = 50ull << 20;

struct AdminApiOptions {
  // When set, an upload must carry an X-Module-Signature that verifies with one of these keys
  // (etl.enable_module_signature_verification); null: signatures are not looked at.
  std::shared_ptr<const etl::ModuleSigners> signers;
  // `*`/`?` patterns (etl.allowed_module_sources), matched case-sensitively against the source
  // of an upload: the name of the caller's token when the listener has tokens, otherwise the
  // client's IP address. An upload from a source no pattern matches is refused (403).
  std::vector<std::string> allowed_module_sources = {"*"};
};

// The options of an admin-listener route: its right (/health and /metrics open; reads `view`;
// ETL changes and a configuration reload `manage_etl`; other changes `admin`) and whether it is
// audited (every change). Keyed by pattern, so every admin route gets them from here.
RouteOptions admin_route(Verb verb, std::string_view pattern);

// One route of an admin-listener API object: method, pattern, and the member that handles it.
template <typename Api>
struct AdminRoute {
  Verb verb;
  const char* pattern;
  boost::asio::awaitable<Response> (Api::*method)(Request&);
};

// Registers `routes`, each handled by its member of `api` (kept alive by the router), with
// admin_route()'s right and auditing.
template <typename Api>
Status add_admin_routes(Router& router, std::shared_ptr<Api> api,
                        std::initializer_list<AdminRoute<Api>> routes) {
  for (const auto& r : routes) {
    auto handler = [api, method = r.method](Request& req) { return ((*api).*method)(req); };
    if (Status s =
            router.add(r.verb, r.pattern, std::move(handler), admin_route(r.verb, r.pattern));
        !s.is_ok()) {
      return s;
    }
  }
  return Status::ok();
}

// Registers the admin routes on `router`. `etl` (and `streams`, which may be null) must
// outlive the router. kInvalidArgument when an allowed_module_sources pattern is empty.
Status add_admin_api(Router& router, etl::Orchestrator& etl,
                     const broker::StreamPipelines* streams = nullptr,
                     AdminApiOptions options = {});

// The source of a module upload, as allowed_module_sources sees it.
std::string module_source(const Request& request);

}  // namespace wasmq::http
