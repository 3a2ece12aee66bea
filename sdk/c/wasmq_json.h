/*
 * wasmq_json.h — read and edit the top-level fields of a JSON object, for wasmq modules
 * (header-only, C11; also compiles as C++). Include it after or instead of wasmq_module.h.
 *
 *     double celsius;
 *     if (wasmq_json_get_number(in->value, "celsius", &celsius) != WASMQ_JSON_OK) ...
 *     uint32_t needed = 0;                       // ask for the size, then write
 *     wasmq_json_set_number(in->value, "fahrenheit", celsius * 9 / 5 + 32, NULL, 0, &needed);
 *     uint8_t *edited = (uint8_t *)malloc(needed);
 *     wasmq_json_set_number(in->value, "fahrenheit", celsius * 9 / 5 + 32, edited, needed, &needed);
 *
 * What it does:
 *   - get a top-level field of an object as a string (escapes decoded, \uXXXX and surrogate
 *     pairs included), a number (double), a bool, or as its raw JSON text (any type: a nested
 *     object's text can be read again with these functions);
 *   - write a copy of the object with one field set (added at the end, or its value replaced in
 *     place) to a string, a number or a raw JSON value, or with one field removed. Everything
 *     else in the text (order, spacing, other fields) is kept byte for byte.
 *
 * Contract:
 *   - Every call first checks that the whole input is one well-formed JSON object (RFC 8259:
 *     UTF-8, string escapes, numbers, nesting up to WASMQ_JSON_MAX_DEPTH) and answers
 *     WASMQ_JSON_MALFORMED (or WASMQ_JSON_TOO_DEEP) otherwise: a truncated or broken message
 *     never gives a partial answer. It reads only json.data[0..json.len), never past it.
 *   - Field names are compared after decoding escapes ("\u0061" matches "a"). A name that
 *     appears more than once is ambiguous: WASMQ_JSON_DUPLICATE for that name.
 *   - No allocation. Output goes to the caller's buffer `out` of `capacity` bytes, which must
 *     not overlap the input. `*out_len` receives the output's length; when it does not fit,
 *     the call returns WASMQ_JSON_TOO_SMALL with `*out_len` set to the size needed (call once
 *     with capacity 0 to learn the size, as above). On any other error `out` holds nothing
 *     useful. Lengths are uint32_t, like wasmq_bytes.
 *   - Values written are checked: strings must be UTF-8 (they are escaped as JSON needs),
 *     numbers finite, raw values one well-formed JSON value; else WASMQ_JSON_INVALID_ARGUMENT.
 *
 * Cost: each call is one pass over the input plus the copy; no recursion (nesting is tracked
 * in a bit stack of WASMQ_JSON_MAX_DEPTH bits on the C stack).
 */
#ifndef WASMQ_JSON_H_
#define WASMQ_JSON_H_

#include <math.h>
#include <stdio.h>

#include "wasmq_module.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Deepest nesting of arrays and objects accepted (the top-level object counts as 1). */
enum { WASMQ_JSON_MAX_DEPTH = 512 };
/* Longest number text wasmq_json_get_number converts (longer ones: WASMQ_JSON_UNSUPPORTED). */
enum { WASMQ_JSON_MAX_NUMBER_CHARS = 127 };

/* What a call answers. */
typedef enum wasmq_json_status {
  WASMQ_JSON_OK = 0,
  WASMQ_JSON_NOT_FOUND,        /* the object has no such field */
  WASMQ_JSON_WRONG_TYPE,       /* the field holds a value of another type */
  WASMQ_JSON_MALFORMED,        /* the input is not one well-formed JSON object */
  WASMQ_JSON_TOO_DEEP,         /* nested deeper than WASMQ_JSON_MAX_DEPTH */
  WASMQ_JSON_DUPLICATE,        /* the field appears more than once */
  WASMQ_JSON_TOO_SMALL,        /* the output does not fit; *out_len is the size needed */
  WASMQ_JSON_INVALID_ARGUMENT, /* a value to write is not valid (see the contract above) */
  WASMQ_JSON_UNSUPPORTED       /* a number longer than WASMQ_JSON_MAX_NUMBER_CHARS */
} wasmq_json_status;

