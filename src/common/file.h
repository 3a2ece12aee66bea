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

// The same failure for a client, without the server's paths: `what` (e.g. "cannot store module
// m-v1.0.0") and the system's reason that ends the message of read_file/write_file_atomically
// ("No space left on device"). The message with the path belongs in the server's log.
Status without_path(const Status& status, std::string_view what);

}  // namespace wasmq
