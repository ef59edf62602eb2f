#include "pool.h"

#include <stdlib.h>
#include <string.h>

typedef struct entry {
  struct hsp_pool *pool;
  uint8_t key[HSP_POOL_KEY_BYTES];
  hsp_sess_t *sess; /* NULL while connecting */
  uint64_t started_ms;
  bool goaway;
  bool heard;     /* a frame arrived on the current session */
  bool reopened;  /* the one transparent reconnect was used */
  void **pending;
  size_t npending, cap;
} entry_t;

struct hsp_pool {
  hsp_pool_config_t cfg;
  hsp_pool_callbacks_t cb;
  void *ud;
  entry_t **v;
  size_t n, cap;
  bool freeing;
};

/* Session callbacks: forwarded with the pool's ud. */
static int t_send(void *ud, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
  entry_t *e = ud;
  return e->pool->cb.send ? e->pool->cb.send(e->pool->ud, e->key, a, alen, b, blen) : 0;
}
static void t_ready(void *ud, hsp_sess_t *s, uint32_t ch, void *user) {
  entry_t *e = ud;
  if (e->pool->cb.tunnel.on_ready) e->pool->cb.tunnel.on_ready(e->pool->ud, s, ch, user);
}
static void t_data(void *ud, hsp_sess_t *s, uint32_t ch, void *user, const uint8_t *p, size_t n) {
  entry_t *e = ud;
  if (e->pool->cb.tunnel.on_data) e->pool->cb.tunnel.on_data(e->pool->ud, s, ch, user, p, n);
}
static void t_end(void *ud, hsp_sess_t *s, uint32_t ch, void *user) {
  entry_t *e = ud;
  if (e->pool->cb.tunnel.on_end) e->pool->cb.tunnel.on_end(e->pool->ud, s, ch, user);
}
static void t_writable(void *ud, hsp_sess_t *s, uint32_t ch, void *user) {
  entry_t *e = ud;
  if (e->pool->cb.tunnel.on_writable) e->pool->cb.tunnel.on_writable(e->pool->ud, s, ch, user);
}
static void t_close(void *ud, hsp_sess_t *s, uint32_t ch, void *user, int err) {
  entry_t *e = ud;
  if (e->pool->cb.tunnel.on_close) e->pool->cb.tunnel.on_close(e->pool->ud, s, ch, user, err);
}
static void t_goaway(void *ud, hsp_sess_t *s) {
  entry_t *e = ud;
  (void)s;
  e->goaway = true;
  if (e->pool->cb.on_goaway) e->pool->cb.on_goaway(e->pool->ud, e->key);
}

static const hsp_sess_callbacks_t sess_cb = {t_send, NULL, t_ready, t_data, t_end, t_writable,
                                             t_close, t_goaway};

hsp_pool_t *hsp_pool_new(const hsp_pool_config_t *cfg, const hsp_pool_callbacks_t *cb, void *ud) {
  hsp_pool_t *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  if (cfg) p->cfg = *cfg;
  if (!p->cfg.idle_ms) p->cfg.idle_ms = 30000;
  if (!p->cfg.connect_timeout_ms) p->cfg.connect_timeout_ms = 5000;
  p->cb = *cb;
  p->ud = ud;
  return p;
}

static entry_t *find(const hsp_pool_t *p, const uint8_t *key, size_t *at) {
  for (size_t i = 0; i < p->n; i++)
    if (memcmp(p->v[i]->key, key, HSP_POOL_KEY_BYTES) == 0) {
      if (at) *at = i;
      return p->v[i];
    }
  return NULL;
}

static void detach(hsp_pool_t *p, size_t i) { p->v[i] = p->v[--p->n]; }

/* Takes a detached entry down: its tunnels and waiting tunnels fail. The callbacks may open
 * tunnels again (on other instances, or this one: a new entry). */
