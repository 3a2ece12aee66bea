/* Reads the init_module configuration of the etl_* test modules: a flat JSON object as the host
 * serialises it (compact, e.g. {"header":"seen","copies":3,"stop":true}).
 *
 * Test helper, not a JSON parser: strings are taken up to the next '"' and must not contain
 * escapes, integers are plain decimals (optionally negative), booleans are `true`/`false`.
 * A lookup of a name that is absent, or whose value has another type, returns false and leaves
 * the output unchanged. The configuration is copied at init; it outlives every call. */
#ifndef WASMQ_TESTS_ETL_CONFIG_H_
#define WASMQ_TESTS_ETL_CONFIG_H_

#include "wasmq_module.h"

enum { kEtlConfigCapacity = 4096, kEtlConfigStringCapacity = 256 };

static char etl_config_text[kEtlConfigCapacity];
static uint32_t etl_config_len;

/* Keeps a copy of `config`; false when it does not fit. */
static inline bool etl_config_store(wasmq_bytes config) {
  if (config.len >= kEtlConfigCapacity) return false;
  if (config.len != 0) memcpy(etl_config_text, config.data, config.len);
  etl_config_len = config.len;
  etl_config_text[etl_config_len] = '\0';
  return true;
}

/* The position just after `"name":` in the configuration, or NULL. */
static inline const char *etl_config_find(const char *name) {
  size_t name_len = strlen(name);
  const char *end = etl_config_text + etl_config_len;
  for (const char *at = etl_config_text; at + name_len + 3 <= end; ++at) {
    if (at[0] == '"' && memcmp(at + 1, name, name_len) == 0 && at[name_len + 1] == '"' &&
        at[name_len + 2] == ':') {
      return at + name_len + 3;
    }
  }
  return NULL;
}

/* Copies the string value of `name` (NUL-terminated) into `out[0..kEtlConfigStringCapacity)`. */
static inline bool etl_config_string(const char *name, char out[kEtlConfigStringCapacity]) {
  const char *at = etl_config_find(name);
  if (at == NULL || *at != '"') return false;
  const char *start = at + 1;
  const char *close = strchr(start, '"');
  if (close == NULL || close - start >= kEtlConfigStringCapacity) return false;
  memcpy(out, start, (size_t)(close - start));
  out[close - start] = '\0';
  return true;
}

/* Reads the integer value of `name`. */
static inline bool etl_config_int(const char *name, int64_t *out) {
  const char *at = etl_config_find(name);
  if (at == NULL) return false;
  bool negative = *at == '-';
  if (negative) ++at;
  if (*at < '0' || *at > '9') return false;
  int64_t value = 0;
  while (*at >= '0' && *at <= '9') value = value * 10 + (*at++ - '0');
  *out = negative ? -value : value;
  return true;
}

/* True when `name` is the literal `true`. */
static inline bool etl_config_true(const char *name) {
  const char *at = etl_config_find(name);
  return at != NULL && strncmp(at, "true", 4) == 0;
}

/* True when `word` (non-empty) occurs in `bytes`. */
static inline bool etl_contains(wasmq_bytes bytes, const char *word) {
  size_t len = strlen(word);
  if (len == 0 || len > bytes.len) return false;
  for (uint32_t i = 0; i + len <= bytes.len; ++i) {
    if (memcmp(bytes.data + i, word, len) == 0) return true;
  }
  return false;
}

#endif /* WASMQ_TESTS_ETL_CONFIG_H_ */
