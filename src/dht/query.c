/*
 * Iterative Kademlia lookup (dht-rpc 6.27 lib/query.js, docs/protocol/dht-rpc.md §6.3):
 * LIFO candidate stack, up to k closest successful replies from nodes with verified ids,
 * `concurrency` requests in flight plus one per slow (timed-out-once) request, down hints
 * for nodes that time out, optional commit round to the closest replies.
 *
 * A query starts at the node's next advance()/recv() call, never inside the call that
 * created it, so callbacks cannot run before the caller has its handle.
 */
#include <stdlib.h>
#include <string.h>

#include "node_internal.h"

enum { SEEN_REFS = 0, SEEN_DONE = 1, SEEN_DOWN = 2 };

typedef struct seen_entry {
  hsp_ipv4_addr_t addr;
  int state;
  hsp_ipv4_addr_t *refs; /* nodes that listed this one as closer */
  size_t nrefs, cap;
} seen_entry_t;

typedef struct candidate {
  hsp_ipv4_addr_t addr;
  uint8_t id[HSP_DHT_ID_SIZE];
} candidate_t;

struct hsp_dht_query {
  long handle;
  bool started, committing, ended;
  uint8_t target[HSP_DHT_ID_SIZE];
  bool internal;
  uint64_t command;
  uint8_t *value;
  size_t value_len;
  bool has_value;
  size_t k, concurrency, bg_concurrency;
  bool background;
  int retries;
  bool commit;
  long (*commit_value)(void *ctx, const hsp_dht_closest_reply_t *reply, uint8_t *buf, size_t cap);
  uint64_t commit_command;
  void *commit_ctx;

  seen_entry_t *seen;
  size_t nseen, seen_cap;
  candidate_t *pending;
  size_t npending, pending_cap;
  hsp_dht_closest_reply_t *closest; /* k entries */
  size_t nclosest;

  size_t inflight, slow, successes, errors;
  bool slowdown, from_table;
  size_t commit_pending, commit_ok;
  int commit_err;

  hsp_dht_query_cbs_t cbs;
  query_hook_fn on_data;
  query_end_fn on_end;
};

long hsp_dht__query_handle(const struct hsp_dht_query *q) { return q->handle; }
bool hsp_dht__query_started(const struct hsp_dht_query *q) { return q->started; }
void hsp_dht__query_set_concurrency(struct hsp_dht_query *q, size_t c) { q->concurrency = c; }

static seen_entry_t *seen_get(struct hsp_dht_query *q, const hsp_ipv4_addr_t *a) {
  for (size_t i = 0; i < q->nseen; i++)
    if (hsp_dht_addr_equal(&q->seen[i].addr, a)) return &q->seen[i];
  return NULL;
}

static bool is_closer(const struct hsp_dht_query *q, const uint8_t id[HSP_DHT_ID_SIZE]) {
  return q->nclosest < q->k ||
         hsp_dht_id_distance_cmp(q->target, id, q->closest[q->nclosest - 1].id) < 0;
}

static void push_ref(seen_entry_t *e, const hsp_ipv4_addr_t *ref) {
  if (hsp_dht__grow((void **)&e->refs, &e->cap, e->nrefs + 1, sizeof(*e->refs))) e->refs[e->nrefs++] = *ref;
}

/* query.js _addPending: returns whether the node is closer than the current k-th reply,
 * which tells the caller to keep reading a closer-node list. */
static bool add_pending(hsp_dht_node_t *n, struct hsp_dht_query *q, const candidate_t *c,
                        const hsp_ipv4_addr_t *ref) {
  bool closer = is_closer(q, c->id);
  seen_entry_t *e = seen_get(q, &c->addr);
  if (e) {
    if (e->state == SEEN_DONE) return closer;
    if (e->state == SEEN_DOWN) {
      if (ref) hsp_dht__down_hint(n, ref, &c->addr);
      return closer;
    }
    if (ref) push_ref(e, ref);
    return closer;
  }
  if (!closer) return false;
  if (!hsp_dht__grow((void **)&q->seen, &q->seen_cap, q->nseen + 1, sizeof(*q->seen))) return false;
  if (!hsp_dht__grow((void **)&q->pending, &q->pending_cap, q->npending + 1, sizeof(*q->pending)))
    return false;
  e = &q->seen[q->nseen++];
  *e = (seen_entry_t){.addr = c->addr, .state = SEEN_REFS};
  if (ref) push_ref(e, ref);
  q->pending[q->npending++] = *c;
  return true;
}

