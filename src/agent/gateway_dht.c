/* Gateway upstream over HyperDHT: connections to instances by key, lookups in a replica. */
#include "gateway_internal.h"
#include "hyper_conn.h"

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

/* ---- The registry upstream ---------------------------------------------------------------- */

/* Lookups come from a replica (a gateway of its own) or from the registry's own store (the
 * gateway inside the registry process). */
struct hsp_gw_registry {
  hsp_reg_replica_t *r;
  hsp_store_t *store;
  hsp_dht_io_t *io;
  const hsp_crypto_keypair_t *kp;
  uint64_t fail_ms;
  hsp_gw_failset_t fails;
};

int hsp_gw_registry_new(hsp_gw_registry_t **out, hsp_reg_replica_t *r, hsp_store_t *store,
                        hsp_dht_io_t *io, const hsp_crypto_keypair_t *kp, uint64_t fail_ms) {
  if (!r == !store) return HSP_GW_EINVAL;
  hsp_gw_registry_t *g = calloc(1, sizeof *g);
  if (!g) return HSP_GW_ENOMEM;
  *g = (hsp_gw_registry_t){.r = r, .store = store, .io = io, .kp = kp, .fail_ms = fail_ms};
  *out = g;
  return 0;
}

void hsp_gw_registry_free(hsp_gw_registry_t *g) {
  if (!g) return;
  hsp_gw_failset_free(&g->fails);
  free(g);
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

static hsp_gw_health_t rg_health(void *ud, const uint8_t key[HSP_REG_KEY_BYTES]) {
  hsp_gw_registry_t *g = ud;
  return hsp_gw_failset_failed(&g->fails, key, hsp_dht_io_now(g->io)) ? HSP_GW_FAILED
                                                                      : HSP_GW_HEALTHY;
}

static void rg_mark_failed(void *ud, const uint8_t key[HSP_REG_KEY_BYTES], int err) {
  (void)err;
  hsp_gw_registry_t *g = ud;
  hsp_gw_failset_mark(&g->fails, key, hsp_dht_io_now(g->io) + g->fail_ms);
}

static int rg_open(void *ud, const uint8_t key[HSP_REG_KEY_BYTES],
                   const hsp_gw_stream_events_t *ev, void *ctx, hsp_gw_stream_t **out) {
  hsp_gw_registry_t *g = ud;
  return hsp_gw_dht_open(g->io, g->kp, key, ev, ctx, out);
}

void hsp_gw_registry_upstream(hsp_gw_registry_t *g, hsp_gw_upstream_t *out) {
  *out = (hsp_gw_upstream_t){g,      rg_query,  rg_get,         rg_each,
                             rg_seq, rg_health, rg_mark_failed, rg_open};
}
