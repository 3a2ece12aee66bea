/* Test module for module output: per message it prints a line to stdout with printf (no flush:
 * wasi-libc buffers stdout as the host's fd_fdstat_get describes it), writes one stderr line in
 * three writes, and a stderr line with no newline. A message whose value is "panic" writes what
 * Rust's standard library writes for a panic, in the pieces Rust writes it, and traps. */
#define WASMQ_NO_BATCH
#include <stdio.h>
#include <string.h>

#include "wasmq_module.h"

static void write_piece(const char *text) { fputs(text, stderr); }

static int transform(const wasmq_message *in, wasmq_output *out) {
  printf("stdout line for %.*s\n", (int)in->value.len, (const char *)in->value.data);
  write_piece("stderr ");
  write_piece("in three ");
  write_piece("pieces\n");
  write_piece("stderr without a newline");
  if (in->value.len == 5 && memcmp(in->value.data, "panic", 5) == 0) {
    write_piece("\n");
    static const char *const pieces[] = {"thread '", "<unnamed>", "' panicked at '",
                                         "kaboom: bad input", "', ", "src/lib.rs", ":",
                                         "12", ":", "9", "\n",
                                         "note: run with `RUST_BACKTRACE=1` environment variable "
                                         "to display a backtrace\n"};
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; ++i) write_piece(pieces[i]);
    __builtin_trap();
  }
  wasmq_output_add(out, in);
  return WASMQ_OK;
}

WASMQ_MODULE(transform);
