// RFC 7386 JSON merge-patch, on Boost.JSON values.
#pragma once

#include <boost/json/value.hpp>

namespace wasmq {

// RFC 7386 JSON merge-patch of `patch` onto `target` (objects merge, null removes, anything
// else replaces).
void merge_patch(boost::json::value& target, const boost::json::value& patch);

}  // namespace wasmq
