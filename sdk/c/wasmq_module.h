/*
 * wasmq_module.h — header-only C SDK for wasmq ETL modules (C11; also compiles as C++).
 *
 * It hides the module ABI (see module-abi.md in the project's spec): the `alloc`, `dealloc`,
 * `process_message`, `process_batch` and `init_module` exports, the bincode encoding of
 * `Message` and `ProcessResult`, and the `WasmResult` handed back to the host. A module is one
 * function that reads a decoded message and adds output messages:
 *
 *     #include "wasmq_module.h"
 *
 *     static int add_greeting(const wasmq_message *in, wasmq_output *out) {
 *       if (wasmq_bytes_equal_cstr(in->value, "drop-me")) return WASMQ_OK;  // filtered
 *       if (wasmq_find_header(in, "poison")) {
 *         wasmq_output_set_error(out, "poisoned message");                    // module error
 *         return WASMQ_FAILED;
 *       }
 *       wasmq_header greeting = {wasmq_cstr("greeting"), wasmq_cstr("hello")};
 *       wasmq_output_add_with_headers(out, in, &greeting, 1);                 // replaced
 *       return WASMQ_OK;
 *     }
 *
 *     WASMQ_MODULE(add_greeting);
 *
 * Build:  clang-14 --target=wasm32-wasi -O2 -mexec-model=reactor -I sdk/c -o m.wasm m.c
 *
 * Memory: every view (`wasmq_bytes`) handed to a module points into the host's input buffer,
 * which stays valid until the module's function returns; copy what must outlive the call. The
 * SDK allocates with malloc/free only, and frees everything it allocated for a call before the
 * export returns, except the result, which the host copies and then releases through `dealloc`.
 * The SDK never frees the input buffer: the host releases it through `dealloc` after the call.
 *
 * Threads: a module instance runs one call at a time; nothing here is thread-safe.
 *
 * Switches (define before including):
 *   WASMQ_NO_BATCH   WASMQ_MODULE does not export `process_batch`; the host then calls
 *                    `process_message` once per message.
 */
#ifndef WASMQ_MODULE_H_
#define WASMQ_MODULE_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ===================================================================================== */
/* Views and status codes                                                                 */
/* ===================================================================================== */

/* A borrowed byte range. `data` may be NULL only when `len` is 0. The view never owns memory. */
typedef struct wasmq_bytes {
  const uint8_t *data;
  uint32_t len;
} wasmq_bytes;

/* One header: a name and a value, both UTF-8 (the SDK checks this on input and on output). */
typedef struct wasmq_header {
  wasmq_bytes name;
  wasmq_bytes value;
} wasmq_header;

/* A message as the ABI defines it. Decoded messages are views into the input buffer; messages a
 * module builds for output may point anywhere that stays valid until the output call returns.
 * `key` is meaningful only when `has_key` is non-zero; `timestamp` is milliseconds since the
 * Unix epoch. The host sends unique header names (the SDK does not check); on output a module
 * must not add the same name twice. */
typedef struct wasmq_message {
  int has_key;
  wasmq_bytes key;
  wasmq_bytes value;
  const wasmq_header *headers;
  uint32_t header_count;
  int64_t timestamp;
} wasmq_message;

/* Status returned by a module's process and init functions: WASMQ_OK, or anything else for
 * failure. */
enum { WASMQ_OK = 0, WASMQ_FAILED = 1 };

/* Room needed by wasmq_format_u64 and wasmq_format_i64: 20 characters and a terminating NUL. */
enum { WASMQ_DECIMAL_CAPACITY = 21 };

/* Returns a view of the NUL-terminated string `text` (without the NUL). `text` must outlive the
 * view. Strings longer than UINT32_MAX bytes are cut to UINT32_MAX. */
static inline wasmq_bytes wasmq_cstr(const char *text) {
  wasmq_bytes view;
  size_t len = strlen(text);
  view.data = (const uint8_t *)text;
  view.len = len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
  return view;
}

