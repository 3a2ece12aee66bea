/* Test module for sdk/c/wasmq_json.h: runs one of its functions on the message's value, as the
 * message's headers say, and returns what it gave.
 *
 *   op: get-string | get-number | get-bool | find | set-string | set-number | set-raw | remove
 *       | truncations
 *   field: the field name;   arg: the value to set (the string; a number's text; raw JSON)
 *
 * Success: one output whose value is the string read, the number read ("%.17g"), "true" or
 * "false", the raw text found (header json-type: its type), or the edited object. Any other
 * status: an error result "<op> <field>: <status text>".
 *
 * `truncations` runs every function on every prefix of the value (the whole value included),
 * each copied to the very end of the linear memory, so that a read past the end of the input
 * traps ("memory access out of bounds") instead of reading a neighbour. Its output is
 * {"prefixes": N, "not_malformed": K}: K counts the calls on proper prefixes that answered
 * anything but WASMQ_JSON_MALFORMED (0 for an object without trailing space). */
#include "wasmq_json.h"

static bool header_is(const wasmq_message *in, const char *name, const char *value) {
  const wasmq_header *h = wasmq_find_header(in, name);
  return h != NULL && wasmq_bytes_equal_cstr(h->value, value);
}

/* A header's value as a NUL-terminated string in `out` (cut to capacity - 1). */
static const char *header_text(const wasmq_message *in, const char *name, char *out,
                               uint32_t capacity) {
  const wasmq_header *h = wasmq_find_header(in, name);
  uint32_t len = h == NULL ? 0 : h->value.len < capacity - 1 ? h->value.len : capacity - 1;
  if (len > 0) memcpy(out, h->value.data, len);
  out[len] = '\0';
  return out;
}

static int fail(wasmq_output *out, const char *op, const char *field, int status) {
  char text[256];
  snprintf(text, sizeof text, "%s %s: %s", op, field, wasmq_json_status_text(status));
  wasmq_output_set_error(out, text);
  return WASMQ_FAILED;
}

static int emit(const wasmq_message *in, wasmq_output *out, const uint8_t *value, uint32_t len,
                const char *json_type) {
  wasmq_message m = *in;
  m.value.data = value;
  m.value.len = len;
  if (json_type == NULL) return wasmq_output_add(out, &m) ? WASMQ_OK : WASMQ_FAILED;
  wasmq_header type = {wasmq_cstr("json-type"), wasmq_cstr(json_type)};
  return wasmq_output_add_with_headers(out, &m, &type, 1) ? WASMQ_OK : WASMQ_FAILED;
}

/* A copy of `bytes` that ends at the end of the linear memory, in a page only this module
 * uses (grown for it; grown again when the allocator grew the memory since). */
static const uint8_t *copy_to_memory_end(const uint8_t *bytes, uint32_t len) {
  static size_t guard_end_pages = 0;
  if (len > 65536) return NULL;
  size_t pages = __builtin_wasm_memory_size(0);
  if (pages != guard_end_pages) {
    if (__builtin_wasm_memory_grow(0, 1) == (size_t)-1) return NULL;
    guard_end_pages = pages + 1;
  }
  uint8_t *end = (uint8_t *)(uintptr_t)(guard_end_pages * 65536);
  if (len > 0) memcpy(end - len, bytes, len);
  return end - len;
}

static int truncations(const wasmq_message *in, wasmq_output *out, const char *field) {
  uint32_t not_malformed = 0;
  for (uint32_t k = 0; k <= in->value.len; ++k) {
    wasmq_bytes prefix = {copy_to_memory_end(in->value.data, k), k};
    if (prefix.data == NULL) return fail(out, "truncations", field, WASMQ_JSON_TOO_SMALL);
    uint8_t text[64];
    uint32_t len = 0;
    double number = 0;
    bool flag = false;
    wasmq_json_field found;
    wasmq_bytes raw = wasmq_cstr("[1, {\"x\": null}]");
    int statuses[] = {
        wasmq_json_find(prefix, field, &found),
        wasmq_json_get_string(prefix, field, text, sizeof text, &len),
        wasmq_json_get_number(prefix, field, &number),
        wasmq_json_get_bool(prefix, field, &flag),
        wasmq_json_set_string(prefix, field, wasmq_cstr("v"), NULL, 0, &len),
        wasmq_json_set_number(prefix, field, 1.5, NULL, 0, &len),
        wasmq_json_set_raw(prefix, field, raw, NULL, 0, &len),
        wasmq_json_remove(prefix, field, NULL, 0, &len),
    };
    if (k == in->value.len) break;
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; ++i) {
      if (statuses[i] != WASMQ_JSON_MALFORMED) ++not_malformed;
    }
  }
  char report[96];
  int n = snprintf(report, sizeof report, "{\"prefixes\": %u, \"not_malformed\": %u}",
                   (unsigned)in->value.len, (unsigned)not_malformed);
  return emit(in, out, (const uint8_t *)report, (uint32_t)n, NULL);
}