/* The type of a JSON value. */
typedef enum wasmq_json_type {
  WASMQ_JSON_NULL,
  WASMQ_JSON_BOOL,
  WASMQ_JSON_NUMBER,
  WASMQ_JSON_STRING,
  WASMQ_JSON_ARRAY,
  WASMQ_JSON_OBJECT
} wasmq_json_type;

/* A field found by wasmq_json_find: its type and its value's JSON text, a view into the input
 * (a string with its quotes and escapes as written). */
typedef struct wasmq_json_field {
  wasmq_json_type type;
  wasmq_bytes raw;
} wasmq_json_field;

/* A short English text for a status, e.g. "malformed JSON" (never NULL). */
static inline const char *wasmq_json_status_text(int status) {
  switch (status) {
    case WASMQ_JSON_OK: return "ok";
    case WASMQ_JSON_NOT_FOUND: return "no such field";
    case WASMQ_JSON_WRONG_TYPE: return "the field has another type";
    case WASMQ_JSON_MALFORMED: return "malformed JSON (not one well-formed JSON object)";
    case WASMQ_JSON_TOO_DEEP: return "JSON nested too deeply";
    case WASMQ_JSON_DUPLICATE: return "the field appears more than once";
    case WASMQ_JSON_TOO_SMALL: return "output buffer too small";
    case WASMQ_JSON_INVALID_ARGUMENT: return "invalid value to write";
    case WASMQ_JSON_UNSUPPORTED: return "number too long to convert";
    default: return "unknown status";
  }
}

/* ===================================================================================== */
/* Scanning (internal)                                                                    */
/* ===================================================================================== */

typedef struct wasmq_json_internal_cursor {
  const uint8_t *at;
  const uint8_t *end;
} wasmq_json_internal_cursor;

static inline void wasmq_json_internal_skip_space(wasmq_json_internal_cursor *c) {
  while (c->at < c->end && (*c->at == ' ' || *c->at == '\t' || *c->at == '\n' || *c->at == '\r')) {
    ++c->at;
  }
}

static inline int wasmq_json_internal_hex4(const uint8_t *p, const uint8_t *end, uint32_t *unit) {
  if (end - p < 4) return 0;
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i) {
    uint8_t ch = p[i];
    uint32_t digit;
    if (ch >= '0' && ch <= '9') {
      digit = (uint32_t)(ch - '0');
    } else if (ch >= 'a' && ch <= 'f') {
      digit = (uint32_t)(ch - 'a' + 10);
    } else if (ch >= 'A' && ch <= 'F') {
      digit = (uint32_t)(ch - 'A' + 10);
    } else {
      return 0;
    }
    value = value * 16 + digit;
  }
  *unit = value;
  return 1;
}

/* Decodes the next character of a string body at c->at (just after the opening quote, or
 * after a previous character) into `utf8` (1-4 bytes, count in *len). Returns 1 for a
 * character, 0 at the closing quote (consumed), -1 when the string is malformed or
 * unterminated. Raw bytes are passed through; the input's UTF-8 was checked as a whole. */