/* True when both views hold the same bytes. */
static inline bool wasmq_bytes_equal(wasmq_bytes a, wasmq_bytes b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

/* True when `view` holds exactly the bytes of the NUL-terminated string `text`. */
static inline bool wasmq_bytes_equal_cstr(wasmq_bytes view, const char *text) {
  return wasmq_bytes_equal(view, wasmq_cstr(text));
}

/* Returns the first header of `message` named `name`, or NULL when there is none. The pointer
 * is valid as long as `message` is. */
static inline const wasmq_header *wasmq_find_header(const wasmq_message *message,
                                                    const char *name) {
  wasmq_bytes wanted = wasmq_cstr(name);
  for (uint32_t i = 0; i < message->header_count; ++i) {
    if (wasmq_bytes_equal(message->headers[i].name, wanted)) return &message->headers[i];
  }
  return NULL;
}

/* Parses `text` as a plain unsigned decimal (ASCII digits only, no sign, no spaces, at least one
 * digit). Stores the number in `*value` and returns true when it is at most `max`; otherwise
 * returns false and leaves `*value` unchanged. */
static inline bool wasmq_parse_u64(wasmq_bytes text, uint64_t max, uint64_t *value) {
  if (text.len == 0) return false;
  uint64_t number = 0;
  for (uint32_t i = 0; i < text.len; ++i) {
    uint8_t c = text.data[i];
    if (c < '0' || c > '9') return false;
    uint64_t digit = (uint64_t)(c - '0');
    if (number > (max - digit) / 10) return false;
    number = number * 10 + digit;
  }
  *value = number;
  return true;
}

/* Writes `value` in decimal followed by a NUL into `out` (WASMQ_DECIMAL_CAPACITY bytes) and
 * returns a view of the digits. The view points into `out`. */
static inline wasmq_bytes wasmq_format_u64(uint64_t value, char out[WASMQ_DECIMAL_CAPACITY]) {
  char reversed[WASMQ_DECIMAL_CAPACITY];
  uint32_t count = 0;
  do {
    reversed[count++] = (char)('0' + value % 10);
    value /= 10;
  } while (value != 0);
  for (uint32_t i = 0; i < count; ++i) out[i] = reversed[count - 1 - i];
  out[count] = '\0';
  wasmq_bytes view;
  view.data = (const uint8_t *)out;
  view.len = count;
  return view;
}

/* Writes `value` in decimal (with a leading '-' when negative) followed by a NUL into `out`
 * (WASMQ_DECIMAL_CAPACITY bytes) and returns a view of the text. The view points into `out`. */
static inline wasmq_bytes wasmq_format_i64(int64_t value, char out[WASMQ_DECIMAL_CAPACITY]) {
  if (value >= 0) return wasmq_format_u64((uint64_t)value, out);
  /* Negate in unsigned arithmetic so that INT64_MIN does not overflow. */
  wasmq_format_u64(0 - (uint64_t)value, out + 1);
  out[0] = '-';
  return wasmq_cstr(out);
}

/* True when `data[0..len)` is well-formed UTF-8 by the same rules as Rust's `str::from_utf8`
 * (no overlong forms, no surrogates, nothing above U+10FFFF). */
static inline bool wasmq_utf8_valid(const uint8_t *data, uint32_t len) {
  uint32_t i = 0;
  while (i < len) {
    uint8_t lead = data[i];
    if (lead < 0x80) {
      ++i;
      continue;
    }
    uint32_t continuation_count;
    uint8_t second_min = 0x80, second_max = 0xBF;
    if (lead >= 0xC2 && lead <= 0xDF) {
      continuation_count = 1;
    } else if (lead == 0xE0) {
      continuation_count = 2;
      second_min = 0xA0;
    } else if ((lead >= 0xE1 && lead <= 0xEC) || lead == 0xEE || lead == 0xEF) {
      continuation_count = 2;
    } else if (lead == 0xED) {
      continuation_count = 2;
      second_max = 0x9F;
    } else if (lead == 0xF0) {
      continuation_count = 3;
      second_min = 0x90;
    } else if (lead >= 0xF1 && lead <= 0xF3) {
      continuation_count = 3;
    } else if (lead == 0xF4) {
      continuation_count = 3;
      second_max = 0x8F;
    } else {
      return false;
    }
    if (len - i - 1 < continuation_count) return false;
    if (data[i + 1] < second_min || data[i + 1] > second_max) return false;
    for (uint32_t k = 2; k <= continuation_count; ++k) {
      if ((data[i + k] & 0xC0) != 0x80) return false;
    }
    i += continuation_count + 1;
  }
  return true;
}

/* ===================================================================================== */
/* Bounded bincode decoder (bincode 1.x default options)                                  */
/* ===================================================================================== */

/* Smallest encodings, used to bound counts read from the input before anything is allocated. */
enum {
  WASMQ_MIN_HEADER_BYTES = 16,  /* two empty strings: two u64 lengths */
  WASMQ_MIN_MESSAGE_BYTES = 25, /* None key, empty value, no headers, timestamp */
};

/* A cursor over untrusted bytes. Every read checks the remaining length first; the first failure
 * is recorded (`error`, static text; `error_offset`, the byte where the failing read started;
 * `context`, the field being read) and every later read fails too. `out_of_memory` tells an
 * allocation failure apart from malformed input. The reader never owns the bytes. */
typedef struct wasmq_reader {
  const uint8_t *start;
  const uint8_t *cursor;
  uint32_t remaining;
  const char *context;
  const char *error;
  uint32_t error_offset;
  bool out_of_memory;
  /* Set when this exact input was already decoded once without error (the batch path checks a
   * whole batch before processing it): strings are then not validated a second time. */
  bool input_checked;
} wasmq_reader;

/* Starts a reader over `data[0..len)`, which must stay valid while the reader is used. */
static inline void wasmq_reader_init(wasmq_reader *reader, const uint8_t *data, uint32_t len) {
  reader->start = data;
  reader->cursor = data;
  reader->remaining = len;
  reader->context = "input";
  reader->error = NULL;
  reader->error_offset = 0;
  reader->out_of_memory = false;
  reader->input_checked = false;
}

/* Records `error` (static text) at the current position unless a failure is already recorded.
 * Always returns false, so callers can `return wasmq_reader_fail(...)`. */
static inline bool wasmq_reader_fail(wasmq_reader *reader, const char *error) {
  if (reader->error == NULL) {
    reader->error = error;
    reader->error_offset = (uint32_t)(reader->cursor - reader->start);
  }
  return false;
}

/* Takes `count` bytes as a view. Fails with "truncated input" when fewer remain. */
static inline bool wasmq_read_raw(wasmq_reader *reader, uint32_t count, wasmq_bytes *out) {
  if (reader->error != NULL) return false;
  if (count > reader->remaining) return wasmq_reader_fail(reader, "truncated input");
  out->data = reader->cursor;
  out->len = count;
  reader->cursor += count;
  reader->remaining -= count;
  return true;
}

/* Reads one byte. */
static inline bool wasmq_read_u8(wasmq_reader *reader, uint8_t *value) {
  wasmq_bytes raw;
  if (!wasmq_read_raw(reader, 1, &raw)) return false;
  *value = raw.data[0];
  return true;
}

/* Reads a little-endian u64. */
static inline bool wasmq_read_u64(wasmq_reader *reader, uint64_t *value) {
  wasmq_bytes raw;
  if (!wasmq_read_raw(reader, 8, &raw)) return false;
  uint64_t number = 0;
  for (int i = 7; i >= 0; --i) number = (number << 8) | raw.data[i];
  *value = number;
  return true;
}

/* Reads a little-endian two's-complement i64. */
static inline bool wasmq_read_i64(wasmq_reader *reader, int64_t *value) {
  uint64_t bits;
  if (!wasmq_read_u64(reader, &bits)) return false;
  memcpy(value, &bits, sizeof bits);
  return true;
}

/* Reads a bool: 0 or 1; any other byte fails with "invalid bool". */
static inline bool wasmq_read_bool(wasmq_reader *reader, bool *value) {
  uint8_t byte;
  if (!wasmq_read_u8(reader, &byte)) return false;
  if (byte > 1) {
    reader->cursor -= 1;
    reader->remaining += 1;
    return wasmq_reader_fail(reader, "invalid bool");
  }
  *value = byte == 1;
  return true;
}

/* Reads a u64 length or element count and checks that `count` elements of at least
 * `min_element_bytes` bytes each (>= 1) could still fit in the remaining input, so that nothing
 * is ever allocated or looped by an unchecked count. */
static inline bool wasmq_read_count(wasmq_reader *reader, uint32_t min_element_bytes,
                                    uint32_t *count) {
  uint64_t declared;
  if (!wasmq_read_u64(reader, &declared)) return false;
  if (declared > reader->remaining / min_element_bytes) {
    reader->cursor -= 8;
    reader->remaining += 8;
    return wasmq_reader_fail(reader, "length exceeds remaining input");
  }
  *count = (uint32_t)declared;
  return true;
}

/* Reads a `Vec<u8>`: u64 length, then that many bytes, as a view into the input. */
static inline bool wasmq_read_bytes(wasmq_reader *reader, wasmq_bytes *out) {
  uint32_t len;
  if (!wasmq_read_count(reader, 1, &len)) return false;
  return wasmq_read_raw(reader, len, out);
}

/* Reads a `String`: like wasmq_read_bytes, and the bytes must be valid UTF-8. */
static inline bool wasmq_read_string(wasmq_reader *reader, wasmq_bytes *out) {
  const uint8_t *string_start = reader->cursor;
  uint32_t remaining_before = reader->remaining;
  if (!wasmq_read_bytes(reader, out)) return false;
  if (!reader->input_checked && !wasmq_utf8_valid(out->data, out->len)) {
    reader->cursor = string_start;
    reader->remaining = remaining_before;
    return wasmq_reader_fail(reader, "string is not valid UTF-8");
  }
  return true;
}

/* Reads an `Option` tag: 0 (None) or 1 (Some); anything else fails with "invalid Option tag". */
static inline bool wasmq_read_option_tag(wasmq_reader *reader, bool *is_some) {
  uint8_t tag;
  if (!wasmq_read_u8(reader, &tag)) return false;
  if (tag > 1) {
    reader->cursor -= 1;
    reader->remaining += 1;
    return wasmq_reader_fail(reader, "invalid Option tag");
  }
  *is_some = tag == 1;
  return true;
}

/* Fails with "trailing bytes" unless the whole input has been read. */
static inline bool wasmq_reader_expect_end(wasmq_reader *reader) {
  if (reader->error != NULL) return false;
  if (reader->remaining != 0) {
    reader->context = "input";
    return wasmq_reader_fail(reader, "trailing bytes after the encoded value");
  }
  return true;
}

/* Shared body of wasmq_read_message and wasmq_skip_message: decodes one `Message`, keeping the
 * header views only when `message` is not NULL. The header table goes into `scratch` when it
 * has room for it (no allocation), else into a malloc'd table. */
static inline bool wasmq_internal_decode_message(wasmq_reader *reader, wasmq_message *message,
                                                 wasmq_header *scratch, uint32_t scratch_capacity) {
  wasmq_message decoded;
  memset(&decoded, 0, sizeof decoded);
  bool has_key;
  reader->context = "key";
  if (!wasmq_read_option_tag(reader, &has_key)) return false;
  decoded.has_key = has_key ? 1 : 0;
  if (has_key && !wasmq_read_string(reader, &decoded.key)) return false;
  reader->context = "value";
  if (!wasmq_read_bytes(reader, &decoded.value)) return false;
  reader->context = "header count";
  uint32_t header_count;
  if (!wasmq_read_count(reader, WASMQ_MIN_HEADER_BYTES, &header_count)) return false;
  wasmq_header *headers = NULL;
  bool owned = false;
  if (message != NULL && header_count > 0 && header_count <= scratch_capacity) {
    headers = scratch;
  } else if (message != NULL && header_count > 0) {
    owned = true;
    /* header_count <= remaining / 16, so the table is at most the input's size on wasm32
     * (a header is 16 bytes there) and cannot overflow a 64-bit size_t elsewhere. */
    headers = (wasmq_header *)malloc((size_t)header_count * sizeof(wasmq_header));
    if (headers == NULL) {
      reader->out_of_memory = true;
      return wasmq_reader_fail(reader, "out of memory for the header table");
    }
  }
  for (uint32_t i = 0; i < header_count; ++i) {
    wasmq_header header;
    reader->context = "header name";
    bool ok = wasmq_read_string(reader, &header.name);
    if (ok) {
      reader->context = "header value";
      ok = wasmq_read_string(reader, &header.value);
    }
    if (!ok) {
      if (owned) free(headers);
      return false;
    }
    if (headers != NULL) headers[i] = header;
  }
  reader->context = "timestamp";
  if (!wasmq_read_i64(reader, &decoded.timestamp)) {
    if (owned) free(headers);
    return false;
  }
  if (message != NULL) {
    decoded.headers = headers;
    decoded.header_count = header_count;
    *message = decoded;
  }
  return true;
}

/* Decodes one `Message` at the reader's position into `*message`. On success the views point
 * into the reader's input and `message->headers` is a malloc'd table that the caller releases
 * with wasmq_message_release. On failure nothing is allocated and `*message` is unchanged. */
static inline bool wasmq_read_message(wasmq_reader *reader, wasmq_message *message) {
  return wasmq_internal_decode_message(reader, message, NULL, 0);
}

/* Checks and steps over one `Message` without allocating anything. */
static inline bool wasmq_skip_message(wasmq_reader *reader) {
  return wasmq_internal_decode_message(reader, NULL, NULL, 0);
}

/* Header table for messages decoded by the SDK's own exports, which hold one message at a
 * time: most messages fit, and then decoding allocates nothing. */
enum { WASMQ_INTERNAL_SCRATCH_HEADERS = 32 };
static wasmq_header wasmq_internal_header_scratch[WASMQ_INTERNAL_SCRATCH_HEADERS];

static inline bool wasmq_internal_read_message(wasmq_reader *reader, wasmq_message *message) {
  return wasmq_internal_decode_message(reader, message, wasmq_internal_header_scratch,
                                       WASMQ_INTERNAL_SCRATCH_HEADERS);
}

static inline void wasmq_internal_release_message(wasmq_message *message) {
  if (message->headers != wasmq_internal_header_scratch) free((void *)message->headers);
  message->headers = NULL;
  message->header_count = 0;
}

/* Frees the header table of a message filled by wasmq_read_message (the views stay borrowed).
 * Safe to call once per successful wasmq_read_message. */
static inline void wasmq_message_release(wasmq_message *message) {
  free((void *)message->headers);
  message->headers = NULL;
  message->header_count = 0;
}

/* ===================================================================================== */
/* Output: a growable buffer and the ProcessResult builder                                */
/* ===================================================================================== */

/* A malloc'd byte buffer. `failed` is set when an encoding could not be completed for lack of
 * memory; the contents are then unusable. The owner frees `data` with free() (or hands it to the
 * host, which releases it through `dealloc`). */
typedef struct wasmq_buffer {
  uint8_t *data;
  uint32_t len;
  uint32_t capacity;
  bool failed;
} wasmq_buffer;

/* Makes room for `additional` more bytes, growing to twice the capacity or to exactly what is
 * needed when that is more or when doubling does not fit in memory. Returns false, leaving the
 * buffer as it was, when the size would pass UINT32_MAX or memory runs out. */
static inline bool wasmq_buffer_reserve(wasmq_buffer *buffer, uint64_t additional) {
  if (buffer->failed) return false;
  if (additional <= (uint64_t)(buffer->capacity - buffer->len)) return true;
  uint64_t needed = (uint64_t)buffer->len + additional;
  if (needed > UINT32_MAX) return false;
  uint64_t capacity = buffer->capacity != 0 ? 2 * (uint64_t)buffer->capacity : 256;
  if (capacity < needed) capacity = needed;
  if (capacity > UINT32_MAX) capacity = needed;
  if ((uint64_t)(size_t)capacity != capacity) return false;
  uint8_t *grown = (uint8_t *)realloc(buffer->data, (size_t)capacity);
  if (grown == NULL && capacity > needed) {
    capacity = needed;
    grown = (uint8_t *)realloc(buffer->data, (size_t)capacity);
  }
  if (grown == NULL) return false;
  buffer->data = grown;
  buffer->capacity = (uint32_t)capacity;
  return true;
}

/* Appends bytes for which room was reserved with wasmq_buffer_reserve. */
static inline void wasmq_buffer_put(wasmq_buffer *buffer, const void *bytes, uint32_t count) {
  if (count != 0) memcpy(buffer->data + buffer->len, bytes, count);
  buffer->len += count;
}

/* Appends one reserved byte. */
static inline void wasmq_buffer_put_u8(wasmq_buffer *buffer, uint8_t value) {
  buffer->data[buffer->len++] = value;
}

/* Writes a little-endian u64 at `offset`, which must lie within the first `len - 8` bytes. */
static inline void wasmq_buffer_patch_u64(wasmq_buffer *buffer, uint32_t offset, uint64_t value) {
  for (int i = 0; i < 8; ++i) buffer->data[offset + (uint32_t)i] = (uint8_t)(value >> (8 * i));
}

/* Appends a reserved little-endian u64. */
static inline void wasmq_buffer_put_u64(wasmq_buffer *buffer, uint64_t value) {
  buffer->len += 8;
  wasmq_buffer_patch_u64(buffer, buffer->len - 8, value);
}

/* Appends a reserved bincode `Vec<u8>`/`String`: u64 length, then the bytes. */
static inline void wasmq_buffer_put_sized(wasmq_buffer *buffer, wasmq_bytes bytes) {
  wasmq_buffer_put_u64(buffer, bytes.len);
  wasmq_buffer_put(buffer, bytes.data, bytes.len);
}

/* Frees the buffer's memory and empties it. */
static inline void wasmq_buffer_release(wasmq_buffer *buffer) {
  free(buffer->data);
  buffer->data = NULL;
  buffer->len = 0;
  buffer->capacity = 0;
  buffer->failed = false;
}

/* Longest error text kept in a result; longer texts are cut at a character boundary. */
enum { WASMQ_MAX_ERROR_BYTES = 4096 };

/* Builds one `ProcessResult` at the end of a buffer: wasmq_output_begin, then any number of
 * wasmq_output_add* / wasmq_output_set_*, then wasmq_output_finish. A module only sees outputs
 * that the SDK began; its fields are private to the SDK. Defaults: no messages (the input is
 * filtered), should_continue true, no error. */
typedef struct wasmq_output {
  wasmq_buffer *buffer;
  uint32_t start;
  uint32_t message_count;
  bool should_continue;
  bool has_error;
  /* The decoded input message, whose key and headers were checked as UTF-8 when decoded: when
   * it is added as it is, they are not checked again. */
  const wasmq_message *checked_message;
  char *error_copy;
  const char *error_text;
  uint32_t error_len;
} wasmq_output;

/* Sets whether later pipeline stages run on this result's messages (default true). */
static inline void wasmq_output_set_should_continue(wasmq_output *output, bool should_continue) {
  output->should_continue = should_continue;
}

/* Marks the message as failed with `error` (copied; cut to WASMQ_MAX_ERROR_BYTES; bytes that are
 * not valid UTF-8 are replaced by '?'). The first error set is kept and later ones are ignored.
 * Messages already added are discarded and later adds are refused, because the host ignores the
 * outputs of a failed message. */
static inline void wasmq_output_set_error_bytes(wasmq_output *output, wasmq_bytes error) {
  if (output->has_error) return;
  output->has_error = true;
  uint32_t len = error.len;
  if (len > WASMQ_MAX_ERROR_BYTES) {
    len = WASMQ_MAX_ERROR_BYTES;
    while (len > 0 && (error.data[len] & 0xC0) == 0x80) --len;
  }
  char *copy = (char *)malloc(len != 0 ? len : 1);
  if (copy == NULL) {
    output->error_text = "out of memory while recording an error";
    output->error_len = (uint32_t)strlen(output->error_text);
    return;
  }
  if (len != 0) memcpy(copy, error.data, len);
  if (!wasmq_utf8_valid((const uint8_t *)copy, len)) {
    for (uint32_t i = 0; i < len; ++i) {
      if ((uint8_t)copy[i] >= 0x80) copy[i] = '?';
    }
  }
  output->error_copy = copy;
  output->error_text = copy;
  output->error_len = len;
}

/* wasmq_output_set_error_bytes for a NUL-terminated string. */
static inline void wasmq_output_set_error(wasmq_output *output, const char *error) {
  wasmq_output_set_error_bytes(output, wasmq_cstr(error));
}

/* A small fixed-size text used to compose error messages without printf. */
typedef struct wasmq_internal_text {
  char chars[256];
  uint32_t len;
} wasmq_internal_text;

static inline void wasmq_internal_text_append(wasmq_internal_text *text, const char *part) {
  while (*part != '\0' && text->len < sizeof text->chars - 1) text->chars[text->len++] = *part++;
  text->chars[text->len] = '\0';
}

static inline void wasmq_internal_text_append_u64(wasmq_internal_text *text, uint64_t number) {
  char digits[WASMQ_DECIMAL_CAPACITY];
  wasmq_format_u64(number, digits);
  wasmq_internal_text_append(text, digits);
}

/* Fails the output with "output message N: <problem>". */
static inline bool wasmq_internal_reject_output(wasmq_output *output, const char *problem) {
  wasmq_internal_text text = {{0}, 0};
  wasmq_internal_text_append(&text, "output message ");
  wasmq_internal_text_append_u64(&text, output->message_count);
  wasmq_internal_text_append(&text, ": ");
  wasmq_internal_text_append(&text, problem);
  wasmq_output_set_error(output, text.chars);
  return false;
}

/* Adds `total += part` and reports whether the total still fits in a u32. */
static inline bool wasmq_internal_add_size(uint64_t *total, uint64_t part) {
  *total += part;
  return *total <= UINT32_MAX;
}

/* True when a header named `name` is among `headers[0..count)`. */
static inline bool wasmq_internal_has_header(const wasmq_header *headers, uint32_t count,
                                             wasmq_bytes name) {
  for (uint32_t i = 0; i < count; ++i) {
    if (wasmq_bytes_equal(headers[i].name, name)) return true;
  }
  return false;
}

/* Adds an output message: `message`'s key, value and timestamp, its headers except those whose
 * name appears in `extra_headers`, then `extra_headers[0..extra_count)` (so an extra header
 * replaces a header of the same name, and adds it otherwise). `extra_headers` may be NULL when
 * `extra_count` is 0 and must not name a header twice. All bytes are copied before returning.
 *
 * Returns true when the message was added. Returns false when the output already has an error,
 * and otherwise fails the whole output with an error naming the problem: a key or header that is
 * not valid UTF-8, a result larger than 4 GiB, or memory exhausted. */
static inline bool wasmq_output_add_with_headers(wasmq_output *output, const wasmq_message *message,
                                                 const wasmq_header *extra_headers,
                                                 uint32_t extra_count) {
  if (output->has_error) return false;
  const bool checked = message == output->checked_message;
  if (!checked && message->has_key && !wasmq_utf8_valid(message->key.data, message->key.len)) {
    return wasmq_internal_reject_output(output, "key is not valid UTF-8");
  }
  uint64_t size = 1 + 8 + 8 + 8;
  if (message->has_key) size += 8 + (uint64_t)message->key.len;
  size += message->value.len;
  uint64_t kept_count = extra_count;
  for (uint32_t i = 0; i < message->header_count; ++i) {
    const wasmq_header *header = &message->headers[i];
    if (wasmq_internal_has_header(extra_headers, extra_count, header->name)) continue;
    ++kept_count;
    if (!wasmq_internal_add_size(&size, 16 + (uint64_t)header->name.len + header->value.len)) {
      return wasmq_internal_reject_output(output, "message is larger than 4 GiB");
    }
  }
  for (uint32_t i = 0; i < extra_count; ++i) {
    const wasmq_header *header = &extra_headers[i];
    if (!wasmq_internal_add_size(&size, 16 + (uint64_t)header->name.len + header->value.len)) {
      return wasmq_internal_reject_output(output, "message is larger than 4 GiB");
    }
  }
  if (size > UINT32_MAX) {
    return wasmq_internal_reject_output(output, "message is larger than 4 GiB");
  }
  for (uint32_t i = 0; i < message->header_count && !checked; ++i) {
    const wasmq_header *header = &message->headers[i];
    if (!wasmq_utf8_valid(header->name.data, header->name.len) ||
        !wasmq_utf8_valid(header->value.data, header->value.len)) {
      return wasmq_internal_reject_output(output, "a header is not valid UTF-8");
    }
  }
  for (uint32_t i = 0; i < extra_count; ++i) {
    const wasmq_header *header = &extra_headers[i];
    if (!wasmq_utf8_valid(header->name.data, header->name.len) ||
        !wasmq_utf8_valid(header->value.data, header->value.len)) {
      return wasmq_internal_reject_output(output, "a header is not valid UTF-8");
    }
  }
  /* Two more bytes: should_continue and the None error that wasmq_output_finish appends, so that
   * a single large message does not make the buffer double again for them. */
  if (!wasmq_buffer_reserve(output->buffer, size + 2)) {
    return wasmq_internal_reject_output(output, "out of memory while encoding");
  }
  wasmq_buffer *buffer = output->buffer;
  wasmq_buffer_put_u8(buffer, message->has_key ? 1 : 0);
  if (message->has_key) wasmq_buffer_put_sized(buffer, message->key);
  wasmq_buffer_put_sized(buffer, message->value);
  wasmq_buffer_put_u64(buffer, kept_count);
  for (uint32_t i = 0; i < message->header_count; ++i) {
    const wasmq_header *header = &message->headers[i];
    if (wasmq_internal_has_header(extra_headers, extra_count, header->name)) continue;
    wasmq_buffer_put_sized(buffer, header->name);
    wasmq_buffer_put_sized(buffer, header->value);
  }
  for (uint32_t i = 0; i < extra_count; ++i) {
    wasmq_buffer_put_sized(buffer, extra_headers[i].name);
    wasmq_buffer_put_sized(buffer, extra_headers[i].value);
  }
  wasmq_buffer_put_u64(buffer, (uint64_t)message->timestamp);
  ++output->message_count;
  return true;
}

/* Adds `message` as it is (see wasmq_output_add_with_headers for the contract). */
static inline bool wasmq_output_add(wasmq_output *output, const wasmq_message *message) {
  return wasmq_output_add_with_headers(output, message, NULL, 0);
}

/* Starts a result at the end of `buffer`, which must outlive the output. Returns false (and the
 * output must not be used) when memory runs out. */
static inline bool wasmq_output_begin(wasmq_output *output, wasmq_buffer *buffer) {
  memset(output, 0, sizeof *output);
  output->buffer = buffer;
  output->should_continue = true;
  if (!wasmq_buffer_reserve(buffer, 8)) return false;
  output->start = buffer->len;
  wasmq_buffer_put_u64(buffer, 0);
  return true;
}

/* Completes the result: patches the message count and appends should_continue and the error.
 * A failed output keeps no messages. Frees what the output allocated. Returns false and marks
 * the buffer failed when memory runs out. */
static inline bool wasmq_output_finish(wasmq_output *output) {
  wasmq_buffer *buffer = output->buffer;
  if (output->has_error) {
    buffer->len = output->start + 8;
    output->message_count = 0;
  }
  wasmq_buffer_patch_u64(buffer, output->start, output->message_count);
  uint64_t tail = 2 + (output->has_error ? 8 + (uint64_t)output->error_len : 0);
  bool ok = wasmq_buffer_reserve(buffer, tail);
  if (ok) {
    wasmq_buffer_put_u8(buffer, output->should_continue ? 1 : 0);
    wasmq_buffer_put_u8(buffer, output->has_error ? 1 : 0);
    if (output->has_error) {
      wasmq_bytes error;
      error.data = (const uint8_t *)output->error_text;
      error.len = output->error_len;
      wasmq_buffer_put_sized(buffer, error);
    }
  } else {
    buffer->failed = true;
  }
  free(output->error_copy);
  output->error_copy = NULL;
  output->error_text = NULL;
  return ok;
}

/* ===================================================================================== */
/* Running a module function over encoded input                                           */
/* ===================================================================================== */

/* A module's transformation. Called once per input message with the decoded message (valid
 * until it returns) and an empty output. It adds 0 messages (filter), 1 (replace) or more
 * (split), may call wasmq_output_set_should_continue, and returns WASMQ_OK; or it sets an error
 * and/or returns another value to fail the message (the SDK supplies an error text when the
 * function set none). It must not keep pointers to `in` or `out`. */
typedef int (*wasmq_process_fn)(const wasmq_message *in, wasmq_output *out);

/* A module's configuration hook: receives the configuration bytes (compact UTF-8 JSON; length 0
 * and data NULL when there is none), valid only during the call. Returns WASMQ_OK to accept it;
 * anything else reports a rejection (the instance stays in use, with the module's defaults). */
typedef int (*wasmq_init_fn)(wasmq_bytes config);

/* Fails `output` with "invalid input message: [message N: ]<field>: <problem> at byte <offset>",
 * or with an out-of-memory text when decoding ran out of memory. */
static inline void wasmq_internal_fail_decode(wasmq_output *output, const wasmq_reader *reader,
                                              bool names_message, uint32_t index) {
  wasmq_internal_text text = {{0}, 0};
  if (reader->out_of_memory) {
    wasmq_internal_text_append(&text, "out of memory while decoding the input message: ");
  } else {
    wasmq_internal_text_append(&text, "invalid input message: ");
  }
  if (names_message) {
    wasmq_internal_text_append(&text, "message ");
    wasmq_internal_text_append_u64(&text, index);
    wasmq_internal_text_append(&text, ": ");
  }
  wasmq_internal_text_append(&text, reader->context);
  wasmq_internal_text_append(&text, ": ");
  wasmq_internal_text_append(&text, reader->error != NULL ? reader->error : "unknown error");
  wasmq_internal_text_append(&text, " at byte ");
  wasmq_internal_text_append_u64(&text, reader->error_offset);
  wasmq_output_set_should_continue(output, false);
  wasmq_output_set_error(output, text.chars);
}

/* Calls `process` on `message` and completes `output`. */
static inline void wasmq_internal_process(wasmq_process_fn process, const wasmq_message *message,
                                          wasmq_output *output) {
  int status = process(message, output);
  if (status != WASMQ_OK && !output->has_error) {
    wasmq_internal_text text = {{0}, 0};
    wasmq_internal_text_append(&text, "module failed with status ");
    if (status < 0) {
      wasmq_internal_text_append(&text, "-");
      wasmq_internal_text_append_u64(&text, 0 - (uint64_t)(int64_t)status);
    } else {
      wasmq_internal_text_append_u64(&text, (uint64_t)status);
    }
    wasmq_output_set_error(output, text.chars);
  }
}

/* Decodes `input[0..len)` as one `Message`, runs `process` on it and appends the encoded
 * `ProcessResult` to `result` (normally empty). Malformed input yields a result whose error
 * starts with "invalid input message: "; it never traps. Returns false when memory ran out
 * (then `result->failed` is set). */
static inline bool wasmq_process_message_bytes(const uint8_t *input, uint32_t len,
                                               wasmq_process_fn process, wasmq_buffer *result) {
  wasmq_output output;
  if (!wasmq_output_begin(&output, result)) {
    result->failed = true;
    return false;
  }
  wasmq_reader reader;
  wasmq_reader_init(&reader, input, len);
  wasmq_message message;
  if (wasmq_internal_read_message(&reader, &message)) {
    if (wasmq_reader_expect_end(&reader)) {
      output.checked_message = &message;
      wasmq_internal_process(process, &message, &output);
    } else {
      wasmq_internal_fail_decode(&output, &reader, false, 0);
    }
    wasmq_internal_release_message(&message);
  } else {
    wasmq_internal_fail_decode(&output, &reader, false, 0);
  }
  return wasmq_output_finish(&output);
}

/* Appends `count` failed results that all carry the decode error recorded in `reader`, naming
 * message `failed_index` when `names_message`. */
static inline bool wasmq_internal_fail_batch(wasmq_buffer *result, const wasmq_reader *reader,
                                             uint32_t count, bool names_message,
                                             uint32_t failed_index) {
  for (uint32_t i = 0; i < count; ++i) {
    wasmq_output output;
    if (!wasmq_output_begin(&output, result)) {
      result->failed = true;
      return false;
    }
    wasmq_internal_fail_decode(&output, reader, names_message, failed_index);
    if (!wasmq_output_finish(&output)) return false;
  }
  return true;
}

/* Decodes `input[0..len)` as a `Vec<Message>`, runs `process` on each message in order and
 * appends the encoded `Vec<ProcessResult>` (one entry per input message) to `result` (normally
 * empty). The whole input is checked before any message is processed: when it is malformed,
 * every declared message gets a result with the decode error; when even the count is unusable,
 * one such result is returned (the host then sees a length mismatch). Never traps. Returns false
 * when memory ran out (then `result->failed` is set). */
static inline bool wasmq_process_batch_bytes(const uint8_t *input, uint32_t len,
                                             wasmq_process_fn process, wasmq_buffer *result) {
  wasmq_reader reader;
  wasmq_reader_init(&reader, input, len);
  reader.context = "message count";
  uint32_t count = 0;
  bool count_ok = wasmq_read_count(&reader, WASMQ_MIN_MESSAGE_BYTES, &count);
  uint32_t results = count_ok ? count : 1;
  if (!wasmq_buffer_reserve(result, 8)) {
    result->failed = true;
    return false;
  }
  wasmq_buffer_put_u64(result, results);
  if (!count_ok) return wasmq_internal_fail_batch(result, &reader, results, false, 0);

  wasmq_reader check = reader;
  uint32_t checked = 0;
  while (checked < count && wasmq_skip_message(&check)) ++checked;
  if (checked < count || !wasmq_reader_expect_end(&check)) {
    return wasmq_internal_fail_batch(result, &check, count, checked < count, checked);
  }

  reader.input_checked = true;
  for (uint32_t i = 0; i < count; ++i) {
    wasmq_output output;
    if (!wasmq_output_begin(&output, result)) {
      result->failed = true;
      return false;
    }
    wasmq_message message;
    wasmq_reader at_message = reader;
    if (wasmq_internal_read_message(&reader, &message)) {
      output.checked_message = &message;
      wasmq_internal_process(process, &message, &output);
      wasmq_internal_release_message(&message);
    } else {
      /* The input was checked above, so only the header table's allocation can have failed:
       * report it for this message and step over the message to reach the next one. */
      wasmq_internal_fail_decode(&output, &reader, true, i);
      reader = at_message;
      wasmq_skip_message(&reader);
    }
    if (!wasmq_output_finish(&output)) return false;
  }
  return true;
}

#ifdef __cplusplus
}
#endif

