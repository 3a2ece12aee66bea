// Semantic versions (semver 2): the one parser of module versions, used by the registry (a
// module's "version") and by the pipeline parser (the "-vX.Y.Z" of a pinned module id).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace wasmq::etl {

// A semantic version MAJOR.MINOR.PATCH with an optional pre-release ("1.2.0-rc.1").
struct SemVer {
  uint64_t major = 0, minor = 0, patch = 0;
  std::string pre_release;  // empty: a release, which sorts after its pre-releases

  // kInvalidArgument (field "version") naming what is wrong.
  static Result<SemVer> parse(std::string_view text);
  std::string to_string() const;
  // Semver precedence (pre-release identifiers compared numerically or as text, per semver 2).
  int compare(const SemVer& other) const;
};

}  // namespace wasmq::etl
