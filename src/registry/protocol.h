/*
 * Registry protocol messages (docs/protocol.md has the byte layouts and the rules).
 * Every message: uint8 version (1), uint id, uint8 type, fields. Requests that change
 * state carry a timestamp and the registry's public key and are signed by the instance
 * (or, for an owner deregister, by the registry key): Ed25519 over
 * "hsp-registry-req-v1" || the encoding from `type` up to the signature.
 *
 * Decoders validate every field (lengths, names, versions, ranges, counts) and reject
 * trailing bytes; decoded arrays are heap-allocated and released by hsp_reg_msg_free.
 */
#ifndef HSP_REGISTRY_PROTOCOL_H
#define HSP_REGISTRY_PROTOCOL_H

#include "compact.h"
#include "registry.h"
#include "store.h"

#define HSP_REG_PROTOCOL_VERSION 1
#define HSP_REG_MSG_MAX (4u << 20)     /* largest message a decoder accepts */
#define HSP_REG_SNAPSHOT_MAX (64u << 20) /* except a snapshot, which holds every instance */
#define HSP_REG_MSG_ERROR_MAX 256
#define HSP_REG_BATCH_MAX 4096          /* entries in one ENTRIES message */
#define HSP_REG_INSTANCES_MAX 2048      /* instances in one INSTANCES message */

enum hsp_reg_msg_type {
  /* requests */
  HSP_REG_MSG_REGISTER = 1,
  HSP_REG_MSG_RENEW = 2,
  HSP_REG_MSG_DEREGISTER = 3,
  HSP_REG_MSG_QUERY = 4,
  HSP_REG_MSG_LIST = 5,
  HSP_REG_MSG_WATCH = 6,
  HSP_REG_MSG_SYNC = 7,
  HSP_REG_MSG_UNWATCH = 8,
  HSP_REG_MSG_SNAPSHOT = 9,
  /* responses and pushes */
  HSP_REG_MSG_OK = 64,
  HSP_REG_MSG_ERROR = 65,
  HSP_REG_MSG_INSTANCES = 66,
  HSP_REG_MSG_ENTRIES = 67,
  HSP_REG_MSG_SNAPSHOT_DATA = 68,
};

typedef struct hsp_reg_msg {
  uint64_t id;
  uint8_t type;
  /* REGISTER: inst.{key,name,version,tags,ttl_ms}; RENEW: inst.{key,ttl_ms};
   * DEREGISTER: inst.key */
  hsp_reg_instance_t inst;
  uint8_t signer[HSP_REG_KEY_BYTES];   /* DEREGISTER: instance key or registry key */
  uint8_t registry[HSP_REG_KEY_BYTES]; /* signed requests: the registry addressed */
  uint64_t ts_ms;                      /* signed requests: signer's clock */
  uint8_t sig[HSP_REG_SIG_BYTES];
  /* QUERY */
  char name[HSP_REG_NAME_MAX + 1];
  char range[HSP_SEMVER_RANGE_MAX_LEN + 1];
  /* QUERY/SYNC: limit (0 = no limit); WATCH/SYNC: seq = entries after it;
   * OK: seq = log position of the change; ENTRIES: seq = registry head */
  uint64_t seq, limit;
  uint64_t expires_ms; /* OK after register/renew */
  bool more;           /* ENTRIES: more entries follow after these */
  int32_t code;        /* ERROR: a negative hsp_reg_error */
  char message[HSP_REG_MSG_ERROR_MAX + 1];
  /* INSTANCES */
  hsp_reg_instance_t *instances;
  size_t ninstances;
  /* ENTRIES: bodies and signatures point into the decoded input buffer */
  hsp_store_record_t *records;
  size_t nrecords;
  /* SNAPSHOT_DATA: seq + hash = the log head it reflects; the instances stay encoded in
   * the input (validated by decode, read with hsp_reg_snapshot_next) so a 100,000-instance
   * snapshot costs no allocation; sig = registry signature (hsp_reg_snapshot_sign). */
  uint8_t hash[HSP_REG_HASH_BYTES];
  hsp_bytes_t snapshot; /* encoded instances */
  size_t nsnapshot;
  /* encoding a SNAPSHOT_DATA: the instances to send */
  const hsp_reg_instance_t *snap_src;
} hsp_reg_msg_t;

/* Size of the encoding, or 0 if the message cannot be encoded. */
size_t hsp_reg_msg_encoded_size(const hsp_reg_msg_t *m);
/* Encodes into out; returns the length or a negative error. */
long hsp_reg_msg_encode(const hsp_reg_msg_t *m, uint8_t *out, size_t cap);
/* Encodes into a new malloc'd buffer (*out), returns length or negative error. */
long hsp_reg_msg_encode_alloc(const hsp_reg_msg_t *m, uint8_t **out);
int hsp_reg_msg_decode(hsp_reg_msg_t *m, const uint8_t *buf, size_t len);
void hsp_reg_msg_free(hsp_reg_msg_t *m);

/* Signs a REGISTER/RENEW/DEREGISTER with `secret` (fields other than sig must be set). */
int hsp_reg_msg_sign(hsp_reg_msg_t *m, const uint8_t secret[HSP_REG_SECRET_BYTES]);
/* Checks m->sig against `pub`. */
bool hsp_reg_msg_verify(const hsp_reg_msg_t *m, const uint8_t pub[HSP_REG_KEY_BYTES]);

/* Snapshot signature: Ed25519 over "hsp-registry-snap-v1" || BLAKE2b-256(seq, hash,
 * count, instances) in their encoded form. */
void hsp_reg_snapshot_sign(hsp_reg_msg_t *m, const uint8_t secret[HSP_REG_SECRET_BYTES]);
bool hsp_reg_snapshot_verify(const hsp_reg_msg_t *m, const uint8_t pub[HSP_REG_KEY_BYTES]);
/* Iterates a decoded snapshot's instances: returns 1 and fills *out, 0 at the end. */
typedef struct hsp_reg_snapshot_iter {
  hsp_cenc_t s;
  size_t left;
} hsp_reg_snapshot_iter_t;
void hsp_reg_snapshot_iter_init(hsp_reg_snapshot_iter_t *it, const hsp_reg_msg_t *m);
int hsp_reg_snapshot_next(hsp_reg_snapshot_iter_t *it, hsp_reg_instance_t *out);

static inline bool hsp_reg_msg_is_signed(uint8_t type) {
  return type == HSP_REG_MSG_REGISTER || type == HSP_REG_MSG_RENEW ||
         type == HSP_REG_MSG_DEREGISTER;
}

#endif