/* ===================================================================================== */
/* Exports                                                                                */
/* ===================================================================================== */

#ifdef __cplusplus
#define WASMQ_INTERNAL_EXTERN_C extern "C"
#else
#define WASMQ_INTERNAL_EXTERN_C
#endif

#if defined(__wasm__)

/* Marks a function as the module export `name`. For modules that write an export by hand. */
#define WASMQ_EXPORT(name) WASMQ_INTERNAL_EXTERN_C __attribute__((export_name(name)))

/* Results returned when even the result cannot be allocated: static, so `dealloc` ignores them.
 * For a batch the host sees one result, so any batch but a single message is a length mismatch,
 * which the host reports as a module error. */
static uint8_t wasmq_internal_fallback_result[96];
static uint32_t wasmq_internal_fallback_wasm_result[2];

/* True when `[address, address + size)` lies inside the current linear memory. */
static inline bool wasmq_internal_in_memory(uint32_t address, uint32_t size) {
  uint64_t memory_bytes = (uint64_t)__builtin_wasm_memory_size(0) * 65536u;
  return (uint64_t)address + size <= memory_bytes;
}

/* True when `address` is one of the static fallback objects. */
static inline bool wasmq_internal_is_fallback(uint32_t address) {
  uint32_t result = (uint32_t)(uintptr_t)wasmq_internal_fallback_result;
  uint32_t wasm_result = (uint32_t)(uintptr_t)wasmq_internal_fallback_wasm_result;
  return (address >= result && address - result < sizeof wasmq_internal_fallback_result) ||
         (address >= wasm_result &&
          address - wasm_result < sizeof wasmq_internal_fallback_wasm_result);
}

