// `wasmq module init|build`: a module author's project, from an empty directory to a module
// that was built, checked as an upload is, and tried on sample messages.
//
// `init` writes a project (source, build file, sample.ndjson, pipeline.json, README.md) that
// uses the SDK found by find_sdk() through absolute paths; `build` builds it with the language's
// toolchain (Debian's cargo offline for Rust, clang-14 through the project's Makefile for C),
// checks the .wasm as the broker checks an upload, and runs it on sample.ndjson as
// `wasmq transform run` does. Main thread only.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace CLI {
class App;
}

namespace wasmq::cli {

enum class ModuleLanguage { kRust, kC };

// "rust" or "c".
std::string_view language_name(ModuleLanguage language);

// The file inside an SDK root that shows the language's SDK is there: "c/wasmq_module.h",
// "rust/Cargo.toml".
std::string_view sdk_marker(ModuleLanguage language);

// Finds the SDK root (the directory holding c/ and rust/) with `language`'s SDK in it: the
// directory `wasmq_sdk_env` names when it is set (WASMQ_SDK; then only there), else
// <executable's dir>/../share/wasmq/sdk (an installation), else <executable's dir>/../sdk (a
// checkout, the executable in build/ or build-*/). Returns an absolute, normal path; an error
// that names every place looked at when none has it.
Result<std::filesystem::path> find_sdk(ModuleLanguage language, const char* wasmq_sdk_env,
                                       const std::filesystem::path& executable);

// Names a project may have: a module name the broker accepts (etl::validate_module_name) that is
// also a Cargo package name and a file name: a letter first, then letters, digits, '_' and '-',
// at most 64 characters, and not a name Rust reserves (std, core, alloc, test, proc_macro) or the
// SDK's (wasmq_module). kInvalidArgument starting "module name".
Status validate_project_name(std::string_view name);

// One file of a new project: its path relative to the project directory, and its text.
struct ProjectFile {
  std::string path;
  std::string text;
};

// What a new project is: its name, language, and the SDK root it builds against (absolute).
struct ProjectSpec {
  std::string name;
  ModuleLanguage language = ModuleLanguage::kRust;
  std::filesystem::path sdk;
};

// The files of a new project (module_templates.cc): the source (a transform that edits a JSON
// field, filters heartbeats and fails on values it cannot read), the build file (Cargo.toml and
// .cargo/config.toml pointing at Debian's crate registry, or a Makefile), sample.ndjson,
// pipeline.json and README.md.
std::vector<ProjectFile> project_files(const ProjectSpec& spec);

// The topic pipeline.json applies to: "<name>-events".
std::string project_topic(std::string_view name);

// Adds `init` and `build` to the `module` subcommand (etl_commands.cc must have added it); the
// handlers set `exit_code`.
void add_module_author_commands(CLI::App& app, int& exit_code);

}  // namespace wasmq::cli