static void destroy(hsp_pool_t *p, entry_t *e, int err, bool disconnect, bool report) {
  if (disconnect && p->cb.disconnect) p->cb.disconnect(p->ud, e->key);
  hsp_sess_free(e->sess); /* on_close(EDEAD) for each tunnel */
  for (size_t i = 0; i < e->npending; i++)
    if (p->cb.tunnel.on_close) p->cb.tunnel.on_close(p->ud, NULL, 0, e->pending[i], err);
  if (report && p->cb.on_session_down) p->cb.on_session_down(p->ud, e->key, err);
  free(e->pending);
  free(e);
}

void hsp_pool_free(hsp_pool_t *p) {
  if (!p) return;
  p->freeing = true;
  while (p->n) {
    entry_t *e = p->v[p->n - 1];
    detach(p, p->n - 1);
    destroy(p, e, HSP_SESS_EDEAD, true, false);
  }
  free(p->v);
  free(p);
}

int hsp_pool_open(hsp_pool_t *p, const uint8_t key[HSP_POOL_KEY_BYTES], uint64_t now_ms,
                  void *user) {
  if (p->freeing || !user) return HSP_SESS_EINVAL;
  entry_t *e = find(p, key, NULL);
  if (e && e->goaway) return HSP_SESS_EGOAWAY;
  if (e && e->sess) {
    uint32_t ch;
    return hsp_sess_open(e->sess, user, &ch);
  }
  if (!e) {
    if (p->n == p->cap) {
      size_t cap = p->cap ? p->cap * 2 : 8;
      entry_t **v = realloc(p->v, cap * sizeof *v);
      if (!v) return HSP_SESS_ENOMEM;
      p->v = v;
      p->cap = cap;
    }
    e = calloc(1, sizeof *e);
    if (!e) return HSP_SESS_ENOMEM;
    e->pool = p;
    memcpy(e->key, key, HSP_POOL_KEY_BYTES);
    e->started_ms = now_ms;
    p->v[p->n++] = e;
    /* The entry is in place before connect, which may answer at once. */
    if (p->cb.connect) p->cb.connect(p->ud, key);
    e = find(p, key, NULL);
    if (!e) return HSP_SESS_EDEAD; /* failed synchronously */
    if (e->sess) {
      uint32_t ch;
      return hsp_sess_open(e->sess, user, &ch);
    }
  }
  if (e->npending == e->cap) {
    size_t cap = e->cap ? e->cap * 2 : 8;
    void **v = realloc(e->pending, cap * sizeof *v);
    if (!v) return HSP_SESS_ENOMEM;
    e->pending = v;
    e->cap = cap;
  }
  e->pending[e->npending++] = user;
  return 0;
}

bool hsp_pool_cancel(hsp_pool_t *p, const uint8_t key[HSP_POOL_KEY_BYTES], void *user) {
  entry_t *e = find(p, key, NULL);
  if (!e) return false;
  for (size_t i = 0; i < e->npending; i++)
    if (e->pending[i] == user) {
      memmove(&e->pending[i], &e->pending[i + 1], (e->npending - i - 1) * sizeof *e->pending);
      e->npending--;
      return true;
    }
  return false;
}

void hsp_pool_connected(hsp_pool_t *p, const uint8_t key[HSP_POOL_KEY_BYTES], uint64_t now_ms) {
  size_t at;
  entry_t *e = find(p, key, &at);
  if (!e || e->sess) return;
  e->sess = hsp_sess_new(&p->cfg.sess, &sess_cb, e, now_ms);
  if (!e->sess) {
    detach(p, at);
    destroy(p, e, HSP_SESS_ENOMEM, true, true);
    return;
  }
  if (p->cb.on_session_up) p->cb.on_session_up(p->ud, key, (double)(now_ms - e->started_ms));
  /* Open the waiting tunnels; one that cannot open fails alone. */
  void **pending = e->pending;
  size_t n = e->npending;
  e->pending = NULL;
  e->npending = e->cap = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t ch;
    int rc = hsp_sess_open(e->sess, pending[i], &ch);
    if (rc < 0 && p->cb.tunnel.on_close) p->cb.tunnel.on_close(p->ud, NULL, 0, pending[i], rc);
  }
  free(pending);
}

