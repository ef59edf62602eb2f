/*
 * hyperdht namespaces, targets and signatures (docs/protocol/hyperdht.md §2, §6).
 *   NS_x = H(H("hyperswarm/dht") || byte(command))
 *   announce/unannounce signature: Ed25519 over NS || H(target || nodeId || token ||
 *     encode(peer) || refresh-or-empty), nodeId = the receiving node's id
 *   mutable signature: Ed25519 over NS_MUTABLE_PUT || H(encode(mutableSignable{seq, value}))
 */
#ifndef HSP_DHT_HYPER_CRYPTO_H
#define HSP_DHT_HYPER_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hyper_messages.h"

#define HSP_DHT_PUBLIC_KEY_SIZE 32
#define HSP_DHT_SECRET_KEY_SIZE 64
#define HSP_DHT_SIGNATURE_SIZE 64

/* Namespace for a hyperdht command number (0, 1, 4, 5, 6, 10 are the ones in use). */
void hsp_dht_namespace(uint8_t out[32], uint8_t command);
/* target = H(bytes): a server's target is H(publicKey), an immutable value's is H(value). */
void hsp_dht_hash(uint8_t out[32], const uint8_t *data, size_t len);

typedef struct hsp_dht_keypair {
  uint8_t public_key[HSP_DHT_PUBLIC_KEY_SIZE];
  uint8_t secret_key[HSP_DHT_SECRET_KEY_SIZE];
} hsp_dht_keypair_t;

void hsp_dht_keypair_from_seed(hsp_dht_keypair_t *kp, const uint8_t seed[32]);

/* ns_command is HSP_HYPER_ANNOUNCE or HSP_HYPER_UNANNOUNCE. `refresh` may be NULL. */
int hsp_dht_announce_signable(uint8_t out[64], uint8_t ns_command, const uint8_t target[32],
                              const uint8_t node_id[32], const uint8_t token[32],
                              const hsp_dht_peer_t *peer, const uint8_t *refresh);
int hsp_dht_announce_sign(uint8_t sig[64], uint8_t ns_command, const uint8_t target[32],
                          const uint8_t node_id[32], const uint8_t token[32],
                          const hsp_dht_peer_t *peer, const uint8_t *refresh,
                          const hsp_dht_keypair_t *kp);
bool hsp_dht_announce_verify(const uint8_t sig[64], uint8_t ns_command, const uint8_t target[32],
                             const uint8_t node_id[32], const uint8_t token[32],
                             const hsp_dht_peer_t *peer, const uint8_t *refresh);

int hsp_dht_mutable_signable(uint8_t out[64], uint64_t seq, hsp_bytes_t value);
int hsp_dht_mutable_sign(uint8_t sig[64], uint64_t seq, hsp_bytes_t value,
                         const hsp_dht_keypair_t *kp);
bool hsp_dht_mutable_verify(const uint8_t sig[64], uint64_t seq, hsp_bytes_t value,
                            const uint8_t public_key[32]);

#endif
