#include "mux.h"

#include "compact.h"

#include <stdlib.h>
#include <string.h>

enum { L_FREE, L_OPENING, L_OPEN, L_CLOSED_UNACKED };

/* control frame types */
enum { C_BATCH = 0, C_OPEN = 1, C_REJECT = 2, C_CLOSE = 3 };

/* A remote slot holding this is an open request the application is deciding on. */
#define PENDING UINT32_MAX
/* local id, protocol and id of an open message: the largest control head we send */
#define OPEN_HEAD_MAX (9 + 9 + HSP_MUX_MAX_PROTOCOL + 9 + HSP_MUX_MAX_ID)

typedef struct local {
  uint8_t state;
  uint8_t protocol_len, id_len;
  uint32_t remote_id; /* the peer's id once paired */
  uint64_t seq;       /* opening order: the peer's open pairs with the oldest waiting one */
  void *user;
  uint8_t protocol[HSP_MUX_MAX_PROTOCOL];
  uint8_t id[HSP_MUX_MAX_ID];
} local_t;

struct hsp_mux {
  hsp_mux_callbacks_t cb;
  void *data;
  local_t *local; /* index = local id - 1 */
  uint32_t local_len, local_cap;
  uint32_t *free_ids; /* reused last-in first-out, as the reference does */
  uint32_t free_len, free_cap;
  uint32_t *remote; /* index = peer id - 1; value = local id, 0 = none, or PENDING */
  uint32_t remote_len, remote_cap;
  uint64_t seq;
  size_t open_count;

  struct {
    bool active;
    uint32_t remote_id, accepted;
    hsp_mux_open_request_t r;
  } req;

  int corked;
  uint8_t *batch;
  size_t batch_len, batch_cap, max_batch;
  uint32_t batch_channel;
};

const char *hsp_mux_strerror(int err) {
  switch (err) {
  case 0: return "ok";
  case HSP_MUX_EPROTO: return "malformed mux frame";
  case HSP_MUX_ENOMEM: return "out of memory";
  case HSP_MUX_EINVAL: return "unknown channel or bad argument";
  case HSP_MUX_EEXIST: return "channel already open";
  case HSP_MUX_ESEND: return "send failed";
  default: return "unknown error";
  }
}

hsp_mux_t *hsp_mux_new(const hsp_mux_callbacks_t *cb, void *data) {
  hsp_mux_t *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->cb = *cb;
  m->data = data;
  m->max_batch = HSP_MUX_MAX_BATCH;
  return m;
}

void hsp_mux_set_max_batch(hsp_mux_t *m, size_t max) {
  m->max_batch = max < 64 ? 64 : max > HSP_MUX_MAX_BATCH ? HSP_MUX_MAX_BATCH : max;
}

void hsp_mux_destroy(hsp_mux_t *m) {
  if (!m) return;
  for (uint32_t i = 0; i < m->local_len; i++) {
    uint8_t st = m->local[i].state;
    m->local[i].state = L_FREE;
    if ((st == L_OPENING || st == L_OPEN) && m->cb.on_close)
      m->cb.on_close(m->data, m, i + 1, m->local[i].user);
  }
  free(m->local);
  free(m->free_ids);
  free(m->remote);
  free(m->batch);
  free(m);
}

static bool grow(void **p, uint32_t *cap, uint32_t need, size_t elem) {
  if (need <= *cap) return true;
  uint32_t n = *cap ? *cap : 16;
  while (n < need) n *= 2;
  void *q = realloc(*p, (size_t)n * elem);
  if (!q) return false;
  *p = q;
  *cap = n;
  return true;
}

/* ---- Sending ---------------------------------------------------------------------------- */

static int emit(hsp_mux_t *m, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
  if (!m->cb.send) return 0;
  return m->cb.send(m->data, a, alen, b, blen) < 0 ? HSP_MUX_ESEND : 0;
}

static int flush_batch(hsp_mux_t *m) {
  if (m->batch_len == 0) return 0;
  size_t n = m->batch_len;
  m->batch_len = 0;
  return emit(m, m->batch, n, NULL, 0);
}

