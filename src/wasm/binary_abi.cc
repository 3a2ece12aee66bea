// The module ABI's side of inspect_module (module-abi.md): the WASI functions a module may
// import, and the checks of its imports, its memory and the exports the host calls.
#include "wasm/binary.h"
#include "wasm/binary_internal.h"

namespace wasmq::wasm {
namespace {

constexpr uint8_t kI32 = 0x7F;
constexpr uint8_t kI64 = 0x7E;

FunctionType sig(std::vector<uint8_t> params, std::vector<uint8_t> results) {
  return {std::move(params), std::move(results)};
}

}  // namespace

const std::vector<WasiFunction>& supported_wasi_functions() {
  static const std::vector<WasiFunction> functions = {
      {"args_get", sig({kI32, kI32}, {kI32})},
      {"args_sizes_get", sig({kI32, kI32}, {kI32})},
      {"environ_get", sig({kI32, kI32}, {kI32})},
      {"environ_sizes_get", sig({kI32, kI32}, {kI32})},
      {"clock_res_get", sig({kI32, kI32}, {kI32})},
      {"clock_time_get", sig({kI32, kI64, kI32}, {kI32})},
      {"random_get", sig({kI32, kI32}, {kI32})},
      {"fd_write", sig({kI32, kI32, kI32, kI32}, {kI32})},
      {"fd_read", sig({kI32, kI32, kI32, kI32}, {kI32})},
      {"fd_close", sig({kI32}, {kI32})},
      {"fd_seek", sig({kI32, kI64, kI32, kI32}, {kI32})},
      {"fd_fdstat_get", sig({kI32, kI32}, {kI32})},
      {"fd_fdstat_set_flags", sig({kI32, kI32}, {kI32})},
      {"fd_prestat_get", sig({kI32, kI32}, {kI32})},
      {"fd_prestat_dir_name", sig({kI32, kI32, kI32}, {kI32})},
      {"path_open", sig({kI32, kI32, kI32, kI32, kI32, kI64, kI64, kI32, kI32}, {kI32})},
      {"proc_exit", sig({kI32}, {})},
      {"sched_yield", sig({}, {kI32})},
  };
  return functions;
}

void check_abi(ModuleInfo& info, int memories, std::string& problems) {
  // Imports: only the WASI subset, with its exact signatures.
  bool unsupported = false;
  bool wasm_bindgen = false;
  for (const Import& imp : info.imports) {
    std::string qualified = imp.module + "." + imp.name;
    if (imp.module != kWasiModule || imp.kind != ExternKind::kFunction) {
      add_problem(problems, "unsupported import " + qualified);
      unsupported = true;
      // wasm-bindgen's import modules (a Rust crate built for wasm32-unknown-unknown, as the
      // seeds build theirs): a JavaScript host's glue, which a broker does not have.
      wasm_bindgen |= imp.module.starts_with("__wbindgen_");
      continue;
    }
    const WasiFunction* known = nullptr;
    for (const auto& f : supported_wasi_functions()) {
      if (imp.name == f.name) known = &f;
    }
    if (!known) {
      add_problem(problems, "unsupported import " + qualified);
      unsupported = true;
    } else if (*imp.type != known->type) {
      add_problem(problems, "import " + qualified + " has signature " + imp.type->to_string() +
                                ", expected " + known->type.to_string());
    }
  }
  // Once, after the list: how to build a module the host can link.
  if (wasm_bindgen) {
    add_problem(problems,
                "the module was built with wasm-bindgen (imports from __wbindgen_*), whose "
                "JavaScript glue the broker does not provide: build it for wasm32-wasi (rustup "
                ">= 1.84: wasm32-wasip1) without wasm-bindgen; modules may import only "
                "wasi_snapshot_preview1 functions");
  } else if (unsupported) {
    add_problem(problems,
                "modules must be built for wasm32-wasi (rustup >= 1.84: wasm32-wasip1; C: "
                "clang --target=wasm32-wasi -mexec-model=reactor) and may import only "
                "wasi_snapshot_preview1 functions (docs/module-abi.md lists them)");
  }

  // Memory: exactly one, defined by the module and exported as "memory".
  if (memories > 1) add_problem(problems, "more than one memory is not supported");
  const Export* memory = info.find_export("memory");
  if (!memory) {
    add_problem(problems, "missing export memory");
  } else if (memory->kind != ExternKind::kMemory) {
    add_problem(problems, "export memory is not a memory");
  } else if (memories == 0) {
    add_problem(problems, "export memory names a memory the module does not define");
  }

  struct Expected {
    const char* name;
    FunctionType type;
    bool required;
    bool* present;
  };
  bool ignored = false;
  const Expected expected[] = {
      {"alloc", sig({kI32}, {kI32}), true, &ignored},
      {"dealloc", sig({kI32, kI32}, {}), true, &ignored},
      {"process_message", sig({kI32, kI32}, {kI32}), true, &ignored},
      {"process_batch", sig({kI32, kI32}, {kI32}), false, &info.has_process_batch},
      {"init_module", sig({kI32, kI32}, {kI32}), false, &info.has_init_module},
      {"_initialize", sig({}, {}), false, &info.has_initialize},
  };
  for (const auto& e : expected) {
    const Export* found = info.find_export(e.name);
    if (!found) {
      if (e.required) add_problem(problems, std::string("missing export ") + e.name);
      continue;
    }
    if (found->kind != ExternKind::kFunction) {
      add_problem(problems, std::string("export ") + e.name + " is not a function");
    } else if (*found->type != e.type) {
      add_problem(problems, std::string("export ") + e.name + " has signature " +
                                found->type->to_string() + ", expected " + e.type.to_string());
    } else {
      *e.present = true;
    }
  }
}

}  // namespace wasmq::wasm