static inline int wasmq_json_internal_string_char(wasmq_json_internal_cursor *c, uint8_t utf8[4],
                                                  uint32_t *len) {
  if (c->at >= c->end) return -1;
  uint8_t ch = *c->at;
  if (ch == '"') {
    ++c->at;
    return 0;
  }
  if (ch < 0x20) return -1;
  if (ch != '\\') {
    utf8[0] = ch;
    *len = 1;
    ++c->at;
    return 1;
  }
  if (c->end - c->at < 2) return -1;
  uint8_t escape = c->at[1];
  c->at += 2;
  switch (escape) {
    case '"': utf8[0] = '"'; break;
    case '\\': utf8[0] = '\\'; break;
    case '/': utf8[0] = '/'; break;
    case 'b': utf8[0] = '\b'; break;
    case 'f': utf8[0] = '\f'; break;
    case 'n': utf8[0] = '\n'; break;
    case 'r': utf8[0] = '\r'; break;
    case 't': utf8[0] = '\t'; break;
    case 'u': {
      uint32_t code;
      if (!wasmq_json_internal_hex4(c->at, c->end, &code)) return -1;
      c->at += 4;
      if (code >= 0xDC00 && code <= 0xDFFF) return -1; /* a low surrogate alone */
      if (code >= 0xD800 && code <= 0xDBFF) {         /* needs \uDC00-\uDFFF next */
        uint32_t low;
        if (c->end - c->at < 6 || c->at[0] != '\\' || c->at[1] != 'u' ||
            !wasmq_json_internal_hex4(c->at + 2, c->end, &low) || low < 0xDC00 || low > 0xDFFF) {
          return -1;
        }
        c->at += 6;
        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
      }
      if (code < 0x80) {
        utf8[0] = (uint8_t)code;
        *len = 1;
      } else if (code < 0x800) {
        utf8[0] = (uint8_t)(0xC0 | (code >> 6));
        utf8[1] = (uint8_t)(0x80 | (code & 0x3F));
        *len = 2;
      } else if (code < 0x10000) {
        utf8[0] = (uint8_t)(0xE0 | (code >> 12));
        utf8[1] = (uint8_t)(0x80 | ((code >> 6) & 0x3F));
        utf8[2] = (uint8_t)(0x80 | (code & 0x3F));
        *len = 3;
      } else {
        utf8[0] = (uint8_t)(0xF0 | (code >> 18));
        utf8[1] = (uint8_t)(0x80 | ((code >> 12) & 0x3F));
        utf8[2] = (uint8_t)(0x80 | ((code >> 6) & 0x3F));
        utf8[3] = (uint8_t)(0x80 | (code & 0x3F));
        *len = 4;
      }
      return 1;
    }
    default: return -1;
  }
  *len = 1;
  return 1;
}

/* Skips a string whose opening quote is at c->at. Returns 0 when it is malformed. */
static inline int wasmq_json_internal_skip_string(wasmq_json_internal_cursor *c) {
  if (c->at >= c->end || *c->at != '"') return 0;
  ++c->at;
  uint8_t utf8[4];
  uint32_t len;
  int step;
  while ((step = wasmq_json_internal_string_char(c, utf8, &len)) == 1) {
  }
  return step == 0;
}

/* Skips a number at c->at (RFC 8259 grammar). Returns 0 when it is malformed. */
static inline int wasmq_json_internal_skip_number(wasmq_json_internal_cursor *c) {
  const uint8_t *p = c->at, *end = c->end;
  if (p < end && *p == '-') ++p;
  if (p >= end) return 0;
  if (*p == '0') {
    ++p;
  } else if (*p >= '1' && *p <= '9') {
    while (p < end && *p >= '0' && *p <= '9') ++p;
  } else {
    return 0;
  }
  if (p < end && *p == '.') {
    ++p;
    if (p >= end || *p < '0' || *p > '9') return 0;
    while (p < end && *p >= '0' && *p <= '9') ++p;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    ++p;
    if (p < end && (*p == '+' || *p == '-')) ++p;
    if (p >= end || *p < '0' || *p > '9') return 0;
    while (p < end && *p >= '0' && *p <= '9') ++p;
  }
  c->at = p;
  return 1;
}

static inline int wasmq_json_internal_skip_word(wasmq_json_internal_cursor *c, const char *word) {
  size_t len = strlen(word);
  if ((size_t)(c->end - c->at) < len || memcmp(c->at, word, len) != 0) return 0;
  c->at += len;
  return 1;
}