/* Returns the address of a static WasmResult describing an out-of-memory error result. */
static inline uint32_t wasmq_internal_fallback(bool batch) {
  static const char kError[] = "out of memory while encoding the result";
  wasmq_buffer fixed = {wasmq_internal_fallback_result, 0,
                        (uint32_t)sizeof wasmq_internal_fallback_result, false};
  wasmq_bytes error = {(const uint8_t *)kError, (uint32_t)(sizeof kError - 1)};
  if (batch) wasmq_buffer_put_u64(&fixed, 1);
  wasmq_buffer_put_u64(&fixed, 0);
  wasmq_buffer_put_u8(&fixed, 0);
  wasmq_buffer_put_u8(&fixed, 1);
  wasmq_buffer_put_sized(&fixed, error);
  wasmq_internal_fallback_wasm_result[0] = (uint32_t)(uintptr_t)wasmq_internal_fallback_result;
  wasmq_internal_fallback_wasm_result[1] = fixed.len;
  return (uint32_t)(uintptr_t)wasmq_internal_fallback_wasm_result;
}

/* Hands `result` (an encoded ProcessResult, or Vec<ProcessResult> when `batch`) to the host:
 * returns the address of a malloc'd WasmResult `{u32 ptr, u32 len}` describing it, which the host
 * copies and then frees, with the bytes, through `dealloc`. The buffer must not be used afterwards.
 * When the buffer failed or memory runs out, releases it and returns a static out-of-memory result
 * instead. For modules that write process_message or process_batch by hand. */
