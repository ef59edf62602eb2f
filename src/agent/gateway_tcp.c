/* Gateway upstream over plain TCP: a stream per socket, and a static instance table. */
#include "gateway_internal.h"
#include "index.h"

#include <stdlib.h>
#include <string.h>

/* ---- TCP stream ------------------------------------------------------------------------- */

typedef struct tcp_stream {
  hsp_gw_stream_t base;
  uv_tcp_t tcp;
  uv_connect_t connect;
  uv_shutdown_t shut;
  const hsp_gw_stream_events_t *ev;
  void *ctx;
  size_t pending;
  bool connected, closed, reading, failed;
} tcp_stream_t;

typedef struct tcp_write {
  uv_write_t req;
  size_t len;
  uint8_t data[];
} tcp_write_t;

static void tcp_on_close(uv_handle_t *h) { free(h->data); }

static void tcp_fail(tcp_stream_t *t, int err) {
  if (t->failed || t->closed) return;
  t->failed = true;
  uv_read_stop((uv_stream_t *)&t->tcp);
  t->ev->on_error(t->ctx, err);
}

static void tcp_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h;
  (void)hint;
  /* One read buffer per callback: the gateway copies what it keeps. */
  static _Thread_local char shared[64 * 1024];
  *buf = uv_buf_init(shared, sizeof shared);
}

static void tcp_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  tcp_stream_t *t = s->data;
  if (t->closed || t->failed) return;
  if (n > 0) {
    t->ev->on_data(t->ctx, (const uint8_t *)buf->base, (size_t)n);
  } else if (n == UV_EOF) {
    uv_read_stop(s);
    t->reading = false;
    t->ev->on_end(t->ctx);
  } else if (n < 0) {
    tcp_fail(t, HSP_GW_ECLOSED);
  }
}

static void tcp_on_write(uv_write_t *req, int status) {
  tcp_write_t *w = (tcp_write_t *)req;
  tcp_stream_t *t = req->handle->data;
  t->pending -= w->len;
  free(w);
  if (t->closed) return;
  if (status < 0) {
    tcp_fail(t, HSP_GW_ECLOSED);
    return;
  }
  if (t->pending <= HSP_GW_LOW_WATER && !t->failed) t->ev->on_drain(t->ctx);
}

static int tcp_write(hsp_gw_stream_t *s, const uint8_t *bytes, size_t len) {
  tcp_stream_t *t = (tcp_stream_t *)s;
  if (t->failed || !t->connected) return HSP_GW_ECLOSED;
  /* Straight to the socket when it takes everything (nothing queued before us). */
  uv_buf_t direct = uv_buf_init((char *)bytes, (unsigned)len);
  int sent = uv_try_write((uv_stream_t *)&t->tcp, &direct, 1);
  if (sent == (int)len) return 0;
  if (sent < 0 && sent != UV_EAGAIN) return HSP_GW_ECLOSED;
  if (sent > 0) {
    bytes += sent;
    len -= (size_t)sent;
  }
  tcp_write_t *w = malloc(sizeof *w + len);
  if (!w) return HSP_GW_ENOMEM;
  memcpy(w->data, bytes, len);
  w->len = len;
  uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)len);
  if (uv_write(&w->req, (uv_stream_t *)&t->tcp, &b, 1, tcp_on_write) < 0) {
    free(w);
    return HSP_GW_ECLOSED;
  }
  t->pending += len;
  return 0;
}

static size_t tcp_pending(const hsp_gw_stream_t *s) { return ((const tcp_stream_t *)s)->pending; }

static void tcp_on_shutdown(uv_shutdown_t *req, int status) {
  (void)req;
  (void)status;
}

static void tcp_shutdown(hsp_gw_stream_t *s) {
  tcp_stream_t *t = (tcp_stream_t *)s;
  if (t->failed || !t->connected) return;
  uv_shutdown(&t->shut, (uv_stream_t *)&t->tcp, tcp_on_shutdown);
}

static void tcp_set_reading(hsp_gw_stream_t *s, bool on) {
  tcp_stream_t *t = (tcp_stream_t *)s;
  if (t->failed || !t->connected || t->reading == on) return;
  t->reading = on;
  if (on) uv_read_start((uv_stream_t *)&t->tcp, tcp_alloc, tcp_on_read);
  else uv_read_stop((uv_stream_t *)&t->tcp);
}

static void tcp_close(hsp_gw_stream_t *s) {
  tcp_stream_t *t = (tcp_stream_t *)s;
  t->closed = true;
  uv_close((uv_handle_t *)&t->tcp, tcp_on_close);
}