static bool batch_reserve(hsp_mux_t *m, size_t more) {
  if (m->batch_cap - m->batch_len >= more) return true;
  size_t n = m->batch_cap ? m->batch_cap : 4096;
  while (n - m->batch_len < more) n *= 2;
  uint8_t *q = realloc(m->batch, n);
  if (!q) return false;
  m->batch = q;
  m->batch_cap = n;
  return true;
}

static void put_uint(uint8_t *buf, size_t *len, uint64_t v) {
  hsp_cenc_t s = hsp_cenc_for_encode(buf + *len, 9);
  hsp_cenc_encode_uint(&s, v);
  *len += s.start;
}

/* Sends frame = channel type head body, or adds "type head body" to the batch. */
static int send_frame(hsp_mux_t *m, uint32_t channel, uint64_t type, const uint8_t *head,
                      size_t hlen, const uint8_t *body, size_t blen) {
  if (m->corked) {
    int rc;
    uint8_t t[9];
    size_t tl = 0;
    put_uint(t, &tl, type);
    uint64_t item = tl + hlen + blen;
    /* Worst-case growth of the batch with this item: headers, channel switch, length. */
    size_t need = 2 + 9 + 1 + 9 + 9 + (size_t)item;
    if (m->batch_len >= m->max_batch ||
        (m->batch_len && m->batch_len + need > m->max_batch)) {
      if ((rc = flush_batch(m))) return rc;
    }
    if (need > m->max_batch) goto direct; /* too big for any batch: a frame of its own */
    if (!batch_reserve(m, 2 + 9 + 1 + 9 + 9 + item)) return HSP_MUX_ENOMEM;
    if (m->batch_len == 0) {
      m->batch[m->batch_len++] = 0; /* control channel */
      m->batch[m->batch_len++] = C_BATCH;
      put_uint(m->batch, &m->batch_len, channel);
      m->batch_channel = channel;
    } else if (m->batch_channel != channel) {
      m->batch[m->batch_len++] = 0; /* a zero length switches channel */
      put_uint(m->batch, &m->batch_len, channel);
      m->batch_channel = channel;
    }
    put_uint(m->batch, &m->batch_len, item);
    memcpy(m->batch + m->batch_len, t, tl);
    m->batch_len += tl;
    if (hlen) memcpy(m->batch + m->batch_len, head, hlen);
    m->batch_len += hlen;
    if (blen) memcpy(m->batch + m->batch_len, body, blen);
    m->batch_len += blen;
    return 0;
  }
direct:;
  uint8_t a[18 + OPEN_HEAD_MAX];
  size_t al = 0;
  put_uint(a, &al, channel);
  put_uint(a, &al, type);
  if (hlen > sizeof a - al) return HSP_MUX_EINVAL; /* heads are small control fields */
  if (hlen) memcpy(a + al, head, hlen);
  return emit(m, a, al + hlen, body, blen);
}

void hsp_mux_cork(hsp_mux_t *m) { m->corked++; }

int hsp_mux_uncork(hsp_mux_t *m) {
  if (m->corked == 0 || --m->corked > 0) return 0;
  return flush_batch(m);
}

static int send_control_id(hsp_mux_t *m, uint64_t type, uint32_t id) {
  uint8_t b[9];
  size_t n = 0;
  put_uint(b, &n, id);
  return send_frame(m, 0, type, b, n, NULL, 0);
}

/* ---- Channels --------------------------------------------------------------------------- */

static local_t *get_local(const hsp_mux_t *m, uint32_t ch) {
  return ch >= 1 && ch <= m->local_len ? &m->local[ch - 1] : NULL;
}

static bool key_eq(const local_t *l, const uint8_t *p, size_t plen, const uint8_t *id,
                   size_t idlen) {
  /* The reference keys channels by protocol + hex(id), with no id and an empty id alike. */
  return l->protocol_len == plen && l->id_len == idlen && memcmp(l->protocol, p, plen) == 0 &&
         (idlen == 0 || memcmp(l->id, id, idlen) == 0);
}

static void release_id(hsp_mux_t *m, uint32_t ch) {
  m->local[ch - 1].state = L_FREE;
  m->local[ch - 1].user = NULL;
  /* free_ids has room for every local id, so this cannot fail. */
  m->free_ids[m->free_len++] = ch;
}

