#include "noise.h"

#include <sodium.h>
#include <string.h>

enum token { T_END = 0, T_E, T_S, T_EE, T_ES, T_SE, T_SS };

#define MAX_MESSAGES 3
#define MAX_TOKENS 5

typedef struct pattern_def {
  const char *protocol;
  uint8_t messages;
  /* IK has the responder's static key as pre-message; XX has none. */
  bool premessage_rs;
  uint8_t tokens[MAX_MESSAGES][MAX_TOKENS];
} pattern_def_t;

static const pattern_def_t PATTERNS[] = {
    [HSP_NOISE_IK] = {"Noise_IK_Ed25519_ChaChaPoly_BLAKE2b",
                      2,
                      true,
                      {{T_E, T_ES, T_S, T_SS}, {T_E, T_EE, T_SE}}},
    [HSP_NOISE_XX] = {"Noise_XX_Ed25519_ChaChaPoly_BLAKE2b",
                      3,
                      false,
                      {{T_E}, {T_E, T_EE, T_S, T_ES}, {T_S, T_SE}}},
};

#define HMAC_BLOCKLEN 128

static void mix_hash(hsp_noise_t *n, const uint8_t *data, size_t len) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, HSP_NOISE_HASHLEN);
  crypto_generichash_update(&st, n->h, HSP_NOISE_HASHLEN);
  crypto_generichash_update(&st, data, len);
  crypto_generichash_final(&st, n->h, HSP_NOISE_HASHLEN);
}

/* HMAC-BLAKE2b-512 over the concatenation of up to two inputs; keys are always 64 bytes here,
 * shorter than the block, so they are only zero-padded. */
static void hmac(uint8_t out[64], const uint8_t key[64], const uint8_t *a, size_t alen,
                 const uint8_t *b, size_t blen) {
  uint8_t pad[HMAC_BLOCKLEN];
  uint8_t inner[64];
  crypto_generichash_state st;

  memset(pad, 0x36, sizeof pad);
  for (size_t i = 0; i < 64; i++) pad[i] ^= key[i];
  crypto_generichash_init(&st, NULL, 0, 64);
  crypto_generichash_update(&st, pad, sizeof pad);
  crypto_generichash_update(&st, a, alen);
  crypto_generichash_update(&st, b, blen);
  crypto_generichash_final(&st, inner, 64);

  memset(pad, 0x5c, sizeof pad);
  for (size_t i = 0; i < 64; i++) pad[i] ^= key[i];
  crypto_generichash_init(&st, NULL, 0, 64);
  crypto_generichash_update(&st, pad, sizeof pad);
  crypto_generichash_update(&st, inner, sizeof inner);
  crypto_generichash_final(&st, out, 64);

  sodium_memzero(pad, sizeof pad);
  sodium_memzero(inner, sizeof inner);
  sodium_memzero(&st, sizeof st);
}

static void hkdf(uint8_t out1[64], uint8_t out2[64], const uint8_t ck[64], const uint8_t *ikm,
                 size_t ikm_len) {
  static const uint8_t one = 1, two = 2;
  uint8_t prk[64];
  hmac(prk, ck, ikm, ikm_len, NULL, 0);
  hmac(out1, prk, &one, 1, NULL, 0);
  hmac(out2, prk, out1, 64, &two, 1);
  sodium_memzero(prk, sizeof prk);
}

static int dh(uint8_t out[32], const hsp_crypto_keypair_t *local, const uint8_t remote[32]) {
  uint8_t scalar[32];
  /* = clamped first half of SHA-512(seed), the scalar noise-curve-ed derives. */
  crypto_sign_ed25519_sk_to_curve25519(scalar, local->secret_key);
  int rc = crypto_scalarmult_ed25519_noclamp(out, scalar, remote);
  sodium_memzero(scalar, sizeof scalar);
  return rc == 0 ? HSP_CRYPTO_OK : HSP_CRYPTO_EPUBKEY;
}

static int mix_key(hsp_noise_t *n, const hsp_crypto_keypair_t *local, const uint8_t remote[32]) {
  uint8_t shared[32], o1[64], o2[64];
  int rc = dh(shared, local, remote);
  if (rc == 0) {
    hkdf(o1, o2, n->ck, shared, sizeof shared);
    memcpy(n->ck, o1, 64);
    memcpy(n->k, o2, HSP_NOISE_KEYLEN);
    n->n = 0;
    n->has_key = true;
  }
  sodium_memzero(shared, sizeof shared);
  sodium_memzero(o1, sizeof o1);
  sodium_memzero(o2, sizeof o2);
  return rc;
}

