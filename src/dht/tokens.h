/*
 * Write tokens (docs/protocol/dht-rpc.md §4): opaque 32-byte values a server hands out and
 * checks when they are echoed. Same scheme as dht-rpc: token(ip, i) =
 * BLAKE2b-256(ASCII dotted quad of ip, key = secret[i]); replies carry secret 1 (current),
 * requests are accepted with secret 1 or 0 (previous). Every 10 drains (7.5 s at the 750 ms
 * drain interval) the secrets rotate, so a token lives 7.5-15 s. The port is not bound.
 */
#ifndef HSP_DHT_TOKENS_H
#define HSP_DHT_TOKENS_H

#include <stdbool.h>
#include <stdint.h>

#define HSP_DHT_TOKEN_ROTATE_DRAINS 10

typedef struct hsp_dht_tokens {
  uint8_t secrets[2][32];
  bool ready;
  int countdown;
} hsp_dht_tokens_t;

/* `seed` supplies the 64 bytes of both initial secrets (random in production). */
void hsp_dht_tokens_init(hsp_dht_tokens_t *t, const uint8_t seed[64]);
void hsp_dht_tokens_free(hsp_dht_tokens_t *t);
/* Call once per 750 ms drain tick. */
void hsp_dht_tokens_drain(hsp_dht_tokens_t *t);
void hsp_dht_token_create(const hsp_dht_tokens_t *t, uint8_t out[32], const uint8_t host[4],
                          int which);
bool hsp_dht_token_verify(const hsp_dht_tokens_t *t, const uint8_t token[32],
                          const uint8_t host[4]);

/* BLAKE2b-256(ASCII dotted quad of host, key): the shape of every address token in the
 * stack (dht-rpc write tokens here, hyperdht holepunch tokens in hyper_crypto.c). */
void hsp_dht_host_token(uint8_t out[32], const uint8_t key[32], const uint8_t host[4]);

#endif
