#include "json.h"

#include <inttypes.h>
#include <stdio.h>

#include "hex.h"

static size_t put(char *out, size_t cap, size_t at, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (at + i + 1 < cap) out[at + i] = s[i];
  if (cap) out[at + n < cap ? at + n : cap - 1] = '\0';
  return at + n;
}

size_t hsp_json_string(char *out, size_t cap, size_t at, const char *s) {
  at = put(out, cap, at, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    char esc[8];
    if (c == '"' || c == '\\') {
      esc[0] = '\\', esc[1] = (char)c;
      at = put(out, cap, at, esc, 2);
    } else if (c < 0x20 || c == 0x7f) {
      snprintf(esc, sizeof esc, "\\u%04x", c);
      at = put(out, cap, at, esc, 6);
    } else {
      at = put(out, cap, at, (const char *)&c, 1);
    }
  }
  return put(out, cap, at, "\"", 1);
}

size_t hsp_reg_instance_json(char *out, size_t cap, const hsp_reg_instance_t *inst) {
  char key[2 * HSP_REG_KEY_BYTES + 1], num[160];
  hsp_hex_encode(key, inst->key, HSP_REG_KEY_BYTES);
  size_t at = put(out, cap, 0, "{\"key\":", 7);
  at = hsp_json_string(out, cap, at, key);
  at = put(out, cap, at, ",\"name\":", 8);
  at = hsp_json_string(out, cap, at, inst->name);
  at = put(out, cap, at, ",\"version\":", 11);
  at = hsp_json_string(out, cap, at, inst->version);
  at = put(out, cap, at, ",\"tags\":", 8);
  at = hsp_json_string(out, cap, at, inst->tags);
  int n = snprintf(num, sizeof num,
                   ",\"ttlMs\":%" PRIu32 ",\"registeredMs\":%" PRIu64 ",\"renewedMs\":%" PRIu64
                   ",\"expiresMs\":%" PRIu64 "}",
                   inst->ttl_ms, inst->registered_ms, inst->renewed_ms, inst->expires_ms);
  return put(out, cap, at, num, (size_t)n);
}

size_t hsp_reg_role_json(char *out, size_t cap, size_t at, const hsp_reg_instance_t *inst) {
  at = put(out, cap, at, "\"role\":", 7);
  at = hsp_json_string(out, cap, at, inst->name);
  at = put(out, cap, at, ",\"version\":", 11);
  at = hsp_json_string(out, cap, at, inst->version);
  at = put(out, cap, at, ",\"tags\":", 8);
  return hsp_json_string(out, cap, at, inst->tags);
}
