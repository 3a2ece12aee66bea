// The admin API's consumer-group endpoints (kafka.md, "Consumer groups"):
//   GET /api/v1/groups           every group: state, members, committed partitions, total lag
//   GET /api/v1/groups/{group}   one group: state, protocol, generation, members with their
//                                assignments, and per committed partition the offset, its
//                                metadata, the log's start and high watermark, and the lag
// Lag is what is left to read: high watermark - max(committed, log start), never below 0.
//
// Handlers run on the admin server's I/O threads; they read the coordinator's snapshot and the
// logs' offsets (no disk reads).
#pragma once

#include "broker/groups.h"
#include "common/status.h"
#include "http/router.h"
#include "storage/topic_store.h"

namespace wasmq::http {

// Registers the routes on `router`. `groups` and `store` must outlive the router.
Status add_groups_api(Router& router, const broker::GroupCoordinator& groups,
                      const storage::TopicStore& store);

}  // namespace wasmq::http
