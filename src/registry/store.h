/*
 * The registry's durable state, and the only module that speaks SQL. The SQL is kept to
 * the common subset (no INSERT OR REPLACE, no RETURNING, no IMMEDIATE) so the same
 * statements can later run on dqlite.
 *
 * Every change is one transaction that appends a signed, hash-chained entry to `log` and
 * applies it to `instances`; functions return only after COMMIT, and the database runs in
 * WAL mode with synchronous=FULL, which fsyncs the WAL at each commit. (NORMAL would
 * survive a killed process but not a power cut: a commit would be acknowledged before it
 * reached the disk. An acknowledged registration must survive both.)
 *
 * Time is always passed in (milliseconds), so leases are tested with a simulated clock.
 */
#ifndef HSP_REGISTRY_STORE_H
#define HSP_REGISTRY_STORE_H

#include "registry.h"

typedef struct hsp_store hsp_store_t;

/* A request's proof of freshness: the key that signed it and its timestamp. The store
 * keeps the last timestamp accepted per signer and refuses anything not newer, in the
 * same transaction as the change, so a replayed request can never be applied twice. */
typedef struct hsp_store_stamp {
  const uint8_t *signer; /* 32 bytes */
  uint64_t ts_ms;
} hsp_store_stamp_t;

/* Opens or creates the database at `path` (":memory:" for tests) for the registry with
 * key pair `secret` (libsodium Ed25519 secret key, public key in its second half). */
int hsp_store_open(hsp_store_t **out, const char *path, const uint8_t secret[HSP_REG_SECRET_BYTES]);
/* A follower store (what a proxy keeps): it holds only the registry's public key and
 * changes only through hsp_store_follow, with verified entries. It runs synchronous=NORMAL:
 * losing its last commits on a power cut costs a re-sync, never correctness. */
int hsp_store_open_follower(hsp_store_t **out, const char *path,
                            const uint8_t pub[HSP_REG_KEY_BYTES]);
void hsp_store_close(hsp_store_t *st);

/* Group commit. Between batch_begin and batch_commit every change below is applied
 * (each on its own savepoint: a refused change does not disturb the others) but nothing
 * is durable, and nothing may be acknowledged, until batch_commit returns 0; if it fails
 * the whole batch is rolled back. One fsync for many registrations. */
int hsp_store_batch_begin(hsp_store_t *st);
int hsp_store_batch_commit(hsp_store_t *st);

/* Changes. `entry` (optional) receives the logged entry. Outside a batch each change is
 * durable when the function returns 0. */
int hsp_store_register(hsp_store_t *st, const hsp_reg_instance_t *inst,
                       const hsp_store_stamp_t *stamp, uint64_t now_ms, hsp_reg_entry_t *entry);
int hsp_store_renew(hsp_store_t *st, const uint8_t key[HSP_REG_KEY_BYTES], uint32_t ttl_ms,
                    const hsp_store_stamp_t *stamp, uint64_t now_ms, hsp_reg_entry_t *entry);
int hsp_store_deregister(hsp_store_t *st, const uint8_t key[HSP_REG_KEY_BYTES], uint8_t by,
                         const hsp_store_stamp_t *stamp, uint64_t now_ms, hsp_reg_entry_t *entry);
/* Expires every instance whose lease ended at or before now_ms, one logged entry each, all
 * in one transaction; calls cb for each (may be NULL). Returns the count or an error. */
int hsp_store_expire(hsp_store_t *st, uint64_t now_ms,
                     void (*cb)(void *ud, const hsp_reg_entry_t *e), void *ud);
/* Earliest lease end among live instances, or UINT64_MAX: when to call expire next. */
uint64_t hsp_store_next_expiry(hsp_store_t *st);

/* Reads. Arrays are malloc'd; the caller frees them with free(). */
int hsp_store_get(hsp_store_t *st, const uint8_t key[HSP_REG_KEY_BYTES], hsp_reg_instance_t *out);
/* Instances of `name` whose version satisfies `range`, highest version first, ties in
 * registration order. */
int hsp_store_query(hsp_store_t *st, const char *name, const char *range,
                    hsp_reg_instance_t **out, size_t *n);
/* All live instances, by name then registration order. */
int hsp_store_list(hsp_store_t *st, hsp_reg_instance_t **out, size_t *n);

/* One stored log record. */
typedef struct hsp_store_record {
  uint64_t seq;
  const uint8_t *body;
  size_t body_len;
  const uint8_t *hash; /* 32 */
  const uint8_t *sig;  /* 64 */
} hsp_store_record_t;
/* Calls cb for each record with seq > after, in order, at most `limit` (0 = all); cb
 * returning non-zero stops early. */
int hsp_store_entries_after(hsp_store_t *st, uint64_t after, size_t limit,
                            int (*cb)(void *ud, const hsp_store_record_t *r), void *ud);
/* Follower: verifies (sequence, hash chain, and the signature of the last record, which
 * through the chain authenticates all of them) and applies records in one transaction.
 * All or nothing: on any error nothing is applied. The other signatures are stored as
 * received (hsp_store_verify checks every one). `entries` (optional, n elements)
 * receives the decoded entries. */
int hsp_store_follow(hsp_store_t *st, const hsp_store_record_t *recs, size_t n,
                     hsp_reg_entry_t *entries);
/* Follower: replaces everything with a snapshot taken at log position (seq, hash) -- the
 * caller has verified its signature. `next` yields the instances (1 = one more, 0 = end,
 * negative = error). Later entries chain from `hash`. All or nothing. */
int hsp_store_install_snapshot(hsp_store_t *st, uint64_t seq, const uint8_t hash[HSP_REG_HASH_BYTES],
                               int (*next)(void *ud, hsp_reg_instance_t *out), void *ud);
void hsp_store_head(hsp_store_t *st, uint64_t *seq, uint8_t hash[HSP_REG_HASH_BYTES]);
const uint8_t *hsp_store_public_key(hsp_store_t *st);

/* Log compaction. The log would otherwise grow forever (a renew every TTL/3 per live
 * instance). Compacting up to seq U folds entries base+1..U into the checkpoint table (the
 * live set as of U), deletes them, and makes U the new base; the base keeps entry U's
 * hash and signature, so the retained tail still chains from a signed position. Entries
 * at or below the base can no longer be served: hsp_store_entries_after(after < base)
 * fails with HSP_REG_ECHAIN, and a replica that far behind takes a SNAPSHOT and WATCHes
 * from there (docs/protocol.md, "Log compaction").
 *
 * Automatic: after each committed change (or batch), once the log holds more than
 * 2 x `retain` entries, it is compacted down to the newest `retain`, in its own
 * transaction. 0 turns automatic compaction off. Followers compact the same way. */
#define HSP_STORE_DEFAULT_RETAIN 65536u
void hsp_store_set_retention(hsp_store_t *st, uint64_t entries);
/* Compacts up to min(upto, head). Returns how many entries were folded, or an error
 * (nothing changed). Not inside a batch. */
int hsp_store_compact(hsp_store_t *st, uint64_t upto);
/* The log's base: entries_after can serve from here on (0 until compacted or a snapshot
 * was installed). The log holds exactly head - base entries. */
void hsp_store_base(hsp_store_t *st, uint64_t *seq, uint8_t hash[HSP_REG_HASH_BYTES]);

/* Re-reads the whole log: sequence without gaps from the base, every hash and signature
 * (and the base's), and that the live table is exactly what replaying the log over the
 * checkpoint yields. */
int hsp_store_verify(hsp_store_t *st);

#endif
