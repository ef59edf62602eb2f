/* The service's tunnel endpoint, health checks and drain (dataplane.h). */
#include "dataplane.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TICK_MS 25

typedef struct svc_conn {
  hsp_dp_service_t *s;
  hsp_dht_conn_t *conn;
  hsp_sess_t *sess;
  struct svc_conn *prev, *next;
} svc_conn_t;

typedef struct tunnel {
  hsp_dp_service_t *s;
  svc_conn_t *sc; /* valid while in_sess */
  uint32_t ch;
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_timer_t *delay; /* ready_delay_ms */
  bool in_sess, connected, closing, tcp_eof, peer_end, shut, reading;
  char *pend;
  size_t pend_off, pend_len;
  struct tunnel *prev, *next;
} tunnel_t;

typedef struct check {
  hsp_dp_service_t *s; /* NULL once its result is in */
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  hsp_health_http_t http;
  char req[HSP_HEALTH_PATH_MAX + 256];
  uint64_t deadline;
} check_t;

struct hsp_dp_service {
  uv_loop_t *loop;
  hsp_dp_service_config_t cfg;
  struct sockaddr_storage target;
  char target_name[80];
  uv_timer_t timer;
  svc_conn_t *conns;
  tunnel_t *tunnels;
  size_t ntunnels;
  hsp_health_t health;
  check_t *check;
  hsp_drain_t drain;
  void (*drain_done)(void *);
  void *drain_ctx;
  int handles;
  bool closing;
  void (*close_cb)(void *);
  void *close_ctx;
};

static uint64_t now_ms(hsp_dp_service_t *s) { return uv_now(s->loop); }

static void logf_(hsp_dp_service_t *s, const char *fmt, ...) {
  if (!s->cfg.log) return;
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  s->cfg.log(s->cfg.log_ud, line);
}

static void handle_gone(hsp_dp_service_t *s);

/* ---- tunnels: session channel <-> backend TCP ---- */

/* The delay timer may outlive its tunnel: it carries the service while closing. */
static void delay_closed(uv_handle_t *h) {
  hsp_dp_service_t *s = h->data;
  free(h);
  handle_gone(s);
}

static void close_delay(tunnel_t *t) {
  if (!t->delay) return;
  t->delay->data = t->s;
  uv_close((uv_handle_t *)t->delay, delay_closed);
  t->delay = NULL;
}

static void tunnel_closed(uv_handle_t *h) {
  tunnel_t *t = h->data;
  hsp_dp_service_t *s = t->s;
  if (t->prev) t->prev->next = t->next;
  else s->tunnels = t->next;
  if (t->next) t->next->prev = t->prev;
  s->ntunnels--;
  free(t->pend);
  free(t);
  handle_gone(s);
}

/* Ends a tunnel: the channel (if still open) and the backend connection. */
static void tunnel_end(tunnel_t *t) {
  if (t->in_sess) {
    t->in_sess = false;
    hsp_sess_close(t->sc->sess, t->ch);
  }
  close_delay(t);
  if (!t->closing) {
    t->closing = true;
    uv_close((uv_handle_t *)&t->tcp, tunnel_closed);
  }
}

static void maybe_finish(tunnel_t *t) {
  if (t->tcp_eof && t->peer_end && t->shut) tunnel_end(t);
}

static void alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  (void)h;
  if (size > HSP_SESS_MAX_DATA) size = HSP_SESS_MAX_DATA;
  buf->base = malloc(size);
  buf->len = buf->base ? size : 0;
}

static void backend_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);

static void start_reading(tunnel_t *t) {
  if (t->reading || t->tcp_eof || t->closing || t->pend || !t->connected) return;
  t->reading = true;
  uv_read_start((uv_stream_t *)&t->tcp, alloc_cb, backend_read);
}

static void backend_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  tunnel_t *t = st->data;
  if (n > 0 && t->in_sess) {
    long took = hsp_sess_write(t->sc->sess, t->ch, (const uint8_t *)buf->base, (size_t)n);
    if (took < 0) {
      free(buf->base);
      tunnel_end(t);
      return;
    }
    if ((size_t)took < (size_t)n) {
      t->pend = buf->base;
      t->pend_off = (size_t)took;
      t->pend_len = (size_t)n;
      t->reading = false;
      uv_read_stop(st);
      return;
    }
  }
  free(buf->base);
  if (n == UV_EOF) {
    t->reading = false;
    uv_read_stop(st);
    t->tcp_eof = true;
    if (t->in_sess) hsp_sess_end(t->sc->sess, t->ch);
    maybe_finish(t);
  } else if (n < 0) {
    tunnel_end(t);
  }
}


