/* Gateway upstream over HyperDHT: connections to instances by key, lookups in a replica. */
#include "dataplane.h"
#include "gateway_internal.h"
#include "hyper_conn.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct dht_stream {
  hsp_gw_stream_t base;
  hsp_dht_conn_t *conn;
  const hsp_gw_stream_events_t *ev;
  void *ctx;
  bool connecting, closed, failed;
} dht_stream_t;

/* The stream lives until both its owner let go (close) and the connection is released. */
static void dht_maybe_free(dht_stream_t *d) {
  if (d->closed && !d->conn && !d->connecting) free(d);
}

static void dht_on_read(hsp_dht_conn_t *c, const uint8_t *buf, ssize_t len) {
  dht_stream_t *d = hsp_dht_conn_user(c);
  if (d->closed || d->failed) return;
  if (len > 0) d->ev->on_data(d->ctx, buf, (size_t)len);
  else if (len == HSP_DHT_CONN_EOF) d->ev->on_end(d->ctx);
}

static void dht_on_close(hsp_dht_conn_t *c, int status) {
  (void)status;
  dht_stream_t *d = hsp_dht_conn_user(c);
  d->conn = NULL;
  if (!d->closed && !d->failed) {
    /* The owner usually closes the stream from on_error, which then frees it: nothing of d
     * may be touched after this call. */
    d->failed = true;
    d->ev->on_error(d->ctx, HSP_GW_ECLOSED);
    return;
  }
  dht_maybe_free(d);
}

static void dht_on_written(void *ctx, int status) {
  dht_stream_t *d = ctx;
  if (d->closed || d->failed || !d->conn || status < 0) return;
  if (hsp_dht_conn_write_queue_size(d->conn) <= HSP_GW_LOW_WATER) d->ev->on_drain(d->ctx);
}

static int dht_write(hsp_gw_stream_t *s, const uint8_t *bytes, size_t len) {
  dht_stream_t *d = (dht_stream_t *)s;
  if (d->failed || !d->conn) return HSP_GW_ECLOSED;
  return hsp_dht_conn_write(d->conn, bytes, len, dht_on_written, d) == 0 ? 0 : HSP_GW_ECLOSED;
}

static size_t dht_pending(const hsp_gw_stream_t *s) {
  const dht_stream_t *d = (const dht_stream_t *)s;
  return d->conn ? hsp_dht_conn_write_queue_size(d->conn) : 0;
}

static void dht_shutdown(hsp_gw_stream_t *s) {
  dht_stream_t *d = (dht_stream_t *)s;
  if (d->conn && !d->failed) hsp_dht_conn_end(d->conn);
}

/* The connection buffers at most its receive window while paused, and the instance stops
 * sending (UDX flow control). */
static void dht_set_reading(hsp_gw_stream_t *s, bool on) {
  dht_stream_t *d = (dht_stream_t *)s;
  if (!d->conn || d->failed) return;
  if (on) hsp_dht_conn_read_start(d->conn);
  else hsp_dht_conn_read_stop(d->conn);
}

static void dht_close(hsp_gw_stream_t *s) {
  dht_stream_t *d = (dht_stream_t *)s;
  d->closed = true;
  if (d->conn) hsp_dht_conn_destroy(d->conn); /* dht_on_close frees d */
  else dht_maybe_free(d);
}

static const hsp_gw_stream_ops_t dht_ops = {dht_write, dht_pending, dht_shutdown,
                                            dht_set_reading, dht_close};

static void dht_on_connect(void *ctx, hsp_dht_conn_t *conn, int err) {
  dht_stream_t *d = ctx;
  d->connecting = false;
  if (d->closed) {
    /* The gateway gave up while we were connecting. */
    if (conn) {
      d->conn = conn;
      hsp_dht_conn_set_callbacks(conn, dht_on_read, dht_on_close, d);
      hsp_dht_conn_destroy(conn);
    } else {
      dht_maybe_free(d);
    }
    return;
  }
  if (err || !conn) {
    d->failed = true;
    d->ev->on_open(d->ctx, HSP_GW_EOPEN);
    return;
  }
  d->conn = conn;
  hsp_dht_conn_set_callbacks(conn, dht_on_read, dht_on_close, d);
  d->ev->on_open(d->ctx, 0);
}

