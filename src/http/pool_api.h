// The admin API's instance-pool endpoints (http-api.md, port 9094; seed 000 §7.2):
//   GET   /api/v1/etl/instance-pool/stats          every module's pool figures, merged over the
//                                                   ETL workers, with totals
//   GET   /api/v1/etl/instance-pool/{module_id}    one module's
//   POST  /api/v1/etl/instance-pool/warmup         {"module_id", "instance_count"}
//   POST  /api/v1/etl/instance-pool/cleanup        evicts idle instances (optional {"module_id"})
//   PATCH /api/v1/etl/instance-pool/{module_id}    {"max_pool_size", "warmup_instances",
//                                                    "creation_rate_limit", "idle_timeout_seconds"}
// Field meanings: docs/etl.md, "Instance pool".
//
// Handlers run on the admin server's I/O threads. Figures are read without the workers; changes
// are broadcast to every worker (etl::InstancePools) and awaited through a Handoff. Bad input is
// a 4xx naming the field, and changes nothing.
#pragma once

#include "common/status.h"
#include "etl/orchestrator.h"
#include "http/router.h"

namespace wasmq::http {

// Registers the routes on `router`. `etl` must outlive the router.
Status add_pool_api(Router& router, etl::Orchestrator& etl);

}  // namespace wasmq::http
