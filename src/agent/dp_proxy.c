/* The proxy's forwarding engine (dataplane.h): TCP clients <-> tunnels on pooled sessions. */
#include "dataplane.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TICK_MS 25

enum { K_CLIENT = 1, K_PROBE = 2 };
enum { C_WAITING, C_CONNECTING, C_OPEN };

typedef struct client {
  int kind;
  hsp_dp_proxy_t *p;
  uv_tcp_t tcp;
  int state;
  bool closing;      /* the TCP side is gone or going (uv_close called) */
  bool handle_open;  /* uv handle not yet closed */
  bool in_pool;      /* a tunnel (or its wait for a session) is pending in the pool */
  bool forwarded, tcp_eof, peer_end, shut, reading;
  uint8_t key[32];
  hsp_bal_attempt_t att;
  uint64_t start_ms, attempt_ms;
  hsp_sess_t *sess;
  uint32_t ch;
  uint8_t addr[sizeof(struct sockaddr_storage)];
  size_t addrlen;
  char name[64];
  char *pend; /* client bytes the tunnel had no credit for */
  size_t pend_off, pend_len;
  struct client *prev, *next;
} client_t;

typedef struct probe {
  int kind;
  hsp_dp_proxy_t *p;
  uint8_t key[32];
} probe_t;

struct hsp_dp_proxy {
  uv_loop_t *loop;
  hsp_dht_io_t *io;
  hsp_dp_proxy_config_t cfg;
  char role[160];
  char who[176];
  uv_tcp_t listener;
  uv_timer_t timer;
  hsp_bal_t *bal;
  hsp_pool_t *pool;
  hsp_dp_links_t links;
  client_t *clients;
  hsp_dp_proxy_stats_t stats;
  int handles; /* open uv handles (listener, timer, clients) */
  bool closing;
  void (*close_cb)(void *);
  void *close_ctx;
};

static uint64_t now_ms(hsp_dp_proxy_t *p) { return uv_now(p->loop); }

static void logf_(hsp_dp_proxy_t *p, const char *fmt, ...) {
  if (!p->cfg.log) return;
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  p->cfg.log(p->cfg.log_ud, line);
}

static void short_key(char out[9], const uint8_t key[32]) {
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < 4; i++) {
    out[2 * i] = hex[key[i] >> 4];
    out[2 * i + 1] = hex[key[i] & 15];
  }
  out[8] = 0;
}

static void handle_gone(hsp_dp_proxy_t *p);

/* ---- clients ---- */

static void dispatch(client_t *c);

static void client_free_if_done(client_t *c) {
  if (c->handle_open || c->in_pool) return;
  hsp_dp_proxy_t *p = c->p;
  if (c->prev) c->prev->next = c->next;
  else p->clients = c->next;
  if (c->next) c->next->prev = c->prev;
  free(c->pend);
  free(c);
}

static void on_tcp_closed(uv_handle_t *h) {
  client_t *c = h->data;
  hsp_dp_proxy_t *p = c->p;
  c->handle_open = false;
  client_free_if_done(c);
  handle_gone(p);
}

static void client_close(client_t *c) {
  if (c->closing) return;
  c->closing = true;
  uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
}

static void alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  (void)h;
  if (size > HSP_SESS_MAX_DATA) size = HSP_SESS_MAX_DATA;
  buf->base = malloc(size);
  buf->len = buf->base ? size : 0;
}

static void tcp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void start_reading(client_t *c) {
  if (c->reading || c->tcp_eof || c->closing || c->pend) return;
  c->reading = true;
  uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, tcp_read);
}

static void stop_reading(client_t *c) {
  if (!c->reading) return;
  c->reading = false;
  uv_read_stop((uv_stream_t *)&c->tcp);
}

/* The tunnel is gone (after it was open): the client connection ends once its pending
 * writes are out. */
static void end_open(client_t *c) {
  if (c->sess) {
    hsp_sess_close(c->sess, c->ch);
    c->sess = NULL;
  }
  if (c->in_pool) {
    c->in_pool = false;
    hsp_bal_done(c->p->bal, c->key);
  }
  client_close(c);
  client_free_if_done(c);
}

/* Both directions ended and the last bytes to the client are out: done. */
static void maybe_finish(client_t *c) {
  if (c->tcp_eof && c->peer_end && c->shut) end_open(c);
}