int hsp_gw_dht_open(hsp_dht_io_t *io, const hsp_crypto_keypair_t *kp,
                    const uint8_t key[HSP_REG_KEY_BYTES], const hsp_gw_stream_events_t *ev,
                    void *ctx, hsp_gw_stream_t **out) {
  dht_stream_t *d = calloc(1, sizeof *d);
  if (!d) return HSP_GW_ENOMEM;
  d->base.ops = &dht_ops;
  d->ev = ev;
  d->ctx = ctx;
  d->connecting = true;
  if (hsp_dht_connect(io, kp, key, dht_on_connect, d) != 0) {
    free(d);
    return HSP_GW_EOPEN;
  }
  *out = &d->base;
  return 0;
}

/* ---- The registry upstream: the data plane's sessions and balancer ----------------------- */

#define TICK_MS 25
#define MAX_GROUPS 64 /* balancers kept, one per NAME@RANGE asked for; the oldest goes */
/* Each channel's receive window: what arrives while the gateway has stopped reading (its
 * client is slow) stays within this, on top of HSP_GW_HIGH_WATER. */
#define CHAN_WINDOW (256 * 1024)

enum { K_STREAM = 1, K_PROBE = 2 };

typedef struct group { /* the balancer of one NAME@RANGE */
  char route[384];
  hsp_bal_t *bal;
  uint64_t used;
} group_t;

/* Lookups come from a replica (a gateway of its own) or from the registry's own store (the
 * gateway inside the registry process). */
struct hsp_gw_registry {
  hsp_reg_replica_t *r;
  hsp_store_t *store;
  hsp_dht_io_t *io;
  uv_loop_t *loop;
  hsp_bal_config_t balcfg;
  hsp_pool_t *pool;
  hsp_dp_links_t links;
  uv_timer_t timer;
  group_t groups[MAX_GROUPS];
  size_t ngroups;
  uint64_t uses;
  struct chan_stream *failed; /* streams whose open failed inside open(): reported on tick */
  hsp_gw_t *gw;
  uint8_t drained[16][32]; /* instances that said GOAWAY: their idle streams go on tick */
  size_t ndrained;
  void (*close_cb)(void *);
  void *close_ctx;
};

typedef struct probe {
  int kind;
  hsp_gw_registry_t *g;
  hsp_bal_t *bal;
  uint8_t key[32];
} probe_t;

/* A gateway stream as a channel (tunnel) on the instance's session. */
typedef struct chan_stream {
  int kind;
  hsp_gw_stream_t base;
  hsp_gw_registry_t *g;
  uint8_t key[32];
  const hsp_gw_stream_events_t *ev;
  void *ctx;
  hsp_sess_t *sess; /* set once READY, until the tunnel is gone */
  uint32_t ch;
  bool waiting;     /* in the pool, not READY yet */
  bool in_open;     /* inside open(): events are deferred */
  bool closed;      /* the gateway let go */
  bool failed, want_end, reading;
  uint64_t start_ms;
  uint8_t *q;       /* bytes written beyond the credit */
  size_t qoff, qlen;
  size_t unconsumed; /* received while not reading: credit is granted when reading resumes */
  struct chan_stream *next_failed;
} chan_stream_t;

static uint64_t g_now(hsp_gw_registry_t *g) { return uv_now(g->loop); }