static inline uint32_t wasmq_deliver_result(wasmq_buffer *result, bool batch) {
  if (!result->failed && result->data != NULL) {
    uint32_t *wasm_result = (uint32_t *)malloc(2 * sizeof(uint32_t));
    if (wasm_result != NULL) {
      wasm_result[0] = (uint32_t)(uintptr_t)result->data;
      wasm_result[1] = result->len;
      return (uint32_t)(uintptr_t)wasm_result;
    }
  }
  wasmq_buffer_release(result);
  return wasmq_internal_fallback(batch);
}

/* Body of the `alloc` export: malloc(size), at least one byte; 0 when memory runs out. */
static inline uint32_t wasmq_internal_alloc(uint32_t size) {
  return (uint32_t)(uintptr_t)malloc(size != 0 ? size : 1);
}

/* Body of the `dealloc` export: frees a block from `alloc` or from a result. Ignores 0, the
 * static fallback result and addresses outside linear memory, so a confused host call cannot
 * corrupt the heap through them. */
static inline void wasmq_internal_dealloc(uint32_t address, uint32_t size) {
  (void)size;
  if (address == 0 || wasmq_internal_is_fallback(address)) return;
  if (!wasmq_internal_in_memory(address, 1)) return;
  free((void *)(uintptr_t)address);
}