int hsp_mux_open(hsp_mux_t *m, const uint8_t *protocol, size_t plen, const uint8_t *id,
                 size_t idlen, bool has_id, const uint8_t *hs, size_t hslen, bool unique,
                 void *user, uint32_t *out) {
  if (plen > HSP_MUX_MAX_PROTOCOL || idlen > HSP_MUX_MAX_ID || (!has_id && idlen))
    return HSP_MUX_EINVAL;
  if (unique) {
    for (uint32_t i = 0; i < m->local_len; i++) {
      const local_t *l = &m->local[i];
      if ((l->state == L_OPENING || l->state == L_OPEN) && key_eq(l, protocol, plen, id, idlen))
        return HSP_MUX_EEXIST;
    }
  }
  uint32_t ch;
  if (m->free_len) {
    ch = m->free_ids[--m->free_len];
  } else {
    if (m->local_len >= HSP_MUX_MAX_CHANNELS) return HSP_MUX_ENOMEM;
    /* free_ids first: it must always have room for every local id. */
    if (!grow((void **)&m->free_ids, &m->free_cap, m->local_len + 1, sizeof *m->free_ids) ||
        !grow((void **)&m->local, &m->local_cap, m->local_len + 1, sizeof *m->local))
      return HSP_MUX_ENOMEM;
    ch = ++m->local_len;
  }
  local_t *l = &m->local[ch - 1];
  memset(l, 0, offsetof(local_t, protocol));
  l->protocol_len = (uint8_t)plen;
  l->id_len = (uint8_t)idlen;
  if (plen) memcpy(l->protocol, protocol, plen);
  if (idlen) memcpy(l->id, id, idlen);
  l->user = user;
  l->seq = ++m->seq;
  l->state = L_OPENING;

  /* Accepting the open request being decided: pair at once. */
  if (m->req.active && !m->req.accepted && m->remote[m->req.remote_id - 1] == PENDING &&
      m->req.r.protocol_len == plen && m->req.r.id_len == idlen &&
      (plen == 0 || memcmp(m->req.r.protocol, protocol, plen) == 0) &&
      (idlen == 0 || memcmp(m->req.r.id, id, idlen) == 0)) {
    l->state = L_OPEN;
    l->remote_id = m->req.remote_id;
    m->remote[m->req.remote_id - 1] = ch;
    m->req.accepted = ch;
  }
  m->open_count++;
  *out = ch;

  uint8_t head[OPEN_HEAD_MAX];
  hsp_cenc_t s = hsp_cenc_for_encode(head, sizeof head);
  hsp_cenc_encode_uint(&s, ch);
  hsp_cenc_encode_string(&s, (const char *)protocol, plen);
  hsp_cenc_encode_buffer(&s, id, idlen); /* optionalBuffer: length 0 is "no id" */
  return send_frame(m, 0, C_OPEN, head, s.start, hs, hslen);
}

int hsp_mux_send(hsp_mux_t *m, uint32_t ch, uint64_t type, const uint8_t *payload, size_t len) {
  local_t *l = get_local(m, ch);
  if (!l || (l->state != L_OPENING && l->state != L_OPEN)) return HSP_MUX_EINVAL;
  if (type > HSP_CENC_MAX_SAFE_INTEGER) return HSP_MUX_EINVAL;
  return send_frame(m, ch, type, NULL, 0, payload, len);
}

int hsp_mux_close(hsp_mux_t *m, uint32_t ch) {
  local_t *l = get_local(m, ch);
  if (!l || (l->state != L_OPENING && l->state != L_OPEN)) return HSP_MUX_EINVAL;
  m->open_count--;
  if (l->state == L_OPEN) {
    m->remote[l->remote_id - 1] = 0;
    release_id(m, ch);
  } else {
    /* Not paired yet: the peer's open (or reject) for this id may still be on its way, so
     * the id stays taken until it arrives. */
    l->state = L_CLOSED_UNACKED;
    l->user = NULL;
  }
  return send_control_id(m, C_CLOSE, ch);
}

bool hsp_mux_is_open(const hsp_mux_t *m, uint32_t ch) {
  const local_t *l = get_local(m, ch);
  return l && l->state == L_OPEN;
}