static void nonce_bytes(uint8_t nonce[12], uint64_t counter) {
  memset(nonce, 0, 4);
  for (int i = 0; i < 8; i++) nonce[4 + i] = (uint8_t)(counter >> (8 * i));
}

/* out must not overlap p. Writes len (+16 with a key) bytes. */
static int encrypt_and_hash(hsp_noise_t *n, const uint8_t *p, size_t len, uint8_t *out,
                            size_t *out_len) {
  if (!n->has_key) {
    if (len) memcpy(out, p, len);
    *out_len = len;
  } else {
    if (len + HSP_NOISE_MACLEN > HSP_NOISE_MAX_CIPHERTEXT) return HSP_CRYPTO_EMSGSIZE;
    uint8_t nonce[12];
    unsigned long long clen;
    nonce_bytes(nonce, n->n);
    crypto_aead_chacha20poly1305_ietf_encrypt(out, &clen, p, len, n->h, HSP_NOISE_HASHLEN, NULL,
                                              nonce, n->k);
    n->n++;
    *out_len = (size_t)clen;
  }
  mix_hash(n, out, *out_len);
  return HSP_CRYPTO_OK;
}

/* out must not overlap c and holds at least clen bytes. */
static int decrypt_and_hash(hsp_noise_t *n, const uint8_t *c, size_t clen, uint8_t *out,
                            size_t *out_len) {
  if (!n->has_key) {
    if (clen) memcpy(out, c, clen);
    *out_len = clen;
  } else {
    if (clen < HSP_NOISE_MACLEN || clen > HSP_NOISE_MAX_CIPHERTEXT) return HSP_CRYPTO_EHANDSHAKE;
    uint8_t nonce[12];
    unsigned long long mlen;
    nonce_bytes(nonce, n->n);
    if (crypto_aead_chacha20poly1305_ietf_decrypt(out, &mlen, NULL, c, clen, n->h,
                                                  HSP_NOISE_HASHLEN, nonce, n->k) != 0)
      return HSP_CRYPTO_EHANDSHAKE;
    n->n++;
    *out_len = (size_t)mlen;
  }
  mix_hash(n, c, clen);
  return HSP_CRYPTO_OK;
}

void hsp_noise_wipe(hsp_noise_t *n) {
  sodium_memzero(n, sizeof *n);
  /* A wiped state must not be mistaken for a fresh one. */
  n->failed = true;
}

void hsp_noise_wipe_result(hsp_noise_result_t *r) { sodium_memzero(r, sizeof *r); }

static int fail(hsp_noise_t *n, int err) {
  hsp_noise_wipe(n);
  return err;
}

int hsp_noise_init(hsp_noise_t *n, hsp_noise_pattern_t pattern, bool initiator,
                   const hsp_crypto_keypair_t *s, const uint8_t *remote_static,
                   const uint8_t *prologue, size_t prologue_len) {
  memset(n, 0, sizeof *n);
  if ((pattern != HSP_NOISE_IK && pattern != HSP_NOISE_XX) || !s ||
      (prologue_len && !prologue))
    return fail(n, HSP_CRYPTO_EINVAL);
  const pattern_def_t *def = &PATTERNS[pattern];
  if (def->premessage_rs && initiator && !remote_static) return fail(n, HSP_CRYPTO_EINVAL);

  n->pattern = (uint8_t)pattern;
  n->initiator = initiator;
  n->s = *s;
  if (remote_static) {
    memcpy(n->expected_rs, remote_static, 32);
    n->check_rs = true;
  }

  size_t name_len = strlen(def->protocol);
  memcpy(n->h, def->protocol, name_len); /* <= 64 bytes: zero-padded, not hashed */
  memcpy(n->ck, n->h, HSP_NOISE_HASHLEN);
  mix_hash(n, prologue, prologue_len);
  if (def->premessage_rs) {
    if (initiator) {
      memcpy(n->rs, remote_static, 32);
      n->has_rs = true;
      mix_hash(n, n->rs, 32);
    } else {
      mix_hash(n, n->s.public_key, 32);
    }
  }
  return HSP_CRYPTO_OK;
}

