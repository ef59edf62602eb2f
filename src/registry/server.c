#include "server.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_SKEW_MS 60000u

typedef struct watcher {
  uint64_t conn, id, seq; /* seq: last entry sent */
  bool pending;           /* added inside a batch not yet committed */
} watcher_t;

typedef struct queued {
  uint64_t conn;
  uint8_t *buf;
  size_t len;
} queued_t;

struct hsp_reg_server {
  hsp_reg_server_config_t cfg;
  watcher_t *watchers;
  size_t nwatchers, capwatchers;
  /* inside handle_many: everything sent waits here for the commit */
  bool batch;
  queued_t *queue;
  size_t nqueue, capqueue;
};

hsp_reg_server_t *hsp_reg_server_new(const hsp_reg_server_config_t *cfg) {
  if (!cfg->store || !cfg->send) return NULL;
  hsp_reg_server_t *srv = calloc(1, sizeof *srv);
  if (!srv) return NULL;
  srv->cfg = *cfg;
  if (!srv->cfg.max_skew_ms) srv->cfg.max_skew_ms = DEFAULT_SKEW_MS;
  return srv;
}

static void drop_queue(hsp_reg_server_t *srv) {
  for (size_t i = 0; i < srv->nqueue; i++) free(srv->queue[i].buf);
  srv->nqueue = 0;
}

void hsp_reg_server_free(hsp_reg_server_t *srv) {
  if (!srv) return;
  drop_queue(srv);
  free(srv->queue);
  free(srv->watchers);
  free(srv);
}

/* Takes ownership of buf. */
static void emit(hsp_reg_server_t *srv, uint64_t conn, uint8_t *buf, size_t len) {
  if (srv->batch) {
    if (srv->nqueue == srv->capqueue) {
      size_t cap = srv->capqueue ? srv->capqueue * 2 : 16;
      void *p = realloc(srv->queue, cap * sizeof *srv->queue);
      if (!p) {
        free(buf); /* the client times out and retries: nothing was acknowledged */
        return;
      }
      srv->queue = p;
      srv->capqueue = cap;
    }
    srv->queue[srv->nqueue++] = (queued_t){conn, buf, len};
    return;
  }
  srv->cfg.send(srv->cfg.ud, conn, buf, len);
  free(buf);
}

static void send_msg(hsp_reg_server_t *srv, uint64_t conn, const hsp_reg_msg_t *m) {
  uint8_t *buf;
  long n = hsp_reg_msg_encode_alloc(m, &buf);
  if (n < 0) return;
  emit(srv, conn, buf, (size_t)n);
}

static int send_error(hsp_reg_server_t *srv, uint64_t conn, uint64_t id, int err) {
  hsp_reg_msg_t m;
  memset(&m, 0, sizeof m);
  m.id = id;
  m.type = HSP_REG_MSG_ERROR;
  m.code = err;
  snprintf(m.message, sizeof m.message, "%s", hsp_reg_strerror(err));
  send_msg(srv, conn, &m);
  return err;
}

/* Sends entries after `after` as ENTRIES messages of at most HSP_REG_BATCH_MAX, up to
 * `limit` entries (0 = all there are). `always`: answer even when there is nothing new
 * (a SYNC or the start of a WATCH tells the client the head). Returns the last seq sent. */
typedef struct batch {
  hsp_store_record_t recs[HSP_REG_BATCH_MAX];
  uint8_t *bytes; /* copies of bodies and signatures: store pointers die at its next step */
  size_t n, used, cap;
  bool oom;
} batch_t;

static int batch_cb(void *ud, const hsp_store_record_t *r) {
  batch_t *b = ud;
  size_t need = b->used + r->body_len + 64;
  if (need > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need) cap *= 2;
    uint8_t *p = realloc(b->bytes, cap);
    if (!p) {
      b->oom = true;
      return 1;
    }
    b->bytes = p;
    b->cap = cap;
  }
  memcpy(b->bytes + b->used, r->body, r->body_len);
  memcpy(b->bytes + b->used + r->body_len, r->sig, 64);
  /* offsets for now: the buffer may still move */
  b->recs[b->n++] = (hsp_store_record_t){r->seq, (const uint8_t *)(uintptr_t)b->used, r->body_len,
                                         NULL, NULL};
  b->used = need;
  return 0;
}