static void requeue(void *ctx, void *user) {
  entry_t *e = ctx;
  if (e->npending == e->cap) {
    size_t cap = e->cap ? e->cap * 2 : 8;
    void **v = realloc(e->pending, cap * sizeof *v);
    if (!v) { /* cannot keep it: it fails like the session */
      if (e->pool->cb.tunnel.on_close) e->pool->cb.tunnel.on_close(e->pool->ud, NULL, 0, user, HSP_SESS_EDEAD);
      return;
    }
    e->pending = v;
    e->cap = cap;
  }
  e->pending[e->npending++] = user;
}

/* A session that connected but died before the service said anything is taken for a
 * glitch of the connect (not the instance failing): it is opened again once, and its
 * tunnels, none of which can have forwarded anything, wait for the new one. */
static bool reopen(hsp_pool_t *p, entry_t *e, uint64_t now_ms) {
  if (!e->sess || e->heard || e->reopened || p->freeing) return false;
  e->reopened = true;
  hsp_sess_t *s = e->sess;
  e->sess = NULL;
  hsp_sess_free_detach(s, requeue, e);
  e->started_ms = now_ms;
  if (p->cb.connect) p->cb.connect(p->ud, e->key);
  return true;
}

void hsp_pool_failed(hsp_pool_t *p, const uint8_t key[HSP_POOL_KEY_BYTES], uint64_t now_ms,
                     int err) {
  size_t at;
  entry_t *e = find(p, key, &at);
  if (!e) return;
  if (reopen(p, e, now_ms)) return;
  detach(p, at);
  destroy(p, e, err < 0 ? err : HSP_SESS_EDEAD, false, true);
}

int hsp_pool_recv(hsp_pool_t *p, const uint8_t key[HSP_POOL_KEY_BYTES], const uint8_t *frame,
                  size_t len, uint64_t now_ms) {
  size_t at;
  entry_t *e = find(p, key, &at);
  if (!e || !e->sess) return HSP_SESS_EINVAL;
  e->heard = true;
  int rc = hsp_sess_recv(e->sess, frame, len, now_ms);
  if (rc < 0) {
    e = find(p, key, &at); /* callbacks may have changed the table */
    if (e) {
      detach(p, at);
      destroy(p, e, HSP_SESS_EDEAD, true, true);
    }
  }
  return rc;
}

uint64_t hsp_pool_tick(hsp_pool_t *p, uint64_t now_ms) {
  uint64_t next = UINT64_MAX;
  for (size_t i = 0; i < p->n;) {
    entry_t *e = p->v[i];
    if (!e->sess) {
      uint64_t deadline = e->started_ms + p->cfg.connect_timeout_ms;
      if (now_ms >= deadline) {
        detach(p, i);
        destroy(p, e, HSP_SESS_EDEAD, true, true);
        i = 0; /* callbacks may have changed the table: start over */
        continue;
      }
      if (deadline < next) next = deadline;
      i++;
      continue;
    }
    uint64_t t = hsp_sess_tick(e->sess, now_ms);
    if (hsp_sess_is_dead(e->sess)) {
      if (p->cb.disconnect) p->cb.disconnect(p->ud, e->key);
      if (reopen(p, e, now_ms)) {
        i = 0;
        continue;
      }
      detach(p, i);
      destroy(p, e, HSP_SESS_EDEAD, false, true);
      i = 0;
      continue;
    }
    uint64_t idle = hsp_sess_idle_since(e->sess);
    if (idle != UINT64_MAX) {
      /* A draining service's session goes with its last tunnel. */
      uint64_t close_at = e->goaway ? idle : idle + p->cfg.idle_ms;
      if (now_ms >= close_at) {
        detach(p, i);
        destroy(p, e, HSP_SESS_EDEAD, true, false);
        i = 0;
        continue;
      }
      if (close_at < t) t = close_at;
    }
    if (t < next) next = t;
    i++;
  }
  return next;
}

hsp_sess_t *hsp_pool_session(const hsp_pool_t *p, const uint8_t key[HSP_POOL_KEY_BYTES]) {
  entry_t *e = find(p, key, NULL);
  return e ? e->sess : NULL;
}

size_t hsp_pool_count(const hsp_pool_t *p) { return p->n; }