/* The type of a well-formed value, by its first byte. */
static inline wasmq_json_type wasmq_json_internal_type_of(uint8_t first) {
  switch (first) {
    case '{': return WASMQ_JSON_OBJECT;
    case '[': return WASMQ_JSON_ARRAY;
    case '"': return WASMQ_JSON_STRING;
    case 't': case 'f': return WASMQ_JSON_BOOL;
    case 'n': return WASMQ_JSON_NULL;
    default: return WASMQ_JSON_NUMBER;
  }
}

/* Skips one value at c->at (no leading space), nested arrays and objects included, without
 * recursion: `depth` is the nesting the value starts at, and each open container is one bit of
 * `stack` (1 object, 0 array). Returns WASMQ_JSON_OK, WASMQ_JSON_MALFORMED or
 * WASMQ_JSON_TOO_DEEP. */
static inline int wasmq_json_internal_skip_value(wasmq_json_internal_cursor *c, uint32_t depth) {
  uint8_t stack[WASMQ_JSON_MAX_DEPTH / 8];
  uint32_t open = 0; /* containers opened by this call */
  for (;;) {
    /* A value. */
    if (c->at >= c->end) return WASMQ_JSON_MALFORMED;
    uint8_t first = *c->at;
    if (first == '{' || first == '[') {
      if (depth + open >= WASMQ_JSON_MAX_DEPTH) return WASMQ_JSON_TOO_DEEP;
      uint8_t bit = (uint8_t)(1u << (open % 8));
      if (first == '{') {
        stack[open / 8] = (uint8_t)(stack[open / 8] | bit);
      } else {
        stack[open / 8] = (uint8_t)(stack[open / 8] & ~bit);
      }
      ++open;
      ++c->at;
      wasmq_json_internal_skip_space(c);
      if (c->at < c->end && *c->at == (first == '{' ? '}' : ']')) {
        ++c->at;
        --open;
      } else if (first == '{') {
        if (!wasmq_json_internal_skip_string(c)) return WASMQ_JSON_MALFORMED;
        wasmq_json_internal_skip_space(c);
        if (c->at >= c->end || *c->at != ':') return WASMQ_JSON_MALFORMED;
        ++c->at;
        wasmq_json_internal_skip_space(c);
        continue;
      } else {
        continue;
      }
    } else if (first == '"') {
      if (!wasmq_json_internal_skip_string(c)) return WASMQ_JSON_MALFORMED;
    } else if (first == 't' || first == 'f' || first == 'n') {
      const char *word = first == 't' ? "true" : first == 'f' ? "false" : "null";
      if (!wasmq_json_internal_skip_word(c, word)) return WASMQ_JSON_MALFORMED;
    } else if (!wasmq_json_internal_skip_number(c)) {
      return WASMQ_JSON_MALFORMED;
    }
    /* After a value: close containers, or go on to the next element or member. */
    for (;;) {
      if (open == 0) return WASMQ_JSON_OK;
      int in_object = (stack[(open - 1) / 8] >> ((open - 1) % 8)) & 1;
      wasmq_json_internal_skip_space(c);
      if (c->at >= c->end) return WASMQ_JSON_MALFORMED;
      uint8_t next = *c->at++;
      if (next == (in_object ? '}' : ']')) {
        --open;
        continue;
      }
      if (next != ',') return WASMQ_JSON_MALFORMED;
      wasmq_json_internal_skip_space(c);
      if (in_object) {
        if (!wasmq_json_internal_skip_string(c)) return WASMQ_JSON_MALFORMED;
        wasmq_json_internal_skip_space(c);
        if (c->at >= c->end || *c->at != ':') return WASMQ_JSON_MALFORMED;
        ++c->at;
        wasmq_json_internal_skip_space(c);
      }
      break;
    }
  }
}

/* Whether the key string at c->at (opening quote) decodes to `name`; moves past the key.
 * Returns 1 (equal), 0 (not equal) or -1 (malformed). */