static void add_from_table(hsp_dht_node_t *n, struct hsp_dht_query *q) {
  if (q->npending >= q->k) return;
  q->from_table = true;
  hsp_dht_table_node_t *near[64];
  size_t want = q->k - q->npending;
  if (want > 64) want = 64;
  size_t cnt = hsp_dht_table_closest(&n->table, q->target, near, want);
  candidate_t cands[64];
  for (size_t i = 0; i < cnt; i++) { /* copy first: add_pending never touches the table */
    cands[i].addr = near[i]->addr;
    memcpy(cands[i].id, near[i]->id, HSP_DHT_ID_SIZE);
  }
  for (size_t i = 0; i < cnt; i++) add_pending(n, q, &cands[i], NULL);
}

static void visit(hsp_dht_node_t *n, struct hsp_dht_query *q, const candidate_t *c);
static void read_more(hsp_dht_node_t *n, struct hsp_dht_query *q);

static void finish(hsp_dht_node_t *n, struct hsp_dht_query *q, int err) {
  hsp_dht__query_destroy(n, q, err);
}

static void commit_done(hsp_dht_node_t *n, hsp_dht_req_t *r, const hsp_dht_reply_t *reply, int err) {
  struct hsp_dht_query *q = r->query;
  if (!err && reply) q->commit_ok++;
  else q->commit_err = err ? err : HSP_DHT_EMALFORMED;
  if (--q->commit_pending == 0) finish(n, q, q->commit_ok ? 0 : q->commit_err);
}

/* query.js _flush and _endAfterCommit (autoCommit). */
static void flush(hsp_dht_node_t *n, struct hsp_dht_query *q) {
  if (q->committing) return;
  q->committing = true;
  if (!q->commit) {
    finish(n, q, 0);
    return;
  }
  if (q->nclosest == 0) {
    finish(n, q, HSP_DHT_ETOOFEW);
    return;
  }
  q->commit_pending = q->nclosest;
  hsp_dht_req_t *reqs[HSP_DHT_K * 4];
  size_t nreqs = 0;
  for (size_t i = 0; i < q->nclosest; i++) {
    hsp_dht_closest_reply_t *c = &q->closest[i];
    hsp_dht_req_t *r = NULL;
    int why = HSP_DHT_ENOTOKEN;
    if (c->has_token && q->commit_value) {
      uint8_t buf[2048];
      long len = q->commit_value(q->commit_ctx, c, buf, sizeof(buf));
      why = len < 0 ? (int)len : HSP_DHT_ENOMEM;
      if (len >= 0)
        r = hsp_dht__request_new(n, &c->from, c->id, false, q->commit_command, c->token,
                                 q->target, buf, (size_t)len, true);
    } else if (c->has_token) {
      why = HSP_DHT_ENOMEM;
      r = hsp_dht__request_new(n, &c->from, c->id, q->internal, q->command, c->token, q->target,
                               q->value, q->value_len, q->has_value);
    }
    if (!r) {
      q->commit_err = why;
      q->commit_pending--;
      continue;
    }
    r->query = q;
    r->done = commit_done;
    reqs[nreqs++] = r;
  }
  if (q->commit_pending == 0) {
    finish(n, q, q->commit_err);
    return;
  }
  for (size_t i = 0; i < nreqs; i++) hsp_dht__request_send(n, reqs[i]);
}

static void read_more(hsp_dht_node_t *n, struct hsp_dht_query *q) {
  if (q->ended || q->committing) return;
  size_t concurrency = (q->slowdown ? 3 : q->concurrency) + q->slow;
  while (q->inflight < concurrency && q->npending > 0) {
    candidate_t next = q->pending[--q->npending];
    if (!is_closer(q, next.id)) continue;
    visit(n, q, &next);
    if (q->ended) return;
  }
  /* Reusing known closest nodes: give them a chance before going broad. */
  if (!q->from_table && q->successes == 0 && q->errors == 0) q->slowdown = true;
  if (q->npending > 0) return;
  if (q->inflight == 0 || (q->slow == q->inflight && q->nclosest >= q->k)) {
    if (!q->from_table && q->successes * 4 < q->k) {
      add_from_table(n, q);
      read_more(n, q);
      return;
    }
    flush(n, q);
  }
}

static void dec(struct hsp_dht_query *q, hsp_dht_req_t *r) {
  if (r->cycled) q->slow--;
  r->cycled = false;
  r->cycle = NULL;
  q->inflight--;
}

