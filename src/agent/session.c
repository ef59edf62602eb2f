#include "session.h"

#include "compact.h"

#include <stdlib.h>
#include <string.h>

enum { T_DATA = 0, T_END = 1, T_CREDIT = 2, T_READY = 3, T_ERROR = 4 };
enum { S_PING = 0, S_PONG = 1, S_GOAWAY = 2 };

typedef struct tun {
  void *user;
  bool client;        /* opened by this side (the proxy) */
  bool ready;         /* client: READY received; service: READY sent */
  bool ended_local, want_writable;
  int err;            /* the reason given by the peer before its close */
  uint64_t peer_window;
  uint64_t credit;     /* bytes this side may still send */
  uint64_t recv_avail; /* bytes the peer may still send */
  uint64_t unconsumed; /* received, not yet consumed */
  uint64_t unreported; /* consumed, not yet granted back */
} tun_t;

struct hsp_sess {
  hsp_sess_config_t cfg;
  hsp_sess_callbacks_t cb;
  void *ud;
  hsp_mux_t *mux;
  uint32_t ctl;
  uint64_t now, last_recv, last_ping, idle_since, nonce, next_id;
  size_t tunnels;
  bool dead, peer_goaway, freeing;
  void (*detach)(void *ctx, void *user); /* hsp_sess_free_detach: instead of on_close */
  void *detach_ctx;
};

/* The session channel's user pointer: tells it apart from tunnels in mux callbacks. */
static char ctl_marker;

const char *hsp_sess_strerror(int err) {
  switch (err) {
  case 0: return "ok";
  case HSP_SESS_EPROTO: return "malformed session message";
  case HSP_SESS_ENOMEM: return "out of memory";
  case HSP_SESS_EINVAL: return "unknown tunnel or wrong state";
  case HSP_SESS_EREFUSED: return "the service's backend refused the connection";
  case HSP_SESS_EGOAWAY: return "the service is draining";
  case HSP_SESS_EDEAD: return "session ended";
  case HSP_SESS_EFLOW: return "peer exceeded its flow-control credit";
  case HSP_SESS_ESEND: return "send failed";
  case HSP_SESS_EREJECTED: return "the peer rejected the tunnel";
  default: return "unknown error";
  }
}

static int mux_send(void *d, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
  hsp_sess_t *s = d;
  return s->cb.send ? s->cb.send(s->ud, a, alen, b, blen) : 0;
}

static size_t put_uint(uint8_t *buf, uint64_t v) {
  hsp_cenc_t e = hsp_cenc_for_encode(buf, 9);
  hsp_cenc_encode_uint(&e, v);
  return e.start;
}

static int send_uint(hsp_sess_t *s, uint32_t ch, uint64_t type, uint64_t v) {
  uint8_t b[9];
  int rc = hsp_mux_send(s->mux, ch, type, b, put_uint(b, v));
  return rc == HSP_MUX_ESEND ? HSP_SESS_ESEND : rc < 0 ? HSP_SESS_EINVAL : 0;
}

static size_t handshake(uint8_t *buf, uint32_t window) {
  size_t n = put_uint(buf, HSP_SESS_VERSION);
  return n + put_uint(buf + n, window);
}

/* version, window; later versions may append fields. */
static bool parse_handshake(const uint8_t *p, size_t len, uint64_t *window) {
  hsp_cenc_t d = hsp_cenc_for_decode(p, len);
  uint64_t version = hsp_cenc_decode_uint(&d);
  *window = hsp_cenc_decode_uint(&d);
  return hsp_cenc_ok(&d) && version >= 1 && *window > 0 && *window <= HSP_SESS_MAX_WINDOW;
}

static void tunnel_gone(hsp_sess_t *s) {
  if (s->tunnels && --s->tunnels == 0) s->idle_since = s->now;
}

static tun_t *get_tun(const hsp_sess_t *s, uint32_t ch) {
  void *u = hsp_mux_user(s->mux, ch);
  return u && u != &ctl_marker ? u : NULL;
}

static void on_open_request(void *d, hsp_mux_t *mux, const hsp_mux_open_request_t *r) {
  hsp_sess_t *s = d;
  static const size_t tcp_len = sizeof HSP_SESS_TCP_PROTOCOL - 1;
  if (r->protocol_len != tcp_len || memcmp(r->protocol, HSP_SESS_TCP_PROTOCOL, tcp_len) != 0)
    return; /* unknown protocol (or a second session channel): rejected */
  uint64_t window;
  if (!s->cb.on_accept || !parse_handshake(r->handshake, r->handshake_len, &window)) return;
  tun_t *t = calloc(1, sizeof *t);
  if (!t) return;
  t->peer_window = t->credit = window;
  t->recv_avail = s->cfg.window;
  uint8_t hs[18];
  uint32_t ch;
  if (hsp_mux_open(mux, r->protocol, r->protocol_len, r->id, r->id_len, r->id != NULL, hs,
                   handshake(hs, s->cfg.window), false, t, &ch) < 0) {
    free(t);
    return;
  }
  s->tunnels++;
  void *user = s->cb.on_accept(s->ud, s, ch);
  if (hsp_mux_user(mux, ch) != t) return; /* refused (and freed) inside the callback */
  t->user = user;
  if (!t->user) {
    uint8_t b[9];
    hsp_mux_send(mux, ch, T_ERROR, b, put_uint(b, HSP_SESS_CODE_GOAWAY));
    hsp_mux_close(mux, ch);
    free(t);
    tunnel_gone(s);
  }
}