static inline int wasmq_json_internal_key_equals(wasmq_json_internal_cursor *c, const char *name) {
  if (c->at >= c->end || *c->at != '"') return -1;
  ++c->at;
  const uint8_t *wanted = (const uint8_t *)name;
  int equal = 1;
  uint8_t utf8[4];
  uint32_t len;
  int step;
  while ((step = wasmq_json_internal_string_char(c, utf8, &len)) == 1) {
    for (uint32_t i = 0; i < len && equal; ++i) {
      if (*wanted == '\0' || *wanted != utf8[i]) {
        equal = 0;
      } else {
        ++wanted;
      }
    }
  }
  if (step < 0) return -1;
  return equal && *wanted == '\0';
}

/* Where a field is in the object text (positions in the input). */
typedef struct wasmq_json_internal_member {
  int found;
  const uint8_t *key_begin;       /* the key's opening quote */
  const uint8_t *value_begin;
  const uint8_t *value_end;
  const uint8_t *previous_end;    /* end of the value before this member; NULL when first */
  const uint8_t *next_key_begin;  /* the next member's key; NULL when last */
  const uint8_t *open_brace;      /* the object's '{' */
  const uint8_t *last_value_end;  /* end of the object's last value; NULL when empty */
} wasmq_json_internal_member;

/* Checks that `json` is one well-formed object and finds the member named `name` in it. */
static inline int wasmq_json_internal_scan(wasmq_bytes json, const char *name,
                                           wasmq_json_internal_member *m) {
  memset(m, 0, sizeof *m);
  if (json.data == NULL || name == NULL) return WASMQ_JSON_MALFORMED;
  if (!wasmq_utf8_valid(json.data, json.len)) return WASMQ_JSON_MALFORMED;
  wasmq_json_internal_cursor c = {json.data, json.data + json.len};
  wasmq_json_internal_skip_space(&c);
  if (c.at >= c.end || *c.at != '{') return WASMQ_JSON_MALFORMED;
  m->open_brace = c.at++;
  wasmq_json_internal_skip_space(&c);
  const uint8_t *previous_end = NULL;
  int just_found = 0;
  if (c.at < c.end && *c.at == '}') {
    ++c.at;
  } else {
    for (;;) {
      const uint8_t *key_begin = c.at;
      if (just_found) m->next_key_begin = key_begin;
      int equal = wasmq_json_internal_key_equals(&c, name);
      if (equal < 0) return WASMQ_JSON_MALFORMED;
      wasmq_json_internal_skip_space(&c);
      if (c.at >= c.end || *c.at != ':') return WASMQ_JSON_MALFORMED;
      ++c.at;
      wasmq_json_internal_skip_space(&c);
      const uint8_t *value_begin = c.at;
      int status = wasmq_json_internal_skip_value(&c, 1);
      if (status != WASMQ_JSON_OK) return status;
      just_found = 0;
      if (equal) {
        if (m->found) return WASMQ_JSON_DUPLICATE;
        m->found = 1;
        m->key_begin = key_begin;
        m->value_begin = value_begin;
        m->value_end = c.at;
        m->previous_end = previous_end;
        just_found = 1;
      }
      previous_end = c.at;
      wasmq_json_internal_skip_space(&c);
      if (c.at >= c.end) return WASMQ_JSON_MALFORMED;
      uint8_t next = *c.at++;
      if (next == '}') break;
      if (next != ',') return WASMQ_JSON_MALFORMED;
      wasmq_json_internal_skip_space(&c);
    }
  }
  m->last_value_end = previous_end;
  wasmq_json_internal_skip_space(&c);
  return c.at == c.end ? WASMQ_JSON_OK : WASMQ_JSON_MALFORMED;
}

/* ===================================================================================== */
/* Reading                                                                                */
/* ===================================================================================== */

