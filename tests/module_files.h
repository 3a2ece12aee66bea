// Access to the modules the build compiles from source for the tests.
#pragma once

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace wasmq::testing {

inline std::filesystem::path module_path(const std::string& name) {
  return std::filesystem::path(WASMQ_MODULES_DIR) / (name + ".wasm");
}

inline std::vector<uint8_t> read_module(const std::string& name) {
  std::ifstream in(module_path(name), std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace wasmq::testing
