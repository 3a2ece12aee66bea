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

// Found by the module fuzz target: a "memory" export that names a memory the module does not
// define passed validation, and limit_memory had nothing to cap.
TEST(ModuleValidation, RejectsAMemoryExportWithoutAMemory) {
  WasmBuilder b;
  b.export_memory();
  b.function({{kI32}, {kI32}}, "alloc");
  b.function({{kI32, kI32}, {}}, "dealloc");
  b.function({{kI32, kI32}, {kI32}}, "process_message");
  EXPECT_NE(problems(b.build()).find("export memory names a memory the module does not define"),
            std::string::npos)
      << problems(b.build());
}

// Found by the module fuzz target: bytes after the declared memories were ignored here, while
// limit_memory (which rewrites that section) refused the module.
TEST(ModuleValidation, RejectsBytesAfterTheDeclaredMemories) {
  std::vector<uint8_t> binary = WasmBuilder::abi_module().build();
  // Walk the top-level sections (sizes below 128 here: one LEB byte) to the memory section.
  size_t at = 8;
  while (at < binary.size() && binary[at] != 5) at += 2 + binary[at + 1];
  ASSERT_LT(at, binary.size());
  ASSERT_LT(binary[at + 1], 127);
  binary.insert(binary.begin() + at + 2 + binary[at + 1], 0x07);  // one byte more in the payload
  binary[at + 1] += 1;
  EXPECT_NE(problems(binary).find("1 bytes after the declared memories"), std::string::npos)
      << problems(binary);
  EXPECT_FALSE(limit_memory(binary, 64ull << 20).is_ok());
}

// The same for the table section (found by the module fuzz target: a table section declaring
// no table, followed by bytes).
TEST(ModuleValidation, RejectsBytesAfterTheDeclaredTables) {
  WasmBuilder b = WasmBuilder::abi_module();
  b.table(1);
  std::vector<uint8_t> binary = b.build();
  size_t at = 8;
  while (at < binary.size() && binary[at] != 4) at += 2 + binary[at + 1];
  ASSERT_LT(at, binary.size());
  ASSERT_LT(binary[at + 1], 127);
  binary.insert(binary.begin() + at + 2 + binary[at + 1], 0x07);
  binary[at + 1] += 1;
  EXPECT_NE(problems(binary).find("1 bytes after the declared tables"), std::string::npos)
      << problems(binary);
  auto limited = limit_memory(binary, 64ull << 20);
  ASSERT_FALSE(limited.is_ok());
  EXPECT_NE(limited.status().message().find("1 bytes after the declared tables"),
            std::string::npos)
      << limited.status().message();
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
  // After the list, once: how to build a module the host can link.
  const std::string how = "modules must be built for wasm32-wasi (rustup >= 1.84: wasm32-wasip1";
  EXPECT_NE(p.find("; " + how), std::string::npos) << p;
  EXPECT_EQ(p.find(how), p.rfind(how)) << p;
  EXPECT_GT(p.find(how), p.find("unsupported import wasi_snapshot_preview1.sock_accept")) << p;
  EXPECT_EQ(p.find("wasm-bindgen"), std::string::npos) << p;
}

