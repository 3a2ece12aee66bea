// The admin API's ETL endpoints (http-api.md, port 9094): modules (upload, list, get, delete),
// pipelines (create, list, get, replace, merge-patch, delete, start, stop, status, dry run), and
// /health.
//
// Handlers run on the admin server's I/O threads. Work that compiles or runs WebAssembly
// (uploads, dry runs) goes to the ETL workers and is awaited through a Handoff, so an I/O thread
// never runs a module.
#pragma once

#include "broker/stream_pipelines.h"
#include "common/status.h"
#include "etl/orchestrator.h"
#include "http/router.h"

namespace wasmq::http {

// Largest module upload (http-api.md).
inline constexpr uint64_t kMaxModuleUploadBytes = 50ull << 20;

// Registers the admin routes on `router`. `etl` (and `streams`, which may be null) must
// outlive the router.
Status add_admin_api(Router& router, etl::Orchestrator& etl,
                     const broker::StreamPipelines* streams = nullptr);

}  // namespace wasmq::http
