#include "tokens.h"

#include "compact.h"
#include "crypto.h"

#include <sodium.h>
#include <string.h>

void hsp_dht_tokens_init(hsp_dht_tokens_t *t, const uint8_t seed[64]) {
  memcpy(t->secrets[0], seed, 32);
  memcpy(t->secrets[1], seed + 32, 32);
  t->ready = true;
  t->countdown = HSP_DHT_TOKEN_ROTATE_DRAINS;
}

void hsp_dht_tokens_free(hsp_dht_tokens_t *t) { sodium_memzero(t, sizeof(*t)); }

void hsp_dht_tokens_drain(hsp_dht_tokens_t *t) {
  if (!t->ready || --t->countdown > 0) return;
  t->countdown = HSP_DHT_TOKEN_ROTATE_DRAINS;
  uint8_t old[32];
  memcpy(old, t->secrets[0], 32);
  memcpy(t->secrets[0], t->secrets[1], 32);
  hsp_crypto_hash(t->secrets[1], old, 32);
  sodium_memzero(old, sizeof(old));
}

void hsp_dht_host_token(uint8_t out[32], const uint8_t key[32], const uint8_t host[4]) {
  char text[HSP_CENC_IP_STRLEN];
  hsp_ipv4_format(host, text);
  hsp_crypto_hash_keyed(out, (const uint8_t *)text, strlen(text), key, 32);
}

void hsp_dht_token_create(const hsp_dht_tokens_t *t, uint8_t out[32], const uint8_t host[4],
                          int which) {
  hsp_dht_host_token(out, t->secrets[which ? 1 : 0], host);
}

bool hsp_dht_token_verify(const hsp_dht_tokens_t *t, const uint8_t token[32],
                          const uint8_t host[4]) {
  uint8_t want[32];
  for (int i = 1; i >= 0; i--) {
    hsp_dht_token_create(t, want, host, i);
    if (sodium_memcmp(want, token, 32) == 0) return true;
  }
  return false;
}
