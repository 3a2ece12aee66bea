// wasmq-build-flags: -Wl,--allow-undefined
/* Hostile test module: complete exports, but it imports `env.foo` (i32) -> i32, which the host
 * does not provide, so the upload must be refused. Each message gets header `foo_result`. */
#include "wasmq_module.h"

__attribute__((import_module("env"), import_name("foo"))) int32_t foo(int32_t argument);

/* Passes the message through with the result of foo(value length). */
static int call_foo(const wasmq_message *in, wasmq_output *out) {
  char digits[WASMQ_DECIMAL_CAPACITY];
  wasmq_header result = {wasmq_cstr("foo_result"),
                         wasmq_format_i64(foo((int32_t)in->value.len), digits)};
  return wasmq_output_add_with_headers(out, in, &result, 1) ? WASMQ_OK : WASMQ_FAILED;
}

WASMQ_MODULE(call_foo);
