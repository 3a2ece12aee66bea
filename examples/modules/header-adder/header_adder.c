/*
 * header-adder: adds a fixed set of headers to every message, replacing any header of the same
 * name, and otherwise passes the message through unchanged.
 *
 * Configuration (init_module): a flat JSON object of string to string, for example
 *   {"team":"data","stage":"ingest"}
 * Without configuration (length 0, `null` or `{}`) the module adds `processed-by: header-adder`.
 * A configuration it cannot read (not an object of strings, more than kMaxConfiguredHeaders
 * entries, invalid UTF-8) is rejected (init_module returns 0) and the default is kept. When a
 * name appears twice, the later value wins.
 */
#include "wasmq_module.h"

enum { kMaxConfiguredHeaders = 64 };

/* The headers added to every message. `header_storage` owns the bytes of configured names and
 * values (malloc'd); the default set points at string literals. */
static wasmq_header added_headers[kMaxConfiguredHeaders] = {
    {{(const uint8_t *)"processed-by", 12}, {(const uint8_t *)"header-adder", 12}},
};
static uint32_t added_header_count = 1;
static uint8_t *header_storage = NULL;

/* A position in the configuration text. */
typedef struct json_cursor {
  const uint8_t *at;
  const uint8_t *end;
} json_cursor;

/* Where decoded strings go: `capacity` bytes, of which `used` are taken. */
typedef struct string_arena {
  uint8_t *bytes;
  uint32_t used;
  uint32_t capacity;
} string_arena;

static void skip_whitespace(json_cursor *cursor) {
  while (cursor->at < cursor->end && (*cursor->at == ' ' || *cursor->at == '\t' ||
                                      *cursor->at == '\n' || *cursor->at == '\r')) {
    ++cursor->at;
  }
}

/* Skips whitespace, then consumes `expected` when it is next. */
static bool consume(json_cursor *cursor, uint8_t expected) {
  skip_whitespace(cursor);
  if (cursor->at == cursor->end || *cursor->at != expected) return false;
  ++cursor->at;
  return true;
}

/* Skips whitespace, then consumes the literal `word` when it is next. */
static bool consume_word(json_cursor *cursor, const char *word) {
  skip_whitespace(cursor);
  size_t len = strlen(word);
  if ((size_t)(cursor->end - cursor->at) < len || memcmp(cursor->at, word, len) != 0) return false;
  cursor->at += len;
  return true;
}

static bool arena_put(string_arena *arena, uint8_t byte) {
  if (arena->used == arena->capacity) return false;
  arena->bytes[arena->used++] = byte;
  return true;
}