typedef struct target {
  uint64_t conn, id;
} target_t;

/* Sends one encoded message (built with id 0) to a target under its own id: the bytes
 * after the header are the same for everyone, so a push to many watchers is encoded once. */
static void emit_as(hsp_reg_server_t *srv, const target_t *t, const uint8_t *msg0, size_t len0) {
  hsp_cenc_t sz = hsp_cenc_for_size();
  hsp_cenc_preencode_uint(&sz, t->id);
  size_t len = 1 + sz.end + (len0 - 2);
  uint8_t *buf = malloc(len);
  if (!buf) return;
  buf[0] = msg0[0];
  hsp_cenc_t enc = hsp_cenc_for_encode(buf + 1, sz.end);
  hsp_cenc_encode_uint(&enc, t->id);
  memcpy(buf + 1 + sz.end, msg0 + 2, len0 - 2);
  emit(srv, t->conn, buf, len);
}

static void error_to(hsp_reg_server_t *srv, const target_t *t, size_t nt, int err) {
  for (size_t i = 0; i < nt; i++) send_error(srv, t[i].conn, t[i].id, err);
}

/* Sends entries after `after` as ENTRIES messages of at most HSP_REG_BATCH_MAX, up to
 * `limit` entries (0 = all there are), to every target. `always`: answer even when there
 * is nothing new (a SYNC or the start of a WATCH tells the client the head). Returns the
 * last seq sent. */
static uint64_t send_entries(hsp_reg_server_t *srv, const target_t *t, size_t nt, uint64_t after,
                             uint64_t limit, bool always) {
  uint64_t head;
  hsp_store_head(srv->cfg.store, &head, NULL);
  batch_t *b = calloc(1, sizeof *b);
  if (!b) {
    error_to(srv, t, nt, HSP_REG_ENOMEM);
    return after;
  }
  uint64_t sent = 0;
  for (;;) {
    size_t want = HSP_REG_BATCH_MAX;
    if (limit && limit - sent < want) want = (size_t)(limit - sent);
    b->n = b->used = 0;
    int err = hsp_store_entries_after(srv->cfg.store, after, want, batch_cb, b);
    if (err || b->oom) {
      error_to(srv, t, nt, err ? err : HSP_REG_ENOMEM);
      break;
    }
    for (size_t i = 0; i < b->n; i++) {
      size_t off = (size_t)(uintptr_t)b->recs[i].body;
      b->recs[i].body = b->bytes + off;
      b->recs[i].sig = b->bytes + off + b->recs[i].body_len;
    }
    if (b->n) after = b->recs[b->n - 1].seq;
    sent += b->n;
    hsp_reg_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = HSP_REG_MSG_ENTRIES;
    m.seq = head;
    m.more = after < head;
    m.records = b->recs;
    m.nrecords = b->n;
    if (b->n || always) {
      uint8_t *msg0;
      long len0 = hsp_reg_msg_encode_alloc(&m, &msg0);
      if (len0 < 3) {
        error_to(srv, t, nt, HSP_REG_ENOMEM);
        break;
      }
      for (size_t i = 0; i < nt; i++) emit_as(srv, &t[i], msg0, (size_t)len0);
      free(msg0);
    }
    always = false;
    if (!b->n || (limit && sent >= limit) || after >= head) break;
  }
  free(b->bytes);
  free(b);
  return after;
}

static void notify_watchers(hsp_reg_server_t *srv) {
  if (srv->batch) return; /* after the commit */
  uint64_t head;
  hsp_store_head(srv->cfg.store, &head, NULL);
  target_t *t = NULL;
  for (size_t i = 0; i < srv->nwatchers; i++) {
    uint64_t from = srv->watchers[i].seq;
    if (from >= head) continue;
    /* everyone at the same position gets the same bytes (usually: all of them) */
    if (!t && !(t = malloc(srv->nwatchers * sizeof *t))) return;
    size_t nt = 0;
    for (size_t j = i; j < srv->nwatchers; j++)
      if (srv->watchers[j].seq == from) t[nt++] = (target_t){srv->watchers[j].conn, srv->watchers[j].id};
    uint64_t last = send_entries(srv, t, nt, from, 0, false);
    for (size_t j = i; j < srv->nwatchers; j++)
      if (srv->watchers[j].seq == from) srv->watchers[j].seq = last;
  }
  free(t);
}