static const hsp_gw_stream_ops_t tcp_ops = {tcp_write, tcp_pending, tcp_shutdown,
                                            tcp_set_reading, tcp_close};

static void tcp_on_connect(uv_connect_t *req, int status) {
  tcp_stream_t *t = req->handle->data;
  if (t->closed) return;
  if (status < 0) {
    t->failed = true;
    t->ev->on_open(t->ctx, HSP_GW_EOPEN);
    return;
  }
  t->connected = true;
  uv_tcp_nodelay(&t->tcp, 1);
  t->reading = true;
  uv_read_start((uv_stream_t *)&t->tcp, tcp_alloc, tcp_on_read);
  t->ev->on_open(t->ctx, 0);
}

int hsp_gw_tcp_open(uv_loop_t *loop, const char *host, int port,
                    const hsp_gw_stream_events_t *ev, void *ctx, hsp_gw_stream_t **out) {
  struct sockaddr_in addr;
  if (uv_ip4_addr(host, port, &addr) != 0) return HSP_GW_EINVAL;
  tcp_stream_t *t = calloc(1, sizeof *t);
  if (!t) return HSP_GW_ENOMEM;
  t->base.ops = &tcp_ops;
  t->ev = ev;
  t->ctx = ctx;
  uv_tcp_init(loop, &t->tcp);
  t->tcp.data = t;
  if (uv_tcp_connect(&t->connect, &t->tcp, (const struct sockaddr *)&addr, tcp_on_connect) < 0) {
    t->closed = true;
    uv_close((uv_handle_t *)&t->tcp, tcp_on_close);
    return HSP_GW_EOPEN;
  }
  *out = &t->base;
  return 0;
}

/* ---- Passive health: instances the gateway could not use, for a while ------------------- */

void hsp_gw_failset_mark(hsp_gw_failset_t *f, const uint8_t key[HSP_REG_KEY_BYTES],
                         uint64_t until) {
  for (size_t i = 0; i < f->n; i++) {
    if (memcmp(f->v[i].key, key, HSP_REG_KEY_BYTES) == 0) {
      f->v[i].until = until;
      return;
    }
  }
  if (f->n == f->cap) {
    size_t cap = f->cap ? f->cap * 2 : 8;
    void *v = realloc(f->v, cap * sizeof *f->v);
    if (!v) return; /* health is advisory: forgetting a failure is safe */
    f->v = v;
    f->cap = cap;
  }
  memcpy(f->v[f->n].key, key, HSP_REG_KEY_BYTES);
  f->v[f->n++].until = until;
}

bool hsp_gw_failset_failed(hsp_gw_failset_t *f, const uint8_t key[HSP_REG_KEY_BYTES],
                           uint64_t now) {
  for (size_t i = 0; i < f->n; i++) {
    if (f->v[i].until <= now) {
      f->v[i--] = f->v[--f->n]; /* expired: forget it */
      continue;
    }
    if (memcmp(f->v[i].key, key, HSP_REG_KEY_BYTES) == 0) return true;
  }
  return false;
}

void hsp_gw_failset_free(hsp_gw_failset_t *f) {
  free(f->v);
  *f = (hsp_gw_failset_t){0};
}

/* ---- Static upstream -------------------------------------------------------------------- */

typedef struct static_entry {
  uint8_t key[HSP_REG_KEY_BYTES];
  char host[64]; /* "" for HyperDHT */
  int port;
} static_entry_t;

struct hsp_gw_static {
  uv_loop_t *loop;
  hsp_reg_index_t *ix;
  static_entry_t *items;
  size_t n, cap;
  uint64_t fail_ms, seq;
  hsp_gw_failset_t fails;
  hsp_dht_io_t *io;
  const hsp_crypto_keypair_t *kp;
};

void hsp_gw_static_set_dht(hsp_gw_static_t *s, hsp_dht_io_t *io, const hsp_crypto_keypair_t *kp) {
  s->io = io;
  s->kp = kp;
}

int hsp_gw_static_new(hsp_gw_static_t **out, uv_loop_t *loop, uint64_t fail_ms) {
  hsp_gw_static_t *s = calloc(1, sizeof *s);
  if (!s) return HSP_GW_ENOMEM;
  s->ix = hsp_reg_index_new();
  if (!s->ix) {
    free(s);
    return HSP_GW_ENOMEM;
  }
  s->loop = loop;
  s->fail_ms = fail_ms;
  *out = s;
  return 0;
}