size_t hsp_mux_channel_count(const hsp_mux_t *m) { return m->open_count; }

void *hsp_mux_user(const hsp_mux_t *m, uint32_t ch) {
  const local_t *l = get_local(m, ch);
  return l && (l->state == L_OPENING || l->state == L_OPEN) ? l->user : NULL;
}

/* ---- Receiving -------------------------------------------------------------------------- */

static int dispatch(hsp_mux_t *m, uint64_t channel, hsp_cenc_t *s, int depth);

static int on_open(hsp_mux_t *m, hsp_cenc_t *s) {
  uint64_t rid = hsp_cenc_decode_uint(s);
  hsp_bytes_t protocol = hsp_cenc_decode_string(s);
  hsp_bytes_t id = hsp_cenc_decode_buffer(s);
  hsp_bytes_t hs = hsp_cenc_decode_raw(s);
  if (!hsp_cenc_ok(s)) return HSP_MUX_EPROTO;
  if (rid == 0) return 0;
  if (rid > HSP_MUX_MAX_CHANNELS) return HSP_MUX_EPROTO;
  uint32_t idx = (uint32_t)rid - 1;
  /* The peer's ids grow by at most one at a time, and a slot is opened only once. */
  if (idx == m->remote_len) {
    if (!grow((void **)&m->remote, &m->remote_cap, m->remote_len + 1, sizeof *m->remote))
      return HSP_MUX_ENOMEM;
    m->remote[m->remote_len++] = 0;
  }
  if (idx >= m->remote_len || m->remote[idx] != 0) return HSP_MUX_EPROTO;

  /* Pair with the oldest local channel of this key still waiting for the peer. */
  uint32_t best = 0;
  for (uint32_t i = 0; i < m->local_len; i++) {
    const local_t *l = &m->local[i];
    if ((l->state == L_OPENING || l->state == L_CLOSED_UNACKED) &&
        key_eq(l, protocol.data, protocol.len, id.data, id.len) &&
        (!best || l->seq < m->local[best - 1].seq))
      best = i + 1;
  }
  if (best) {
    local_t *l = &m->local[best - 1];
    if (l->state == L_CLOSED_UNACKED) {
      release_id(m, best); /* closed before it was paired: its id is free now */
      return 0;
    }
    l->state = L_OPEN;
    l->remote_id = (uint32_t)rid;
    m->remote[idx] = best;
    if (m->cb.on_open) m->cb.on_open(m->data, m, best, l->user, hs.data, hs.len);
    return 0;
  }

  if (m->req.active) return HSP_MUX_EPROTO; /* an open inside on_open_request: impossible */
  m->remote[idx] = PENDING;
  m->req.active = true;
  m->req.remote_id = (uint32_t)rid;
  m->req.accepted = 0;
  m->req.r = (hsp_mux_open_request_t){protocol.data, protocol.len, id.len ? id.data : NULL,
                                      id.len, hs.data, hs.len};
  if (m->cb.on_open_request) m->cb.on_open_request(m->data, m, &m->req.r);
  m->req.active = false;
  uint32_t ch = m->req.accepted;
  if (!ch) {
    m->remote[idx] = 0;
    return send_control_id(m, C_REJECT, (uint32_t)rid);
  }
  /* As the reference does, the accepting side also sees on_open with the peer's handshake
   * (if the application closed it meanwhile, the slot was already cleared). */
  local_t *l = get_local(m, ch);
  if (l && l->state == L_OPEN && l->remote_id == rid && m->cb.on_open)
    m->cb.on_open(m->data, m, ch, l->user, hs.data, hs.len);
  return 0;
}

/* protomux 3.12 can reject a channel it has already paired (its _requestSession
 * garbage-collects the pairing state of a key by name, so a channel opened meanwhile with
 * that key loses its entry and the peer's open for it is taken for a new request). The
 * reference then destroys the whole stream; we close that one channel, and ignore a reject
 * for an id no longer in use, so one race does not take every channel down with it. */
