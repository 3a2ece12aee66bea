// Whole-file reads and crash-safe writes, for small metadata files (topic settings, module
// metadata, pipeline documents) and module binaries.
//
// Threads: any; nothing is shared.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "common/status.h"

namespace wasmq {

// Reads the whole file. kIo naming the path and the system's reason when it cannot be read;
// kLimitExceeded when it is larger than `max_bytes`.
Result<std::string> read_file(const std::filesystem::path& path, uint64_t max_bytes = 1ull << 30);

// Writes `data` to `path` so that a crash leaves either the old file or the new one, whole:
// a temporary file beside it, fsync, rename, fsync of the directory. kIo naming the path.
Status write_file_atomically(const std::filesystem::path& path, std::string_view data);

}  // namespace wasmq
