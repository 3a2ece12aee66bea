// A temporary directory per test: <tmp>/<prefix>-<pid>-<test name>.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace wasmq::testing {

inline std::filesystem::path test_temp_dir(const std::string& prefix) {
  return std::filesystem::temp_directory_path() /
         (prefix + "-" + std::to_string(::getpid()) + "-" +
          ::testing::UnitTest::GetInstance()->current_test_info()->name());
}

}  // namespace wasmq::testing