static void on_open(void *d, hsp_mux_t *mux, uint32_t ch, void *user, const uint8_t *hs,
                    size_t hslen) {
  hsp_sess_t *s = d;
  tun_t *t = user;
  if (user == &ctl_marker || !t || !t->client) return;
  uint64_t window;
  if (!parse_handshake(hs, hslen, &window)) {
    /* Not our protocol on the other side: treat as a refusal. */
    hsp_mux_close(mux, ch);
    tunnel_gone(s);
    void *u = t->user;
    free(t);
    if (s->cb.on_close) s->cb.on_close(s->ud, s, ch, u, HSP_SESS_EPROTO);
    return;
  }
  t->peer_window = t->credit = window;
}

/* Closes a tunnel from this side because the peer broke the protocol. */
static void fail_tunnel(hsp_sess_t *s, uint32_t ch, tun_t *t, int err) {
  hsp_mux_close(s->mux, ch);
  tunnel_gone(s);
  void *u = t->user;
  free(t);
  if (s->cb.on_close) s->cb.on_close(s->ud, s, ch, u, err);
}

static void on_ctl_message(hsp_sess_t *s, uint64_t type, const uint8_t *p, size_t len) {
  if (type == S_PING) {
    hsp_mux_send(s->mux, s->ctl, S_PONG, p, len);
  } else if (type == S_GOAWAY && !s->peer_goaway) {
    s->peer_goaway = true;
    if (s->cb.on_goaway) s->cb.on_goaway(s->ud, s);
  }
}

static void on_message(void *d, hsp_mux_t *mux, uint32_t ch, void *user, uint64_t type,
                       const uint8_t *p, size_t len) {
  hsp_sess_t *s = d;
  (void)mux;
  if (user == &ctl_marker) {
    on_ctl_message(s, type, p, len);
    return;
  }
  tun_t *t = user;
  if (!t) return;
  switch (type) {
  case T_DATA:
    if ((t->client && !t->ready) || len > t->recv_avail) {
      fail_tunnel(s, ch, t, HSP_SESS_EFLOW);
      return;
    }
    t->recv_avail -= len;
    t->unconsumed += len;
    if (len && s->cb.on_data) s->cb.on_data(s->ud, s, ch, t->user, p, len);
    return;
  case T_END:
    if (s->cb.on_end) s->cb.on_end(s->ud, s, ch, t->user);
    return;
  case T_CREDIT: {
    hsp_cenc_t dec = hsp_cenc_for_decode(p, len);
    uint64_t n = hsp_cenc_decode_uint(&dec);
    /* Credit beyond the window the peer announced would be a grant for bytes never sent. */
    if (!hsp_cenc_ok(&dec) || n > t->peer_window - t->credit) {
      fail_tunnel(s, ch, t, HSP_SESS_EFLOW);
      return;
    }
    t->credit += n;
    if (n && t->want_writable) {
      t->want_writable = false;
      if (s->cb.on_writable) s->cb.on_writable(s->ud, s, ch, t->user);
    }
    return;
  }
  case T_READY:
    if (t->client && !t->ready) {
      t->ready = true;
      if (s->cb.on_ready) s->cb.on_ready(s->ud, s, ch, t->user);
    }
    return;
  case T_ERROR: {
    hsp_cenc_t dec = hsp_cenc_for_decode(p, len);
    uint64_t code = hsp_cenc_decode_uint(&dec);
    t->err = code == HSP_SESS_CODE_GOAWAY ? HSP_SESS_EGOAWAY : HSP_SESS_EREFUSED;
    return;
  }
  default: return; /* unknown types are ignored: room for later versions */
  }
}

static void on_close(void *d, hsp_mux_t *mux, uint32_t ch, void *user) {
  hsp_sess_t *s = d;
  (void)mux;
  if (user == &ctl_marker) {
    s->ctl = 0;
    return;
  }
  tun_t *t = user;
  if (!t) return;
  int err = s->freeing ? HSP_SESS_EDEAD
            : t->err   ? t->err
            : t->client && !t->ready ? HSP_SESS_EREJECTED
                                     : 0;
  void *u = t->user;
  bool ready = t->ready;
  free(t);
  tunnel_gone(s);
  if (s->detach && u && !ready) s->detach(s->detach_ctx, u);
  else if (s->cb.on_close && u) s->cb.on_close(s->ud, s, ch, u, err);
}

