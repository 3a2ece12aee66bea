/* Test module: exercises the WASI imports the host provides and reports what it saw.
 *
 * For each message it reads the realtime and monotonic clocks, draws 16 random bytes, writes one
 * line to stdout and one to stderr, and reads the environment and argument counts. It returns
 * the message with these headers added:
 *   clock_realtime_ms   realtime clock in milliseconds since the Unix epoch
 *   clock_monotonic_ok  "true" when two monotonic readings succeeded and did not go backwards
 *   random_hex          the 16 random bytes as 32 lowercase hex characters
 *   environ_count       number of environment variables
 *   args_count          number of program arguments
 * A WASI call that fails puts "errno N" in its header instead.
 */
#include <stdio.h>
#include <wasi/api.h>

#include "wasmq_module.h"

enum { kRandomBytes = 16, kTextCapacity = 40 };

/* Writes "errno N" into `text` and returns a view of it. */
static wasmq_bytes errno_text(__wasi_errno_t error, char text[kTextCapacity]) {
  char digits[WASMQ_DECIMAL_CAPACITY];
  wasmq_format_u64(error, digits);
  snprintf(text, kTextCapacity, "errno %s", digits);
  return wasmq_cstr(text);
}

/* The realtime clock in milliseconds, as text in `text`. */
static wasmq_bytes realtime_ms(char text[kTextCapacity]) {
  __wasi_timestamp_t now_ns;
  __wasi_errno_t error = __wasi_clock_time_get(__WASI_CLOCKID_REALTIME, 1000000, &now_ns);
  if (error != __WASI_ERRNO_SUCCESS) return errno_text(error, text);
  return wasmq_format_u64(now_ns / 1000000, text);
}

/* "true" when the monotonic clock reads twice without error and without going backwards. */
static wasmq_bytes monotonic_ok(void) {
  __wasi_timestamp_t first, second;
  bool ok = __wasi_clock_time_get(__WASI_CLOCKID_MONOTONIC, 1, &first) == __WASI_ERRNO_SUCCESS &&
            __wasi_clock_time_get(__WASI_CLOCKID_MONOTONIC, 1, &second) == __WASI_ERRNO_SUCCESS &&
            second >= first;
  return wasmq_cstr(ok ? "true" : "false");
}

/* 16 bytes from random_get as 32 hex characters in `text`. */
static wasmq_bytes random_hex(char text[kTextCapacity]) {
  static const char kHexDigits[] = "0123456789abcdef";
  uint8_t bytes[kRandomBytes];
  __wasi_errno_t error = __wasi_random_get(bytes, sizeof bytes);
  if (error != __WASI_ERRNO_SUCCESS) return errno_text(error, text);
  for (int i = 0; i < kRandomBytes; ++i) {
    text[2 * i] = kHexDigits[bytes[i] >> 4];
    text[2 * i + 1] = kHexDigits[bytes[i] & 0x0F];
  }
  text[2 * kRandomBytes] = '\0';
  return wasmq_cstr(text);
}

/* The number of environment variables, as text in `text`. */
static wasmq_bytes environ_count(char text[kTextCapacity]) {
  __wasi_size_t count, buffer_size;
  __wasi_errno_t error = __wasi_environ_sizes_get(&count, &buffer_size);
  if (error != __WASI_ERRNO_SUCCESS) return errno_text(error, text);
  return wasmq_format_u64(count, text);
}

/* The number of program arguments, as text in `text`. */
static wasmq_bytes args_count(char text[kTextCapacity]) {
  __wasi_size_t count, buffer_size;
  __wasi_errno_t error = __wasi_args_sizes_get(&count, &buffer_size);
  if (error != __WASI_ERRNO_SUCCESS) return errno_text(error, text);
  return wasmq_format_u64(count, text);
}

/* Returns the message with the probe's findings as headers. */
static int probe(const wasmq_message *in, wasmq_output *out) {
  char realtime_text[kTextCapacity], random_text[kTextCapacity];
  char environ_text[kTextCapacity], args_text[kTextCapacity];
  wasmq_header findings[] = {
      {wasmq_cstr("clock_realtime_ms"), realtime_ms(realtime_text)},
      {wasmq_cstr("clock_monotonic_ok"), monotonic_ok()},
      {wasmq_cstr("random_hex"), random_hex(random_text)},
      {wasmq_cstr("environ_count"), environ_count(environ_text)},
      {wasmq_cstr("args_count"), args_count(args_text)},
  };
  printf("wasi_probe: stdout line for a message of %u bytes\n", (unsigned)in->value.len);
  fflush(stdout);
  fprintf(stderr, "wasi_probe: stderr line for a message of %u bytes\n", (unsigned)in->value.len);
  fflush(stderr);
  uint32_t count = (uint32_t)(sizeof findings / sizeof findings[0]);
  return wasmq_output_add_with_headers(out, in, findings, count) ? WASMQ_OK : WASMQ_FAILED;
}

WASMQ_MODULE(probe);