/* Finds top-level field `name` (UTF-8, NUL-terminated) of the object `json`. */
static inline int wasmq_json_find(wasmq_bytes json, const char *name, wasmq_json_field *field) {
  wasmq_json_internal_member m;
  int status = wasmq_json_internal_scan(json, name, &m);
  if (status != WASMQ_JSON_OK) return status;
  if (!m.found) return WASMQ_JSON_NOT_FOUND;
  field->type = wasmq_json_internal_type_of(*m.value_begin);
  field->raw.data = m.value_begin;
  field->raw.len = (uint32_t)(m.value_end - m.value_begin);
  return WASMQ_JSON_OK;
}

/* Reads string field `name` with its escapes decoded into out[0..capacity): the UTF-8 bytes,
 * *out_len of them, followed by a NUL when there is room for it (a decoded string may itself
 * hold NULs: use *out_len). A capacity of the field's raw length always suffices. */
static inline int wasmq_json_get_string(wasmq_bytes json, const char *name, uint8_t *out,
                                        uint32_t capacity, uint32_t *out_len) {
  wasmq_json_field field;
  int status = wasmq_json_find(json, name, &field);
  if (status != WASMQ_JSON_OK) return status;
  if (field.type != WASMQ_JSON_STRING) return WASMQ_JSON_WRONG_TYPE;
  wasmq_json_internal_cursor c = {field.raw.data + 1, field.raw.data + field.raw.len};
  uint32_t written = 0;
  uint8_t utf8[4];
  uint32_t len;
  while (wasmq_json_internal_string_char(&c, utf8, &len) == 1) {
    for (uint32_t i = 0; i < len; ++i) {
      if (written < capacity) out[written] = utf8[i];
      ++written;
    }
  }
  *out_len = written;
  if (written > capacity) return WASMQ_JSON_TOO_SMALL;
  if (written < capacity) out[written] = '\0';
  return WASMQ_JSON_OK;
}

/* Reads number field `name` as a double (strtod's rounding; out of range gives +-HUGE_VAL). */
static inline int wasmq_json_get_number(wasmq_bytes json, const char *name, double *value) {
  wasmq_json_field field;
  int status = wasmq_json_find(json, name, &field);
  if (status != WASMQ_JSON_OK) return status;
  if (field.type != WASMQ_JSON_NUMBER) return WASMQ_JSON_WRONG_TYPE;
  if (field.raw.len > WASMQ_JSON_MAX_NUMBER_CHARS) return WASMQ_JSON_UNSUPPORTED;
  char text[WASMQ_JSON_MAX_NUMBER_CHARS + 1];
  memcpy(text, field.raw.data, field.raw.len);
  text[field.raw.len] = '\0';
  *value = strtod(text, NULL);
  return WASMQ_JSON_OK;
}

/* Reads bool field `name`. */
static inline int wasmq_json_get_bool(wasmq_bytes json, const char *name, bool *value) {
  wasmq_json_field field;
  int status = wasmq_json_find(json, name, &field);
  if (status != WASMQ_JSON_OK) return status;
  if (field.type != WASMQ_JSON_BOOL) return WASMQ_JSON_WRONG_TYPE;
  *value = field.raw.data[0] == 't';
  return WASMQ_JSON_OK;
}

/* ===================================================================================== */
/* Writing                                                                                */
/* ===================================================================================== */

/* Output into the caller's buffer that counts what would have been written past its end. */
typedef struct wasmq_json_internal_writer {
  uint8_t *out;
  uint32_t capacity;
  uint64_t len;
} wasmq_json_internal_writer;

static inline void wasmq_json_internal_put(wasmq_json_internal_writer *w, const uint8_t *bytes,
                                           uint64_t count) {
  if (count == 0) return;
  if (w->len < w->capacity) {
    uint64_t room = w->capacity - w->len;
    memcpy(w->out + w->len, bytes, (size_t)(count < room ? count : room));
  }
  w->len += count;
}

static inline void wasmq_json_internal_put_range(wasmq_json_internal_writer *w, const uint8_t *from,
                                                 const uint8_t *to) {
  wasmq_json_internal_put(w, from, (uint64_t)(to - from));
}

