/*
 * Noise handshakes as the HyperDHT JS stack runs them (noise-handshake 4.x + noise-curve-ed):
 *
 *   Noise_IK_Ed25519_ChaChaPoly_BLAKE2b  hyperdht's NoiseWrap (prologue NS_PEER_HANDSHAKE,
 *                                        payloads = compact-encoded noisePayload)
 *   Noise_XX_Ed25519_ChaChaPoly_BLAKE2b  @hyperswarm/secret-stream's own handshake (empty
 *                                        prologue, empty payloads)
 *
 * Non-standard part: DH works on Ed25519 keys directly, out = scalarmult_ed25519_noclamp(
 * clamped SHA-512(seed)[0..32], remote Ed25519 point), a compressed Edwards point. HASH is
 * BLAKE2b-512, HMAC is real HMAC-BLAKE2b with a 128-byte block, the AEAD nonce is
 * 4 zero bytes ‖ LE64(n), AD = the 64-byte handshake hash h.
 *
 * Message layouts (e = 32-byte ephemeral key, s = encrypted static key, 48 bytes):
 *   IK  1: e ‖ s ‖ AEAD(payload)     2: e ‖ AEAD(payload)
 *   XX  1: e ‖ payload (plain)       2: e ‖ s ‖ AEAD(payload)     3: s ‖ AEAD(payload)
 *
 * Sans-I/O: write_message/read_message take and produce byte buffers; the caller carries
 * them (inside DHT messages for IK, as secret-stream frames for XX). Any failure wipes the
 * state and every later call fails (fail closed).
 */
#ifndef HSP_CRYPTO_NOISE_H
#define HSP_CRYPTO_NOISE_H

#include "crypto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HSP_NOISE_HASHLEN 64
#define HSP_NOISE_KEYLEN 32
#define HSP_NOISE_MACLEN 16
/* Longest ciphertext one Noise message part may have (the reference throws above it). */
#define HSP_NOISE_MAX_CIPHERTEXT 65535
/* Upper bound of a whole handshake message: e + s + payload ciphertext. */
#define HSP_NOISE_MAX_MESSAGE (32 + 48 + HSP_NOISE_MAX_CIPHERTEXT)

typedef enum hsp_noise_pattern { HSP_NOISE_IK = 0, HSP_NOISE_XX = 1 } hsp_noise_pattern_t;

/* What a finished handshake yields: the input of secret-stream's handshake mode. */
typedef struct hsp_noise_result {
  bool is_initiator;
  uint8_t tx[HSP_NOISE_KEYLEN];
  uint8_t rx[HSP_NOISE_KEYLEN];
  uint8_t hash[HSP_NOISE_HASHLEN];
  uint8_t public_key[HSP_CRYPTO_PUBLICKEYBYTES];
  uint8_t remote_public_key[HSP_CRYPTO_PUBLICKEYBYTES];
} hsp_noise_result_t;

typedef struct hsp_noise {
  uint8_t h[HSP_NOISE_HASHLEN];
  uint8_t ck[HSP_NOISE_HASHLEN];
  uint8_t k[HSP_NOISE_KEYLEN];
  uint64_t n;
  bool has_key;
  hsp_crypto_keypair_t s;
  hsp_crypto_keypair_t e;
  bool has_e;
  uint8_t rs[32];
  bool has_rs;
  uint8_t re[32];
  bool has_re;
  uint8_t expected_rs[32];
  bool check_rs;
  uint8_t pattern;
  bool initiator;
  uint8_t step;    /* index of the next message */
  bool complete;
  bool failed;
  hsp_noise_result_t result;
} hsp_noise_t;

/*
 * Starts a handshake with static key pair `s`.
 * remote_static: IK initiator: the responder's public key (required, pre-message).
 *                Otherwise optional (may be NULL): the static key the peer must prove, checked
 *                in constant time once it is learned; a mismatch fails with EREMOTEKEY.
 */
int hsp_noise_init(hsp_noise_t *n, hsp_noise_pattern_t pattern, bool initiator,
                   const hsp_crypto_keypair_t *s, const uint8_t *remote_static,
                   const uint8_t *prologue, size_t prologue_len);

/* IK with hyperdht's prologue: initiator iff remote_static != NULL, as NoiseWrap decides. */
int hsp_noise_init_hyperdht(hsp_noise_t *n, const hsp_crypto_keypair_t *s,
                            const uint8_t *remote_static);

/* Fixes the ephemeral key pair (deterministic test vectors); else a random one is drawn. */
int hsp_noise_set_ephemeral(hsp_noise_t *n, const hsp_crypto_keypair_t *e);

/* Size of the next message this side writes with a payload of payload_len bytes. */
size_t hsp_noise_message_size(const hsp_noise_t *n, size_t payload_len);

/* Is it this side's turn to write? */
bool hsp_noise_is_my_turn(const hsp_noise_t *n);

int hsp_noise_write_message(hsp_noise_t *n, const uint8_t *payload, size_t payload_len,
                            uint8_t *out, size_t out_cap, size_t *out_len);

/* Decrypts the payload of a received message into `payload` (capacity >= msg_len suffices). */
int hsp_noise_read_message(hsp_noise_t *n, const uint8_t *msg, size_t msg_len, uint8_t *payload,
                           size_t payload_cap, size_t *payload_len);

static inline bool hsp_noise_is_complete(const hsp_noise_t *n) { return n->complete; }

/* The remote static key once learned (IK responder after msg 1, XX after msg 2/3), or NULL. */
const uint8_t *hsp_noise_remote_static(const hsp_noise_t *n);

/* Copies tx/rx/hash/keys of the completed handshake. ESTATE before completion. */
int hsp_noise_get_result(const hsp_noise_t *n, hsp_noise_result_t *out);

/* hyperdht: holepunchSecret = BLAKE2b-256(NS_PEER_HOLEPUNCH, key = hash). */
void hsp_noise_holepunch_secret(uint8_t out[32], const uint8_t hash[HSP_NOISE_HASHLEN]);

/* secret-stream stream id = BLAKE2b-256(NS_SS_INITIATOR or NS_SS_RESPONDER, key = hash). */
void hsp_crypto_stream_id(uint8_t out[32], const uint8_t hash[HSP_NOISE_HASHLEN],
                          bool initiator);

/* Wipes all secrets (and the result); the state is unusable afterwards. Safe to call twice. */
void hsp_noise_wipe(hsp_noise_t *n);
void hsp_noise_wipe_result(hsp_noise_result_t *r);

#endif