int hsp_noise_init_hyperdht(hsp_noise_t *n, const hsp_crypto_keypair_t *s,
                            const uint8_t *remote_static) {
  return hsp_noise_init(n, HSP_NOISE_IK, remote_static != NULL, s, remote_static,
                        HSP_NS_PEER_HANDSHAKE, 32);
}

int hsp_noise_set_ephemeral(hsp_noise_t *n, const hsp_crypto_keypair_t *e) {
  if (n->failed || n->complete || n->has_e) return HSP_CRYPTO_ESTATE;
  n->e = *e;
  n->has_e = true;
  return HSP_CRYPTO_OK;
}

bool hsp_noise_is_my_turn(const hsp_noise_t *n) {
  if (n->failed || n->complete) return false;
  return (n->step % 2 == 0) == n->initiator;
}

size_t hsp_noise_message_size(const hsp_noise_t *n, size_t payload_len) {
  if (n->failed || n->complete) return 0;
  const uint8_t *tok = PATTERNS[n->pattern].tokens[n->step];
  bool has_key = n->has_key;
  size_t size = 0;
  for (int i = 0; i < MAX_TOKENS && tok[i] != T_END; i++) {
    if (tok[i] == T_E) size += 32;
    else if (tok[i] == T_S) size += 32 + (has_key ? HSP_NOISE_MACLEN : 0);
    else has_key = true;
  }
  return size + payload_len + (has_key ? HSP_NOISE_MACLEN : 0);
}

/* Which keys a DH token combines, from this side's point of view. */
static int mix_token(hsp_noise_t *n, uint8_t token) {
  bool local_static, remote_static;
  switch (token) {
  case T_EE: local_static = false; remote_static = false; break;
  case T_SS: local_static = true; remote_static = true; break;
  case T_ES: local_static = !n->initiator; remote_static = n->initiator; break;
  default: /* T_SE */ local_static = n->initiator; remote_static = !n->initiator; break;
  }
  if (!(local_static || n->has_e) || !(remote_static ? n->has_rs : n->has_re))
    return HSP_CRYPTO_ESTATE;
  return mix_key(n, local_static ? &n->s : &n->e, remote_static ? n->rs : n->re);
}

static void split(hsp_noise_t *n) {
  uint8_t o1[64], o2[64];
  hkdf(o1, o2, n->ck, NULL, 0);
  hsp_noise_result_t *r = &n->result;
  r->is_initiator = n->initiator;
  memcpy(r->tx, n->initiator ? o1 : o2, HSP_NOISE_KEYLEN);
  memcpy(r->rx, n->initiator ? o2 : o1, HSP_NOISE_KEYLEN);
  memcpy(r->hash, n->h, HSP_NOISE_HASHLEN);
  memcpy(r->public_key, n->s.public_key, 32);
  memcpy(r->remote_public_key, n->rs, 32);
  sodium_memzero(o1, sizeof o1);
  sodium_memzero(o2, sizeof o2);
  /* Nothing but the result survives the handshake. */
  sodium_memzero(n->ck, sizeof n->ck);
  sodium_memzero(n->k, sizeof n->k);
  sodium_memzero(n->h, sizeof n->h);
  hsp_crypto_keypair_wipe(&n->s);
  hsp_crypto_keypair_wipe(&n->e);
  sodium_memzero(n->re, sizeof n->re);
  n->has_key = n->has_e = n->has_re = false;
  n->complete = true;
}

static int check_remote_static(hsp_noise_t *n) {
  if (n->check_rs && !hsp_crypto_equal(n->rs, n->expected_rs, 32)) return HSP_CRYPTO_EREMOTEKEY;
  return HSP_CRYPTO_OK;
}