// A Rust crate built for wasm32-unknown-unknown with wasm-bindgen, as the seeds build theirs:
// the problem list, then what to do, naming wasm-bindgen.
TEST(ModuleValidation, SaysWhatToDoWithWasmBindgenModules) {
  WasmBuilder b = WasmBuilder::abi_module();
  b.import_function("__wbindgen_placeholder__", "__wbg_new0_a3b1c2d4", {{}, {kI32}});
  b.import_function("__wbindgen_placeholder__", "__wbindgen_describe", {{kI32}, {}});
  b.import_function("__wbindgen_externref_xform__", "__wbindgen_externref_table_grow", {{kI32}, {kI32}});
  std::string p = problems(b.build());
  EXPECT_EQ(p.rfind("unsupported import __wbindgen_placeholder__.__wbg_new0_a3b1c2d4; "
                    "unsupported import __wbindgen_placeholder__.__wbindgen_describe; "
                    "unsupported import __wbindgen_externref_xform__.__wbindgen_externref_table_grow; "
                    "the module was built with wasm-bindgen",
                    0),
            0u)
      << p;
  EXPECT_NE(p.find("build it for wasm32-wasi (rustup >= 1.84: wasm32-wasip1) without wasm-bindgen; "
                   "modules may import only wasi_snapshot_preview1 functions"),
            std::string::npos)
      << p;
  EXPECT_EQ(p.find("modules must be built"), std::string::npos) << "one hint, not two: " << p;

  // Valid imports only: no hint.
  WasmBuilder fine = WasmBuilder::abi_module();
  fine.import_function("wasi_snapshot_preview1", "proc_exit", {{kI32}, {}});
  EXPECT_EQ(problems(fine.build()), "");
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

// L10: the tag section (13) of exception handling sits between memory (5) and global (6).
TEST(ModuleValidation, AcceptsATagSectionBetweenMemoryAndGlobals) {
  WasmBuilder b = WasmBuilder::abi_module();
  b.tags(2);
  b.globals(1);
  auto info = inspect_module(b.build());
  ASSERT_TRUE(info.is_ok()) << info.status().message();
  EXPECT_TRUE(info->has_tags);
}

TEST(ModuleValidation, RefusesSectionsOutOfOrder) {
  // A global section (6) before the tag section (13).
  auto binary = WasmBuilder::abi_module().build();
  std::vector<uint8_t> global = {6, 6, 1, 0x7F, 0x00, 0x41, 0x00, 0x0B};
  std::vector<uint8_t> tag = {13, 3, 1, 0, 0};
  // After the function section (3): types 1, function 3, memory 5 come first; append both
  // right after the memory section by rebuilding: find the export section (7) and insert before.
  size_t pos = 8;
  while (binary[pos] != 7) pos += 2 + binary[pos + 1];  // sections here are < 128 bytes
  binary.insert(binary.begin() + pos, tag.begin(), tag.end());
  binary.insert(binary.begin() + pos, global.begin(), global.end());
  EXPECT_NE(problems(binary).find("section 13 out of order"), std::string::npos)
      << problems(binary);
}

// C2: tables live on the isolate's JavaScript heap, outside the memory limit.
TEST(ModuleBoundsTest, RefusesTablesAboveTheElementBound) {
  WasmBuilder b = WasmBuilder::abi_module();
  b.table(10'000'000);
  b.table(10'000'000);
  EXPECT_NE(problems(b.build()).find(
                "tables: 20000000 elements at their initial size, more than the bound of 100000"),
            std::string::npos)
      << problems(b.build());

  WasmBuilder at_bound = WasmBuilder::abi_module();
  at_bound.table(60'000);
  at_bound.table(40'000, 40'000);
  auto info = inspect_module(at_bound.build());
  ASSERT_TRUE(info.is_ok()) << info.status().message();
  ASSERT_EQ(info->tables.size(), 2u);
  EXPECT_EQ(info->tables[0].initial, 60'000u);
}

TEST(ModuleBoundsTest, RefusesTooManyGlobalsSegmentsAndTags) {
  WasmBuilder b = WasmBuilder::abi_module();
  b.table(1);
  b.globals(ModuleBounds::kGlobals + 1);
  b.data_segments(ModuleBounds::kDataSegments + 1);
  b.element_segments(ModuleBounds::kElementSegments + 1);
  b.tags(ModuleBounds::kTags + 1);
  const std::string p = problems(b.build());
  EXPECT_NE(p.find("globals: 10001 globals, more than the bound of 10000"), std::string::npos) << p;
  EXPECT_NE(p.find("data segments: 10001 segments, more than the bound of 10000"),
            std::string::npos)
      << p;
  EXPECT_NE(p.find("element segments: 10001 segments, more than the bound of 10000"),
            std::string::npos)
      << p;
  EXPECT_NE(p.find("tags: 10001 tags, more than the bound of 10000"), std::string::npos) << p;

  WasmBuilder under = WasmBuilder::abi_module();
  under.table(1);
  under.globals(ModuleBounds::kGlobals);
  under.data_segments(ModuleBounds::kDataSegments);
  under.element_segments(ModuleBounds::kElementSegments);
  under.tags(ModuleBounds::kTags);
  EXPECT_EQ(problems(under.build()), "");
}

TEST(ModuleBoundsTest, RefusesElementSegmentsAboveTheEntryBound) {
  WasmBuilder b = WasmBuilder::abi_module();
  b.table(1);
  b.element_segments(2, 50'001);
  EXPECT_NE(problems(b.build()).find("element segments: 100002 entries, more than the bound of "
                                     "100000"),
            std::string::npos)
      << problems(b.build());
  WasmBuilder under = WasmBuilder::abi_module();
  under.table(1);
  under.element_segments(2, 50'000);
  EXPECT_EQ(problems(under.build()), "");
}

// C2: limit_memory() rewrites the tables' maxima so that table.grow cannot pass the bound, and
// takes their bytes (in whole pages) out of the memory's share.
TEST(MemoryLimit, BoundsTheTablesMaximaAndCountsTheirBytes) {
  WasmBuilder b = WasmBuilder::abi_module();
  b.table(1000);              // no maximum: could grow to V8's 10,000,000
  b.table(2000, 10'000'000);  // a maximum far above the bound
  auto capped = limit_memory(b.build(), 64ull << 20);
  ASSERT_TRUE(capped.is_ok()) << capped.status().message();
  auto info = inspect_module(*capped);
  ASSERT_TRUE(info.is_ok()) << info.status().message();
  ASSERT_EQ(info->tables.size(), 2u);
  // 97,000 elements left by the initial sizes, shared equally.
  EXPECT_EQ(info->tables[0].max, 1000u + 48'500u);
  EXPECT_EQ(info->tables[1].max, 2000u + 48'500u);
  EXPECT_LE(*info->tables[0].max + *info->tables[1].max, ModuleBounds::kTableElements);
  EXPECT_EQ(info->table_bytes(), 100'000u * InstanceCost::kTableElementBytes);
  // 6,400,000 bytes of tables: 97 whole pages out of the 1024 of 64 MiB.
  EXPECT_EQ(info->memory_max_pages, 1024u - 97u);

  WasmBuilder small = WasmBuilder::abi_module();
  small.table(4, 4);  // what C and Rust modules have: costs no page
  capped = limit_memory(small.build(), 64ull << 20);
  ASSERT_TRUE(capped.is_ok());
  EXPECT_EQ(inspect_module(*capped)->memory_max_pages, 1024u);
  EXPECT_EQ(inspect_module(*capped)->tables.at(0).max, 4u);
}

TEST(MemoryLimit, RefusesInitialMemoryAndTablesAboveTheLimit) {
  WasmBuilder b = WasmBuilder::abi_module(32);
  b.table(100'000, 100'000);
  auto capped = limit_memory(b.build(), 8ull << 20);  // 128 pages; tables take 97, 31 are left
  ASSERT_FALSE(capped.is_ok());
  EXPECT_NE(capped.status().message().find("initial memory of 2097152 bytes and tables of 6400000 "
                                           "bytes at their maximum exceed the memory limit of "
                                           "8388608 bytes"),
            std::string::npos)
      << capped.status().message();
}

// C2 follow-up: V8 makes a JavaScript wrapper per export per instance (about 350 bytes for a
// function): the exports are bounded, at the edge.
TEST(ModuleBoundsTest, RefusesMoreExportsThanTheBound) {
  WasmBuilder over = WasmBuilder::abi_module();  // 4 exports
  over.exported_functions(5'000);
  over.exported_globals(ModuleBounds::kExports + 1 - 4 - 5'000);
  EXPECT_EQ(problems(over.build()), "exports: 10001 exports, more than the bound of 10000");
  WasmBuilder under = WasmBuilder::abi_module();
  under.exported_functions(5'000);
  under.exported_globals(ModuleBounds::kExports - 4 - 5'000);
  EXPECT_EQ(problems(under.build()), "");
}

// M4 (static half): what V8 would have to compile is bounded, each bound at its edge.
TEST(ModuleBoundsTest, RefusesMoreFunctionsThanTheBound) {
  WasmBuilder over = WasmBuilder::abi_module();
  over.functions(ModuleBounds::kFunctions + 1 - 3);  // the ABI module has 3
  EXPECT_EQ(problems(over.build()), "functions: 100001 functions, more than the bound of 100000");
  WasmBuilder under = WasmBuilder::abi_module();
  under.functions(ModuleBounds::kFunctions - 3);
  EXPECT_EQ(problems(under.build()), "");
}

TEST(ModuleBoundsTest, RefusesMoreLocalsPerFunctionThanTheBound) {
  WasmBuilder over = WasmBuilder::abi_module();
  over.functions(1, {.locals = ModuleBounds::kLocalsPerFunction + 1});
  EXPECT_EQ(problems(over.build()),
            "function 3: locals: 10001 locals, more than the bound of 10000");
  WasmBuilder under = WasmBuilder::abi_module();
  under.functions(1, {.locals = ModuleBounds::kLocalsPerFunction});
  EXPECT_EQ(problems(under.build()), "");
}

// A bomb has every function over the bound: one problem names the first and counts the others,
// so that the error stays short (it goes back to the client).
TEST(ModuleBoundsTest, NamesTheFirstFunctionOverABoundAndCountsTheOthers) {
  WasmBuilder bomb = WasmBuilder::abi_module();
  bomb.functions(1000, {.locals = 50'000});
  EXPECT_EQ(problems(bomb.build()),
            "function 3: locals: 50000 locals, more than the bound of 10000 (and 999 more "
            "functions over it); locals: 50000000 locals in all functions, more than the bound of "
            "1000000");
}

TEST(ModuleBoundsTest, RefusesMoreLocalsInAllThanTheBound) {
  // 100 functions of 10,000 locals is the bound; one more local is over it.
  WasmBuilder over = WasmBuilder::abi_module();
  over.functions(100, {.locals = 10'000});
  over.functions(1, {.locals = 1});
  EXPECT_EQ(problems(over.build()),
            "locals: 1000001 locals in all functions, more than the bound of 1000000");
  WasmBuilder under = WasmBuilder::abi_module();
  under.functions(100, {.locals = 10'000});
  EXPECT_EQ(problems(under.build()), "");
}

TEST(ModuleBoundsTest, RefusesAFunctionBodyAboveTheBound) {
  // A body of `nops` nops is 1 (locals) + nops + 1 (end) bytes.
  const uint32_t at_bound = ModuleBounds::kFunctionBodyBytes - 2;
  WasmBuilder over = WasmBuilder::abi_module();
  over.functions(1, {.nops = at_bound + 1});
  EXPECT_EQ(problems(over.build()),
            "function 3: body: 1048577 bytes, more than the bound of 1048576");
  WasmBuilder under = WasmBuilder::abi_module();
  under.functions(1, {.nops = at_bound});
  EXPECT_EQ(problems(under.build()), "");
}

TEST(ModuleBoundsTest, RefusesACodeSectionAboveTheBound) {
  // 32 bodies of exactly 1 MiB (each 4 bytes of size prefix): just over 32 MiB in all.
  const uint32_t body = ModuleBounds::kFunctionBodyBytes - 2;
  WasmBuilder over = WasmBuilder::abi_module();
  over.functions(32, {.nops = body});
  const std::string p = problems(over.build());
  EXPECT_EQ(p.rfind("code section: ", 0), 0u) << p;
  EXPECT_NE(p.find(" bytes, more than the bound of 33554432"), std::string::npos) << p;
  WasmBuilder under = WasmBuilder::abi_module();
  under.functions(31, {.nops = body});
  EXPECT_EQ(problems(under.build()), "");
}

}  // namespace
}  // namespace wasmq::wasm