static void push_closest(struct hsp_dht_query *q, const hsp_dht_reply_t *m) {
  hsp_dht_closest_reply_t c = {.from = m->from, .to = m->to, .has_token = m->token != NULL};
  memcpy(c.id, m->from_id, HSP_DHT_ID_SIZE);
  if (m->token) memcpy(c.token, m->token, 32);
  size_t i = q->nclosest < q->k ? q->nclosest++ : q->k; /* index k = dropped at the end */
  /* Insertion sort from the end; a duplicate id replaces nothing and is dropped. */
  hsp_dht_closest_reply_t *arr = q->closest;
  for (size_t j = 0; j < (i < q->k ? i : q->k); j++)
    if (memcmp(arr[j].id, c.id, HSP_DHT_ID_SIZE) == 0) {
      if (i < q->k) q->nclosest--;
      return;
    }
  if (i == q->k) {
    if (hsp_dht_id_distance_cmp(q->target, c.id, arr[q->k - 1].id) >= 0) return;
    i = q->k - 1;
  }
  while (i > 0 && hsp_dht_id_distance_cmp(q->target, c.id, arr[i - 1].id) < 0) {
    arr[i] = arr[i - 1];
    i--;
  }
  arr[i] = c;
}

static void on_visit(hsp_dht_node_t *n, hsp_dht_req_t *r, const hsp_dht_reply_t *m, int err) {
  struct hsp_dht_query *q = r->query;
  if (err) { /* query.js _onerror */
    seen_entry_t *e = seen_get(q, &r->to);
    if (err == HSP_DHT_ETIMEDOUT && e) {
      hsp_ipv4_addr_t *refs = e->refs;
      size_t nrefs = e->nrefs;
      e->refs = NULL;
      e->nrefs = e->cap = 0;
      e->state = SEEN_DOWN;
      for (size_t i = 0; i < nrefs; i++) hsp_dht__down_hint(n, &refs[i], &r->to);
      free(refs);
    }
    dec(q, r);
    q->errors++;
    read_more(n, q);
    return;
  }

  dec(q, r);
  seen_entry_t *e = seen_get(q, &r->to);
  if (e) {
    free(e->refs);
    e->refs = NULL;
    e->nrefs = e->cap = 0;
    e->state = SEEN_DONE;
  }
  if (q->committing) return;
  if (m->error == 0) q->successes++;
  else q->errors++;
  if (m->error == 0 && m->from_id && is_closer(q, m->from_id)) push_closest(q, m);

  for (size_t i = 0; i < m->closer_count; i++) {
    candidate_t c;
    c.addr = hsp_dht_addr_from_wire(m->closer + 6 * i);
    hsp_dht_id_from_addr(c.id, &c.addr);
    if (memcmp(c.id, n->table.id, HSP_DHT_ID_SIZE) == 0) continue;
    if (!add_pending(n, q, &c, &m->from)) break;
  }
  if (!q->from_table && q->successes + q->errors >= q->concurrency) q->slowdown = false;
  if (m->error != 0) {
    read_more(n, q);
    return;
  }
  if (q->background) /* yield to other traffic (dht-rpc _backgroundQuery) */
    q->concurrency = n->inflight_len < 3 ? n->cfg.concurrency : q->bg_concurrency;
  if (q->on_data) q->on_data(n, q, m);
  if (q->cbs.on_reply) q->cbs.on_reply(q->cbs.ctx, m);
  read_more(n, q);
}

static void on_cycle(hsp_dht_node_t *n, hsp_dht_req_t *r) {
  struct hsp_dht_query *q = r->query;
  r->cycle = NULL;
  r->cycled = true;
  q->slow++;
  read_more(n, q);
}

static void visit(hsp_dht_node_t *n, struct hsp_dht_query *q, const candidate_t *c) {
  q->inflight++;
  hsp_dht_req_t *r = hsp_dht__request_new(n, &c->addr, c->id, q->internal, q->command, NULL,
                                          q->target, q->value, q->value_len, q->has_value);
  if (!r) {
    finish(n, q, HSP_DHT_EDESTROYED);
    return;
  }
  r->query = q;
  r->done = on_visit;
  r->cycle = on_cycle;
  r->retries = q->retries;
  hsp_dht__request_send(n, r);
}

