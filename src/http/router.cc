#include "http/router.h"

#include <algorithm>
#include <array>

#include <fmt/format.h>

#include "http/json_response.h"

namespace wasmq::http {
namespace {

constexpr size_t kMaxSegments = 32;

struct Segment {
  std::string text;  // the literal, or the parameter's name
  bool is_param = false;
};

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// "/a/b/" → "a/b": without the leading slash and one trailing slash.
std::string_view path_body(std::string_view path) {
  path.remove_prefix(1);
  if (!path.empty() && path.back() == '/') path.remove_suffix(1);
  return path;
}

// Splits a path into its segments; false when it has more than kMaxSegments.
bool split_path(std::string_view path, std::array<std::string_view, kMaxSegments>& out,
                size_t& count) {
  count = 0;
  std::string_view rest = path_body(path);
  if (rest.empty()) return true;
  for (;;) {
    if (count == kMaxSegments) return false;
    size_t slash = rest.find('/');
    out[count++] = rest.substr(0, slash);
    if (slash == std::string_view::npos) return true;
    rest.remove_prefix(slash + 1);
  }
}

Result<std::vector<Segment>> parse_pattern(std::string_view pattern) {
  if (pattern.empty() || pattern.front() != '/') {
    return invalid_argument(fmt::format("route pattern \"{}\" must start with '/'", pattern));
  }
  std::vector<Segment> segments;
  std::string_view rest = path_body(pattern);
  while (!rest.empty()) {
    size_t slash = rest.find('/');
    std::string_view text = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    if (text.empty() || (slash != std::string_view::npos && rest.empty())) {
      return invalid_argument(fmt::format("route pattern \"{}\" has an empty segment", pattern));
    }
    Segment segment;
    if (text.front() == '{') {
      std::string_view name = text.substr(1, text.size() - 1);
      if (text.back() != '}' || name.size() < 2 ||
          !std::all_of(name.begin(), name.end() - 1, is_name_char)) {
        return invalid_argument(fmt::format(
            "route pattern \"{}\": segment \"{}\" must be {{name}} with [A-Za-z0-9_]", pattern,
            text));
      }
      segment.text = std::string(name.substr(0, name.size() - 1));
      segment.is_param = true;
      for (const Segment& other : segments) {
        if (other.is_param && other.text == segment.text) {
          return invalid_argument(fmt::format("route pattern \"{}\" repeats the parameter \"{}\"",
                                              pattern, segment.text));
        }
      }
    } else {
      if (text.find_first_of("{}") != std::string_view::npos) {
        return invalid_argument(fmt::format(
            "route pattern \"{}\": segment \"{}\" mixes braces into a literal", pattern, text));
      }
      segment.text = std::string(text);
    }
    segments.push_back(std::move(segment));
    if (segments.size() > kMaxSegments) {
      return invalid_argument(
          fmt::format("route pattern \"{}\" has more than {} segments", pattern, kMaxSegments));
    }
  }
  return segments;
}

// Most specific first: at the first segment where two shapes differ, a literal comes first.
bool more_specific(const std::vector<Segment>& a, const std::vector<Segment>& b) {
  size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    if (a[i].is_param != b[i].is_param) return !a[i].is_param;
  }
  return a.size() < b.size();
}

bool same_shape(const std::vector<Segment>& a, const std::vector<Segment>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].is_param != b[i].is_param) return false;
    if (!a[i].is_param && a[i].text != b[i].text) return false;
  }
  return true;
}

std::string_view verb_name(Verb method) {
  auto name = boost::beast::http::to_string(method);
  return {name.data(), name.size()};
}

}  // namespace

// The routes that share one pattern, one per method.
struct Router::Resource {
  std::string pattern;
  std::vector<Segment> segments;
  std::vector<std::unique_ptr<Route>> routes;

  bool matches(const std::array<std::string_view, kMaxSegments>& path, size_t count) const {
    if (count != segments.size()) return false;
    for (size_t i = 0; i < count; ++i) {
      if (segments[i].is_param ? path[i].empty() : path[i] != segments[i].text) return false;
    }
    return true;
  }

  const Route* find(Verb method) const {
    for (const auto& route : routes) {
      if (route->method == method) return route.get();
    }
    return nullptr;
  }
};