static void on_ready_delay(uv_timer_t *timer) {
  tunnel_t *t = timer->data;
  close_delay(t);
  if (t->closing || !t->in_sess) return;
  hsp_sess_ready(t->sc->sess, t->ch);
  start_reading(t);
}

static void on_backend_connected(uv_connect_t *req, int status) {
  tunnel_t *t = req->data;
  if (t->closing) return;
  if (status < 0) {
    logf_(t->s, "service: backend %s refused a connection: %s", t->s->target_name,
          uv_strerror(status));
    if (t->in_sess) {
      t->in_sess = false;
      hsp_sess_refuse(t->sc->sess, t->ch, HSP_SESS_CODE_REFUSED);
    }
    tunnel_end(t);
    return;
  }
  t->connected = true;
  uv_tcp_nodelay(&t->tcp, 1);
  if (!t->in_sess) { /* the proxy gave up meanwhile */
    tunnel_end(t);
    return;
  }
  if (t->s->cfg.ready_delay_ms) {
    t->delay = malloc(sizeof *t->delay);
    if (t->delay) {
      uv_timer_init(t->s->loop, t->delay);
      t->delay->data = t;
      t->s->handles++;
      uv_timer_start(t->delay, on_ready_delay, t->s->cfg.ready_delay_ms, 0);
      return;
    }
  }
  hsp_sess_ready(t->sc->sess, t->ch);
  start_reading(t);
}

static void *sess_accept(void *ud, hsp_sess_t *sess, uint32_t ch) {
  svc_conn_t *sc = ud;
  hsp_dp_service_t *s = sc->s;
  (void)sess;
  if (!hsp_drain_accepting(&s->drain) || s->closing) return NULL;
  tunnel_t *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->s = s;
  t->sc = sc;
  t->ch = ch;
  t->in_sess = true;
  uv_tcp_init(s->loop, &t->tcp);
  t->tcp.data = t;
  t->creq.data = t;
  s->handles++;
  s->ntunnels++;
  t->next = s->tunnels;
  if (s->tunnels) s->tunnels->prev = t;
  s->tunnels = t;
  if (uv_tcp_connect(&t->creq, &t->tcp, (const struct sockaddr *)&s->target,
                     on_backend_connected) != 0) {
    /* Refused at once: answer after this callback, from the connect path's logic. */
    t->in_sess = false;
    t->closing = true;
    uv_close((uv_handle_t *)&t->tcp, tunnel_closed);
    return NULL;
  }
  return t;
}

typedef struct wreq {
  uv_write_t req;
  tunnel_t *t;
  size_t n;
  char data[];
} wreq_t;

static void on_backend_written(uv_write_t *req, int status) {
  wreq_t *w = (wreq_t *)req;
  tunnel_t *t = w->t;
  if (status == 0 && t->in_sess) hsp_sess_consumed(t->sc->sess, t->ch, w->n);
  free(w);
}

static void sess_data(void *ud, hsp_sess_t *sess, uint32_t ch, void *user, const uint8_t *p,
                      size_t n) {
  (void)ud;
  tunnel_t *t = user;
  if (t->closing) {
    hsp_sess_consumed(sess, ch, n);
    return;
  }
  /* Most of the time the socket takes it all at once: no copy, no request, credit at once. */
  uv_buf_t now = uv_buf_init((char *)p, (unsigned)n);
  int sent = uv_try_write((uv_stream_t *)&t->tcp, &now, 1);
  if (sent > 0) {
    hsp_sess_consumed(sess, ch, (size_t)sent);
    p += sent;
    n -= (size_t)sent;
    if (!n) return;
  }
  wreq_t *w = malloc(sizeof *w + n);
  if (!w) {
    tunnel_end(t);
    return;
  }
  w->t = t;
  w->n = n;
  memcpy(w->data, p, n);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
  if (uv_write(&w->req, (uv_stream_t *)&t->tcp, &b, 1, on_backend_written) != 0) {
    free(w);
    tunnel_end(t);
  }
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  tunnel_t *t = req->data;
  free(req);
  t->shut = true;
  if (status == 0) maybe_finish(t);
}

static void sess_end(void *ud, hsp_sess_t *sess, uint32_t ch, void *user) {
  (void)ud, (void)sess, (void)ch;
  tunnel_t *t = user;
  if (t->closing) return;
  t->peer_end = true;
  uv_shutdown_t *req = malloc(sizeof *req);
  if (req) req->data = t;
  if (!req || uv_shutdown(req, (uv_stream_t *)&t->tcp, on_shutdown) != 0) {
    free(req);
    tunnel_end(t);
  }
}