/* Every balancer that knows the instance sees what happened to it. */
static void each_bal(hsp_gw_registry_t *g, void (*fn)(hsp_bal_t *, const uint8_t *, void *),
                     const uint8_t key[32], void *arg) {
  for (size_t i = 0; i < g->ngroups; i++) fn(g->groups[i].bal, key, arg);
}
static void do_eject(hsp_bal_t *b, const uint8_t *key, void *arg) {
  hsp_bal_eject(b, key, *(uint64_t *)arg);
}
static void do_failure(hsp_bal_t *b, const uint8_t *key, void *arg) {
  hsp_bal_failure(b, key, *(uint64_t *)arg);
}
typedef struct sample {
  uint64_t now;
  double latency_ms;
} sample_t;
static void do_success(hsp_bal_t *b, const uint8_t *key, void *arg) {
  sample_t *sm = arg;
  hsp_bal_success(b, key, sm->now, sm->latency_ms);
}

static void cs_free(chan_stream_t *d) {
  free(d->q);
  free(d);
}

/* Writes what the credit allows; after the last queued byte, the half-close if asked. */
static int cs_flush(chan_stream_t *d) {
  if (d->qlen > d->qoff) {
    long took = hsp_sess_write(d->sess, d->ch, d->q + d->qoff, d->qlen - d->qoff);
    if (took < 0) return HSP_GW_ECLOSED;
    d->qoff += (size_t)took;
    if (d->qoff == d->qlen) d->qoff = d->qlen = 0;
  }
  if (d->qlen == 0 && d->want_end) {
    d->want_end = false;
    hsp_sess_end(d->sess, d->ch);
  }
  return 0;
}

static int cs_write(hsp_gw_stream_t *s, const uint8_t *bytes, size_t len) {
  chan_stream_t *d = (chan_stream_t *)((char *)s - offsetof(chan_stream_t, base));
  if (d->failed || !d->sess) return HSP_GW_ECLOSED;
  size_t took = 0;
  if (d->qlen == 0) {
    long n = hsp_sess_write(d->sess, d->ch, bytes, len);
    if (n < 0) return HSP_GW_ECLOSED;
    took = (size_t)n;
  }
  if (took == len) return 0;
  uint8_t *q = realloc(d->q, d->qlen + (len - took));
  if (!q) return HSP_GW_ENOMEM;
  memcpy(q + d->qlen, bytes + took, len - took);
  d->q = q;
  d->qlen += len - took;
  return 0;
}

static size_t cs_pending(const hsp_gw_stream_t *s) {
  const chan_stream_t *d = (const chan_stream_t *)((const char *)s - offsetof(chan_stream_t, base));
  return d->qlen - d->qoff;
}

static void cs_shutdown(hsp_gw_stream_t *s) {
  chan_stream_t *d = (chan_stream_t *)((char *)s - offsetof(chan_stream_t, base));
  if (!d->sess || d->failed) return;
  d->want_end = true;
  cs_flush(d);
}

static void cs_set_reading(hsp_gw_stream_t *s, bool on) {
  chan_stream_t *d = (chan_stream_t *)((char *)s - offsetof(chan_stream_t, base));
  d->reading = on;
  if (on && d->unconsumed && d->sess) {
    hsp_sess_consumed(d->sess, d->ch, d->unconsumed);
    d->unconsumed = 0;
  }
}

static void cs_close(hsp_gw_stream_t *s) {
  chan_stream_t *d = (chan_stream_t *)((char *)s - offsetof(chan_stream_t, base));
  d->closed = true;
  if (d->sess) {
    hsp_sess_close(d->sess, d->ch);
    d->sess = NULL;
    cs_free(d);
    return;
  }
  /* Still waiting for the session: a tunnel the pool has not opened yet is simply forgotten;
   * one already asked for is closed on READY, or freed on its close. */
  if (d->waiting && d->g->pool && hsp_pool_cancel(d->g->pool, d->key, d)) d->waiting = false;
  if (!d->waiting && !d->in_open) {
    for (chan_stream_t **pp = &d->g->failed; *pp; pp = &(*pp)->next_failed)
      if (*pp == d) {
        *pp = d->next_failed;
        break;
      }
    cs_free(d);
  }
}

static const hsp_gw_stream_ops_t cs_ops = {cs_write, cs_pending, cs_shutdown, cs_set_reading,
                                           cs_close};

/* ---- tunnel events (from the pool) ---- */

