/*
 * Registry layer, shared definitions: limits, error codes, the instance record and the
 * change-log entry with its canonical encoding, hash chain and signature.
 *
 * Log entry (compact-encoding, the bytes that are hashed, stored and replicated):
 *   uint8   format (1)
 *   uint    seq            1, 2, 3, ... without gaps
 *   uint8   type           1 register, 2 renew, 3 deregister, 4 expire
 *   uint    time_ms        registry clock when applied
 *   fixed32 instance key
 *   register:   string name, string version, string tags, uint ttl_ms, uint expires_ms
 *   renew:      uint ttl_ms, uint expires_ms
 *   deregister: uint8 by (0 the instance itself, 1 the registry owner)
 *   expire:     nothing
 * hash_n = BLAKE2b-256(hash_{n-1} || body_n), hash_0 = 32 zero bytes;
 * sig_n  = Ed25519(registry key, "hsp-registry-log-v1" || hash_n).
 * A reader holding hash_{n-1} verifies body_n + sig_n alone: a gap, reordering or edit
 * anywhere changes every later hash and so invalidates the signature.
 */
#ifndef HSP_REGISTRY_REGISTRY_H
#define HSP_REGISTRY_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "semver.h"

#define HSP_REG_KEY_BYTES 32
#define HSP_REG_SECRET_BYTES 64
#define HSP_REG_SIG_BYTES 64
#define HSP_REG_HASH_BYTES 32
#define HSP_REG_NAME_MAX 128
#define HSP_REG_VERSION_MAX HSP_SEMVER_MAX_LEN
#define HSP_REG_TAGS_MAX 1024
#define HSP_REG_TTL_MIN_MS 1000u
#define HSP_REG_TTL_MAX_MS 3600000u
#define HSP_REG_TTL_DEFAULT_MS 15000u
/* A body is at most ~1.5 KiB; this bound is what decoders accept. */
#define HSP_REG_ENTRY_MAX 2048

enum hsp_reg_error {
  HSP_REG_OK = 0,
  HSP_REG_EINVAL = -1,     /* malformed or out-of-range field */
  HSP_REG_ENOMEM = -2,
  HSP_REG_EDB = -3,        /* SQLite failure */
  HSP_REG_EKEY = -4,       /* store opened with another registry key */
  HSP_REG_ESIG = -5,       /* bad signature */
  HSP_REG_ECHAIN = -6,     /* hash chain or sequence broken */
  HSP_REG_EREPLAY = -7,    /* request timestamp not newer than the last one, or stale */
  HSP_REG_ENOTFOUND = -8,  /* no such instance */
  HSP_REG_EDENIED = -9,    /* signer may not do this */
  HSP_REG_EVERSION = -10,  /* unsupported message/entry format version */
  HSP_REG_ERANGE = -11,    /* invalid semver range */
};
const char *hsp_reg_strerror(int err);

enum hsp_reg_entry_type {
  HSP_REG_REGISTER = 1,
  HSP_REG_RENEW = 2,
  HSP_REG_DEREGISTER = 3,
  HSP_REG_EXPIRE = 4,
};

typedef struct hsp_reg_instance {
  uint8_t key[HSP_REG_KEY_BYTES];
  char name[HSP_REG_NAME_MAX + 1];
  char version[HSP_REG_VERSION_MAX + 1];
  char tags[HSP_REG_TAGS_MAX + 1]; /* opaque text supplied by the service (JSON by habit) */
  uint32_t ttl_ms;
  uint64_t registered_ms, renewed_ms, expires_ms;
  uint64_t reg_seq; /* log sequence of its registration: orders ties */
} hsp_reg_instance_t;

typedef struct hsp_reg_entry {
  uint64_t seq;
  uint8_t type;
  uint64_t time_ms;
  uint8_t by; /* deregister: 0 self, 1 owner */
  /* key always; name/version/tags for register; ttl_ms/expires_ms for register and renew */
  hsp_reg_instance_t inst;
} hsp_reg_entry_t;

/* Validation shared by the protocol, the store and the replica. */
bool hsp_reg_name_valid(const char *name, size_t len);
bool hsp_reg_version_valid(const char *version, size_t len);
bool hsp_reg_tags_valid(const char *tags, size_t len);

/* Splits a role "name@spec" (`couchdb@3.2.2`, `couchdb@3.x`, `@scope/db@^1`) at the last
 * '@' that does not start the name. Without a spec, spec is "" (the caller decides: a
 * service needs an exact version, a proxy takes "" as any). Checks the name only. */
int hsp_reg_role_split(const char *role, char name[HSP_REG_NAME_MAX + 1],
                       char spec[HSP_SEMVER_RANGE_MAX_LEN + 1]);

/* Encodes the canonical body; returns its length or a negative error. */
int hsp_reg_entry_encode(const hsp_reg_entry_t *e, uint8_t *out, size_t cap);
/* Decodes and validates a body; rejects trailing bytes. */
int hsp_reg_entry_decode(hsp_reg_entry_t *e, const uint8_t *body, size_t len);

void hsp_reg_entry_hash(uint8_t out[HSP_REG_HASH_BYTES], const uint8_t prev[HSP_REG_HASH_BYTES],
                        const uint8_t *body, size_t len);
void hsp_reg_entry_sign(uint8_t sig[HSP_REG_SIG_BYTES], const uint8_t hash[HSP_REG_HASH_BYTES],
                        const uint8_t secret[HSP_REG_SECRET_BYTES]);
bool hsp_reg_entry_verify(const uint8_t sig[HSP_REG_SIG_BYTES],
                          const uint8_t hash[HSP_REG_HASH_BYTES],
                          const uint8_t pub[HSP_REG_KEY_BYTES]);

/* An instance is ordered for a query by version (highest first), then registration order. */
int hsp_reg_instance_order(const hsp_reg_instance_t *a, const hsp_reg_instance_t *b);

#endif