static void tcp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  client_t *c = s->data;
  if (n > 0 && c->sess) {
    c->forwarded = true;
    long took = hsp_sess_write(c->sess, c->ch, (const uint8_t *)buf->base, (size_t)n);
    if (took < 0) {
      free(buf->base);
      end_open(c);
      return;
    }
    if ((size_t)took < (size_t)n) {
      /* Out of credit: keep the rest, stop reading until the service consumed more. */
      c->pend = buf->base;
      c->pend_off = (size_t)took;
      c->pend_len = (size_t)n;
      stop_reading(c);
      return;
    }
  }
  free(buf->base);
  if (n == UV_EOF) {
    stop_reading(c);
    c->tcp_eof = true;
    if (c->sess) hsp_sess_end(c->sess, c->ch);
    maybe_finish(c);
  } else if (n < 0) {
    end_open(c);
  }
}

typedef struct wreq {
  uv_write_t req;
  client_t *c;
  size_t n;
  char data[];
} wreq_t;

static void on_tcp_written(uv_write_t *req, int status) {
  wreq_t *w = (wreq_t *)req;
  client_t *c = w->c;
  if (status == 0 && c->sess) hsp_sess_consumed(c->sess, c->ch, w->n);
  free(w);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  client_t *c = req->data;
  free(req);
  c->shut = true;
  if (status == 0) maybe_finish(c);
}

/* ---- tunnel events (from the pool) ---- */

static void probe_done(probe_t *pr, bool ok);

static void t_ready(void *ud, hsp_sess_t *s, uint32_t ch, void *user) {
  hsp_dp_proxy_t *p = ud;
  if (*(int *)user == K_PROBE) {
    hsp_sess_close(s, ch);
    probe_done(user, true);
    return;
  }
  client_t *c = user;
  uint64_t now = now_ms(p);
  hsp_bal_success(p->bal, c->key, now, (double)(now - c->attempt_ms));
  if (c->closing) { /* the client left while we connected */
    hsp_sess_close(s, ch);
    c->in_pool = false;
    hsp_bal_done(p->bal, c->key);
    client_free_if_done(c);
    return;
  }
  c->state = C_OPEN;
  c->sess = s;
  c->ch = ch;
  p->stats.forwarded++;
  start_reading(c);
}

static void t_data(void *ud, hsp_sess_t *s, uint32_t ch, void *user, const uint8_t *d,
                   size_t n) {
  (void)ud;
  client_t *c = user;
  if (c->kind != K_CLIENT) return;
  c->forwarded = true;
  if (c->closing) {
    hsp_sess_consumed(s, ch, n); /* nobody to deliver to; the close follows */
    return;
  }
  /* Most of the time the socket takes it all at once: no copy, no request, credit at once. */
  uv_buf_t now = uv_buf_init((char *)d, (unsigned)n);
  int sent = uv_try_write((uv_stream_t *)&c->tcp, &now, 1);
  if (sent > 0) {
    hsp_sess_consumed(s, ch, (size_t)sent);
    d += sent;
    n -= (size_t)sent;
    if (!n) return;
  }
  wreq_t *w = malloc(sizeof *w + n);
  if (!w) {
    end_open(c);
    return;
  }
  w->c = c;
  w->n = n;
  memcpy(w->data, d, n);
  uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
  if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_tcp_written) != 0) {
    free(w);
    end_open(c);
  }
}

