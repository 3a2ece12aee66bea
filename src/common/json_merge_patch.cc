#include "common/json_merge_patch.h"

#include <boost/json/object.hpp>

namespace wasmq {

namespace json = boost::json;

void merge_patch(boost::json::value& target, const boost::json::value& patch) {
  const json::object* patch_object = patch.if_object();
  if (patch_object == nullptr) {
    target = patch;
    return;
  }
  if (!target.is_object()) target = json::object();
  json::object& object = target.get_object();
  for (const auto& [key, value] : *patch_object) {
    if (value.is_null()) {
      object.erase(key);
      continue;
    }
    json::value& slot = object[key];  // null when new: merging into it starts from scratch
    merge_patch(slot, value);
  }
}

}  // namespace wasmq