static void probe_done(probe_t *pr, bool ok) {
  hsp_gw_registry_t *g = pr->g;
  for (size_t i = 0; i < g->ngroups; i++)
    if (g->groups[i].bal == pr->bal) hsp_bal_probe_result(pr->bal, pr->key, g_now(g), ok);
  free(pr);
}

static void t_ready(void *ud, hsp_sess_t *s, uint32_t ch, void *user) {
  hsp_gw_registry_t *g = ud;
  if (*(int *)user == K_PROBE) {
    hsp_sess_close(s, ch);
    probe_done(user, true);
    return;
  }
  chan_stream_t *d = user;
  d->waiting = false;
  uint64_t now = g_now(g);
  sample_t sm = {now, (double)(now - d->start_ms)};
  each_bal(g, do_success, d->key, &sm);
  if (d->closed) {
    hsp_sess_close(s, ch);
    cs_free(d);
    return;
  }
  d->sess = s;
  d->ch = ch;
  d->ev->on_open(d->ctx, 0);
}

static void t_data(void *ud, hsp_sess_t *s, uint32_t ch, void *user, const uint8_t *b, size_t n) {
  (void)ud;
  if (*(int *)user != K_STREAM) return;
  chan_stream_t *d = user;
  if (d->closed || d->failed) return;
  if (d->reading) hsp_sess_consumed(s, ch, n);
  else d->unconsumed += n;
  d->ev->on_data(d->ctx, b, n);
}

static void t_end(void *ud, hsp_sess_t *s, uint32_t ch, void *user) {
  (void)ud, (void)s, (void)ch;
  if (*(int *)user != K_STREAM) return;
  chan_stream_t *d = user;
  if (!d->closed && !d->failed) d->ev->on_end(d->ctx);
}

static void t_writable(void *ud, hsp_sess_t *s, uint32_t ch, void *user) {
  (void)ud, (void)s, (void)ch;
  if (*(int *)user != K_STREAM) return;
  chan_stream_t *d = user;
  if (d->closed || d->failed || !d->sess) return;
  if (cs_flush(d) < 0) return; /* the close follows */
  if (d->qlen - d->qoff <= HSP_GW_LOW_WATER) d->ev->on_drain(d->ctx);
}

static void t_close(void *ud, hsp_sess_t *s, uint32_t ch, void *user, int err) {
  (void)s, (void)ch, (void)err;
  hsp_gw_registry_t *g = ud;
  if (*(int *)user == K_PROBE) {
    probe_done(user, false);
    return;
  }
  chan_stream_t *d = user;
  bool was_open = d->sess != NULL;
  d->sess = NULL;
  d->waiting = false;
  if (d->closed) {
    cs_free(d);
    return;
  }
  d->failed = true;
  if (d->in_open) { /* on_open must come from the loop: on the next tick */
    d->next_failed = g->failed;
    g->failed = d;
    return;
  }
  /* The gateway closes the stream from these events, which frees it. */
  if (was_open) d->ev->on_error(d->ctx, HSP_GW_ECLOSED);
  else d->ev->on_open(d->ctx, HSP_GW_EOPEN);
}

static void pool_connect(void *ud, const uint8_t key[32]) {
  hsp_dp_links_connect(&((hsp_gw_registry_t *)ud)->links, key);
}
static void pool_disconnect(void *ud, const uint8_t key[32]) {
  hsp_dp_links_disconnect(&((hsp_gw_registry_t *)ud)->links, key);
}
static int pool_send(void *ud, const uint8_t key[32], const uint8_t *a, size_t alen,
                     const uint8_t *b, size_t blen) {
  return hsp_dp_links_send(&((hsp_gw_registry_t *)ud)->links, key, a, alen, b, blen);
}
static void on_session_down(void *ud, const uint8_t key[32], int err) {
  (void)err;
  hsp_gw_registry_t *g = ud;
  uint64_t now = g_now(g);
  each_bal(g, do_eject, key, &now);
}
static void on_goaway(void *ud, const uint8_t key[32]) {
  hsp_gw_registry_t *g = ud;
  on_session_down(ud, key, 0);
  if (g->ndrained < 16) memcpy(g->drained[g->ndrained++], key, 32);
}