void hsp_gw_static_free(hsp_gw_static_t *s) {
  if (!s) return;
  hsp_reg_index_free(s->ix);
  hsp_gw_failset_free(&s->fails);
  free(s->items);
  free(s);
}

static static_entry_t *static_find(hsp_gw_static_t *s, const uint8_t key[HSP_REG_KEY_BYTES]) {
  for (size_t i = 0; i < s->n; i++)
    if (memcmp(s->items[i].key, key, HSP_REG_KEY_BYTES) == 0) return &s->items[i];
  return NULL;
}

int hsp_gw_static_add(hsp_gw_static_t *s, const hsp_reg_instance_t *inst, const char *host,
                      int port) {
  if (host && (!host[0] || strlen(host) >= sizeof s->items[0].host)) return HSP_GW_EINVAL;
  static_entry_t *e = static_find(s, inst->key);
  if (!e) {
    if (s->n == s->cap) {
      size_t cap = s->cap ? s->cap * 2 : 8;
      static_entry_t *items = realloc(s->items, cap * sizeof *items);
      if (!items) return HSP_GW_ENOMEM;
      s->items = items;
      s->cap = cap;
    }
    e = &s->items[s->n++];
  }
  memset(e, 0, sizeof *e);
  memcpy(e->key, inst->key, HSP_REG_KEY_BYTES);
  if (host) strcpy(e->host, host);
  e->port = port;
  hsp_reg_instance_t copy = *inst;
  copy.reg_seq = ++s->seq;
  if (hsp_reg_index_put(s->ix, &copy) != 0) return HSP_GW_EINVAL;
  return 0;
}

int hsp_gw_static_remove(hsp_gw_static_t *s, const uint8_t key[HSP_REG_KEY_BYTES]) {
  static_entry_t *e = static_find(s, key);
  if (!e) return HSP_GW_EINVAL;
  hsp_reg_entry_t ent = {.seq = ++s->seq, .type = HSP_REG_DEREGISTER};
  memcpy(ent.inst.key, key, HSP_REG_KEY_BYTES);
  hsp_reg_index_apply(s->ix, &ent);
  *e = s->items[--s->n];
  return 0;
}

static long st_query(void *ud, const char *name, const char *range, hsp_reg_instance_t *out,
                     size_t cap) {
  hsp_gw_static_t *s = ud;
  hsp_semver_range_t r;
  if (hsp_semver_range_parse(&r, range, strlen(range)) != 0) return HSP_REG_ERANGE;
  long n = hsp_reg_index_query(s->ix, name, &r, out, cap);
  hsp_semver_range_free(&r);
  return n;
}

static bool st_get(void *ud, const uint8_t key[HSP_REG_KEY_BYTES], hsp_reg_instance_t *out) {
  return hsp_reg_index_get(((hsp_gw_static_t *)ud)->ix, key, out);
}

static void st_each(void *ud, void (*cb)(void *arg, const hsp_reg_instance_t *inst), void *arg) {
  hsp_reg_index_each(((hsp_gw_static_t *)ud)->ix, cb, arg);
}

static uint64_t st_seq(void *ud) { return ((hsp_gw_static_t *)ud)->seq; }

static hsp_gw_health_t st_health(void *ud, const uint8_t key[HSP_REG_KEY_BYTES]) {
  hsp_gw_static_t *s = ud;
  return hsp_gw_failset_failed(&s->fails, key, uv_now(s->loop)) ? HSP_GW_FAILED : HSP_GW_HEALTHY;
}

static void st_mark_failed(void *ud, const uint8_t key[HSP_REG_KEY_BYTES], int err) {
  (void)err;
  hsp_gw_static_t *s = ud;
  hsp_gw_failset_mark(&s->fails, key, uv_now(s->loop) + s->fail_ms);
}

static int st_open(void *ud, const uint8_t key[HSP_REG_KEY_BYTES],
                   const hsp_gw_stream_events_t *ev, void *ctx, hsp_gw_stream_t **out) {
  hsp_gw_static_t *s = ud;
  static_entry_t *e = static_find(s, key);
  if (!e) return HSP_GW_EOPEN;
  if (!e->host[0]) return s->io ? hsp_gw_dht_open(s->io, s->kp, key, ev, ctx, out) : HSP_GW_EOPEN;
  return hsp_gw_tcp_open(s->loop, e->host, e->port, ev, ctx, out);
}

void hsp_gw_static_upstream(hsp_gw_static_t *s, hsp_gw_upstream_t *out) {
  *out = (hsp_gw_upstream_t){s,       st_query,  st_get,         st_each,
                             st_seq,  st_health, st_mark_failed, st_open, NULL, NULL};
}
