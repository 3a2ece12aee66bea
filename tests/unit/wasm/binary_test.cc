#include "wasm/binary.h"

#include <gtest/gtest.h>

#include "wasm_builder.h"

namespace wasmq::wasm {
namespace {

using testing::kI32;
using testing::kI64;
using testing::WasmBuilder;

std::string problems(const std::vector<uint8_t>& binary) {
  auto info = inspect_module(binary);
  return info.is_ok() ? "" : info.status().message();
}

TEST(ModuleValidation, AcceptsTheMinimalAbiModule) {
  auto info = inspect_module(WasmBuilder::abi_module().build());
  ASSERT_TRUE(info.is_ok()) << info.status().message();
  EXPECT_FALSE(info->has_process_batch);
  EXPECT_FALSE(info->has_init_module);
  EXPECT_EQ(info->memory_initial_pages, 1u);
}

TEST(ModuleValidation, RejectsBadMagicAndVersion) {
  EXPECT_NE(problems({'n', 'o', 'p', 'e', 1, 0, 0, 0}).find("bad magic"), std::string::npos);
  EXPECT_NE(problems({0, 'a', 's', 'm', 2, 0, 0, 0}).find("version"), std::string::npos);
  EXPECT_NE(problems({0, 'a'}).find("bad magic"), std::string::npos);
}

TEST(ModuleValidation, RejectsTruncatedBinaries) {
  auto binary = WasmBuilder::abi_module().build();
  for (size_t n = 8; n < binary.size(); ++n) {
    std::vector<uint8_t> prefix(binary.begin(), binary.begin() + n);
    EXPECT_FALSE(inspect_module(prefix).is_ok()) << "prefix of " << n;
  }
}

TEST(ModuleValidation, NamesEachMissingExport) {
  WasmBuilder b;
  b.memory(1);
  b.function({{kI32}, {kI32}}, "alloc");
  std::string p = problems(b.build());
  EXPECT_NE(p.find("missing export memory"), std::string::npos) << p;
  EXPECT_NE(p.find("missing export dealloc"), std::string::npos) << p;
  EXPECT_NE(p.find("missing export process_message"), std::string::npos) << p;
  EXPECT_EQ(p.find("missing export alloc"), std::string::npos) << p;
}

TEST(ModuleValidation, NamesWrongSignatures) {
  WasmBuilder b;
  b.memory(1);
  b.export_memory();
  b.function({{kI32}, {kI32}}, "alloc");
  b.function({{kI32, kI32}, {}}, "dealloc");
  b.function({{kI32}, {kI32}}, "process_message");
  b.function({{}, {kI32}}, "process_batch");
  std::string p = problems(b.build());
  EXPECT_NE(p.find("export process_message has signature (i32) -> i32, expected (i32, i32) -> i32"),
            std::string::npos) << p;
  EXPECT_NE(p.find("export process_batch has signature"), std::string::npos) << p;
}

TEST(ModuleValidation, NamesUnsupportedImports) {
  WasmBuilder b = WasmBuilder::abi_module();
  b.import_function("env", "foo", {{kI32}, {kI32}});
  b.import_function("wasi_snapshot_preview1", "sock_accept", {{kI32, kI32, kI32}, {kI32}});
  b.import_function("wasi_snapshot_preview1", "fd_write", {{kI32}, {kI32}});
  std::string p = problems(b.build());
  EXPECT_NE(p.find("unsupported import env.foo"), std::string::npos) << p;
  EXPECT_NE(p.find("unsupported import wasi_snapshot_preview1.sock_accept"), std::string::npos) << p;
  EXPECT_NE(p.find("import wasi_snapshot_preview1.fd_write has signature (i32) -> i32"),
            std::string::npos) << p;
}

TEST(ModuleValidation, AcceptsTheWasiSubset) {
  WasmBuilder b = WasmBuilder::abi_module();
  b.import_function("wasi_snapshot_preview1", "clock_time_get", {{kI32, kI64, kI32}, {kI32}});
  b.import_function("wasi_snapshot_preview1", "proc_exit", {{kI32}, {}});
  EXPECT_EQ(problems(b.build()), "");
}

TEST(ModuleValidation, RejectsImportedAndSharedMemory) {
  WasmBuilder imported;
  imported.import_memory("env", "memory");
  imported.function({{kI32}, {kI32}}, "alloc");
  EXPECT_NE(problems(imported.build()).find("unsupported import env.memory"), std::string::npos);

  WasmBuilder shared;
  shared.memory(1, 2, /*shared*/ 2);
  shared.export_memory();
  EXPECT_NE(problems(shared.build()).find("shared memory"), std::string::npos);
}

TEST(MemoryLimit, SetsTheMaximumWhenAbsent) {
  auto capped = limit_memory(WasmBuilder::abi_module(2).build(), 10 * kWasmPageSize + 100);
  ASSERT_TRUE(capped.is_ok()) << capped.status().message();
  auto info = inspect_module(*capped);
  ASSERT_TRUE(info.is_ok());
  EXPECT_EQ(info->memory_initial_pages, 2u);
  EXPECT_EQ(info->memory_max_pages, 10u);
}

TEST(MemoryLimit, LowersALargerMaximumAndKeepsASmallerOne) {
  WasmBuilder big = WasmBuilder::abi_module();
  big.memory(1, 1000);
  auto capped = limit_memory(big.build(), 4 * kWasmPageSize);
  ASSERT_TRUE(capped.is_ok());
  EXPECT_EQ(inspect_module(*capped)->memory_max_pages, 4u);

  WasmBuilder small = WasmBuilder::abi_module();
  small.memory(1, 3);
  capped = limit_memory(small.build(), 4 * kWasmPageSize);
  ASSERT_TRUE(capped.is_ok());
  EXPECT_EQ(inspect_module(*capped)->memory_max_pages, 3u);
}

TEST(MemoryLimit, RefusesInitialMemoryAboveTheLimit) {
  auto capped = limit_memory(WasmBuilder::abi_module(20).build(), 4 * kWasmPageSize);
  ASSERT_FALSE(capped.is_ok());
  EXPECT_NE(capped.status().message().find("initial memory of 1310720 bytes exceeds the memory limit"),
            std::string::npos) << capped.status().message();
}

}  // namespace
}  // namespace wasmq::wasm