Router::Router() = default;
Router::~Router() = default;
Router::Router(Router&&) noexcept = default;
Router& Router::operator=(Router&&) noexcept = default;

Status Router::add(Verb method, std::string_view pattern, Handler handler, RouteOptions options) {
  auto segments = parse_pattern(pattern);
  if (!segments.is_ok()) return segments.status();
  if (!handler) {
    return invalid_argument(fmt::format("route {} {} has no handler", verb_name(method), pattern));
  }
  Resource* resource = nullptr;
  for (auto& existing : resources_) {
    if (!same_shape(existing->segments, *segments)) continue;
    for (size_t i = 0; i < segments->size(); ++i) {
      if ((*segments)[i].is_param && (*segments)[i].text != existing->segments[i].text) {
        return invalid_argument(
            fmt::format("route pattern \"{}\" conflicts with \"{}\": same shape, other parameter "
                        "names",
                        pattern, existing->pattern));
      }
    }
    resource = existing.get();
  }
  if (resource == nullptr) {
    auto created = std::make_unique<Resource>();
    created->pattern = std::string(pattern);
    created->segments = std::move(*segments);
    resource = created.get();
    auto position = std::upper_bound(resources_.begin(), resources_.end(), created,
                                     [](const auto& a, const auto& b) {
                                       return more_specific(a->segments, b->segments);
                                     });
    resources_.insert(position, std::move(created));
  }
  if (resource->find(method) != nullptr) {
    return {StatusCode::kAlreadyExists,
            fmt::format("route {} {} is already registered", verb_name(method), pattern)};
  }
  resource->routes.push_back(std::make_unique<Route>(
      Route{method, std::string(pattern), std::move(handler), std::move(options)}));
  return Status::ok();
}

RouteMatch Router::match(Verb method, std::string_view path, Params& params) const {
  RouteMatch result;
  params.clear();
  std::array<std::string_view, kMaxSegments> segments;
  size_t count = 0;
  if (path.empty() || path.front() != '/' || !split_path(path, segments, count)) return result;
  for (const auto& resource : resources_) {
    if (!resource->matches(segments, count)) continue;
    const Route* route = resource->find(method);
    if (route == nullptr) {
      for (const auto& other : resource->routes) {
        std::string_view name = verb_name(other->method);
        if (result.allow.find(name) != std::string::npos) continue;
        if (!result.allow.empty()) result.allow += ", ";
        result.allow += name;
      }
      continue;
    }
    for (size_t i = 0; i < count; ++i) {
      const Segment& segment = resource->segments[i];
      if (!segment.is_param) continue;
      auto value = percent_decode(segments[i], false);
      if (!value.is_ok()) {
        params.clear();
        result.kind = RouteMatch::Kind::kBadPath;
        result.error = value.status().with_context(fmt::format("path parameter \"{}\"", segment.text));
        return result;
      }
      params.add(segment.text, std::move(*value));
    }
    result.kind = RouteMatch::Kind::kFound;
    result.route = route;
    result.allow.clear();
    return result;
  }
  result.kind = result.allow.empty() ? RouteMatch::Kind::kNotFound
                                     : RouteMatch::Kind::kMethodNotAllowed;
  return result;
}

boost::asio::awaitable<Response> Router::handle(Request& request) const {
  RouteMatch matched = match(request.method(), request.path(), request.path_params());
  if (matched.kind != RouteMatch::Kind::kFound) co_return unmatched_response(matched, request);
  co_return co_await matched.route->handler(request);
}

Response Router::unmatched_response(const RouteMatch& match, const Request& request) {
  switch (match.kind) {
    case RouteMatch::Kind::kMethodNotAllowed: {
      Response response = error_response(
          HttpStatus::method_not_allowed, "method_not_allowed",
          fmt::format("method {} is not allowed on {} (allowed: {})", verb_name(request.method()),
                      request.path(), match.allow));
      response.set(Field::allow, match.allow);
      return response;
    }
    case RouteMatch::Kind::kBadPath:
      return error_response(HttpStatus::bad_request, "invalid_path", match.error.message());
    case RouteMatch::Kind::kFound:
    case RouteMatch::Kind::kNotFound:
      break;
  }
  return error_response(HttpStatus::not_found, "not_found",
                        fmt::format("no route for {} {}", verb_name(request.method()),
                                    request.path()));
}

}  // namespace wasmq::http