void hsp_gw_registry_set_gateway(hsp_gw_registry_t *g, hsp_gw_t *gw) { g->gw = gw; }

static void on_tick(uv_timer_t *t) {
  hsp_gw_registry_t *g = t->data;
  uint64_t now = g_now(g);
  hsp_pool_tick(g->pool, now);
  for (size_t i = 0; i < g->ndrained; i++)
    if (g->gw) hsp_gw_drop_idle(g->gw, g->drained[i]);
  g->ndrained = 0;
  while (g->failed) {
    chan_stream_t *d = g->failed;
    g->failed = d->next_failed;
    d->ev->on_open(d->ctx, HSP_GW_EOPEN);
  }
  for (size_t i = 0; i < g->ngroups; i++) {
    uint8_t key[32];
    while (hsp_bal_probe_due(g->groups[i].bal, now, key)) {
      probe_t *pr = calloc(1, sizeof *pr);
      if (!pr) {
        hsp_bal_probe_result(g->groups[i].bal, key, now, false);
        continue;
      }
      *pr = (probe_t){.kind = K_PROBE, .g = g, .bal = g->groups[i].bal};
      memcpy(pr->key, key, 32);
      if (hsp_pool_open(g->pool, key, now, pr) < 0) probe_done(pr, false);
    }
  }
}

int hsp_gw_registry_new(hsp_gw_registry_t **out, hsp_reg_replica_t *r, hsp_store_t *store,
                        hsp_dht_io_t *io, const hsp_crypto_keypair_t *kp,
                        const hsp_bal_config_t *bal) {
  if (!r == !store) return HSP_GW_EINVAL;
  hsp_gw_registry_t *g = calloc(1, sizeof *g);
  if (!g) return HSP_GW_ENOMEM;
  g->r = r;
  g->store = store;
  g->io = io;
  g->loop = hsp_dht_io_loop(io);
  if (bal) g->balcfg = *bal;
  /* A dead instance is noticed within a second on every session open to it, as in the proxy. */
  hsp_pool_config_t pcfg = {.sess = {.window = CHAN_WINDOW, .dead_ms = 900}};
  hsp_pool_callbacks_t pcb = {
      .connect = pool_connect,
      .disconnect = pool_disconnect,
      .send = pool_send,
      .tunnel = {.on_ready = t_ready, .on_data = t_data, .on_end = t_end,
                 .on_writable = t_writable, .on_close = t_close},
      .on_session_down = on_session_down,
      .on_goaway = on_goaway,
  };
  g->pool = hsp_pool_new(&pcfg, &pcb, g);
  if (!g->pool) {
    free(g);
    return HSP_GW_ENOMEM;
  }
  g->links.loop = g->loop;
  g->links.io = io;
  g->links.kp = *kp;
  g->links.pool = g->pool;
  g->links.who = "web";
  uv_timer_init(g->loop, &g->timer);
  g->timer.data = g;
  uv_timer_start(&g->timer, on_tick, TICK_MS, TICK_MS);
  *out = g;
  return 0;
}

static void on_timer_closed(uv_handle_t *h) {
  hsp_gw_registry_t *g = h->data;
  void (*cb)(void *) = g->close_cb;
  void *ctx = g->close_ctx;
  free(g);
  if (cb) cb(ctx);
}

void hsp_gw_registry_close(hsp_gw_registry_t *g, void (*cb)(void *ctx), void *ctx) {
  g->close_cb = cb;
  g->close_ctx = ctx;
  while (g->failed) { /* nobody is left to tell */
    chan_stream_t *d = g->failed;
    g->failed = d->next_failed;
    cs_free(d);
  }
  hsp_pool_t *pool = g->pool;
  g->pool = NULL;
  hsp_pool_free(pool); /* probes and waiting streams get their close */
  hsp_dp_links_release(&g->links);
  hsp_crypto_keypair_wipe(&g->links.kp);
  for (size_t i = 0; i < g->ngroups; i++) hsp_bal_free(g->groups[i].bal);
  g->ngroups = 0;
  g->gw = NULL;
  uv_close((uv_handle_t *)&g->timer, on_timer_closed);
}

