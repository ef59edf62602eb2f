#include "hyper_crypto.h"
#include "tokens.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

void hsp_dht_namespace(uint8_t out[32], uint8_t command) {
  hsp_crypto_namespace((uint8_t(*)[32])out, "hyperswarm/dht", &command, 1);
}

int hsp_dht_announce_signable(uint8_t out[64], uint8_t ns_command, const uint8_t target[32],
                              const uint8_t node_id[32], const uint8_t token[32],
                              const hsp_dht_peer_t *peer, const uint8_t *refresh) {
  long plen = hsp_dht_peer_encode(NULL, 0, peer);
  if (plen < 0) return (int)plen;
  uint8_t *enc = malloc((size_t)plen);
  if (!enc) return HSP_DHT_ENOMEM;
  hsp_dht_peer_encode(enc, (size_t)plen, peer);
  hsp_dht_namespace(out, ns_command);
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, 32);
  crypto_generichash_update(&st, target, 32);
  crypto_generichash_update(&st, node_id, 32);
  crypto_generichash_update(&st, token, 32);
  crypto_generichash_update(&st, enc, (size_t)plen);
  if (refresh) crypto_generichash_update(&st, refresh, 32);
  crypto_generichash_final(&st, out + 32, 32);
  free(enc);
  return 0;
}

int hsp_dht_announce_sign(uint8_t sig[64], uint8_t ns_command, const uint8_t target[32],
                          const uint8_t node_id[32], const uint8_t token[32],
                          const hsp_dht_peer_t *peer, const uint8_t *refresh,
                          const hsp_crypto_keypair_t *kp) {
  uint8_t signable[64];
  int err = hsp_dht_announce_signable(signable, ns_command, target, node_id, token, peer, refresh);
  if (err) return err;
  crypto_sign_detached(sig, NULL, signable, sizeof(signable), kp->secret_key);
  return 0;
}

bool hsp_dht_announce_verify(const uint8_t sig[64], uint8_t ns_command, const uint8_t target[32],
                             const uint8_t node_id[32], const uint8_t token[32],
                             const hsp_dht_peer_t *peer, const uint8_t *refresh) {
  uint8_t signable[64];
  if (hsp_dht_announce_signable(signable, ns_command, target, node_id, token, peer, refresh))
    return false;
  return crypto_sign_verify_detached(sig, signable, sizeof(signable), peer->public_key) == 0;
}

int hsp_dht_mutable_signable(uint8_t out[64], uint64_t seq, hsp_bytes_t value) {
  long len = hsp_dht_mutable_signable_encode(NULL, 0, seq, value);
  if (len < 0) return (int)len;
  uint8_t *enc = malloc((size_t)len);
  if (!enc) return HSP_DHT_ENOMEM;
  hsp_dht_mutable_signable_encode(enc, (size_t)len, seq, value);
  hsp_dht_namespace(out, HSP_HYPER_MUTABLE_PUT);
  hsp_crypto_hash(out + 32, enc, (size_t)len);
  free(enc);
  return 0;
}

int hsp_dht_mutable_sign(uint8_t sig[64], uint64_t seq, hsp_bytes_t value,
                         const hsp_crypto_keypair_t *kp) {
  uint8_t signable[64];
  int err = hsp_dht_mutable_signable(signable, seq, value);
  if (err) return err;
  crypto_sign_detached(sig, NULL, signable, sizeof(signable), kp->secret_key);
  return 0;
}

bool hsp_dht_mutable_verify(const uint8_t sig[64], uint64_t seq, hsp_bytes_t value,
                            const uint8_t public_key[32]) {
  uint8_t signable[64];
  if (hsp_dht_mutable_signable(signable, seq, value)) return false;
  return crypto_sign_verify_detached(sig, signable, sizeof(signable), public_key) == 0;
}

void hsp_dht_holepunch_token(uint8_t out[32], const uint8_t local_secret[32], const uint8_t host[4]) {
  hsp_dht_host_token(out, local_secret, host);
}

long hsp_dht_holepunch_payload_seal(uint8_t *buf, size_t cap, const hsp_dht_holepunch_payload_t *p,
                                    const uint8_t secret[32], const uint8_t nonce[24]) {
  long plen = hsp_dht_holepunch_payload_encode(NULL, 0, p);
  if (plen < 0) return plen;
  size_t total = (size_t)plen + HSP_DHT_HOLEPUNCH_OVERHEAD;
  if (!buf) return (long)total;
  if (cap < total) return HSP_DHT_ENOBUFS;
  uint8_t *plain = malloc((size_t)plen ? (size_t)plen : 1);
  if (!plain) return HSP_DHT_ENOMEM;
  hsp_dht_holepunch_payload_encode(plain, (size_t)plen, p);
  memcpy(buf, nonce, 24);
  crypto_secretbox_easy(buf + 24, plain, (size_t)plen, nonce, secret);
  sodium_memzero(plain, (size_t)plen);
  free(plain);
  return (long)total;
}

int hsp_dht_holepunch_payload_open(hsp_dht_holepunch_payload_t *p, uint8_t *plain, size_t cap,
                                   const uint8_t *in, size_t len, const uint8_t secret[32]) {
  /* The reference refuses an empty plaintext too (end <= start). */
  if (len <= HSP_DHT_HOLEPUNCH_OVERHEAD || cap < len - HSP_DHT_HOLEPUNCH_OVERHEAD)
    return HSP_DHT_EMALFORMED;
  if (crypto_secretbox_open_easy(plain, in + 24, len - 24, in, secret) != 0)
    return HSP_DHT_ESIGNATURE;
  return hsp_dht_holepunch_payload_decode(p, plain, len - HSP_DHT_HOLEPUNCH_OVERHEAD);
}