static void on_expired(void *ud, const hsp_reg_entry_t *e) {
  hsp_reg_server_t *srv = ud;
  if (srv->cfg.on_change) srv->cfg.on_change(srv->cfg.ud, e);
}

static void expire_now(hsp_reg_server_t *srv, uint64_t now_ms) {
  if (hsp_store_next_expiry(srv->cfg.store) <= now_ms &&
      hsp_store_expire(srv->cfg.store, now_ms, on_expired, srv) > 0)
    notify_watchers(srv);
}

int hsp_reg_server_tick(hsp_reg_server_t *srv, uint64_t now_ms) {
  int n = hsp_store_expire(srv->cfg.store, now_ms, on_expired, srv);
  if (n > 0) notify_watchers(srv);
  return n < 0 ? n : 0;
}

uint64_t hsp_reg_server_next_timer(hsp_reg_server_t *srv) {
  return hsp_store_next_expiry(srv->cfg.store);
}

void hsp_reg_server_disconnect(hsp_reg_server_t *srv, uint64_t conn) {
  size_t k = 0;
  for (size_t i = 0; i < srv->nwatchers; i++)
    if (srv->watchers[i].conn != conn) srv->watchers[k++] = srv->watchers[i];
  srv->nwatchers = k;
}

/* Authenticates a signed request; returns the signer or NULL with *err set. */
static const uint8_t *authenticate(hsp_reg_server_t *srv, const hsp_reg_msg_t *m, uint64_t now,
                                   uint8_t *by, int *err) {
  const uint8_t *reg = hsp_store_public_key(srv->cfg.store);
  *by = 0;
  if (memcmp(m->registry, reg, HSP_REG_KEY_BYTES) != 0) {
    *err = HSP_REG_EDENIED;
    return NULL;
  }
  uint64_t skew = m->ts_ms > now ? m->ts_ms - now : now - m->ts_ms;
  if (skew > srv->cfg.max_skew_ms) {
    *err = HSP_REG_EREPLAY;
    return NULL;
  }
  const uint8_t *signer = m->inst.key;
  if (m->type == HSP_REG_MSG_DEREGISTER) {
    if (memcmp(m->signer, m->inst.key, HSP_REG_KEY_BYTES) == 0) {
      signer = m->inst.key;
    } else if (memcmp(m->signer, reg, HSP_REG_KEY_BYTES) == 0) {
      signer = reg;
      *by = 1;
    } else {
      *err = HSP_REG_EDENIED;
      return NULL;
    }
  }
  if (!hsp_reg_msg_verify(m, signer)) {
    *err = HSP_REG_ESIG;
    return NULL;
  }
  return signer;
}

static int handle_change(hsp_reg_server_t *srv, uint64_t conn, const hsp_reg_msg_t *m,
                         uint64_t now) {
  uint8_t by;
  int err = 0;
  const uint8_t *signer = authenticate(srv, m, now, &by, &err);
  if (!signer) return send_error(srv, conn, m->id, err);
  hsp_store_stamp_t stamp = {signer, m->ts_ms};
  hsp_reg_entry_t e;
  switch (m->type) {
  case HSP_REG_MSG_REGISTER: err = hsp_store_register(srv->cfg.store, &m->inst, &stamp, now, &e); break;
  case HSP_REG_MSG_RENEW:
    err = hsp_store_renew(srv->cfg.store, m->inst.key, m->inst.ttl_ms, &stamp, now, &e);
    break;
  default: err = hsp_store_deregister(srv->cfg.store, m->inst.key, by, &stamp, now, &e); break;
  }
  if (err) return send_error(srv, conn, m->id, err);
  if (srv->cfg.on_change) srv->cfg.on_change(srv->cfg.ud, &e);
  hsp_reg_msg_t ok;
  memset(&ok, 0, sizeof ok);
  ok.id = m->id;
  ok.type = HSP_REG_MSG_OK;
  ok.seq = e.seq;
  ok.expires_ms = e.inst.expires_ms;
  send_msg(srv, conn, &ok);
  notify_watchers(srv);
  return HSP_REG_OK;
}