static long rg_query(void *ud, const char *name, const char *range, hsp_reg_instance_t *out,
                     size_t cap) {
  hsp_gw_registry_t *g = ud;
  if (g->r) return hsp_reg_replica_query(g->r, name, range, out, cap);
  /* The store validates the range itself, so check it first for a clean 400. */
  hsp_semver_range_t parsed;
  if (hsp_semver_range_parse(&parsed, range, strlen(range)) != 0) return HSP_REG_ERANGE;
  hsp_semver_range_free(&parsed);
  hsp_reg_instance_t *v = NULL;
  size_t n = 0;
  int err = hsp_store_query(g->store, name, range, &v, &n);
  if (err) return err;
  if (out && v && n && cap) memcpy(out, v, (n < cap ? n : cap) * sizeof *v);
  free(v);
  return (long)n;
}

static bool rg_get(void *ud, const uint8_t key[HSP_REG_KEY_BYTES], hsp_reg_instance_t *out) {
  hsp_gw_registry_t *g = ud;
  if (g->r) return hsp_reg_replica_get(g->r, key, out);
  return hsp_store_get(g->store, key, out) == 0;
}

static void rg_each(void *ud, void (*cb)(void *arg, const hsp_reg_instance_t *inst), void *arg) {
  hsp_gw_registry_t *g = ud;
  if (g->r) {
    hsp_reg_replica_each(g->r, cb, arg);
    return;
  }
  hsp_reg_instance_t *v = NULL;
  size_t n = 0;
  if (hsp_store_list(g->store, &v, &n) != 0) return;
  for (size_t i = 0; i < n; i++) cb(arg, &v[i]);
  free(v);
}

static uint64_t rg_seq(void *ud) {
  hsp_gw_registry_t *g = ud;
  if (g->r) return hsp_reg_replica_seq(g->r);
  uint64_t seq = 0;
  uint8_t hash[HSP_REG_HASH_BYTES];
  hsp_store_head(g->store, &seq, hash);
  return seq;
}

/* Ejected or being probed in some balancer: not offered to requests. */
static hsp_gw_health_t rg_health(void *ud, const uint8_t key[HSP_REG_KEY_BYTES]) {
  hsp_gw_registry_t *g = ud;
  for (size_t i = 0; i < g->ngroups; i++) {
    hsp_bal_stats_t st;
    if (hsp_bal_stats(g->groups[i].bal, key, &st) == 0 && st.state != HSP_BAL_UP)
      return HSP_GW_FAILED;
  }
  return HSP_GW_HEALTHY;
}

static void rg_mark_failed(void *ud, const uint8_t key[HSP_REG_KEY_BYTES], int err) {
  (void)err;
  hsp_gw_registry_t *g = ud;
  uint64_t now = g_now(g);
  each_bal(g, do_failure, key, &now);
}

static group_t *find_group(hsp_gw_registry_t *g, const char *name, const char *range) {
  char route[sizeof g->groups[0].route];
  int len = snprintf(route, sizeof route, "%s@%s", name, range);
  if (len < 0 || (size_t)len >= sizeof route) return NULL;
  for (size_t i = 0; i < g->ngroups; i++)
    if (strcmp(g->groups[i].route, route) == 0) return &g->groups[i];
  group_t *gr;
  if (g->ngroups < MAX_GROUPS) {
    gr = &g->groups[g->ngroups];
  } else {
    gr = &g->groups[0];
    for (size_t i = 1; i < g->ngroups; i++)
      if (g->groups[i].used < gr->used) gr = &g->groups[i];
    hsp_bal_free(gr->bal);
    g->ngroups--;
  }
  hsp_bal_config_t cfg = g->balcfg;
  if (!cfg.seed) cfg.seed = (uint64_t)(uintptr_t)gr ^ uv_hrtime();
  gr->bal = hsp_bal_new(&cfg);
  if (!gr->bal) return NULL;
  memcpy(gr->route, route, sizeof route);
  g->ngroups++;
  return gr;
}

