# Builds the WebAssembly modules the tests, examples and benchmarks use, from source:
#   C   (tests/modules/*.c, examples/modules/header-adder/*.c): clang-14 -> wasm32-wasi reactor;
#       the SDK headers and tests/modules/*.h (helpers the test modules share) are dependencies.
#       A first line "// wasmq-build-flags: ..." adds flags for that module.
#   WAT (tests/modules/*.wat): wabt's wat2wasm, for hostile modules whose shape C cannot express
#       (huge tables, exact iovec layouts, exception-handling tags).
#   Rust (examples/modules/message-processor): Debian's cargo, offline, Debian's crates;
#       built for wasm32-wasi and natively (the native build is the benchmark's baseline).
# Every module lands in ${WASMQ_MODULES_DIR}/<name>.wasm; target `modules` builds them all.

set(WASMQ_MODULES_DIR ${CMAKE_BINARY_DIR}/modules)
file(MAKE_DIRECTORY ${WASMQ_MODULES_DIR})
find_program(WASM_CLANG clang-14 REQUIRED)
find_program(DEBIAN_CARGO cargo PATHS /usr/bin NO_DEFAULT_PATH REQUIRED)
find_program(DEBIAN_RUSTC rustc PATHS /usr/bin NO_DEFAULT_PATH REQUIRED)

set(WASMQ_MODULE_OUTPUTS)

file(GLOB WASMQ_C_MODULES CONFIGURE_DEPENDS
  ${CMAKE_SOURCE_DIR}/tests/modules/*.c
  ${CMAKE_SOURCE_DIR}/examples/modules/header-adder/*.c)
file(GLOB_RECURSE WASMQ_C_SDK CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/sdk/c/*.h
  ${CMAKE_SOURCE_DIR}/tests/modules/*.h)
foreach(source ${WASMQ_C_MODULES})
  get_filename_component(name ${source} NAME_WE)
  file(STRINGS ${source} first_line LIMIT_COUNT 1)
  set(extra_flags)
  if(first_line MATCHES "^// wasmq-build-flags: (.*)$")
    separate_arguments(extra_flags UNIX_COMMAND "${CMAKE_MATCH_1}")
  endif()
  set(output ${WASMQ_MODULES_DIR}/${name}.wasm)
  add_custom_command(
    OUTPUT ${output}
    COMMAND ${WASM_CLANG} --target=wasm32-wasi -O2 -mexec-model=reactor
            -I${CMAKE_SOURCE_DIR}/sdk/c ${extra_flags} -o ${output} ${source}
    DEPENDS ${source} ${WASMQ_C_SDK}
    COMMENT "wasm32-wasi module ${name}"
    VERBATIM)
  list(APPEND WASMQ_MODULE_OUTPUTS ${output})
endforeach()

find_program(WAT2WASM wat2wasm REQUIRED)
file(GLOB WASMQ_WAT_MODULES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/modules/*.wat)
foreach(source ${WASMQ_WAT_MODULES})
  get_filename_component(name ${source} NAME_WE)
  set(output ${WASMQ_MODULES_DIR}/${name}.wasm)
  add_custom_command(
    OUTPUT ${output}
    COMMAND ${WAT2WASM} --enable-all -o ${output} ${source}
    DEPENDS ${source}
    COMMENT "wat2wasm module ${name}"
    VERBATIM)
  list(APPEND WASMQ_MODULE_OUTPUTS ${output})
endforeach()

# Rust crates: Debian's toolchain only (a rustup toolchain earlier on PATH is ignored).
set(WASMQ_CARGO_ENV
  ${CMAKE_COMMAND} -E env PATH=/usr/bin:/bin RUSTC=${DEBIAN_RUSTC}
  CARGO_HOME=${CMAKE_BINARY_DIR}/cargo-home CARGO_TARGET_DIR=${CMAKE_BINARY_DIR}/cargo)

function(wasmq_rust_module crate_dir crate_name)
  file(GLOB_RECURSE sources CONFIGURE_DEPENDS
    ${crate_dir}/src/*.rs ${crate_dir}/Cargo.toml
    ${CMAKE_SOURCE_DIR}/sdk/rust/src/*.rs ${CMAKE_SOURCE_DIR}/sdk/rust/Cargo.toml)
  string(REPLACE "-" "_" lib_name ${crate_name})
  set(output ${WASMQ_MODULES_DIR}/${lib_name}.wasm)
  add_custom_command(
    OUTPUT ${output}
    COMMAND ${WASMQ_CARGO_ENV} ${DEBIAN_CARGO} build --offline --release --target wasm32-wasi --lib
    COMMAND ${CMAKE_COMMAND} -E copy ${CMAKE_BINARY_DIR}/cargo/wasm32-wasi/release/${lib_name}.wasm ${output}
    WORKING_DIRECTORY ${crate_dir}
    DEPENDS ${sources}
    COMMENT "wasm32-wasi module ${crate_name} (cargo)"
    VERBATIM)
  set(native ${CMAKE_BINARY_DIR}/native/${lib_name}_native_bench)
  add_custom_command(
    OUTPUT ${native}
    COMMAND ${WASMQ_CARGO_ENV} ${DEBIAN_CARGO} build --offline --release --bin native_bench
    COMMAND ${CMAKE_COMMAND} -E copy ${CMAKE_BINARY_DIR}/cargo/release/native_bench ${native}
    WORKING_DIRECTORY ${crate_dir}
    DEPENDS ${sources} ${output}
    COMMENT "native build of ${crate_name} (cargo)"
    VERBATIM)
  set(WASMQ_MODULE_OUTPUTS ${WASMQ_MODULE_OUTPUTS} ${output} ${native} PARENT_SCOPE)
endfunction()

if(EXISTS ${CMAKE_SOURCE_DIR}/examples/modules/message-processor/Cargo.toml)
  wasmq_rust_module(${CMAKE_SOURCE_DIR}/examples/modules/message-processor message-processor)
endif()

add_custom_target(modules ALL DEPENDS ${WASMQ_MODULE_OUTPUTS})
