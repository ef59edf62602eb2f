/*
 * What a proxy keeps of the registry: a follower store (SQLite) for durability and an
 * in-memory index for lookups, fed with log entries received from the registry (WATCH or
 * SYNC answers). Every batch is checked against the registry's public key and the hash
 * chain from the replica's own head before anything is applied, so a man in the middle or
 * a confused registry can neither inject, drop, reorder nor edit entries. Sans-I/O: bytes
 * in, bytes out.
 *
 * The replica does not expire leases by itself: the registry logs expiries. While the
 * registry is unreachable the replica keeps answering with what it last knew, which is
 * what lets a proxy keep working through a registry outage.
 */
#ifndef HSP_REGISTRY_REPLICA_H
#define HSP_REGISTRY_REPLICA_H

#include "index.h"
#include "protocol.h"
#include "store.h"

typedef struct hsp_reg_replica hsp_reg_replica_t;

/* Opens (or creates) the replica at `path` (":memory:" for none) for registry `pub`,
 * loading the persisted instances into memory. */
int hsp_reg_replica_open(hsp_reg_replica_t **out, const char *path,
                         const uint8_t pub[HSP_REG_KEY_BYTES]);
void hsp_reg_replica_close(hsp_reg_replica_t *r);

uint64_t hsp_reg_replica_seq(const hsp_reg_replica_t *r);
size_t hsp_reg_replica_count(const hsp_reg_replica_t *r);

/* The WATCH request that resumes from the replica's head (malloc'd into *out). */
long hsp_reg_replica_watch_request(hsp_reg_replica_t *r, uint64_t id, uint8_t **out);

/* The SNAPSHOT request (malloc'd into *out): a fresh replica far behind can take the
 * live set at once instead of the whole log, then WATCH from the snapshot's position. */
long hsp_reg_replica_snapshot_request(hsp_reg_replica_t *r, uint64_t id, uint8_t **out);

/* Applies records (verified, all or nothing). Returns how many, or an error. */
int hsp_reg_replica_apply(hsp_reg_replica_t *r, const hsp_store_record_t *recs, size_t n);

/* Handles one message from the registry: ENTRIES are applied; a SNAPSHOT_DATA whose
 * signature verifies replaces the replica's content (returns its instance count); an
 * ERROR returns its code;
 * other types are ignored (return 0). Returns the number of entries applied or an error. */
int hsp_reg_replica_receive(hsp_reg_replica_t *r, const uint8_t *msg, size_t len);

/* Called after each applied entry (with the entry) and after a snapshot install (with
 * NULL: everything may have changed), so a proxy drops a removed instance at once. */
typedef void (*hsp_reg_replica_listener_fn)(void *ud, const hsp_reg_entry_t *e);
void hsp_reg_replica_set_listener(hsp_reg_replica_t *r, hsp_reg_replica_listener_fn fn, void *ud);

/* Forgets everything (back to sequence 0), e.g. after the registry answered ECHAIN because
 * its log no longer extends ours (restored from an older backup): the replica then
 * re-syncs or takes a snapshot. Anti-rollback is the caller's decision here, not the
 * replica's: only call it on the registry's word, over the authenticated connection. */
int hsp_reg_replica_reset(hsp_reg_replica_t *r);

/* Lookups from memory, as hsp_reg_index_query. */
long hsp_reg_replica_query(const hsp_reg_replica_t *r, const char *name, const char *range,
                           hsp_reg_instance_t *out, size_t cap);
/* Every instance held (unordered), e.g. for `ls` while the registry is unreachable. */
void hsp_reg_replica_each(const hsp_reg_replica_t *r,
                          void (*cb)(void *ud, const hsp_reg_instance_t *inst), void *ud);
bool hsp_reg_replica_get(const hsp_reg_replica_t *r, const uint8_t key[HSP_REG_KEY_BYTES],
                         hsp_reg_instance_t *out);

#endif