static int reply_instances(hsp_reg_server_t *srv, uint64_t conn, uint64_t id,
                           hsp_reg_instance_t *list, size_t n, uint64_t limit) {
  hsp_reg_msg_t m;
  memset(&m, 0, sizeof m);
  m.id = id;
  m.type = HSP_REG_MSG_INSTANCES;
  m.instances = list;
  m.ninstances = limit && limit < n ? (size_t)limit : n;
  /* the first HSP_REG_INSTANCES_MAX (in query order); SNAPSHOT has them all */
  if (m.ninstances > HSP_REG_INSTANCES_MAX) m.ninstances = HSP_REG_INSTANCES_MAX;
  send_msg(srv, conn, &m);
  free(list);
  return HSP_REG_OK;
}

static uint64_t header_id(const uint8_t *msg, size_t len) {
  hsp_cenc_t s = hsp_cenc_for_decode(msg, len);
  hsp_cenc_decode_uint8(&s);
  uint64_t id = hsp_cenc_decode_uint(&s);
  return hsp_cenc_ok(&s) ? id : 0;
}

static int start_watch(hsp_reg_server_t *srv, uint64_t conn, const hsp_reg_msg_t *m) {
  hsp_reg_server_disconnect(srv, conn); /* one watch per connection */
  if (srv->nwatchers == srv->capwatchers) {
    size_t cap = srv->capwatchers ? srv->capwatchers * 2 : 8;
    void *p = realloc(srv->watchers, cap * sizeof *srv->watchers);
    if (!p) return send_error(srv, conn, m->id, HSP_REG_ENOMEM);
    srv->watchers = p;
    srv->capwatchers = cap;
  }
  /* backlog first, then register: later changes arrive via notify_watchers */
  target_t t = {conn, m->id};
  uint64_t last = send_entries(srv, &t, 1, m->seq, 0, true);
  srv->watchers[srv->nwatchers++] = (watcher_t){conn, m->id, last, srv->batch};
  return HSP_REG_OK;
}