static void rg_choose(void *ud, const char *name, const char *range, hsp_reg_instance_t *cands,
                      size_t n) {
  hsp_gw_registry_t *g = ud;
  group_t *gr = find_group(g, name, range);
  if (!gr || n == 0) return;
  gr->used = ++g->uses;
  /* The balancer gets every instance in range, not only the healthy candidates: an ejected
   * one must stay known to keep its ejection and be probed. */
  long total = rg_query(g, name, range, NULL, 0);
  if (total <= 0) return;
  if (total > 1024) total = 1024;
  hsp_reg_instance_t *all = malloc((size_t)total * sizeof *all);
  uint8_t (*keys)[32] = malloc((size_t)total * sizeof *keys);
  uint32_t *tiers = malloc((size_t)total * sizeof *tiers);
  long m = all && keys && tiers ? rg_query(g, name, range, all, (size_t)total) : -1;
  if (m > total) m = total;
  if (m > 0) {
    /* Instances come highest version first: each version a tier, as in the proxy. */
    uint32_t tier = 0;
    for (long i = 0; i < m; i++) {
      memcpy(keys[i], all[i].key, 32);
      if (i > 0 && strcmp(all[i].version, all[i - 1].version) != 0) tier++;
      tiers[i] = tier;
    }
    uint8_t key[32];
    if (hsp_bal_sync_tiers(gr->bal, (const uint8_t(*)[32])keys, tiers, (size_t)m) == 0 &&
        hsp_bal_pick(gr->bal, g_now(g), NULL, 0, NULL, key) == 0) {
      /* In-flight is not tracked per request here: the pick counts only for its choice. */
      hsp_bal_done(gr->bal, key);
      for (size_t i = 1; i < n; i++)
        if (memcmp(cands[i].key, key, 32) == 0) {
          hsp_reg_instance_t tmp = cands[0];
          cands[0] = cands[i];
          cands[i] = tmp;
          break;
        }
    }
  }
  free(all);
  free(keys);
  free(tiers);
}

static int rg_open(void *ud, const uint8_t key[HSP_REG_KEY_BYTES],
                   const hsp_gw_stream_events_t *ev, void *ctx, hsp_gw_stream_t **out) {
  hsp_gw_registry_t *g = ud;
  if (!g->pool) return HSP_GW_EOPEN;
  chan_stream_t *d = calloc(1, sizeof *d);
  if (!d) return HSP_GW_ENOMEM;
  d->kind = K_STREAM;
  d->base.ops = &cs_ops;
  d->g = g;
  memcpy(d->key, key, 32);
  d->ev = ev;
  d->ctx = ctx;
  d->reading = true;
  d->waiting = true;
  d->in_open = true;
  d->start_ms = g_now(g);
  int rc = hsp_pool_open(g->pool, key, d->start_ms, d);
  d->in_open = false;
  if (rc < 0) {
    if (d->failed) { /* reported through the failed list: take it back */
      for (chan_stream_t **pp = &g->failed; *pp; pp = &(*pp)->next_failed)
        if (*pp == d) {
          *pp = d->next_failed;
          break;
        }
    }
    cs_free(d);
    return HSP_GW_EOPEN;
  }
  *out = &d->base;
  return 0;
}

static size_t rg_sessions(void *ud) {
  hsp_gw_registry_t *g = ud;
  return g->pool ? hsp_pool_count(g->pool) : 0;
}

void hsp_gw_registry_upstream(hsp_gw_registry_t *g, hsp_gw_upstream_t *out) {
  *out = (hsp_gw_upstream_t){g,      rg_query,  rg_get,         rg_each, rg_seq,
                             rg_health, rg_mark_failed, rg_open, rg_choose, rg_sessions};
}