static int on_reject(hsp_mux_t *m, hsp_cenc_t *s) {
  uint64_t ch = hsp_cenc_decode_uint(s);
  if (!hsp_cenc_ok(s)) return HSP_MUX_EPROTO;
  local_t *l = ch <= UINT32_MAX ? get_local(m, (uint32_t)ch) : NULL;
  if (!l) return HSP_MUX_EPROTO; /* an id we never used */
  if (l->state == L_FREE) return 0;
  bool was_open = l->state == L_OPENING || l->state == L_OPEN;
  void *user = l->user;
  if (l->state == L_OPEN) m->remote[l->remote_id - 1] = 0;
  if (was_open) m->open_count--;
  release_id(m, (uint32_t)ch);
  if (was_open && m->cb.on_close) m->cb.on_close(m->data, m, (uint32_t)ch, user);
  return 0;
}

static int on_close(hsp_mux_t *m, hsp_cenc_t *s) {
  uint64_t rid = hsp_cenc_decode_uint(s);
  if (!hsp_cenc_ok(s)) return HSP_MUX_EPROTO;
  if (rid == 0 || rid > m->remote_len) return 0;
  uint32_t ch = m->remote[rid - 1];
  if (ch == 0 || ch == PENDING) return 0;
  void *user = m->local[ch - 1].user;
  m->remote[rid - 1] = 0;
  m->open_count--;
  release_id(m, ch);
  if (m->cb.on_close) m->cb.on_close(m->data, m, ch, user);
  return 0;
}

static int on_batch(hsp_mux_t *m, hsp_cenc_t *s, int depth) {
  uint64_t channel = hsp_cenc_decode_uint(s);
  if (!hsp_cenc_ok(s)) return HSP_MUX_EPROTO;
  size_t end = s->end;
  bool corked = false;
  int rc = 0;
  while (s->start < end) {
    uint64_t len = hsp_cenc_decode_uint(s);
    if (!hsp_cenc_ok(s)) {
      rc = HSP_MUX_EPROTO;
      break;
    }
    if (len == 0) {
      channel = hsp_cenc_decode_uint(s);
      if (!hsp_cenc_ok(s)) {
        rc = HSP_MUX_EPROTO;
        break;
      }
      continue;
    }
    /* An item longer than the frame is cut at its end, as in the reference. */
    size_t item_end = len < end - s->start ? s->start + (size_t)len : end;
    if (item_end != end && !corked) {
      /* Several items: answer them with one batch too. */
      hsp_mux_cork(m);
      corked = true;
    }
    hsp_cenc_t item = {s->buf, s->start, item_end, 0};
    if ((rc = dispatch(m, channel, &item, depth + 1)) < 0) break;
    s->start = item_end;
  }
  if (corked) {
    int urc = hsp_mux_uncork(m);
    if (!rc) rc = urc;
  }
  return rc;
}

static int dispatch(hsp_mux_t *m, uint64_t channel, hsp_cenc_t *s, int depth) {
  uint64_t type = hsp_cenc_decode_uint(s);
  if (!hsp_cenc_ok(s)) return HSP_MUX_EPROTO;
  if (channel == 0) {
    switch (type) {
    case C_BATCH:
      if (depth >= HSP_MUX_MAX_NESTING) return HSP_MUX_EPROTO;
      return on_batch(m, s, depth);
    case C_OPEN: return on_open(m, s);
    case C_REJECT: return on_reject(m, s);
    case C_CLOSE: return on_close(m, s);
    default: return 0; /* unknown control messages are ignored */
    }
  }
  if (channel > m->remote_len) return 0; /* closed or never opened: maybe in flight */
  uint32_t ch = m->remote[channel - 1];
  if (ch == 0 || ch == PENDING) return 0;
  hsp_bytes_t payload = hsp_cenc_decode_raw(s);
  if (m->cb.on_message)
    m->cb.on_message(m->data, m, ch, m->local[ch - 1].user, type, payload.data, payload.len);
  return 0;
}

int hsp_mux_recv(hsp_mux_t *m, const uint8_t *frame, size_t len) {
  if (len == 0) return 0; /* empty frames are ignored */
  hsp_cenc_t s = hsp_cenc_for_decode(frame, len);
  uint64_t channel = hsp_cenc_decode_uint(&s);
  if (!hsp_cenc_ok(&s)) return HSP_MUX_EPROTO;
  return dispatch(m, channel, &s, 0);
}