/* Reads the four hex digits of a \u escape. */
static bool read_hex4(json_cursor *cursor, uint32_t *code_unit) {
  if (cursor->end - cursor->at < 4) return false;
  uint32_t value = 0;
  for (int i = 0; i < 4; ++i) {
    uint8_t c = *cursor->at++;
    uint32_t digit;
    if (c >= '0' && c <= '9') {
      digit = (uint32_t)(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      digit = (uint32_t)(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      digit = (uint32_t)(c - 'A' + 10);
    } else {
      return false;
    }
    value = value * 16 + digit;
  }
  *code_unit = value;
  return true;
}

/* Appends the UTF-8 encoding of `code_point` (a scalar value, not a surrogate). */
static bool put_utf8(string_arena *arena, uint32_t code_point) {
  if (code_point < 0x80) return arena_put(arena, (uint8_t)code_point);
  if (code_point < 0x800) {
    return arena_put(arena, (uint8_t)(0xC0 | (code_point >> 6))) &&
           arena_put(arena, (uint8_t)(0x80 | (code_point & 0x3F)));
  }
  if (code_point < 0x10000) {
    return arena_put(arena, (uint8_t)(0xE0 | (code_point >> 12))) &&
           arena_put(arena, (uint8_t)(0x80 | ((code_point >> 6) & 0x3F))) &&
           arena_put(arena, (uint8_t)(0x80 | (code_point & 0x3F)));
  }
  return arena_put(arena, (uint8_t)(0xF0 | (code_point >> 18))) &&
         arena_put(arena, (uint8_t)(0x80 | ((code_point >> 12) & 0x3F))) &&
         arena_put(arena, (uint8_t)(0x80 | ((code_point >> 6) & 0x3F))) &&
         arena_put(arena, (uint8_t)(0x80 | (code_point & 0x3F)));
}

/* Reads a \u escape (the backslash and `u` already consumed), including a surrogate pair. */
static bool read_unicode_escape(json_cursor *cursor, string_arena *arena) {
  uint32_t code_point;
  if (!read_hex4(cursor, &code_point)) return false;
  if (code_point >= 0xDC00 && code_point <= 0xDFFF) return false;
  if (code_point >= 0xD800 && code_point <= 0xDBFF) {
    uint32_t low;
    if (cursor->end - cursor->at < 2 || cursor->at[0] != '\\' || cursor->at[1] != 'u') {
      return false;
    }
    cursor->at += 2;
    if (!read_hex4(cursor, &low) || low < 0xDC00 || low > 0xDFFF) return false;
    code_point = 0x10000 + ((code_point - 0xD800) << 10) + (low - 0xDC00);
  }
  return put_utf8(arena, code_point);
}

/* Maps the letter after a backslash to the byte it stands for (all escapes except \u). */
static bool unescape_simple(uint8_t escape, uint8_t *plain) {
  static const char kPairs[] = "\"\"\\\\//b\bf\fn\nr\rt\t";
  for (size_t i = 0; i + 1 < sizeof kPairs; i += 2) {
    if ((uint8_t)kPairs[i] == escape) {
      *plain = (uint8_t)kPairs[i + 1];
      return true;
    }
  }
  return false;
}

/* Reads a JSON string into the arena and returns a view of its decoded bytes. The text was
 * checked to be UTF-8 beforehand, so unescaped bytes are copied as they are. */
static bool read_string(json_cursor *cursor, string_arena *arena, wasmq_bytes *decoded) {
  if (!consume(cursor, '"')) return false;
  uint32_t start = arena->used;
  for (;;) {
    if (cursor->at == cursor->end) return false;
    uint8_t c = *cursor->at++;
    if (c == '"') break;
    if (c < 0x20) return false;
    if (c != '\\') {
      if (!arena_put(arena, c)) return false;
      continue;
    }
    if (cursor->at == cursor->end) return false;
    uint8_t escape = *cursor->at++;
    if (escape == 'u') {
      if (!read_unicode_escape(cursor, arena)) return false;
      continue;
    }
    uint8_t plain;
    if (!unescape_simple(escape, &plain)) return false;
    if (!arena_put(arena, plain)) return false;
  }
  decoded->data = arena->bytes + start;
  decoded->len = arena->used - start;
  return true;
}

/* Parses `config` as a flat object of strings into `headers` (at most kMaxConfiguredHeaders),
 * decoding the strings into `arena`, whose capacity is at least `config.len` (decoded JSON
 * strings are never longer than their text). Returns false when the text is anything else. */
static bool parse_header_object(wasmq_bytes config, string_arena *arena, wasmq_header *headers,
                                uint32_t *count) {
  json_cursor cursor = {config.data, config.data + config.len};
  *count = 0;
  if (!consume(&cursor, '{')) return false;
  if (!consume(&cursor, '}')) {
    for (;;) {
      wasmq_header header;
      if (!read_string(&cursor, arena, &header.name)) return false;
      if (!consume(&cursor, ':')) return false;
      if (!read_string(&cursor, arena, &header.value)) return false;
      uint32_t slot = 0;
      while (slot < *count && !wasmq_bytes_equal(headers[slot].name, header.name)) ++slot;
      if (slot == *count) {
        if (*count == kMaxConfiguredHeaders) return false;
        ++*count;
      }
      headers[slot] = header;
      if (consume(&cursor, '}')) break;
      if (!consume(&cursor, ',')) return false;
    }
  }
  skip_whitespace(&cursor);
  return cursor.at == cursor.end;
}

/* Installs the configured headers; keeps the current ones when `config` is unreadable. */
static int configure(wasmq_bytes config) {
  if (config.len == 0) return WASMQ_OK;
  if (!wasmq_utf8_valid(config.data, config.len)) return WASMQ_FAILED;
  json_cursor null_check = {config.data, config.data + config.len};
  if (consume_word(&null_check, "null")) {
    skip_whitespace(&null_check);
    if (null_check.at == null_check.end) return WASMQ_OK;
  }

  string_arena arena = {(uint8_t *)malloc(config.len), 0, config.len};
  if (arena.bytes == NULL) return WASMQ_FAILED;
  wasmq_header parsed[kMaxConfiguredHeaders];
  uint32_t parsed_count;
  if (!parse_header_object(config, &arena, parsed, &parsed_count)) {
    free(arena.bytes);
    return WASMQ_FAILED;
  }
  if (parsed_count == 0) {
    free(arena.bytes);
    return WASMQ_OK;
  }
  free(header_storage);
  header_storage = arena.bytes;
  memcpy(added_headers, parsed, parsed_count * sizeof(wasmq_header));
  added_header_count = parsed_count;
  return WASMQ_OK;
}

/* Replaces the message by a copy carrying the added headers. */
static int add_headers(const wasmq_message *in, wasmq_output *out) {
  return wasmq_output_add_with_headers(out, in, added_headers, added_header_count) ? WASMQ_OK
                                                                                   : WASMQ_FAILED;
}

WASMQ_MODULE(add_headers);
WASMQ_INIT(configure);