hsp_sess_t *hsp_sess_new(const hsp_sess_config_t *cfg, const hsp_sess_callbacks_t *cb, void *ud,
                         uint64_t now_ms) {
  hsp_sess_t *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  if (cfg) s->cfg = *cfg;
  if (!s->cfg.window || s->cfg.window > HSP_SESS_MAX_WINDOW) s->cfg.window = HSP_SESS_DEFAULT_WINDOW;
  if (!s->cfg.ping_ms) s->cfg.ping_ms = 250;
  if (!s->cfg.dead_ms) s->cfg.dead_ms = 1000;
  s->cb = *cb;
  s->ud = ud;
  s->now = s->last_recv = s->last_ping = s->idle_since = now_ms;
  hsp_mux_callbacks_t mcb = {mux_send, on_open_request, on_open, on_message, on_close};
  s->mux = hsp_mux_new(&mcb, s);
  if (!s->mux) {
    free(s);
    return NULL;
  }
  /* A frame is one secret-stream message, which the stream writes as at most 64 KiB. */
  hsp_mux_set_max_batch(s->mux, HSP_SESS_MAX_FRAME);
  uint8_t hs[9];
  if (hsp_mux_open(s->mux, (const uint8_t *)HSP_SESS_PROTOCOL, sizeof HSP_SESS_PROTOCOL - 1,
                   NULL, 0, false, hs, put_uint(hs, HSP_SESS_VERSION), true, &ctl_marker,
                   &s->ctl) < 0) {
    /* Only a failing send can get here; the session is then dead from the start. */
    s->dead = true;
  }
  return s;
}

void hsp_sess_free(hsp_sess_t *s) {
  if (!s) return;
  s->freeing = true;
  hsp_mux_destroy(s->mux);
  free(s);
}

void hsp_sess_free_detach(hsp_sess_t *s, void (*each)(void *ctx, void *user), void *ctx) {
  if (!s) return;
  s->detach = each;
  s->detach_ctx = ctx;
  hsp_sess_free(s);
}

int hsp_sess_recv(hsp_sess_t *s, const uint8_t *frame, size_t len, uint64_t now_ms) {
  if (s->dead) return HSP_SESS_EDEAD;
  s->now = s->last_recv = now_ms;
  int rc = hsp_mux_recv(s->mux, frame, len);
  if (rc < 0) {
    s->dead = true;
    return rc == HSP_MUX_ENOMEM ? HSP_SESS_ENOMEM : HSP_SESS_EPROTO;
  }
  return 0;
}

uint64_t hsp_sess_tick(hsp_sess_t *s, uint64_t now_ms) {
  if (now_ms > s->now) s->now = now_ms;
  now_ms = s->now;
  if (s->dead) return now_ms;
  if (now_ms - s->last_recv >= s->cfg.dead_ms) {
    s->dead = true;
    return now_ms;
  }
  uint64_t next_ping;
  if (now_ms - s->last_recv >= s->cfg.ping_ms) {
    if (now_ms - s->last_ping >= s->cfg.ping_ms) {
      uint8_t b[9];
      if (s->ctl) hsp_mux_send(s->mux, s->ctl, S_PING, b, put_uint(b, ++s->nonce));
      s->last_ping = now_ms;
    }
    next_ping = s->last_ping + s->cfg.ping_ms;
  } else {
    next_ping = s->last_recv + s->cfg.ping_ms;
  }
  uint64_t dead_at = s->last_recv + s->cfg.dead_ms;
  return next_ping < dead_at ? next_ping : dead_at;
}

int hsp_sess_open(hsp_sess_t *s, void *user, uint32_t *ch) {
  if (s->dead) return HSP_SESS_EDEAD;
  if (s->peer_goaway) return HSP_SESS_EGOAWAY;
  if (!user) return HSP_SESS_EINVAL;
  tun_t *t = calloc(1, sizeof *t);
  if (!t) return HSP_SESS_ENOMEM;
  t->user = user;
  t->client = true;
  t->recv_avail = s->cfg.window;
  uint8_t id[8], hs[18];
  uint64_t n = ++s->next_id;
  for (int i = 0; i < 8; i++) id[i] = (uint8_t)(n >> (8 * i));
  int rc = hsp_mux_open(s->mux, (const uint8_t *)HSP_SESS_TCP_PROTOCOL,
                        sizeof HSP_SESS_TCP_PROTOCOL - 1, id, sizeof id, true, hs,
                        handshake(hs, s->cfg.window), false, t, ch);
  if (rc < 0) {
    if (rc != HSP_MUX_ESEND) {
      free(t);
      return rc == HSP_MUX_ENOMEM ? HSP_SESS_ENOMEM : HSP_SESS_EINVAL;
    }
    /* The channel exists but its open could not be written: take it down again. */
    hsp_mux_close(s->mux, *ch);
    free(t);
    return HSP_SESS_ESEND;
  }
  s->tunnels++;
  return 0;
}