static void sess_writable(void *ud, hsp_sess_t *sess, uint32_t ch, void *user) {
  (void)ud;
  tunnel_t *t = user;
  if (!t->pend) return;
  long took = hsp_sess_write(sess, ch, (const uint8_t *)t->pend + t->pend_off,
                             t->pend_len - t->pend_off);
  if (took < 0) {
    tunnel_end(t);
    return;
  }
  t->pend_off += (size_t)took;
  if (t->pend_off == t->pend_len) {
    free(t->pend);
    t->pend = NULL;
    start_reading(t);
  }
}

static void sess_close(void *ud, hsp_sess_t *sess, uint32_t ch, void *user, int err) {
  (void)ud, (void)sess, (void)ch, (void)err;
  tunnel_t *t = user;
  t->in_sess = false;
  tunnel_end(t);
}

static int sess_send(void *ud, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
  svc_conn_t *sc = ud;
  if (!sc->conn || alen + blen > HSP_DP_FRAME_MAX) return -1;
  struct iovec v[2] = {{.iov_base = (void *)a, .iov_len = alen}, {.iov_base = (void *)b, .iov_len = blen}};
  return hsp_dht_conn_writev(sc->conn, v, 2, NULL, NULL) ? -1 : 0;
}

static const hsp_sess_callbacks_t sess_cb = {sess_send, sess_accept, NULL, sess_data,
                                             sess_end, sess_writable, sess_close, NULL};

/* ---- sessions: one per incoming HyperDHT connection ---- */

static void conn_drop(svc_conn_t *sc) {
  hsp_dp_service_t *s = sc->s;
  if (sc->prev) sc->prev->next = sc->next;
  else s->conns = sc->next;
  if (sc->next) sc->next->prev = sc->prev;
  hsp_dht_conn_t *c = sc->conn;
  sc->conn = NULL;
  if (c) {
    hsp_dht_conn_set_callbacks(c, NULL, NULL, NULL);
    hsp_dht_conn_destroy(c);
  }
  hsp_sess_free(sc->sess); /* every tunnel's backend connection closes */
  free(sc);
}

static void conn_read(hsp_dht_conn_t *c, const uint8_t *buf, ssize_t len) {
  svc_conn_t *sc = hsp_dht_conn_user(c);
  if (!sc) return;
  if (len < 0 || hsp_sess_recv(sc->sess, buf, (size_t)len, now_ms(sc->s)) < 0) conn_drop(sc);
}

static void conn_close(hsp_dht_conn_t *c, int status) {
  (void)status;
  svc_conn_t *sc = hsp_dht_conn_user(c);
  if (!sc) return;
  sc->conn = NULL;
  conn_drop(sc);
}

bool hsp_dp_is_session_open(const uint8_t *msg, size_t len) {
  /* control channel 0, type 1 (open), local id, then the protocol name as a string */
  static const char proto[] = HSP_SESS_PROTOCOL;
  const size_t plen = sizeof proto - 1;
  if (len < 4 + plen || msg[0] != 0 || msg[1] != 1) return false;
  size_t at = 2;
  if (msg[at] >= 0xfd) return false; /* our session channel is always among the first ids */
  at++;
  return msg[at] == plen && memcmp(msg + at + 1, proto, plen) == 0;
}

void hsp_dp_service_connection(hsp_dp_service_t *s, hsp_dht_conn_t *conn, const uint8_t *first,
                               size_t first_len) {
  svc_conn_t *sc = calloc(1, sizeof *sc);
  if (!sc) {
    hsp_dht_conn_destroy(conn);
    return;
  }
  sc->s = s;
  sc->conn = conn;
  hsp_dht_conn_set_callbacks(conn, conn_read, conn_close, sc);
  sc->sess = hsp_sess_new(&s->cfg.sess, &sess_cb, sc, now_ms(s));
  if (!sc->sess) {
    hsp_dht_conn_set_callbacks(conn, NULL, NULL, NULL);
    hsp_dht_conn_destroy(conn);
    free(sc);
    return;
  }
  sc->next = s->conns;
  if (s->conns) s->conns->prev = sc;
  s->conns = sc;
  if (s->drain.state != HSP_DRAIN_RUNNING) hsp_sess_goaway(sc->sess);
  if (first && hsp_sess_recv(sc->sess, first, first_len, now_ms(s)) < 0) conn_drop(sc);
}

