/*
 * Text forms of 32-byte keys, as hypercore-id-encoding 1.x / z32 1.x write and read them:
 *
 *   z-base-32 (alphabet ybndrfg8ejkmcpqxot1uwisza345h769), bits MSB-first in 5-bit groups,
 *   the last group zero-padded, no '=' padding: 32 bytes = 52 characters. Decoding is
 *   lowercase only and ignores the padding bits (non-canonical last characters pass).
 *
 *   hsp_crypto_key_decode accepts what HyperDHT.connect accepts: "pear://<id>[/...]", then
 *   52 characters of z32 or 64 hex digits (either case).
 */
#ifndef HSP_CRYPTO_KEYID_H
#define HSP_CRYPTO_KEYID_H

#include <stddef.h>
#include <stdint.h>

#define HSP_Z32_KEY_CHARS 52

/* Characters needed for len bytes (without the NUL). */
static inline size_t hsp_z32_encoded_len(size_t len) { return (len * 8 + 4) / 5; }

/* Writes hsp_z32_encoded_len(len) characters and a NUL. */
void hsp_z32_encode(char *out, const uint8_t *in, size_t len);

/* Decodes text_len characters into text_len * 5 / 8 bytes (out must hold that many);
 * leftover bits are ignored. Returns the byte count, or -1 on a character outside the
 * alphabet. */
int hsp_z32_decode(uint8_t *out, const char *text, size_t text_len);

/* z32 of a 32-byte key: out holds HSP_Z32_KEY_CHARS + 1 bytes. */
void hsp_crypto_key_encode(char out[HSP_Z32_KEY_CHARS + 1], const uint8_t key[32]);

/* 0, or HSP_CRYPTO_EINVAL ("Invalid Hypercore key"). */
int hsp_crypto_key_decode(uint8_t key[32], const char *text);

#endif
