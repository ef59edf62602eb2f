#include "replica.h"

#include <stdlib.h>
#include <string.h>

struct hsp_reg_replica {
  hsp_store_t *store;
  hsp_reg_index_t *index;
  hsp_reg_entry_t *scratch; /* decoded entries of the batch being applied */
  size_t scratch_cap;
  hsp_reg_replica_listener_fn listener;
  void *listener_ud;
};

void hsp_reg_replica_set_listener(hsp_reg_replica_t *r, hsp_reg_replica_listener_fn fn, void *ud) {
  r->listener = fn;
  r->listener_ud = ud;
}

static int no_more(void *ud, hsp_reg_instance_t *out) {
  (void)ud, (void)out;
  return 0;
}

static int load_index(hsp_reg_replica_t *r);

int hsp_reg_replica_reset(hsp_reg_replica_t *r) {
  static const uint8_t zero[HSP_REG_HASH_BYTES];
  int err = hsp_store_install_snapshot(r->store, 0, zero, no_more, NULL);
  if (!err) err = load_index(r);
  if (!err && r->listener) r->listener(r->listener_ud, NULL);
  return err;
}

static int load_index(hsp_reg_replica_t *r);

int hsp_reg_replica_open(hsp_reg_replica_t **out, const char *path,
                         const uint8_t pub[HSP_REG_KEY_BYTES]) {
  *out = NULL;
  hsp_reg_replica_t *r = calloc(1, sizeof *r);
  if (!r) return HSP_REG_ENOMEM;
  int err = hsp_store_open_follower(&r->store, path, pub);
  if (!err) err = load_index(r);
  if (err) {
    hsp_reg_replica_close(r);
    return err;
  }
  *out = r;
  return HSP_REG_OK;
}

void hsp_reg_replica_close(hsp_reg_replica_t *r) {
  if (!r) return;
  hsp_store_close(r->store);
  hsp_reg_index_free(r->index);
  free(r->scratch);
  free(r);
}

uint64_t hsp_reg_replica_seq(const hsp_reg_replica_t *r) {
  uint64_t seq;
  hsp_store_head(r->store, &seq, NULL);
  return seq;
}

size_t hsp_reg_replica_count(const hsp_reg_replica_t *r) { return hsp_reg_index_count(r->index); }

long hsp_reg_replica_watch_request(hsp_reg_replica_t *r, uint64_t id, uint8_t **out) {
  hsp_reg_msg_t m;
  memset(&m, 0, sizeof m);
  m.id = id;
  m.type = HSP_REG_MSG_WATCH;
  m.seq = hsp_reg_replica_seq(r);
  return hsp_reg_msg_encode_alloc(&m, out);
}

long hsp_reg_replica_snapshot_request(hsp_reg_replica_t *r, uint64_t id, uint8_t **out) {
  (void)r;
  hsp_reg_msg_t m;
  memset(&m, 0, sizeof m);
  m.id = id;
  m.type = HSP_REG_MSG_SNAPSHOT;
  return hsp_reg_msg_encode_alloc(&m, out);
}

static int snap_next(void *ud, hsp_reg_instance_t *out) {
  return hsp_reg_snapshot_next(ud, out);
}

static int load_index(hsp_reg_replica_t *r) {
  hsp_reg_index_t *ix = hsp_reg_index_new();
  if (!ix) return HSP_REG_ENOMEM;
  hsp_reg_instance_t *all = NULL;
  size_t n = 0;
  int err = hsp_store_list(r->store, &all, &n);
  for (size_t i = 0; !err && i < n; i++) err = hsp_reg_index_put(ix, &all[i]);
  free(all);
  if (err) {
    hsp_reg_index_free(ix);
    return err;
  }
  hsp_reg_index_free(r->index);
  r->index = ix;
  return HSP_REG_OK;
}

static int install_snapshot(hsp_reg_replica_t *r, const hsp_reg_msg_t *m) {
  if (!hsp_reg_snapshot_verify(m, hsp_store_public_key(r->store))) return HSP_REG_ESIG;
  /* never go back in time: an old (replayed) snapshot would undo changes we hold */
  if (m->seq < hsp_reg_replica_seq(r)) return HSP_REG_EREPLAY;
  hsp_reg_snapshot_iter_t it;
  hsp_reg_snapshot_iter_init(&it, m);
  int err = hsp_store_install_snapshot(r->store, m->seq, m->hash, snap_next, &it);
  if (!err) err = load_index(r);
  if (!err && r->listener) r->listener(r->listener_ud, NULL);
  return err ? err : (int)m->nsnapshot;
}

int hsp_reg_replica_apply(hsp_reg_replica_t *r, const hsp_store_record_t *recs, size_t n) {
  if (n == 0) return 0;
  if (n > r->scratch_cap) {
    void *p = realloc(r->scratch, n * sizeof *r->scratch);
    if (!p) return HSP_REG_ENOMEM;
    r->scratch = p;
    r->scratch_cap = n;
  }
  int err = hsp_store_follow(r->store, recs, n, r->scratch);
  if (err) return err;
  /* The store accepted the batch, so the index, which mirrors the store's live table,
   * must accept it too; a failure here means memory ran out, and the index is rebuilt
   * from the store on the next open. */
  for (size_t i = 0; i < n; i++) {
    err = hsp_reg_index_apply(r->index, &r->scratch[i]);
    if (err) return err;
    if (r->listener) r->listener(r->listener_ud, &r->scratch[i]);
  }
  return (int)n;
}

int hsp_reg_replica_receive(hsp_reg_replica_t *r, const uint8_t *buf, size_t len) {
  hsp_reg_msg_t *m = malloc(sizeof *m);
  if (!m) return HSP_REG_ENOMEM;
  int err = hsp_reg_msg_decode(m, buf, len);
  if (!err) {
    if (m->type == HSP_REG_MSG_ENTRIES && m->nrecords) {
      /* entries we already hold (a re-sent backlog) are skipped, not treated as forks */
      size_t skip = 0;
      uint64_t head = hsp_reg_replica_seq(r);
      while (skip < m->nrecords && m->records[skip].seq <= head) skip++;
      err = hsp_reg_replica_apply(r, m->records + skip, m->nrecords - skip);
    } else if (m->type == HSP_REG_MSG_SNAPSHOT_DATA) {
      err = install_snapshot(r, m);
    } else if (m->type == HSP_REG_MSG_ERROR) {
      err = m->code ? m->code : HSP_REG_EINVAL;
    }
  }
  hsp_reg_msg_free(m);
  free(m);
  return err;
}

long hsp_reg_replica_query(const hsp_reg_replica_t *r, const char *name, const char *range,
                           hsp_reg_instance_t *out, size_t cap) {
  hsp_semver_range_t rg;
  if (hsp_semver_range_parse(&rg, range, strlen(range))) return HSP_REG_ERANGE;
  long n = hsp_reg_index_query(r->index, name, &rg, out, cap);
  hsp_semver_range_free(&rg);
  return n;
}

bool hsp_reg_replica_get(const hsp_reg_replica_t *r, const uint8_t key[HSP_REG_KEY_BYTES],
                         hsp_reg_instance_t *out) {
  return hsp_reg_index_get(r->index, key, out);
}

void hsp_reg_replica_each(const hsp_reg_replica_t *r,
                          void (*cb)(void *ud, const hsp_reg_instance_t *inst), void *ud) {
  hsp_reg_index_each(r->index, cb, ud);
}