int hsp_sess_ready(hsp_sess_t *s, uint32_t ch) {
  tun_t *t = get_tun(s, ch);
  if (!t || t->client || t->ready) return HSP_SESS_EINVAL;
  t->ready = true;
  int rc = hsp_mux_send(s->mux, ch, T_READY, NULL, 0);
  return rc < 0 ? HSP_SESS_ESEND : 0;
}

int hsp_sess_refuse(hsp_sess_t *s, uint32_t ch, int code) {
  tun_t *t = get_tun(s, ch);
  if (!t || t->client || t->ready) return HSP_SESS_EINVAL;
  send_uint(s, ch, T_ERROR, (uint64_t)(code > 0 ? code : HSP_SESS_CODE_REFUSED));
  return hsp_sess_close(s, ch);
}

long hsp_sess_write(hsp_sess_t *s, uint32_t ch, const uint8_t *p, size_t len) {
  tun_t *t = get_tun(s, ch);
  if (!t || t->ended_local || (t->client && !t->ready)) return HSP_SESS_EINVAL;
  size_t n = len < t->credit ? len : (size_t)t->credit;
  size_t off = 0;
  while (off < n) {
    size_t k = n - off < HSP_SESS_MAX_DATA ? n - off : HSP_SESS_MAX_DATA;
    if (hsp_mux_send(s->mux, ch, T_DATA, p + off, k) < 0) return HSP_SESS_ESEND;
    off += k;
  }
  t->credit -= n;
  if (n < len) t->want_writable = true;
  return (long)n;
}

int hsp_sess_consumed(hsp_sess_t *s, uint32_t ch, size_t n) {
  tun_t *t = get_tun(s, ch);
  if (!t || n > t->unconsumed) return HSP_SESS_EINVAL;
  t->unconsumed -= n;
  t->unreported += n;
  /* Granting in quarter-window steps keeps credit messages rare without letting the window
   * run dry while the sender waits a round trip. */
  if (t->unreported >= s->cfg.window / 4 || (t->unconsumed == 0 && t->recv_avail == 0)) {
    uint64_t g = t->unreported;
    t->unreported = 0;
    t->recv_avail += g;
    return send_uint(s, ch, T_CREDIT, g);
  }
  return 0;
}

int hsp_sess_end(hsp_sess_t *s, uint32_t ch) {
  tun_t *t = get_tun(s, ch);
  if (!t || t->ended_local) return HSP_SESS_EINVAL;
  t->ended_local = true;
  return hsp_mux_send(s->mux, ch, T_END, NULL, 0) < 0 ? HSP_SESS_ESEND : 0;
}

int hsp_sess_close(hsp_sess_t *s, uint32_t ch) {
  tun_t *t = get_tun(s, ch);
  if (!t) return HSP_SESS_EINVAL;
  free(t);
  tunnel_gone(s);
  return hsp_mux_close(s->mux, ch) == HSP_MUX_ESEND ? HSP_SESS_ESEND : 0;
}

int hsp_sess_goaway(hsp_sess_t *s) {
  if (!s->ctl) return HSP_SESS_EINVAL;
  return hsp_mux_send(s->mux, s->ctl, S_GOAWAY, NULL, 0) < 0 ? HSP_SESS_ESEND : 0;
}

void hsp_sess_cork(hsp_sess_t *s) { hsp_mux_cork(s->mux); }
int hsp_sess_uncork(hsp_sess_t *s) { return hsp_mux_uncork(s->mux) < 0 ? HSP_SESS_ESEND : 0; }

size_t hsp_sess_tunnels(const hsp_sess_t *s) { return s->tunnels; }

size_t hsp_sess_credit(const hsp_sess_t *s, uint32_t ch) {
  const tun_t *t = get_tun(s, ch);
  return t && !(t->client && !t->ready) ? (size_t)t->credit : 0;
}

bool hsp_sess_peer_goaway(const hsp_sess_t *s) { return s->peer_goaway; }
bool hsp_sess_is_dead(const hsp_sess_t *s) { return s->dead; }
uint64_t hsp_sess_idle_since(const hsp_sess_t *s) { return s->tunnels ? UINT64_MAX : s->idle_since; }

void *hsp_sess_user(const hsp_sess_t *s, uint32_t ch) {
  const tun_t *t = get_tun(s, ch);
  return t ? t->user : NULL;
}