/* Body of `process_message` (batch false) and `process_batch` (batch true). */
static inline uint32_t wasmq_internal_run(uint32_t address, uint32_t len, bool batch,
                                          wasmq_process_fn process) {
  wasmq_buffer result = {NULL, 0, 0, false};
  /* Most results are about as large as their input: reserve that once instead of doubling. A
   * failure here is not an error: the buffer grows on demand later. */
  wasmq_buffer_reserve(&result, (uint64_t)len + len / 8 + 64);
  if ((address == 0 && len != 0) || !wasmq_internal_in_memory(address, len)) {
    wasmq_output output;
    bool room = !batch || wasmq_buffer_reserve(&result, 8);
    if (room && batch) wasmq_buffer_put_u64(&result, 1);
    if (room && wasmq_output_begin(&output, &result)) {
      wasmq_output_set_should_continue(&output, false);
      wasmq_output_set_error(&output, "invalid input message: input lies outside linear memory");
      wasmq_output_finish(&output);
    } else {
      result.failed = true;
    }
  } else if (batch) {
    wasmq_process_batch_bytes((const uint8_t *)(uintptr_t)address, len, process, &result);
  } else {
    wasmq_process_message_bytes((const uint8_t *)(uintptr_t)address, len, process, &result);
  }
  return wasmq_deliver_result(&result, batch);
}