/* Runs one writing function: first for the size, then into a buffer of exactly that size. */
typedef int (*edit_fn)(wasmq_bytes json, const char *name, const void *arg, uint8_t *out,
                       uint32_t capacity, uint32_t *out_len);

static int edit_string(wasmq_bytes json, const char *name, const void *arg, uint8_t *out,
                       uint32_t capacity, uint32_t *out_len) {
  return wasmq_json_set_string(json, name, wasmq_cstr((const char *)arg), out, capacity, out_len);
}
static int edit_number(wasmq_bytes json, const char *name, const void *arg, uint8_t *out,
                       uint32_t capacity, uint32_t *out_len) {
  return wasmq_json_set_number(json, name, strtod((const char *)arg, NULL), out, capacity, out_len);
}
static int edit_raw(wasmq_bytes json, const char *name, const void *arg, uint8_t *out,
                    uint32_t capacity, uint32_t *out_len) {
  return wasmq_json_set_raw(json, name, wasmq_cstr((const char *)arg), out, capacity, out_len);
}
static int edit_remove(wasmq_bytes json, const char *name, const void *arg, uint8_t *out,
                       uint32_t capacity, uint32_t *out_len) {
  (void)arg;
  return wasmq_json_remove(json, name, out, capacity, out_len);
}

static int edit(const wasmq_message *in, wasmq_output *out, const char *op, const char *field,
                edit_fn fn, const char *arg) {
  uint32_t needed = 0;
  int status = fn(in->value, field, arg, NULL, 0, &needed);
  if (status == WASMQ_JSON_OK && needed == 0) return emit(in, out, NULL, 0, NULL);
  if (status != WASMQ_JSON_TOO_SMALL) return fail(out, op, field, status);
  uint8_t *edited = (uint8_t *)malloc(needed);
  if (edited == NULL) return fail(out, op, field, WASMQ_JSON_TOO_SMALL);
  uint32_t len = 0;
  status = fn(in->value, field, arg, edited, needed, &len);
  int result = status == WASMQ_JSON_OK ? emit(in, out, edited, len, NULL)
                                       : fail(out, op, field, status);
  free(edited);
  return result;
}

static int process(const wasmq_message *in, wasmq_output *out) {
  char op[32], field[128], arg[512];
  header_text(in, "op", op, sizeof op);
  header_text(in, "field", field, sizeof field);
  header_text(in, "arg", arg, sizeof arg);
  int status;
  if (header_is(in, "op", "get-string")) {
    uint8_t *text = (uint8_t *)malloc(in->value.len + 1);
    uint32_t len = 0;
    status = wasmq_json_get_string(in->value, field, text, in->value.len + 1, &len);
    int result = status == WASMQ_JSON_OK ? emit(in, out, text, len, NULL)
                                         : fail(out, op, field, status);
    free(text);
    return result;
  }
  if (header_is(in, "op", "get-number")) {
    double number = 0;
    status = wasmq_json_get_number(in->value, field, &number);
    if (status != WASMQ_JSON_OK) return fail(out, op, field, status);
    char text[40];
    int n = snprintf(text, sizeof text, "%.17g", number);
    return emit(in, out, (const uint8_t *)text, (uint32_t)n, NULL);
  }
  if (header_is(in, "op", "get-bool")) {
    bool flag = false;
    status = wasmq_json_get_bool(in->value, field, &flag);
    if (status != WASMQ_JSON_OK) return fail(out, op, field, status);
    const char *text = flag ? "true" : "false";
    return emit(in, out, (const uint8_t *)text, (uint32_t)strlen(text), NULL);
  }
  if (header_is(in, "op", "find")) {
    static const char *const kTypes[] = {"null", "bool", "number", "string", "array", "object"};
    wasmq_json_field found;
    status = wasmq_json_find(in->value, field, &found);
    if (status != WASMQ_JSON_OK) return fail(out, op, field, status);
    return emit(in, out, found.raw.data, found.raw.len, kTypes[found.type]);
  }
  if (header_is(in, "op", "set-string")) return edit(in, out, op, field, edit_string, arg);
  if (header_is(in, "op", "set-number")) return edit(in, out, op, field, edit_number, arg);
  if (header_is(in, "op", "set-raw")) return edit(in, out, op, field, edit_raw, arg);
  if (header_is(in, "op", "remove")) return edit(in, out, op, field, edit_remove, arg);
  if (header_is(in, "op", "truncations")) return truncations(in, out, field);
  wasmq_output_set_error(out, "unknown op");
  return WASMQ_FAILED;
}

WASMQ_MODULE(process);