static void t_end(void *ud, hsp_sess_t *s, uint32_t ch, void *user) {
  (void)ud, (void)s, (void)ch;
  client_t *c = user;
  if (c->kind != K_CLIENT || c->closing) return;
  c->peer_end = true;
  /* The shutdown completes after the pending writes: only then may the client be closed. */
  uv_shutdown_t *req = malloc(sizeof *req);
  if (req) req->data = c;
  if (!req || uv_shutdown(req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
    free(req);
    end_open(c);
  }
}

static void t_writable(void *ud, hsp_sess_t *s, uint32_t ch, void *user) {
  (void)ud;
  client_t *c = user;
  if (c->kind != K_CLIENT || !c->pend) return;
  long took = hsp_sess_write(s, ch, (const uint8_t *)c->pend + c->pend_off,
                             c->pend_len - c->pend_off);
  if (took < 0) {
    end_open(c);
    return;
  }
  c->pend_off += (size_t)took;
  if (c->pend_off == c->pend_len) {
    free(c->pend);
    c->pend = NULL;
    start_reading(c);
  }
}

static void attempt_failed(client_t *c, int err) {
  hsp_dp_proxy_t *p = c->p;
  uint64_t now = now_ms(p);
  hsp_bal_failure(p->bal, c->key, now);
  char k[9];
  short_key(k, c->key);
  logf_(p, "proxy: %s: instance %s failed before forwarding (%s)%s", p->role, k,
        hsp_sess_strerror(err), c->closing ? "" : ", trying another");
  if (c->closing) {
    client_free_if_done(c);
    return;
  }
  p->stats.retried++;
  dispatch(c);
}

static void t_close(void *ud, hsp_sess_t *s, uint32_t ch, void *user, int err) {
  (void)ud, (void)s, (void)ch;
  if (*(int *)user == K_PROBE) {
    probe_done(user, false);
    return;
  }
  client_t *c = user;
  c->sess = NULL;
  if (c->state == C_OPEN) {
    end_open(c);
    return;
  }
  c->in_pool = false;
  attempt_failed(c, err);
}

/* ---- dispatching ---- */

static void fail_client(client_t *c, const char *why) {
  hsp_dp_proxy_t *p = c->p;
  p->stats.failed++;
  logf_(p, "proxy: %s: closing connection from %s: %s", p->role, c->name, why);
  client_close(c);
}

static void dispatch(client_t *c) {
  hsp_dp_proxy_t *p = c->p;
  uint64_t now = now_ms(p);
  for (;;) {
    if (c->closing) {
      client_free_if_done(c);
      return;
    }
    int rc = hsp_bal_pick(p->bal, now, c->addr, c->addrlen, &c->att, c->key);
    if (rc < 0) {
      /* Nothing to try now: wait for a registration or an instance back from ejection. */
      if (now - c->start_ms >= p->cfg.wait_ms) {
        p->stats.timed_out++;
        char why[sizeof p->role + 64];
        snprintf(why, sizeof why, "no healthy instance of %s within %llu ms", p->role,
                 (unsigned long long)p->cfg.wait_ms);
        fail_client(c, why);
        return;
      }
      if (c->state != C_WAITING) p->stats.waited++;
      c->state = C_WAITING;
      memset(&c->att, 0, sizeof c->att); /* ejected ones come back only through a probe */
      return;
    }
    c->state = C_CONNECTING;
    c->attempt_ms = now;
    c->in_pool = true;
    rc = hsp_pool_open(p->pool, c->key, now, c);
    if (rc == 0) return;
    c->in_pool = false;
    hsp_bal_failure(p->bal, c->key, now);
    p->stats.retried++;
  }
}

static void retry_waiting(hsp_dp_proxy_t *p) {
  if (!hsp_bal_available(p->bal, now_ms(p))) return;
  /* dispatch may free clients: walk a snapshot of the waiting ones by restarting. */
  for (bool again = true; again;) {
    again = false;
    for (client_t *c = p->clients; c; c = c->next) {
      if (c->state == C_WAITING && !c->closing) {
        c->state = C_CONNECTING; /* so that the restart does not pick it again */
        dispatch(c);
        if (c->state == C_WAITING) continue; /* (nothing available any more) */
        again = true;
        break;
      }
    }
  }
}

static void on_connection(uv_stream_t *server, int status) {
  hsp_dp_proxy_t *p = server->data;
  if (status < 0 || p->closing) return;
  client_t *c = calloc(1, sizeof *c);
  if (!c) return;
  c->kind = K_CLIENT;
  c->p = p;
  uv_tcp_init(p->loop, &c->tcp);
  c->tcp.data = c;
  c->handle_open = true;
  p->handles++;
  c->next = p->clients;
  if (p->clients) p->clients->prev = c;
  p->clients = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    client_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
    /* The hash policy keys on the client's host, not its ephemeral port. */
    if (ss.ss_family == AF_INET) {
      struct sockaddr_in *a = (struct sockaddr_in *)&ss;
      memcpy(c->addr, &a->sin_addr, 4);
      c->addrlen = 4;
      uv_ip4_name(a, c->name, sizeof c->name);
      size_t l = strlen(c->name);
      snprintf(c->name + l, sizeof c->name - l, ":%u", ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
      struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
      memcpy(c->addr, &a->sin6_addr, 16);
      c->addrlen = 16;
      uv_ip6_name(a, c->name, sizeof c->name);
    }
  }
  p->stats.accepted++;
  c->start_ms = now_ms(p);
  c->state = C_CONNECTING;
  dispatch(c);
}

/* ---- probes ---- */

static void probe_done(probe_t *pr, bool ok) {
  hsp_dp_proxy_t *p = pr->p;
  hsp_bal_probe_result(p->bal, pr->key, now_ms(p), ok);
  char k[9];
  short_key(k, pr->key);
  logf_(p, "proxy: %s: probe of instance %s %s", p->role, k, ok ? "succeeded: back in use" : "failed");
  free(pr);
  if (ok) retry_waiting(p);
}

static void run_probes(hsp_dp_proxy_t *p) {
  uint8_t key[32];
  while (hsp_bal_probe_due(p->bal, now_ms(p), key)) {
    probe_t *pr = calloc(1, sizeof *pr);
    if (!pr) {
      hsp_bal_probe_result(p->bal, key, now_ms(p), false);
      continue;
    }
    pr->kind = K_PROBE;
    pr->p = p;
    memcpy(pr->key, key, 32);
    if (hsp_pool_open(p->pool, key, now_ms(p), pr) < 0) probe_done(pr, false);
  }
}

/* ---- HyperDHT links (the pool's I/O) ---- */

static void pool_connect(void *ud, const uint8_t key[32]) {
  hsp_dp_links_connect(&((hsp_dp_proxy_t *)ud)->links, key);
}

static void pool_disconnect(void *ud, const uint8_t key[32]) {
  hsp_dp_links_disconnect(&((hsp_dp_proxy_t *)ud)->links, key);
}

static int pool_send(void *ud, const uint8_t key[32], const uint8_t *a, size_t alen,
                     const uint8_t *b, size_t blen) {
  return hsp_dp_links_send(&((hsp_dp_proxy_t *)ud)->links, key, a, alen, b, blen);
}

static void on_session_down(void *ud, const uint8_t key[32], int err) {
  hsp_dp_proxy_t *p = ud;
  hsp_bal_eject(p->bal, key, now_ms(p));
  char k[9];
  short_key(k, key);
  logf_(p, "proxy: %s: session to instance %s down (%s): ejected", p->role, k, hsp_sess_strerror(err));
}

static void on_goaway(void *ud, const uint8_t key[32]) {
  hsp_dp_proxy_t *p = ud;
  hsp_bal_eject(p->bal, key, now_ms(p));
  char k[9];
  short_key(k, key);
  logf_(p, "proxy: %s: instance %s is draining", p->role, k);
}

/* ---- timer ---- */

static void on_tick(uv_timer_t *t) {
  hsp_dp_proxy_t *p = t->data;
  uint64_t now = now_ms(p);
  hsp_pool_tick(p->pool, now);
  run_probes(p);
  retry_waiting(p);
  for (client_t *c = p->clients, *next; c; c = next) {
    next = c->next;
    if (c->state == C_WAITING && !c->closing && now - c->start_ms >= p->cfg.wait_ms) {
      dispatch(c); /* fails it with the log line */
    }
  }
}

/* ---- public ---- */

int hsp_dp_proxy_start(hsp_dp_proxy_t **out, uv_loop_t *loop, hsp_dht_io_t *io,
                       const hsp_crypto_keypair_t *kp, const hsp_dp_proxy_config_t *cfg) {
  hsp_dp_proxy_t *p = calloc(1, sizeof *p);
  if (!p) return UV_ENOMEM;
  p->loop = loop;
  p->io = io;
  p->cfg = *cfg;
  /* A dead instance is noticed within a second on every session open to it. */
  if (!p->cfg.pool.sess.dead_ms) p->cfg.pool.sess.dead_ms = 900;
  snprintf(p->role, sizeof p->role, "%s", cfg->role ? cfg->role : "proxy");
  p->bal = hsp_bal_new(&p->cfg.balance);
  hsp_pool_callbacks_t pcb = {
      .connect = pool_connect,
      .disconnect = pool_disconnect,
      .send = pool_send,
      .tunnel = {.on_ready = t_ready, .on_data = t_data, .on_end = t_end,
                 .on_writable = t_writable, .on_close = t_close},
      .on_session_down = on_session_down,
      .on_goaway = on_goaway,
  };
  p->pool = hsp_pool_new(&p->cfg.pool, &pcb, p);
  snprintf(p->who, sizeof p->who, "proxy: %s", p->role);
  p->links = (hsp_dp_links_t){.loop = loop, .io = io, .kp = *kp, .pool = p->pool, .who = p->who,
                              .log = cfg->log, .log_ud = cfg->log_ud};
  if (!p->bal || !p->pool) {
    hsp_bal_free(p->bal);
    hsp_pool_free(p->pool);
    free(p);
    return UV_ENOMEM;
  }
  struct sockaddr_storage addr;
  const char *host = cfg->host ? cfg->host : "127.0.0.1";
  int err = strchr(host, ':') ? uv_ip6_addr(host, cfg->port, (struct sockaddr_in6 *)&addr)
                              : uv_ip4_addr(host, cfg->port, (struct sockaddr_in *)&addr);
  if (!err) err = uv_tcp_init(loop, &p->listener);
  if (err) {
    hsp_bal_free(p->bal);
    hsp_pool_free(p->pool);
    free(p);
    return err;
  }
  p->listener.data = p;
  p->handles++;
  err = uv_tcp_bind(&p->listener, (struct sockaddr *)&addr, 0);
  if (!err) err = uv_listen((uv_stream_t *)&p->listener, 1024, on_connection);
  uv_timer_init(loop, &p->timer);
  p->timer.data = p;
  p->handles++;
  if (err) {
    hsp_dp_proxy_close(p, NULL, NULL);
    return err;
  }
  uv_timer_start(&p->timer, on_tick, TICK_MS, TICK_MS);
  *out = p;
  return 0;
}

uint16_t hsp_dp_proxy_port(const hsp_dp_proxy_t *p) {
  struct sockaddr_storage ss;
  int len = sizeof ss;
  if (uv_tcp_getsockname(&p->listener, (struct sockaddr *)&ss, &len) != 0) return 0;
  return ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                  : ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int hsp_dp_proxy_sync(hsp_dp_proxy_t *p, const uint8_t (*keys)[32], size_t n) {
  return hsp_dp_proxy_sync_tiers(p, keys, NULL, n);
}

int hsp_dp_proxy_sync_tiers(hsp_dp_proxy_t *p, const uint8_t (*keys)[32], const uint32_t *tiers,
                            size_t n) {
  int rc = hsp_bal_sync_tiers(p->bal, keys, tiers, n);
  retry_waiting(p);
  return rc;
}

void hsp_dp_proxy_remove(hsp_dp_proxy_t *p, const uint8_t key[32]) { hsp_bal_remove(p->bal, key); }

void hsp_dp_proxy_get_stats(const hsp_dp_proxy_t *p, hsp_dp_proxy_stats_t *out) { *out = p->stats; }

hsp_bal_t *hsp_dp_proxy_balancer(hsp_dp_proxy_t *p) { return p->bal; }

static void handle_gone(hsp_dp_proxy_t *p) {
  if (--p->handles > 0 || !p->closing) return;
  void (*cb)(void *) = p->close_cb;
  void *ctx = p->close_ctx;
  hsp_dp_links_release(&p->links); /* their callbacks free them */
  hsp_bal_free(p->bal);
  hsp_crypto_keypair_wipe(&p->links.kp);
  free(p);
  if (cb) cb(ctx);
}

static void on_handle_closed(uv_handle_t *h) { handle_gone(h->data); }

void hsp_dp_proxy_close(hsp_dp_proxy_t *p, void (*cb)(void *ctx), void *ctx) {
  if (p->closing) return;
  p->closing = true;
  p->close_cb = cb;
  p->close_ctx = ctx;
  /* Clients first (closing: nothing is retried), then the pool fails their tunnels. */
  for (client_t *c = p->clients; c; c = c->next) client_close(c);
  hsp_pool_t *pool = p->pool;
  hsp_pool_free(pool);
  p->pool = NULL;
  uv_close((uv_handle_t *)&p->listener, on_handle_closed);
  uv_close((uv_handle_t *)&p->timer, on_handle_closed);
}