/* Body of `init_module`: 1 when `init` accepts the configuration, 0 otherwise. */
static inline uint32_t wasmq_internal_init(uint32_t address, uint32_t len, wasmq_init_fn init) {
  wasmq_bytes config = {NULL, 0};
  if (len != 0) {
    if (address == 0 || !wasmq_internal_in_memory(address, len)) return 0;
    config.data = (const uint8_t *)(uintptr_t)address;
    config.len = len;
  }
  return init(config) == WASMQ_OK ? 1 : 0;
}

/* The functions behind the exports, defined by the macros below in the module's source. */
WASMQ_INTERNAL_EXTERN_C uint32_t wasmq_export_alloc(uint32_t size);
WASMQ_INTERNAL_EXTERN_C void wasmq_export_dealloc(uint32_t address, uint32_t size);
WASMQ_INTERNAL_EXTERN_C uint32_t wasmq_export_process_message(uint32_t address, uint32_t len);
WASMQ_INTERNAL_EXTERN_C uint32_t wasmq_export_process_batch(uint32_t address, uint32_t len);
WASMQ_INTERNAL_EXTERN_C uint32_t wasmq_export_init_module(uint32_t address, uint32_t len);

/* Defines the `alloc` and `dealloc` exports (malloc/free). Use once per module; WASMQ_MODULE
 * includes it. */