int hsp_reg_server_handle(hsp_reg_server_t *srv, uint64_t conn, const uint8_t *buf, size_t len,
                          uint64_t now_ms) {
  /* on the stack, not static: a send callback may feed another message back in */
  hsp_reg_msg_t m;
  int err = hsp_reg_msg_decode(&m, buf, len);
  if (err) return send_error(srv, conn, header_id(buf, len), err); /* id if readable */
  expire_now(srv, now_ms);
  hsp_reg_instance_t *list;
  size_t n;
  switch (m.type) {
  case HSP_REG_MSG_REGISTER:
  case HSP_REG_MSG_RENEW:
  case HSP_REG_MSG_DEREGISTER: err = handle_change(srv, conn, &m, now_ms); break;
  case HSP_REG_MSG_QUERY:
    err = hsp_store_query(srv->cfg.store, m.name, m.range, &list, &n);
    err = err ? send_error(srv, conn, m.id, err) : reply_instances(srv, conn, m.id, list, n, m.limit);
    break;
  case HSP_REG_MSG_LIST:
    err = hsp_store_list(srv->cfg.store, &list, &n);
    err = err ? send_error(srv, conn, m.id, err) : reply_instances(srv, conn, m.id, list, n, 0);
    break;
  case HSP_REG_MSG_SYNC:
  case HSP_REG_MSG_WATCH: {
    /* a client ahead of us holds a history we do not, and one behind our compacted base
     * needs entries we no longer have: tell it (it takes a SNAPSHOT), do not leave a gap
     * and do not register a watch that could only ever fail */
    uint64_t head, base;
    hsp_store_head(srv->cfg.store, &head, NULL);
    hsp_store_base(srv->cfg.store, &base, NULL);
    if (m.seq > head || m.seq < base) {
      err = send_error(srv, conn, m.id, HSP_REG_ECHAIN);
      break;
    }
    if (m.type == HSP_REG_MSG_WATCH) {
      err = start_watch(srv, conn, &m);
      break;
    }
    uint64_t limit = m.limit && m.limit < HSP_REG_BATCH_MAX ? m.limit : HSP_REG_BATCH_MAX;
    target_t t = {conn, m.id};
    send_entries(srv, &t, 1, m.seq, limit, true);
    break;
  }
  case HSP_REG_MSG_UNWATCH: hsp_reg_server_disconnect(srv, conn); break;
  case HSP_REG_MSG_SNAPSHOT: {
    err = hsp_store_list(srv->cfg.store, &list, &n);
    if (err) {
      send_error(srv, conn, m.id, err);
      break;
    }
    hsp_reg_msg_t *snap = calloc(1, sizeof *snap);
    if (!snap) {
      free(list);
      err = send_error(srv, conn, m.id, HSP_REG_ENOMEM);
      break;
    }
    snap->id = m.id;
    snap->type = HSP_REG_MSG_SNAPSHOT_DATA;
    hsp_store_head(srv->cfg.store, &snap->seq, snap->hash);
    snap->snap_src = list;
    snap->nsnapshot = n;
    uint8_t *out = NULL;
    long outlen = HSP_REG_EDENIED; /* no secret: this server cannot sign snapshots */
    if (srv->cfg.secret) {
      hsp_reg_snapshot_sign(snap, srv->cfg.secret);
      outlen = hsp_reg_msg_encode_alloc(snap, &out);
    }
    if (outlen < 0) err = send_error(srv, conn, m.id, (int)outlen);
    else emit(srv, conn, out, (size_t)outlen);
    free(list);
    free(snap);
    break;
  }
  default: err = send_error(srv, conn, m.id, HSP_REG_EINVAL); break;
  }
  hsp_reg_msg_free(&m);
  return err;
}


int hsp_reg_server_handle_many(hsp_reg_server_t *srv, const hsp_reg_input_t *in, size_t n,
                               uint64_t now_ms) {
  if (n == 1 || hsp_store_batch_begin(srv->cfg.store) != 0) {
    int err = 0;
    for (size_t i = 0; i < n; i++) {
      int e = hsp_reg_server_handle(srv, in[i].conn, in[i].msg, in[i].len, now_ms);
      if (!err) err = e;
    }
    return err;
  }
  srv->batch = true;
  for (size_t i = 0; i < n; i++) hsp_reg_server_handle(srv, in[i].conn, in[i].msg, in[i].len, now_ms);
  srv->batch = false;
  int err = hsp_store_batch_commit(srv->cfg.store);
  if (!err) {
    for (size_t i = 0; i < srv->nqueue; i++) {
      srv->cfg.send(srv->cfg.ud, srv->queue[i].conn, srv->queue[i].buf, srv->queue[i].len);
      free(srv->queue[i].buf);
    }
    srv->nqueue = 0;
    for (size_t i = 0; i < srv->nwatchers; i++) srv->watchers[i].pending = false;
    notify_watchers(srv);
    return HSP_REG_OK;
  }
  /* Nothing of the batch happened: no answer it prepared may leave, watches it opened are
   * forgotten, and every request is told so. */
  drop_queue(srv);
  uint64_t head;
  hsp_store_head(srv->cfg.store, &head, NULL);
  size_t k = 0;
  for (size_t i = 0; i < srv->nwatchers; i++) {
    if (srv->watchers[i].pending) continue;
    if (srv->watchers[i].seq > head) srv->watchers[i].seq = head;
    srv->watchers[k++] = srv->watchers[i];
  }
  srv->nwatchers = k;
  for (size_t i = 0; i < n; i++) send_error(srv, in[i].conn, header_id(in[i].msg, in[i].len), err);
  return err;
}
