/*
 * In-memory index of live instances, built by applying log entries: what the replica
 * answers queries from, and what hsp_store_verify replays the log into. No I/O.
 * Lookups hash the instance key and the role name (open addressing), so a query costs
 * its matching instances, not the registry size.
 */
#ifndef HSP_REGISTRY_INDEX_H
#define HSP_REGISTRY_INDEX_H

#include "registry.h"

typedef struct hsp_reg_index hsp_reg_index_t;

hsp_reg_index_t *hsp_reg_index_new(void);
void hsp_reg_index_free(hsp_reg_index_t *ix);
/* Applies one decoded entry (register adds or replaces, renew updates, deregister and
 * expire remove). Renew/remove of an unknown key is HSP_REG_ENOTFOUND. */
int hsp_reg_index_apply(hsp_reg_index_t *ix, const hsp_reg_entry_t *e);
/* Adds an instance as is (loading a persisted replica). */
int hsp_reg_index_put(hsp_reg_index_t *ix, const hsp_reg_instance_t *inst);
size_t hsp_reg_index_count(const hsp_reg_index_t *ix);
/* Copies the instance with this key into *out; false if there is none. */
bool hsp_reg_index_get(const hsp_reg_index_t *ix, const uint8_t key[HSP_REG_KEY_BYTES],
                       hsp_reg_instance_t *out);
/* Copies the matching instances in query order (highest version, then registration order)
 * into out[0..cap); returns the total number of matches (may exceed cap), or a negative
 * error. */
long hsp_reg_index_query(const hsp_reg_index_t *ix, const char *name,
                         const hsp_semver_range_t *range, hsp_reg_instance_t *out, size_t cap);
/* Calls cb for every instance (unordered). */
void hsp_reg_index_each(const hsp_reg_index_t *ix,
                        void (*cb)(void *ud, const hsp_reg_instance_t *inst), void *ud);

#endif