#define WASMQ_EXPORT_ALLOCATOR()                                                       \
  WASMQ_EXPORT("alloc") uint32_t wasmq_export_alloc(uint32_t size) {                   \
    return wasmq_internal_alloc(size);                                                 \
  }                                                                                    \
  WASMQ_EXPORT("dealloc") void wasmq_export_dealloc(uint32_t address, uint32_t size) { \
    wasmq_internal_dealloc(address, size);                                             \
  }                                                                                    \
  struct wasmq_allocator_exported

#ifdef WASMQ_NO_BATCH
#define WASMQ_INTERNAL_EXPORT_BATCH(process_fn) struct wasmq_batch_not_exported
#else
#define WASMQ_INTERNAL_EXPORT_BATCH(process_fn)                         \
  WASMQ_EXPORT("process_batch")                                         \
  uint32_t wasmq_export_process_batch(uint32_t address, uint32_t len) { \
    return wasmq_internal_run(address, len, true, process_fn);          \
  }                                                                     \
  struct wasmq_batch_exported
#endif

/* Defines every required export for `process_fn` (a wasmq_process_fn): `alloc`, `dealloc`,
 * `process_message`, and `process_batch` unless WASMQ_NO_BATCH is defined. Use once, at file
 * scope, followed by a semicolon. */
#define WASMQ_MODULE(process_fn)                                          \
  WASMQ_EXPORT_ALLOCATOR();                                               \
  WASMQ_EXPORT("process_message")                                         \
  uint32_t wasmq_export_process_message(uint32_t address, uint32_t len) { \
    return wasmq_internal_run(address, len, false, process_fn);           \
  }                                                                       \
  WASMQ_INTERNAL_EXPORT_BATCH(process_fn)

/* Defines the optional `init_module` export for `init_fn` (a wasmq_init_fn). Use at most once, at
 * file scope, followed by a semicolon. */
#define WASMQ_INIT(init_fn)                                                                       \
  WASMQ_EXPORT("init_module") uint32_t wasmq_export_init_module(uint32_t address, uint32_t len) { \
    return wasmq_internal_init(address, len, init_fn);                                            \
  }                                                                                               \
  struct wasmq_init_exported

#else /* !__wasm__ */

/* Outside WebAssembly (for example in host-side unit tests of the codec) the macros export
 * nothing: WASMQ_MODULE and WASMQ_INIT only define wasmq_module_process_fn() and
 * wasmq_module_init_fn(), which return the module's functions, and the decoder, the output
 * builder and wasmq_process_*_bytes stay usable. */
#define WASMQ_EXPORT(name) WASMQ_INTERNAL_EXTERN_C
#define WASMQ_EXPORT_ALLOCATOR() struct wasmq_allocator_exported
#define WASMQ_MODULE(process_fn)                                                                \
  WASMQ_INTERNAL_EXTERN_C wasmq_process_fn wasmq_module_process_fn(void);                       \
  WASMQ_INTERNAL_EXTERN_C wasmq_process_fn wasmq_module_process_fn(void) { return process_fn; } \
  struct wasmq_module_exported
#define WASMQ_INIT(init_fn)                                                            \
  WASMQ_INTERNAL_EXTERN_C wasmq_init_fn wasmq_module_init_fn(void);                    \
  WASMQ_INTERNAL_EXTERN_C wasmq_init_fn wasmq_module_init_fn(void) { return init_fn; } \
  struct wasmq_init_exported

#endif /* __wasm__ */

#endif /* WASMQ_MODULE_H_ */
