/*
 * Key pairs, BLAKE2b identifiers, namespaces and signatures exactly as the HyperDHT JS stack
 * derives them (hypercore-crypto, hyperdht/lib/crypto.js, noise-curve-ed). Also the error
 * codes shared by the whole crypto layer (noise.h, secretstream.h).
 *
 * Keys are Ed25519: a 32-byte public key and libsodium's 64-byte secret key (seed ‖ pk).
 */
#ifndef HSP_CRYPTO_CRYPTO_H
#define HSP_CRYPTO_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HSP_CRYPTO_PUBLICKEYBYTES 32
#define HSP_CRYPTO_SECRETKEYBYTES 64
#define HSP_CRYPTO_SEEDBYTES 32
#define HSP_CRYPTO_SIGNBYTES 64
#define HSP_CRYPTO_HASHBYTES 32

enum hsp_crypto_error {
  HSP_CRYPTO_OK = 0,
  HSP_CRYPTO_EINIT = -1,       /* libsodium could not be initialised */
  HSP_CRYPTO_EINVAL = -2,      /* bad argument */
  HSP_CRYPTO_ENOMEM = -3,      /* allocation failed */
  HSP_CRYPTO_ESTATE = -4,      /* call not valid in the current state */
  HSP_CRYPTO_EBUFSIZE = -5,    /* output buffer too small */
  HSP_CRYPTO_EHANDSHAKE = -6,  /* Noise message malformed or failed to authenticate */
  HSP_CRYPTO_EPUBKEY = -7,     /* a public key is not a usable Ed25519 point */
  HSP_CRYPTO_EREMOTEKEY = -8,  /* peer authenticated with another static key than expected */
  HSP_CRYPTO_EHEADER = -9,     /* invalid secret-stream header message */
  HSP_CRYPTO_EDECRYPT = -10,   /* message failed to authenticate (tampered, replayed, reordered) */
  HSP_CRYPTO_EMSGSIZE = -11,   /* message too large, or a frame too short to be a message */
  HSP_CRYPTO_ETRUNCATED = -12, /* the transport ended inside a frame or before the handshake */
  HSP_CRYPTO_ETIMEDOUT = -13,  /* nothing received within the stream timeout */
  HSP_CRYPTO_EDESTROYED = -14, /* the stream was destroyed earlier (by an error or the caller) */
  HSP_CRYPTO_EENDED = -15,     /* write after end */
  HSP_CRYPTO_ENONCE = -16,     /* datagram nonce space exhausted */
  HSP_CRYPTO_ECALLBACK = -17,  /* a callback of the caller reported failure */
};

const char *hsp_crypto_strerror(int err);

/* Initialises libsodium (idempotent, thread-safe). Every hsp_crypto entry point that needs
 * randomness or runtime CPU dispatch assumes this was called once. */
int hsp_crypto_init(void);

typedef struct hsp_crypto_keypair {
  uint8_t public_key[HSP_CRYPTO_PUBLICKEYBYTES];
  uint8_t secret_key[HSP_CRYPTO_SECRETKEYBYTES];
} hsp_crypto_keypair_t;

/* crypto_sign_seed_keypair: identical to HyperDHT.keyPair(seed) / hypercore-crypto keyPair. */
void hsp_crypto_keypair_from_seed(hsp_crypto_keypair_t *kp, const uint8_t seed[32]);
void hsp_crypto_keypair_random(hsp_crypto_keypair_t *kp);
void hsp_crypto_keypair_wipe(hsp_crypto_keypair_t *kp);

/* BLAKE2b-256 of data, unkeyed (hyperdht crypto.hash, the DHT target of a public key). */
void hsp_crypto_hash(uint8_t out[32], const uint8_t *data, size_t len);
/* BLAKE2b-256 with libsodium's native key parameter (not HMAC); key is 16..64 bytes. */
void hsp_crypto_hash_keyed(uint8_t out[32], const uint8_t *data, size_t len, const uint8_t *key,
                           size_t key_len);
/* hypercore-crypto discoveryKey: BLAKE2b-256("hypercore", key = public key). */
void hsp_crypto_discovery_key(uint8_t out[32], const uint8_t public_key[32]);

/* hypercore-crypto namespace(name, ids): ns[i] = BLAKE2b-256(BLAKE2b-256(name) ‖ byte(ids[i])). */
void hsp_crypto_namespace(uint8_t (*out)[32], const char *name, const uint8_t *ids, size_t count);

/* The namespaces the stack uses, as constants (tests re-derive them with hsp_crypto_namespace
 * and compare with the JS reference). */
extern const uint8_t HSP_NS_PEER_HANDSHAKE[32]; /* hyperswarm/dht 0: hyperdht Noise prologue */
extern const uint8_t HSP_NS_PEER_HOLEPUNCH[32]; /* hyperswarm/dht 1 */
extern const uint8_t HSP_NS_ANNOUNCE[32];       /* hyperswarm/dht 4 */
extern const uint8_t HSP_NS_UNANNOUNCE[32];     /* hyperswarm/dht 5 */
extern const uint8_t HSP_NS_MUTABLE_PUT[32];    /* hyperswarm/dht 6 */
extern const uint8_t HSP_NS_PLUGIN[32];         /* hyperswarm/dht 10 */
extern const uint8_t HSP_NS_SS_INITIATOR[32];   /* hyperswarm/secret-stream 0 */
extern const uint8_t HSP_NS_SS_RESPONDER[32];   /* hyperswarm/secret-stream 1 */
extern const uint8_t HSP_NS_SS_SEND[32];        /* hyperswarm/secret-stream 2 */

/* Ed25519 detached signatures (hypercore-crypto sign/verify). verify returns true if valid. */
void hsp_crypto_sign(uint8_t sig[64], const uint8_t *msg, size_t len, const uint8_t secret_key[64]);
bool hsp_crypto_verify(const uint8_t sig[64], const uint8_t *msg, size_t len,
                       const uint8_t public_key[32]);

/* Constant-time equality of two secret-dependent byte strings. */
bool hsp_crypto_equal(const void *a, const void *b, size_t len);
void hsp_crypto_wipe(void *p, size_t len);

#endif
