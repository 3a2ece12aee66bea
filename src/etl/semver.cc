#include "etl/semver.h"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace wasmq::etl {
namespace {

bool parse_number(std::string_view text, uint64_t* out) {
  if (text.empty() || (text.size() > 1 && text[0] == '0')) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Semver 2, rule 11: identifiers compared numerically when both are numbers, numbers before
// text, otherwise as ASCII; a shorter list of equal identifiers sorts first.
int compare_pre_release(std::string_view a, std::string_view b) {
  while (!a.empty() && !b.empty()) {
    size_t da = a.find('.'), db = b.find('.');
    std::string_view ia = a.substr(0, da), ib = b.substr(0, db);
    a = da == std::string_view::npos ? std::string_view() : a.substr(da + 1);
    b = db == std::string_view::npos ? std::string_view() : b.substr(db + 1);
    bool na = all_digits(ia), nb = all_digits(ib);
    int c = 0;
    if (na && nb) {
      c = ia.size() != ib.size() ? (ia.size() < ib.size() ? -1 : 1) : ia.compare(ib);
    } else if (na != nb) {
      c = na ? -1 : 1;
    } else {
      c = ia.compare(ib);
    }
    if (c != 0) return c < 0 ? -1 : 1;
  }
  if (a.empty() && b.empty()) return 0;
  return a.empty() ? -1 : 1;
}

}  // namespace

Result<SemVer> SemVer::parse(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return Status(StatusCode::kInvalidArgument,
                  "version \"" + std::string(text) + "\" is not a semantic version " +
                      "MAJOR.MINOR.PATCH: " + why,
                  "version");
  };
  SemVer v;
  std::string_view core = text;
  if (size_t plus = core.find('+'); plus != std::string_view::npos) {
    return bad("build metadata (+...) is not accepted");
  }
  if (size_t dash = core.find('-'); dash != std::string_view::npos) {
    v.pre_release = std::string(core.substr(dash + 1));
    core = core.substr(0, dash);
    if (v.pre_release.empty()) return bad("empty pre-release");
    for (char c : v.pre_release) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-')) {
        return bad("pre-release may contain only letters, digits, '.' and '-'");
      }
    }
    // Semver 2, rule 9: identifiers are not empty; numeric ones have no leading zeros.
    std::string_view rest = v.pre_release;
    while (true) {
      size_t dot = rest.find('.');
      std::string_view identifier = rest.substr(0, dot);
      if (identifier.empty()) return bad("empty identifier in the pre-release");
      if (identifier.size() > 1 && identifier[0] == '0' && all_digits(identifier)) {
        return bad("numeric pre-release identifier \"" + std::string(identifier) +
                   "\" has a leading zero");
      }
      if (dot == std::string_view::npos) break;
      rest = rest.substr(dot + 1);
    }
  }
  uint64_t* parts[] = {&v.major, &v.minor, &v.patch};
  for (int i = 0; i < 3; ++i) {
    size_t dot = core.find('.');
    std::string_view piece = i < 2 ? core.substr(0, dot) : core;
    if (i < 2 && dot == std::string_view::npos) {
      return bad("expected three numbers separated by '.'");
    }
    if (!parse_number(piece, parts[i])) {
      if (all_digits(piece) && piece.size() > 1 && piece[0] == '0') {
        return bad("\"" + std::string(piece) + "\" has a leading zero");
      }
      if (all_digits(piece)) return bad("\"" + std::string(piece) + "\" is too large");
      return bad("expected three numbers separated by '.'");
    }
    if (i < 2) core = core.substr(dot + 1);
  }
  return v;
}

std::string SemVer::to_string() const {
  std::string s = std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
  if (!pre_release.empty()) s += "-" + pre_release;
  return s;
}

int SemVer::compare(const SemVer& o) const {
  if (major != o.major) return major < o.major ? -1 : 1;
  if (minor != o.minor) return minor < o.minor ? -1 : 1;
  if (patch != o.patch) return patch < o.patch ? -1 : 1;
  if (pre_release.empty() || o.pre_release.empty()) {
    if (pre_release.empty() && o.pre_release.empty()) return 0;
    return pre_release.empty() ? 1 : -1;
  }
  return compare_pre_release(pre_release, o.pre_release);
}

}  // namespace wasmq::etl