int hsp_noise_write_message(hsp_noise_t *n, const uint8_t *payload, size_t payload_len,
                            uint8_t *out, size_t out_cap, size_t *out_len) {
  if (n->failed) return HSP_CRYPTO_EHANDSHAKE;
  if (!hsp_noise_is_my_turn(n)) return HSP_CRYPTO_ESTATE;
  if (payload_len && !payload) return HSP_CRYPTO_EINVAL;
  size_t need = hsp_noise_message_size(n, payload_len);
  /* refused up front so that an oversized payload does not cost the handshake */
  if (payload_len + HSP_NOISE_MACLEN > HSP_NOISE_MAX_CIPHERTEXT) return HSP_CRYPTO_EMSGSIZE;
  if (!out || out_cap < need) return HSP_CRYPTO_EBUFSIZE;

  const uint8_t *tok = PATTERNS[n->pattern].tokens[n->step];
  size_t off = 0, len;
  int rc = 0;
  for (int i = 0; i < MAX_TOKENS && tok[i] != T_END && rc == 0; i++) {
    switch (tok[i]) {
    case T_E:
      if (!n->has_e) {
        hsp_crypto_keypair_random(&n->e);
        n->has_e = true;
      }
      memcpy(out + off, n->e.public_key, 32);
      mix_hash(n, n->e.public_key, 32);
      off += 32;
      break;
    case T_S:
      rc = encrypt_and_hash(n, n->s.public_key, 32, out + off, &len);
      off += len;
      break;
    default:
      rc = mix_token(n, tok[i]);
    }
  }
  if (rc == 0) rc = encrypt_and_hash(n, payload, payload_len, out + off, &len);
  if (rc != 0) {
    sodium_memzero(out, out_cap < need ? out_cap : need);
    return fail(n, rc);
  }
  *out_len = off + len;
  if (++n->step == PATTERNS[n->pattern].messages) split(n);
  return HSP_CRYPTO_OK;
}

int hsp_noise_read_message(hsp_noise_t *n, const uint8_t *msg, size_t msg_len, uint8_t *payload,
                           size_t payload_cap, size_t *payload_len) {
  if (n->failed) return HSP_CRYPTO_EHANDSHAKE;
  if (n->complete || hsp_noise_is_my_turn(n)) return HSP_CRYPTO_ESTATE;
  if (!msg && msg_len) return HSP_CRYPTO_EINVAL;

  const uint8_t *tok = PATTERNS[n->pattern].tokens[n->step];
  size_t off = 0, len;
  int rc = 0;
  for (int i = 0; i < MAX_TOKENS && tok[i] != T_END && rc == 0; i++) {
    switch (tok[i]) {
    case T_E:
      if (msg_len - off < 32) {
        rc = HSP_CRYPTO_EHANDSHAKE;
        break;
      }
      memcpy(n->re, msg + off, 32);
      n->has_re = true;
      mix_hash(n, n->re, 32);
      off += 32;
      break;
    case T_S: {
      size_t klen = 32 + (n->has_key ? HSP_NOISE_MACLEN : 0);
      if (msg_len - off < klen) {
        rc = HSP_CRYPTO_EHANDSHAKE;
        break;
      }
      rc = decrypt_and_hash(n, msg + off, klen, n->rs, &len);
      if (rc == 0) {
        n->has_rs = true;
        rc = check_remote_static(n);
      }
      off += klen;
      break;
    }
    default:
      rc = mix_token(n, tok[i]);
    }
  }
  if (rc == 0) {
    size_t clen = msg_len - off;
    size_t plen = n->has_key ? (clen >= HSP_NOISE_MACLEN ? clen - HSP_NOISE_MACLEN : 0) : clen;
    if (n->has_key && clen < HSP_NOISE_MACLEN) rc = HSP_CRYPTO_EHANDSHAKE;
    else if (plen > payload_cap || (plen && !payload)) rc = HSP_CRYPTO_EBUFSIZE;
    else rc = decrypt_and_hash(n, msg + off, clen, payload, &len);
  }
  if (rc != 0) return fail(n, rc);
  if (payload_len) *payload_len = len;
  if (++n->step == PATTERNS[n->pattern].messages) split(n);
  return HSP_CRYPTO_OK;
}

const uint8_t *hsp_noise_remote_static(const hsp_noise_t *n) {
  if (n->complete) return n->result.remote_public_key;
  return n->has_rs && !n->failed ? n->rs : NULL;
}

int hsp_noise_get_result(const hsp_noise_t *n, hsp_noise_result_t *out) {
  if (!n->complete) return HSP_CRYPTO_ESTATE;
  *out = n->result;
  return HSP_CRYPTO_OK;
}

void hsp_noise_holepunch_secret(uint8_t out[32], const uint8_t hash[HSP_NOISE_HASHLEN]) {
  hsp_crypto_hash_keyed(out, HSP_NS_PEER_HOLEPUNCH, 32, hash, HSP_NOISE_HASHLEN);
}

void hsp_crypto_stream_id(uint8_t out[32], const uint8_t hash[HSP_NOISE_HASHLEN], bool initiator) {
  hsp_crypto_hash_keyed(out, initiator ? HSP_NS_SS_INITIATOR : HSP_NS_SS_RESPONDER, 32, hash,
                        HSP_NOISE_HASHLEN);
}
