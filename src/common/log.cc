#include "common/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <map>
#include <vector>

#include "common/mutex.h"

namespace wasmq::log {
namespace {

// Writes the message JSON-escaped, for the JSON line format.
class JsonMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    static constexpr char kHex[] = "0123456789abcdef";
    for (char c : std::string_view(msg.payload.data(), msg.payload.size())) {
      switch (c) {
        case '"': dest.append(std::string_view("\\\"")); break;
        case '\\': dest.append(std::string_view("\\\\")); break;
        case '\n': dest.append(std::string_view("\\n")); break;
        case '\r': dest.append(std::string_view("\\r")); break;
        case '\t': dest.append(std::string_view("\\t")); break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            const char escaped[] = {'\\', 'u', '0', '0', kHex[(c >> 4) & 0xF], kHex[c & 0xF]};
            dest.append(escaped, escaped + sizeof escaped);
          } else {
            dest.push_back(c);
          }
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonMessageFlag>();
  }
};

struct Registry {
  Mutex mutex;
  std::map<std::string, std::shared_ptr<spdlog::logger>, std::less<>> loggers GUARDED_BY(mutex);
  std::vector<spdlog::sink_ptr> sinks GUARDED_BY(mutex){
      std::make_shared<spdlog::sinks::stderr_color_sink_mt>()};
  spdlog::level::level_enum level GUARDED_BY(mutex) = spdlog::level::info;
  std::vector<std::string> targets GUARDED_BY(mutex);
  Format format GUARDED_BY(mutex) = Format::kText;
};

Registry& registry() {
  static Registry* r = new Registry();  // used until the very end of the process
  return *r;
}

std::string normalize_target(std::string target) {
  for (const char* prefix : {"wasmq::", "rustmq::"}) {
    if (target.rfind(prefix, 0) == 0) target = target.substr(std::string_view(prefix).size());
  }
  for (size_t at; (at = target.find("::")) != std::string::npos;) target.replace(at, 2, ".");
  return target;
}

spdlog::level::level_enum level_locked(const Registry& r, std::string_view target)
    REQUIRES(r.mutex) {
  if (r.targets.empty()) return r.level;
  for (const auto& t : r.targets) {
    if (target == t || (target.size() > t.size() && target.rfind(t, 0) == 0 && target[t.size()] == '.')) {
      return r.level;
    }
  }
  return spdlog::level::info;
}

void apply_locked(const Registry& r, spdlog::logger& logger) REQUIRES(r.mutex) {
  logger.sinks() = r.sinks;
  logger.set_level(level_locked(r, logger.name()));
  if (r.format == Format::kJson) {
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<JsonMessageFlag>('*').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","target":"%n","message":"%*"})");
    logger.set_formatter(std::move(formatter));
  } else {
    logger.set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ [%n] %v");
  }
  logger.flush_on(spdlog::level::warn);
}

}  // namespace

spdlog::logger& get(std::string_view target) {
  Registry& r = registry();
  MutexLock lock(r.mutex);
  auto it = r.loggers.find(target);
  if (it != r.loggers.end()) return *it->second;
  auto logger = std::make_shared<spdlog::logger>(std::string(target));
  apply_locked(r, *logger);
  return *r.loggers.emplace(std::string(target), std::move(logger)).first->second;
}

void configure(spdlog::level::level_enum level, std::vector<std::string> targets,
               std::vector<spdlog::sink_ptr> sinks, Format format) {
  Registry& r = registry();
  MutexLock lock(r.mutex);
  r.level = level;
  r.targets.clear();
  for (auto& t : targets) r.targets.push_back(normalize_target(std::move(t)));
  if (!sinks.empty()) r.sinks = std::move(sinks);
  r.format = format;
  for (auto& [name, logger] : r.loggers) apply_locked(r, *logger);
}

spdlog::level::level_enum level_for(std::string_view target) {
  Registry& r = registry();
  MutexLock lock(r.mutex);
  return level_locked(r, target);
}

}  // namespace wasmq::log