/* ---- health checks ---- */

static void set_registered(hsp_dp_service_t *s, hsp_health_action_t a, const char *why) {
  if (a == HSP_HEALTH_REGISTER) {
    logf_(s, "service: backend %s healthy%s: registering", s->target_name, why);
    if (s->cfg.on_register) s->cfg.on_register(s->cfg.ud);
  } else if (a == HSP_HEALTH_DEREGISTER) {
    logf_(s, "service: backend %s unhealthy%s: deregistering", s->target_name, why);
    if (s->cfg.on_deregister) s->cfg.on_deregister(s->cfg.ud);
  }
}

static void check_closed(uv_handle_t *h) {
  check_t *k = h->data;
  hsp_dp_service_t *s = k->s;
  free(k);
  if (s) handle_gone(s);
}

static void check_result(check_t *k, bool ok, const char *why) {
  hsp_dp_service_t *s = k->s;
  if (!s || s->check != k) return;
  s->check = NULL;
  uv_close((uv_handle_t *)&k->tcp, check_closed);
  if (s->drain.state != HSP_DRAIN_RUNNING || s->closing) {
    hsp_health_result(&s->health, now_ms(s), ok);
    return;
  }
  set_registered(s, hsp_health_result(&s->health, now_ms(s), ok), why);
}

static void check_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  (void)h;
  (void)size;
  static char scratch[4096]; /* consumed at once by the parser */
  buf->base = scratch;
  buf->len = sizeof scratch;
}

static void check_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  check_t *k = st->data;
  int r = n > 0 ? hsp_health_http_feed(&k->http, (const uint8_t *)buf->base, (size_t)n)
                : hsp_health_http_feed(&k->http, NULL, 0);
  if (n == 0) return;
  if (r == -1) return;
  char why[64] = "";
  if (k->http.status) snprintf(why, sizeof why, " (HTTP %d)", k->http.status);
  else if (r == 0) snprintf(why, sizeof why, " (no HTTP status)");
  check_result(k, r == 1, why);
}

static void check_written(uv_write_t *req, int status) {
  check_t *k = req->data;
  if (status < 0) check_result(k, false, " (write failed)");
}

static void check_connected(uv_connect_t *req, int status) {
  check_t *k = req->data;
  if (!k->s || k->s->check != k) return;
  if (status < 0) {
    char why[96];
    snprintf(why, sizeof why, " (%s)", uv_strerror(status));
    check_result(k, false, why);
    return;
  }
  if (k->s->health.cfg.kind == HSP_HEALTH_TCP) {
    check_result(k, true, "");
    return;
  }
  int n = hsp_health_http_request(&k->s->health.cfg, k->s->target_name, k->req, sizeof k->req);
  uv_buf_t b = uv_buf_init(k->req, n > 0 ? (unsigned)n : 0);
  k->wreq.data = k;
  if (n <= 0 || uv_write(&k->wreq, (uv_stream_t *)&k->tcp, &b, 1, check_written) != 0 ||
      uv_read_start((uv_stream_t *)&k->tcp, check_alloc, check_read) != 0)
    check_result(k, false, " (request failed)");
}

static void start_check(hsp_dp_service_t *s) {
  check_t *k = calloc(1, sizeof *k);
  if (!k) {
    set_registered(s, hsp_health_result(&s->health, now_ms(s), false), " (out of memory)");
    return;
  }
  k->s = s;
  k->deadline = now_ms(s) + s->health.cfg.timeout_ms;
  hsp_health_http_init(&k->http);
  uv_tcp_init(s->loop, &k->tcp);
  k->tcp.data = k;
  k->creq.data = k;
  s->handles++;
  s->check = k;
  if (uv_tcp_connect(&k->creq, &k->tcp, (const struct sockaddr *)&s->target, check_connected) != 0)
    check_result(k, false, " (connect failed)");
}

/* ---- timer: liveness, health, drain ---- */

static void finish_drain(hsp_dp_service_t *s) {
  void (*done)(void *) = s->drain_done;
  s->drain_done = NULL;
  if (done) done(s->drain_ctx);
}