/* Writes `text` as a JSON string (quoted, escaped). `text` must be valid UTF-8. */
static inline void wasmq_json_internal_put_string(wasmq_json_internal_writer *w, wasmq_bytes text) {
  static const char kHex[] = "0123456789abcdef";
  wasmq_json_internal_put(w, (const uint8_t *)"\"", 1);
  uint32_t run = 0; /* bytes copied as they are, pending */
  for (uint32_t i = 0; i < text.len; ++i) {
    uint8_t ch = text.data[i];
    if (ch >= 0x20 && ch != '"' && ch != '\\') {
      ++run;
      continue;
    }
    wasmq_json_internal_put(w, text.data + i - run, run);
    run = 0;
    uint8_t escape[6] = {'\\', 0, 0, 0, 0, 0};
    uint32_t len = 2;
    switch (ch) {
      case '"': escape[1] = '"'; break;
      case '\\': escape[1] = '\\'; break;
      case '\n': escape[1] = 'n'; break;
      case '\r': escape[1] = 'r'; break;
      case '\t': escape[1] = 't'; break;
      case '\b': escape[1] = 'b'; break;
      case '\f': escape[1] = 'f'; break;
      default:
        escape[1] = 'u';
        escape[2] = '0';
        escape[3] = '0';
        escape[4] = (uint8_t)kHex[ch >> 4];
        escape[5] = (uint8_t)kHex[ch & 15];
        len = 6;
    }
    wasmq_json_internal_put(w, escape, len);
  }
  wasmq_json_internal_put(w, text.data + text.len - run, run);
  wasmq_json_internal_put(w, (const uint8_t *)"\"", 1);
}

/* The object `json` with field `name` set to the JSON text `value` (already valid), into `out`.
 * `value_is_string`: `value` is the text of a string to quote and escape instead. */
static inline int wasmq_json_internal_set(wasmq_bytes json, const char *name, wasmq_bytes value,
                                          int value_is_string, uint8_t *out, uint32_t capacity,
                                          uint32_t *out_len) {
  wasmq_json_internal_member m;
  int status = wasmq_json_internal_scan(json, name, &m);
  if (status != WASMQ_JSON_OK) return status;
  wasmq_bytes name_bytes = wasmq_cstr(name);
  if (!wasmq_utf8_valid(name_bytes.data, name_bytes.len)) return WASMQ_JSON_INVALID_ARGUMENT;
  wasmq_json_internal_writer w = {out, capacity, 0};
  const uint8_t *end = json.data + json.len;
  const uint8_t *insert_at;
  if (m.found) {
    wasmq_json_internal_put_range(&w, json.data, m.value_begin);
    insert_at = m.value_end;
  } else {
    insert_at = m.last_value_end != NULL ? m.last_value_end : m.open_brace + 1;
    wasmq_json_internal_put_range(&w, json.data, insert_at);
    if (m.last_value_end != NULL) wasmq_json_internal_put(&w, (const uint8_t *)",", 1);
    wasmq_json_internal_put_string(&w, name_bytes);
    wasmq_json_internal_put(&w, (const uint8_t *)":", 1);
  }
  if (value_is_string) {
    wasmq_json_internal_put_string(&w, value);
  } else {
    wasmq_json_internal_put(&w, value.data, value.len);
  }
  wasmq_json_internal_put_range(&w, insert_at, end);
  if (w.len > UINT32_MAX) { /* no uint32_t size fits it */
    *out_len = UINT32_MAX;
    return WASMQ_JSON_TOO_SMALL;
  }
  *out_len = (uint32_t)w.len;
  return w.len > capacity ? WASMQ_JSON_TOO_SMALL : WASMQ_JSON_OK;
}

/* Writes the object with top-level field `name` set to the string `value` (UTF-8, escaped as
 * needed): its value replaced in place when the field exists, else the field added last. */