struct hsp_dht_query *hsp_dht__query_new(hsp_dht_node_t *n, const hsp_dht_query_opts_t *o,
                                         const hsp_dht_query_cbs_t *cbs) {
  if (n->destroyed) return NULL;
  if (!hsp_dht__grow((void **)&n->queries, &n->queries_cap, n->queries_len + 1, sizeof(void *))) return NULL;
  struct hsp_dht_query *q = calloc(1, sizeof(*q));
  if (!q) return NULL;
  q->k = n->table.k;
  q->closest = calloc(q->k, sizeof(*q->closest));
  if (!q->closest || (o->has_value && o->value_len && !(q->value = malloc(o->value_len)))) {
    free(q->closest);
    free(q);
    return NULL;
  }
  if (q->value) memcpy(q->value, o->value, o->value_len);
  q->value_len = o->value_len;
  q->has_value = o->has_value;
  q->handle = ++n->next_handle;
  memcpy(q->target, o->target, 32);
  q->internal = o->internal;
  q->command = o->command;
  q->concurrency = o->concurrency ? o->concurrency : n->cfg.concurrency;
  q->retries = o->retries >= 0 ? o->retries
               : (o->internal && o->command == HSP_DHT_CMD_DOWN_HINT) ? 3 : HSP_DHT_QUERY_RETRIES;
  q->commit = o->commit || o->commit_value;
  q->commit_value = o->commit_value;
  q->commit_command = o->commit_command;
  q->commit_ctx = o->commit_ctx;
  if (cbs) q->cbs = *cbs;
  /* Seeds are pushed in reverse because the pending list is popped from the end. */
  for (size_t i = o->node_count; i-- > 0;) {
    candidate_t c = {.addr = o->nodes[i]};
    hsp_dht_id_from_addr(c.id, &c.addr);
    add_pending(n, q, &c, NULL);
  }
  n->queries[n->queries_len++] = q;
  n->queries_to_start = true;
  return q;
}

void hsp_dht__query_set_background(struct hsp_dht_query *q, size_t bg, query_hook_fn on_data,
                                   query_end_fn on_end) {
  q->background = true;
  q->bg_concurrency = bg;
  q->on_data = on_data;
  q->on_end = on_end;
}

void hsp_dht__query_start(hsp_dht_node_t *n, struct hsp_dht_query *q) {
  q->started = true;
  /* query.js _open: table first, then the bootstrap nodes if still short of k. */
  add_from_table(n, q);
  if (q->npending < q->k) {
    for (size_t i = 0; i < n->cfg.bootstrap_count; i++) {
      candidate_t c;
      hsp_dht__resolve_bootstrap(n, i, &c.addr, c.id);
      add_pending(n, q, &c, NULL);
    }
  }
  read_more(n, q);
}

void hsp_dht__query_destroy(hsp_dht_node_t *n, struct hsp_dht_query *q, int err) {
  if (q->ended) return;
  q->ended = true;
  /* Like dht-rpc's per-query session: outstanding requests die with the query. */
  for (size_t i = n->inflight_len; i-- > 0;) {
    if (i >= n->inflight_len) continue;
    hsp_dht_req_t *r = n->inflight[i];
    if (r->query == q) hsp_dht__request_cancel(n, r, false);
  }
  for (size_t i = 0; i < n->queries_len; i++) {
    if (n->queries[i] != q) continue;
    memmove(&n->queries[i], &n->queries[i + 1], (n->queries_len - i - 1) * sizeof(void *));
    n->queries_len--;
    break;
  }
  hsp_dht_query_result_t res = {.err = err, .successes = q->successes, .errors = q->errors,
                                .closest = q->closest, .closest_count = q->nclosest,
                                .commits_ok = q->commit_ok};
  if (q->on_end) q->on_end(n, q, err);
  if (q->cbs.on_done) q->cbs.on_done(q->cbs.ctx, &res);
  /* Callers up the stack may still hold q: free it when the node returns to its caller. */
  if (hsp_dht__grow((void **)&n->dead, &n->dead_cap, n->dead_len + 1, sizeof(void *))) n->dead[n->dead_len++] = q;
  else q->ended = true; /* leaked rather than risk a use after free; only on OOM */
}

void hsp_dht__query_reap(hsp_dht_node_t *n) {
  for (size_t j = 0; j < n->dead_len; j++) {
    struct hsp_dht_query *q = n->dead[j];
    for (size_t i = 0; i < q->nseen; i++) free(q->seen[i].refs);
    free(q->seen);
    free(q->pending);
    free(q->closest);
    free(q->value);
    free(q);
  }
  n->dead_len = 0;
}
