#include "keyid.h"

#include "crypto.h"
#include "hex.h"

#include <string.h>

static const char Z32_ALPHABET[] = "ybndrfg8ejkmcpqxot1uwisza345h769";

void hsp_z32_encode(char *out, const uint8_t *in, size_t len) {
  size_t chars = hsp_z32_encoded_len(len);
  for (size_t k = 0; k < chars; k++) {
    size_t bit = k * 5, i = bit / 8, j = bit % 8;
    /* the 5 bits may straddle two bytes; past the end they are zero */
    unsigned v = (unsigned)in[i] << 8 | (i + 1 < len ? in[i + 1] : 0);
    out[k] = Z32_ALPHABET[(v >> (11 - j)) & 31];
  }
  out[chars] = '\0';
}

static int z32_value(char c) {
  const char *p = c ? strchr(Z32_ALPHABET, c) : NULL;
  return p ? (int)(p - Z32_ALPHABET) : -1;
}

int hsp_z32_decode(uint8_t *out, const char *text, size_t text_len) {
  size_t bytes = text_len * 5 / 8;
  unsigned acc = 0, have = 0;
  size_t n = 0;
  for (size_t k = 0; k < text_len; k++) {
    int v = z32_value(text[k]);
    if (v < 0) return -1;
    acc = (acc << 5 | (unsigned)v) & 0x1fff;
    have += 5;
    if (have >= 8) {
      have -= 8;
      if (n < bytes) out[n++] = (uint8_t)(acc >> have);
    }
  }
  return (int)n;
}

void hsp_crypto_key_encode(char out[HSP_Z32_KEY_CHARS + 1], const uint8_t key[32]) {
  hsp_z32_encode(out, key, 32);
}

int hsp_crypto_key_decode(uint8_t key[32], const char *text) {
  if (!text) return HSP_CRYPTO_EINVAL;
  size_t len = strlen(text);
  if (strncmp(text, "pear://", 7) == 0) {
    text += 7;
    const char *slash = strchr(text, '/');
    len = slash ? (size_t)(slash - text) : strlen(text);
  }
  if (len == HSP_Z32_KEY_CHARS) return hsp_z32_decode(key, text, len) == 32 ? 0 : HSP_CRYPTO_EINVAL;
  if (len == 64) {
    char hex[65];
    memcpy(hex, text, 64);
    hex[64] = '\0';
    return hsp_hex_decode(key, 32, hex) == 0 ? 0 : HSP_CRYPTO_EINVAL;
  }
  return HSP_CRYPTO_EINVAL;
}