static void on_tick(uv_timer_t *timer) {
  hsp_dp_service_t *s = timer->data;
  uint64_t now = now_ms(s);
  for (svc_conn_t *sc = s->conns, *next; sc; sc = next) {
    next = sc->next;
    hsp_sess_tick(sc->sess, now);
    if (hsp_sess_is_dead(sc->sess)) conn_drop(sc);
  }
  if (s->check && now >= s->check->deadline) check_result(s->check, false, " (timed out)");
  if (s->drain.state == HSP_DRAIN_RUNNING && hsp_health_due(&s->health, now)) start_check(s);
  if (s->drain.state == HSP_DRAIN_DRAINING) {
    hsp_drain_verdict_t v = hsp_drain_poll(&s->drain, now, s->ntunnels);
    if (v == HSP_DRAIN_FORCE) {
      logf_(s, "service: drain time is up, closing %zu connection(s)", s->ntunnels);
      for (tunnel_t *t = s->tunnels; t; t = t->next) tunnel_end(t);
    }
    if (v != HSP_DRAIN_WAIT) {
      if (v == HSP_DRAIN_EXIT) logf_(s, "service: drained");
      finish_drain(s);
    }
  }
}

/* ---- public ---- */

int hsp_dp_service_start(hsp_dp_service_t **out, uv_loop_t *loop,
                         const hsp_dp_service_config_t *cfg) {
  hsp_dp_service_t *s = calloc(1, sizeof *s);
  if (!s) return UV_ENOMEM;
  s->loop = loop;
  s->cfg = *cfg;
  const char *host = cfg->target_host ? cfg->target_host : "127.0.0.1";
  if (cfg->target_addr) {
    memcpy(&s->target, cfg->target_addr,
           cfg->target_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                   : sizeof(struct sockaddr_in));
  } else {
    int err = strchr(host, ':')
                  ? uv_ip6_addr(host, cfg->target_port, (struct sockaddr_in6 *)&s->target)
                  : uv_ip4_addr(host, cfg->target_port, (struct sockaddr_in *)&s->target);
    if (err) {
      free(s);
      return err;
    }
  }
  char name[64] = "?";
  uint16_t port = 0;
  if (s->target.ss_family == AF_INET6) {
    uv_ip6_name((struct sockaddr_in6 *)&s->target, name, sizeof name);
    port = ntohs(((struct sockaddr_in6 *)&s->target)->sin6_port);
  } else {
    uv_ip4_name((struct sockaddr_in *)&s->target, name, sizeof name);
    port = ntohs(((struct sockaddr_in *)&s->target)->sin_port);
  }
  snprintf(s->target_name, sizeof s->target_name,
           s->target.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", name, port);
  hsp_health_init(&s->health, &cfg->health, uv_now(loop));
  uv_timer_init(loop, &s->timer);
  s->timer.data = s;
  s->handles = 1;
  uv_timer_start(&s->timer, on_tick, 0, TICK_MS);
  /* Without checks the instance registers at once. */
  set_registered(s, hsp_health_start(&s->health), " (no checks)");
  *out = s;
  return 0;
}

void hsp_dp_service_drain(hsp_dp_service_t *s, void (*done)(void *ctx), void *ctx) {
  if (!hsp_drain_start(&s->drain, now_ms(s), s->cfg.drain_ms)) return;
  s->drain_done = done;
  s->drain_ctx = ctx;
  logf_(s, "service: draining (%zu open connection(s), up to %llu ms)", s->ntunnels,
        (unsigned long long)s->cfg.drain_ms);
  if (s->health.registered && s->cfg.on_deregister) s->cfg.on_deregister(s->cfg.ud);
  s->health.registered = false;
  for (svc_conn_t *sc = s->conns; sc; sc = sc->next) hsp_sess_goaway(sc->sess);
}

size_t hsp_dp_service_tunnels(const hsp_dp_service_t *s) { return s->ntunnels; }
bool hsp_dp_service_registered(const hsp_dp_service_t *s) { return s->health.registered; }

static void handle_gone(hsp_dp_service_t *s) {
  if (--s->handles > 0 || !s->closing) return;
  void (*cb)(void *) = s->close_cb;
  void *ctx = s->close_ctx;
  free(s);
  if (cb) cb(ctx);
}

static void timer_closed(uv_handle_t *h) { handle_gone(h->data); }

void hsp_dp_service_close(hsp_dp_service_t *s, void (*cb)(void *ctx), void *ctx) {
  if (s->closing) return;
  s->closing = true;
  s->close_cb = cb;
  s->close_ctx = ctx;
  s->drain_done = NULL;
  while (s->conns) conn_drop(s->conns);
  for (tunnel_t *t = s->tunnels; t; t = t->next) tunnel_end(t);
  if (s->check) {
    check_t *k = s->check;
    s->check = NULL;
    uv_close((uv_handle_t *)&k->tcp, check_closed);
  }
  uv_close((uv_handle_t *)&s->timer, timer_closed);
}
