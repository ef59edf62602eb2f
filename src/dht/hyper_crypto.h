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

#include "crypto.h"
#include "hyper_messages.h"
#include "noise.h"

#define HSP_DHT_SIGNATURE_SIZE 64

/* Namespace for a hyperdht command number (0, 1, 4, 5, 6, 10 are the ones in use). */
void hsp_dht_namespace(uint8_t out[32], uint8_t command);
/* Targets are hsp_crypto_hash(bytes): a server's is H(publicKey), an immutable value's H(value).
 * Key pairs are hsp_crypto_keypair_t; the holepunch secret is hsp_noise_holepunch_secret. */

/* ns_command is HSP_HYPER_ANNOUNCE or HSP_HYPER_UNANNOUNCE. `refresh` may be NULL. */
int hsp_dht_announce_signable(uint8_t out[64], uint8_t ns_command, const uint8_t target[32],
                              const uint8_t node_id[32], const uint8_t token[32],
                              const hsp_dht_peer_t *peer, const uint8_t *refresh);
int hsp_dht_announce_sign(uint8_t sig[64], uint8_t ns_command, const uint8_t target[32],
                          const uint8_t node_id[32], const uint8_t token[32],
                          const hsp_dht_peer_t *peer, const uint8_t *refresh,
                          const hsp_crypto_keypair_t *kp);
bool hsp_dht_announce_verify(const uint8_t sig[64], uint8_t ns_command, const uint8_t target[32],
                             const uint8_t node_id[32], const uint8_t token[32],
                             const hsp_dht_peer_t *peer, const uint8_t *refresh);

int hsp_dht_mutable_signable(uint8_t out[64], uint64_t seq, hsp_bytes_t value);
int hsp_dht_mutable_sign(uint8_t sig[64], uint64_t seq, hsp_bytes_t value,
                         const hsp_crypto_keypair_t *kp);
bool hsp_dht_mutable_verify(const uint8_t sig[64], uint64_t seq, hsp_bytes_t value,
                            const uint8_t public_key[32]);

/* Holepunch payload encryption (secure-payload.js, hyperdht.md §1.5): the key is
 * BLAKE2b-256(input = NS_PEER_HOLEPUNCH, key = the 64-byte Noise handshake hash); the wire
 * form is nonce(24) || crypto_secretbox_easy(plaintext) (MAC first), 40 bytes of overhead. */
#define HSP_DHT_HOLEPUNCH_OVERHEAD 40
/* Address token: BLAKE2b-256(ASCII dotted quad of host, key = local 32-byte secret). */
void hsp_dht_holepunch_token(uint8_t out[32], const uint8_t local_secret[32], const uint8_t host[4]);
/* Encode and encrypt p with the given nonce (draw it at random). Returns the length or a
 * negative error; buf == NULL returns the size needed. */
long hsp_dht_holepunch_payload_seal(uint8_t *buf, size_t cap, const hsp_dht_holepunch_payload_t *p,
                                    const uint8_t secret[32], const uint8_t nonce[24]);
/* Decrypt into plain (cap >= len - 40) and decode; p's views point into plain. Returns 0,
 * HSP_DHT_ESIGNATURE when authentication fails, or HSP_DHT_EMALFORMED. */
int hsp_dht_holepunch_payload_open(hsp_dht_holepunch_payload_t *p, uint8_t *plain, size_t cap,
                                   const uint8_t *in, size_t len, const uint8_t secret[32]);

#endif
