// Logging by target, on spdlog: every room logs through log::get("<target>") ("storage", "http",
// "broker", "etl", "etl.module", "wasm", "cli"), so that `[logging] level` can apply to some
// targets only (`targets`), as in the seeds' `[logging]` section.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace wasmq::log {

// The logger of `target`, created on first use with the current sinks, format and level.
// Any thread.
spdlog::logger& get(std::string_view target);

enum class Format { kText, kJson };

// Replaces the sinks, format and levels of every logger, present and future. `level` applies to
// the targets in `targets` (a listed target also covers its sub-targets: "etl" covers
// "etl.module"; "wasmq::etl" and the seeds' "rustmq::etl" mean "etl"), or to all when `targets`
// is empty; the others log at info. Any thread.
void configure(spdlog::level::level_enum level, std::vector<std::string> targets,
               std::vector<spdlog::sink_ptr> sinks, Format format);

// The level a target gets under the current configuration.
spdlog::level::level_enum level_for(std::string_view target);

}  // namespace wasmq::log