static inline int wasmq_json_set_string(wasmq_bytes json, const char *name, wasmq_bytes value,
                                        uint8_t *out, uint32_t capacity, uint32_t *out_len) {
  if (value.data == NULL && value.len != 0) return WASMQ_JSON_INVALID_ARGUMENT;
  if (!wasmq_utf8_valid(value.data, value.len)) return WASMQ_JSON_INVALID_ARGUMENT;
  return wasmq_json_internal_set(json, name, value, 1, out, capacity, out_len);
}

/* Writes the object with field `name` set to the JSON text `raw` (any one well-formed value:
 * true, null, 12, "text", [1, 2], {"a": 1}, ...), as wasmq_json_set_string places it. */
static inline int wasmq_json_set_raw(wasmq_bytes json, const char *name, wasmq_bytes raw,
                                     uint8_t *out, uint32_t capacity, uint32_t *out_len) {
  if (raw.data == NULL || !wasmq_utf8_valid(raw.data, raw.len)) return WASMQ_JSON_INVALID_ARGUMENT;
  wasmq_json_internal_cursor c = {raw.data, raw.data + raw.len};
  if (c.at >= c.end || wasmq_json_internal_skip_value(&c, 0) != WASMQ_JSON_OK || c.at != c.end) {
    return WASMQ_JSON_INVALID_ARGUMENT;
  }
  return wasmq_json_internal_set(json, name, raw, 0, out, capacity, out_len);
}

/* Writes the object with field `name` set to the number `value` (finite), in the shortest of
 * %.15g, %.16g and %.17g that reads back as the same double (21.5 * 9 / 5 + 32 is "70.7"). */
static inline int wasmq_json_set_number(wasmq_bytes json, const char *name, double value,
                                        uint8_t *out, uint32_t capacity, uint32_t *out_len) {
  if (!isfinite(value)) return WASMQ_JSON_INVALID_ARGUMENT;
  char text[32];
  int len = 0;
  for (int precision = 15; precision <= 17; ++precision) {
    len = snprintf(text, sizeof text, "%.*g", precision, value);
    if (strtod(text, NULL) == value) break;
  }
  if (len <= 0 || (size_t)len >= sizeof text) return WASMQ_JSON_INVALID_ARGUMENT;
  wasmq_bytes number = {(const uint8_t *)text, (uint32_t)len};
  return wasmq_json_internal_set(json, name, number, 0, out, capacity, out_len);
}

/* Writes the object without top-level field `name` (and the comma that separated it).
 * WASMQ_JSON_NOT_FOUND when there is no such field. */
static inline int wasmq_json_remove(wasmq_bytes json, const char *name, uint8_t *out,
                                    uint32_t capacity, uint32_t *out_len) {
  wasmq_json_internal_member m;
  int status = wasmq_json_internal_scan(json, name, &m);
  if (status != WASMQ_JSON_OK) return status;
  if (!m.found) return WASMQ_JSON_NOT_FOUND;
  const uint8_t *cut_begin, *cut_end;
  if (m.previous_end != NULL) { /* `, "name": value` */
    cut_begin = m.previous_end;
    cut_end = m.value_end;
  } else if (m.next_key_begin != NULL) { /* `"name": value, ` */
    cut_begin = m.key_begin;
    cut_end = m.next_key_begin;
  } else { /* the only member */
    cut_begin = m.key_begin;
    cut_end = m.value_end;
  }
  wasmq_json_internal_writer w = {out, capacity, 0};
  wasmq_json_internal_put_range(&w, json.data, cut_begin);
  wasmq_json_internal_put_range(&w, cut_end, json.data + json.len);
  *out_len = (uint32_t)w.len; /* never more than the input */
  return w.len > capacity ? WASMQ_JSON_TOO_SMALL : WASMQ_JSON_OK;
}

#ifdef __cplusplus
}
#endif

#endif /* WASMQ_JSON_H_ */
