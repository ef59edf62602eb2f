/*
 * HTTP gateway engine (see gateway.h). One client connection is a small state machine:
 *
 *   HEAD --head complete--> local answer (LOCAL_BODY: rest of the body discarded)
 *        \-> OPENING (upstream stream being opened) --> BODY (request body streamed up)
 *                                                       --> WAIT (response streaming down)
 *   WAIT --101--> TUNNEL (raw bytes both ways)
 *   request and response both complete --> HEAD again (keep-alive) or DRAIN (close)
 *
 * Requests are handled one at a time: while one is in flight the parser is paused at the
 * message boundary and unparsed bytes stay in the connection's read buffer, so pipelined
 * requests are answered in order without being parsed ahead. The read buffer is refilled
 * only once it is fully consumed, which bounds what a connection holds.
 *
 * Back-pressure: when more than HSP_GW_HIGH_WATER bytes are queued towards one side, the
 * other side is no longer read (the client socket, or the stream's set_reading) until the
 * queue falls to HSP_GW_LOW_WATER.
 *
 * Lifetimes: closing is asynchronous (libuv handles), so a connection closed inside a
 * callback stays valid memory until its handles are closed; code after any call that may
 * close checks `state == C_CLOSED` before going on. An upstream stream attached to a closed
 * connection is closed at once (no event follows) and its record freed with the connection.
 */
#include "gateway.h"
#include "hex.h"
#include "semver.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RBUF_SIZE (32 * 1024)
#define HEAD_BUF (16 * 1024)
#define MAX_FIELDS 100
#define TARGET_MAX 8192
#define MAX_CANDIDATES 64
#define MAX_ROLES 256
#define SSE_MAX_PENDING (1024 * 1024)
#define DRAIN_MS 2000
/* A tunnel whose client has ended is closed after this much silence from the instance (it
 * has had its chance to finish; many servers never answer a half-close). */
#define TUNNEL_LINGER_MS 5000
#define TICK_MS 250
#define TRAFFIC_EVERY_TICKS 8
/* The dashboard lists at most this many instances (the count says how many there are): its
 * state goes to every open dashboard on each change. */
#define DASH_MAX_INSTANCES 1000

extern const unsigned char hsp_gw_dashboard_html[];
extern const size_t hsp_gw_dashboard_html_len;

static const double bucket_le[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                   0.25,  0.5,    1,     2.5,  5,     10};
#define NBUCKETS (sizeof bucket_le / sizeof bucket_le[0])

const char *hsp_gw_strerror(int err) {
  switch (err) {
  case HSP_GW_OK: return "ok";
  case HSP_GW_ENOMEM: return "out of memory";
  case HSP_GW_EINVAL: return "invalid argument";
  case HSP_GW_ELISTEN: return "cannot listen";
  case HSP_GW_EOPEN: return "cannot open a stream to the instance";
  case HSP_GW_ECLOSED: return "stream closed";
  default: return "unknown error";
  }
}

hsp_gw_config_t hsp_gw_default_config(void) {
  return (hsp_gw_config_t){.header_timeout_ms = 10000,
                           .idle_timeout_ms = 60000,
                           .upstream_timeout_ms = 30000,
                           .tunnel_timeout_ms = 600000,
                           .max_connections = 1024,
                           .pool_per_instance = 64,
                           .limits = hsp_http_default_limits(),
                           .proto = "http"};
}

typedef struct role_stats {
  char name[HSP_HTTP_NAME_MAX + 1];
  uint64_t requests, errors;
  uint64_t buckets[NBUCKETS];
  uint64_t count;
  double sum_s;
} role_stats_t;

typedef struct conn conn_t;
typedef struct upconn upconn_t;
typedef struct piece piece_t;

typedef enum cstate {
  C_HEAD,
  C_OPENING,
  C_BODY,
  C_LOCAL_BODY,
  C_WAIT,
  C_TUNNEL,
  C_SSE,
  C_DRAIN,
  C_CLOSED,
} cstate_t;

/* An upstream stream with its response parser; attached to one client at a time, or idle
 * in the pool. */
struct upconn {
  hsp_gw_t *gw;
  upconn_t *pool_prev, *pool_next;
  hsp_gw_stream_t *s;
  uint8_t key[HSP_REG_KEY_BYTES];
  conn_t *c;
  uint64_t idle_since;
  bool open, pooled, reused, any_bytes, head_sent, res_done, reusable, upgraded, chunk_out,
      blocked, interim, eof;
  int status, vmaj, vmin;
  char reason[128];
  size_t reason_len;
  hsp_http_parser_t parser;
  uint8_t scratch[HEAD_BUF];
  hsp_http_headers_t hdrs;
  hsp_http_header_t items[MAX_FIELDS];
  char hbuf[HEAD_BUF];
};

struct conn {
  hsp_gw_t *gw;
  conn_t *prev, *next;
  uv_tcp_t tcp;
  uv_timer_t timer;   /* client side: head, idle, body progress, tunnel, drain */
  uv_timer_t uptimer; /* upstream open + response head */
  uv_shutdown_t shut;
  int handles;
  char addr[64];
  cstate_t state;

  hsp_http_parser_t parser;
  uint8_t scratch[HEAD_BUF];
  hsp_http_headers_t hdrs;
  hsp_http_header_t items[MAX_FIELDS];
  char hbuf[HEAD_BUF];
  char method[32];
  size_t method_len;
  char target[TARGET_MAX + 1];
  size_t target_len;
  hsp_http_message_t req;
  bool head_ready, msg_done, req_done, got_bytes, close_after, upgrade_req, local, up_blocked,
      read_eof, reading, shut_sent, in_process;
  bool answered; /* a final response (or 101) to the current request has begun */

  uint8_t rbuf[RBUF_SIZE];
  size_t roff, rlen;
  size_t wpending; /* queued or being written to the client */
  piece_t *out_head, *out_tail;
  bool flush_queued;
  conn_t *flush_next;
  uint64_t last_activity;

  /* The exchange in flight. */
  hsp_http_route_t route;
  role_stats_t *stats;
  uint64_t t_start;
  int status;
  bool gw_error;
  upconn_t *up;
  char *fwd_head;
  size_t fwd_len;
  hsp_reg_instance_t *cands;
  size_t ncands, next_cand;
  int attempts;
  bool sse_list;
  conn_t *sse_prev, *sse_next;
};

struct hsp_gw {
  uv_loop_t *loop;
  hsp_gw_config_t cfg;
  hsp_gw_upstream_t up;
  uv_tcp_t server;
  uv_timer_t tick;
  int handles;
  bool listening, closing, dirty;
  int port;
  conn_t *conns, *sse;
  size_t nconns, nsse, nup, ntunnels;
  upconn_t *pool, *graveyard;
  uv_check_t reaper, flusher;
  uv_idle_t flush_idle;
  conn_t *flush;
  role_stats_t *roles;
  size_t nroles;
  role_stats_t own; /* dashboard, metrics, listings, unknown routes */
  uint64_t rr, bytes_in, bytes_out, refused, ticks;
  void (*close_cb)(void *);
  void *close_ud;
};

/* ---- String building -------------------------------------------------------------------- */

typedef struct sb {
  char *p;
  size_t len, cap;
  bool oom;
} sb_t;

static void sb_put(sb_t *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->cap - b->len < n + 1) {
    size_t cap = b->cap ? b->cap : 1024;
    while (cap - b->len < n + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = true;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}
static void sb_str(sb_t *b, const char *s) { sb_put(b, s, strlen(s)); }
static void sb_fmt(sb_t *b, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof tmp) {
    sb_put(b, tmp, (size_t)n);
    return;
  }
  char *big = malloc((size_t)n + 1);
  if (!big) {
    b->oom = true;
    return;
  }
  va_start(ap, fmt);
  vsnprintf(big, (size_t)n + 1, fmt, ap);
  va_end(ap);
  sb_put(b, big, (size_t)n);
  free(big);
}
/* A JSON string literal; bytes >= 0x80 pass through (tags are UTF-8 by habit). */
static void sb_json(sb_t *b, const char *s) {
  sb_put(b, "\"", 1);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') {
      char e[2] = {'\\', (char)ch};
      sb_put(b, e, 2);
    } else if (ch < 0x20 || ch == 0x7f) {
      sb_fmt(b, "\\u%04x", ch);
    } else {
      sb_put(b, s, 1);
    }
  }
  sb_put(b, "\"", 1);
}
/* A Prometheus label value. */
static void sb_label(sb_t *b, const char *s) {
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') sb_put(b, "\\", 1);
    if (*s == '\n') {
      sb_put(b, "\\n", 2);
      continue;
    }
    sb_put(b, s, 1);
  }
}

/* ---- Small helpers ---------------------------------------------------------------------- */

static void gw_maybe_done(hsp_gw_t *gw);
static void conn_close(conn_t *c);
static void conn_process(conn_t *c);
static void finish_exchange(conn_t *c);
static void start_upstream(conn_t *c);
static void upstream_failed(conn_t *c, upconn_t *u, int status, const char *why);
static void request_complete(conn_t *c);
static void on_reap(uv_check_t *h);
static void set_reading(conn_t *c, bool on);
static void on_uptimer(uv_timer_t *t);

static const char *reason_of(int status) {
  switch (status) {
  case 101: return "Switching Protocols";
  case 200: return "OK";
  case 400: return "Bad Request";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 413: return "Content Too Large";
  case 414: return "URI Too Long";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 505: return "HTTP Version Not Supported";
  default: return "Unknown";
  }
}

static role_stats_t *role_stats(hsp_gw_t *gw, const char *name, bool create) {
  for (size_t i = 0; i < gw->nroles; i++)
    if (strcmp(gw->roles[i].name, name) == 0) return &gw->roles[i];
  /* Names come from clients: only roles that resolved get an entry, and at most MAX_ROLES,
   * so a scan of random names cannot grow the table or the metrics. */
  if (!create || gw->nroles == MAX_ROLES) return &gw->own;
  role_stats_t *r = &gw->roles[gw->nroles++];
  memset(r, 0, sizeof *r);
  snprintf(r->name, sizeof r->name, "%s", name);
  return r;
}

static void touch(conn_t *c) { c->last_activity = uv_now(c->gw->loop); }

/* ---- Client writes ---------------------------------------------------------------------- */

/* Writes to a client are collected during a loop iteration and sent with one writev per
 * connection after the I/O callbacks (a uv_check handle): a response head and its body, or a
 * run of pipelined responses, cost one system call instead of one each. */
typedef struct piece {
  struct piece *next;
  size_t len;
  uint8_t data[];
} piece_t;

typedef struct cwrite {
  uv_write_t req;
  conn_t *c;
  size_t len;
  piece_t *pieces;
} cwrite_t;

#define FLUSH_MAX_BUFS 64

static void free_pieces(piece_t *p) {
  while (p) {
    piece_t *next = p->next;
    free(p);
    p = next;
  }
}

static void conn_maybe_unblock_up(conn_t *c) {
  upconn_t *u = c->up;
  if (u && u->blocked && c->wpending <= HSP_GW_LOW_WATER) {
    u->blocked = false;
    u->s->ops->set_reading(u->s, true);
  }
}

static void drain_now(conn_t *c);

static void client_written(conn_t *c) {
  touch(c);
  if (c->state == C_DRAIN && c->wpending == 0 && !c->shut_sent) drain_now(c);
  else conn_maybe_unblock_up(c);
}

static void on_client_write(uv_write_t *req, int status) {
  cwrite_t *w = (cwrite_t *)req;
  conn_t *c = w->c;
  c->wpending -= w->len;
  free_pieces(w->pieces);
  free(w);
  if (c->state == C_CLOSED) return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  client_written(c);
}

/* Sends what the connection has collected: straight away when the socket takes it all
 * (uv_try_write: no request, no poll change), else queued with uv_write. */
static void flush_conn(conn_t *c) {
  while (c->out_head && c->state != C_CLOSED) {
    uv_buf_t bufs[FLUSH_MAX_BUFS];
    unsigned n = 0;
    size_t len = 0;
    piece_t *p = c->out_head, *last = NULL;
    while (p && n < FLUSH_MAX_BUFS) {
      bufs[n++] = uv_buf_init((char *)p->data, (unsigned)p->len);
      len += p->len;
      last = p;
      p = p->next;
    }
    last->next = NULL;
    piece_t *batch = c->out_head;
    c->out_head = p;
    if (!p) c->out_tail = NULL;
    int sent = uv_try_write((uv_stream_t *)&c->tcp, bufs, n);
    if (sent < 0 && sent != UV_EAGAIN) {
      c->wpending -= len;
      free_pieces(batch);
      conn_close(c);
      return;
    }
    if (sent > 0) {
      c->wpending -= (size_t)sent;
      if ((size_t)sent == len) {
        free_pieces(batch);
        client_written(c);
        continue;
      }
      len -= (size_t)sent;
      unsigned skip = 0;
      size_t k = (size_t)sent;
      while (k >= bufs[skip].len) k -= bufs[skip++].len;
      bufs[skip].base += k;
      bufs[skip].len -= k;
      memmove(bufs, bufs + skip, (n - skip) * sizeof bufs[0]);
      n -= skip;
    }
    cwrite_t *w = malloc(sizeof *w);
    if (!w) {
      c->wpending -= len;
      free_pieces(batch);
      conn_close(c);
      return;
    }
    w->c = c;
    w->len = len;
    w->pieces = batch;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, n, on_client_write) < 0) {
      c->wpending -= len;
      free_pieces(w->pieces);
      free(w);
      conn_close(c);
      return;
    }
  }
}

static void on_flush(uv_check_t *h) {
  hsp_gw_t *gw = h->data;
  while (gw->flush) {
    conn_t *c = gw->flush;
    gw->flush = c->flush_next;
    c->flush_queued = false;
    flush_conn(c);
  }
  uv_check_stop(&gw->flusher);
  uv_idle_stop(&gw->flush_idle);
}

static void on_flush_idle(uv_idle_t *h) { (void)h; }

/* Copies up to three pieces into one (a chunk header, its data and its CRLF) and queues it. */
static void client_writev(conn_t *c, const void *a, size_t alen, const void *b, size_t blen,
                          const void *d, size_t dlen) {
  if (c->state == C_CLOSED || c->shut_sent) return;
  size_t len = alen + blen + dlen;
  if (len == 0) return;
  piece_t *w = malloc(sizeof *w + len);
  if (!w) {
    conn_close(c);
    return;
  }
  w->next = NULL;
  w->len = len;
  if (alen) memcpy(w->data, a, alen);
  if (blen) memcpy(w->data + alen, b, blen);
  if (dlen) memcpy(w->data + alen + blen, d, dlen);
  if (c->out_tail) c->out_tail->next = w;
  else c->out_head = w;
  c->out_tail = w;
  c->wpending += len;
  hsp_gw_t *gw = c->gw;
  gw->bytes_out += len;
  if (!c->flush_queued) {
    c->flush_queued = true;
    c->flush_next = gw->flush;
    gw->flush = c;
    if (!uv_is_active((uv_handle_t *)&gw->flusher)) {
      uv_check_start(&gw->flusher, on_flush);
      /* An active idle handle keeps the poll from blocking when the write was queued from
       * a timer, so the flush is not held until the next event. */
      uv_idle_start(&gw->flush_idle, on_flush_idle);
    }
  }
}

static void client_write(conn_t *c, const void *p, size_t n) {
  client_writev(c, p, n, NULL, 0, NULL, 0);
}

/* ---- Connection lifecycle --------------------------------------------------------------- */

static void up_free(upconn_t *u) {
  hsp_gw_t *gw = u->gw;
  if (u->s) {
    u->s->ops->close(u->s);
    u->s = NULL;
    gw->nup--;
  }
  free(u);
}

static void reap(hsp_gw_t *gw) {
  while (gw->graveyard) {
    upconn_t *u = gw->graveyard;
    gw->graveyard = u->pool_next;
    free(u);
  }
}

static void on_reap(uv_check_t *h) {
  reap(h->data);
  uv_check_stop(h);
}

static void conn_handle_closed(uv_handle_t *h) {
  conn_t *c = h->data;
  if (--c->handles > 0) return;
  hsp_gw_t *gw = c->gw;
  free(c->fwd_head);
  free(c->cands);
  free(c);
  gw_maybe_done(gw);
}

/* Detaches the stream from the connection for good: no event reaches us after this. */
static void conn_drop_up(conn_t *c) {
  upconn_t *u = c->up;
  if (!u) return;
  c->up = NULL;
  if (u->upgraded) c->gw->ntunnels--;
  if (u->s) {
    u->s->ops->close(u->s);
    u->s = NULL;
    c->gw->nup--;
  }
  /* We may be inside one of u's callbacks: it is freed after this loop iteration. */
  hsp_gw_t *gw = c->gw;
  u->c = NULL;
  u->pool_next = gw->graveyard;
  gw->graveyard = u;
  if (!uv_is_active((uv_handle_t *)&gw->reaper)) uv_check_start(&gw->reaper, on_reap);
}

static void conn_close(conn_t *c) {
  if (c->state == C_CLOSED) return;
  hsp_gw_t *gw = c->gw;
  if (c->state == C_SSE) {
    if (c->sse_prev) c->sse_prev->sse_next = c->sse_next;
    else gw->sse = c->sse_next;
    if (c->sse_next) c->sse_next->sse_prev = c->sse_prev;
    gw->nsse--;
  }
  c->state = C_CLOSED;
  free_pieces(c->out_head);
  c->out_head = c->out_tail = NULL;
  conn_drop_up(c);
  if (c->prev) c->prev->next = c->next;
  else gw->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  gw->nconns--;
  uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
  uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
  uv_close((uv_handle_t *)&c->uptimer, conn_handle_closed);
}

static void on_timer(uv_timer_t *t);
static void arm_timer(conn_t *c, uint64_t ms) { uv_timer_start(&c->timer, on_timer, ms, 0); }

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)req;
  (void)status;
}

/* Lingering close: after the last response byte, half-close and read (and drop) what the
 * client still sends for a moment, so a client that has not finished sending gets our
 * answer instead of a reset. */
static void drain_now(conn_t *c) {
  c->shut_sent = true;
  uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown);
  c->roff = c->rlen = 0;
  if (c->read_eof) {
    conn_close(c);
    return;
  }
  set_reading(c, true);
  arm_timer(c, DRAIN_MS);
}

static void conn_close_after_flush(conn_t *c) {
  if (c->state == C_CLOSED) return;
  if (c->state == C_SSE) {
    conn_close(c);
    return;
  }
  conn_drop_up(c);
  c->state = C_DRAIN;
  uv_timer_stop(&c->uptimer);
  arm_timer(c, DRAIN_MS + c->gw->cfg.idle_timeout_ms);
  if (c->wpending == 0) drain_now(c);
}

/* ---- Local responses -------------------------------------------------------------------- */

static void respond(conn_t *c, int status, const char *ctype, const char *extra,
                    const void *body, size_t len) {
  char head[1024];
  bool head_only = c->req.method == HSP_HTTP_HEAD;
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Cache-Control: no-store\r\n%s%s\r\n",
                   status, reason_of(status), ctype, len, extra ? extra : "",
                   c->close_after              ? "Connection: close\r\n"
                   : c->req.version_minor == 0 ? "Connection: keep-alive\r\n"
                                               : "");
  c->status = status;
  c->local = true;
  c->answered = true;
  client_writev(c, head, (size_t)n, head_only ? NULL : body, head_only ? 0 : len, NULL, 0);
}

static void respond_error(conn_t *c, int status, const char *msg) {
  sb_t b = {0};
  sb_str(&b, "{\"error\":");
  sb_json(&b, msg);
  sb_fmt(&b, ",\"status\":%d}\n", status);
  c->gw_error = true;
  if (b.oom) {
    respond(c, status, "application/json", NULL, "{}\n", 3);
  } else {
    respond(c, status, "application/json", NULL, b.p, b.len);
  }
  free(b.p);
}

static void record_stats(conn_t *c) {
  role_stats_t *st = c->stats;
  if (!st) return;
  c->stats = NULL;
  double s = (double)(uv_hrtime() - c->t_start) / 1e9;
  st->requests++;
  if (c->gw_error || c->status >= 500) st->errors++;
  size_t k = 0;
  while (k < NBUCKETS && s > bucket_le[k]) k++;
  if (k < NBUCKETS) st->buckets[k]++;
  st->count++;
  st->sum_s += s;
}

/* A malformed request, or a timeout while receiving one: the connection cannot be trusted to
 * be in step any more. Answer if nothing was sent for this request yet, then close. */
static void protocol_error(conn_t *c, int status, const char *msg) {
  bool answered = c->answered;
  c->close_after = true;
  conn_drop_up(c);
  uv_timer_stop(&c->uptimer);
  if (!answered) {
    if (!c->stats) {
      c->stats = &c->gw->own;
      c->t_start = uv_hrtime();
    }
    respond_error(c, status, msg);
    record_stats(c);
  }
  conn_close_after_flush(c);
}

/* The instance failed (or timed out) after the request head was taken. Before any response
 * byte, the client gets an error and the connection goes on (the rest of the request body is
 * read and dropped); in the middle of a response, all we can do is cut the connection. */
static void answer_failure(conn_t *c, int status, const char *msg) {
  bool answered = c->answered;
  conn_drop_up(c);
  uv_timer_stop(&c->uptimer);
  if (answered) {
    conn_close_after_flush(c);
    return;
  }
  if (c->upgrade_req) c->close_after = true;
  respond_error(c, status, msg);
  if (c->state == C_CLOSED) return;
  if (c->req_done) {
    finish_exchange(c);
    return;
  }
  c->state = C_LOCAL_BODY;
  conn_process(c);
}

/* ---- JSON views ------------------------------------------------------------------------- */

static const char *health_name(hsp_gw_t *gw, const uint8_t *key) {
  if (!gw->up.health) return "healthy";
  return gw->up.health(gw->up.ud, key) == HSP_GW_HEALTHY ? "healthy" : "failed";
}

static void json_instance(sb_t *b, hsp_gw_t *gw, const hsp_reg_instance_t *in) {
  char hex[2 * HSP_REG_KEY_BYTES + 1];
  hsp_hex_encode(hex, in->key, HSP_REG_KEY_BYTES);
  sb_str(b, "{\"id\":\"");
  sb_str(b, hex);
  sb_str(b, "\",\"role\":");
  sb_json(b, in->name);
  sb_str(b, ",\"version\":");
  sb_json(b, in->version);
  sb_str(b, ",\"tags\":");
  sb_json(b, in->tags);
  sb_str(b, ",\"health\":\"");
  sb_str(b, health_name(gw, in->key));
  sb_fmt(b, "\",\"registered\":%" PRIu64 "}", in->registered_ms);
}

typedef struct each_ctx {
  sb_t *b;
  hsp_gw_t *gw;
  size_t n, total;
  const char *name;
  bool found;
} each_ctx_t;

static void each_json(void *arg, const hsp_reg_instance_t *in) {
  each_ctx_t *e = arg;
  e->total++;
  if (e->n == DASH_MAX_INSTANCES) return;
  if (e->n++) sb_put(e->b, ",", 1);
  json_instance(e->b, e->gw, in);
}

static void each_name(void *arg, const hsp_reg_instance_t *in) {
  each_ctx_t *e = arg;
  if (strcmp(in->name, e->name) == 0) e->found = true;
}

static bool role_exists(hsp_gw_t *gw, const char *name) {
  each_ctx_t e = {.name = name};
  gw->up.each(gw->up.ud, each_name, &e);
  return e.found;
}

static uint64_t up_seq(hsp_gw_t *gw) { return gw->up.seq ? gw->up.seq(gw->up.ud) : 0; }

/* The dashboard's state: every instance and the traffic per role. */
static void build_state(hsp_gw_t *gw, sb_t *b) {
  sb_fmt(b, "{\"seq\":%" PRIu64 ",\"sessions\":%zu,\"upstreams\":%zu,\"tunnels\":%zu,",
         up_seq(gw), gw->nconns, gw->nup, gw->ntunnels);
  sb_str(b, "\"roles\":[");
  for (size_t i = 0; i < gw->nroles; i++) {
    role_stats_t *r = &gw->roles[i];
    if (i) sb_put(b, ",", 1);
    sb_str(b, "{\"name\":");
    sb_json(b, r->name);
    sb_fmt(b, ",\"requests\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"mean_ms\":%.3f}", r->requests,
           r->errors, r->count ? r->sum_s * 1000.0 / (double)r->count : 0.0);
  }
  sb_str(b, "],\"instances\":[");
  each_ctx_t e = {.b = b, .gw = gw};
  gw->up.each(gw->up.ud, each_json, &e);
  sb_fmt(b, "],\"count\":%zu}", e.total);
}

static void build_metrics(hsp_gw_t *gw, sb_t *b) {
  role_stats_t *all[MAX_ROLES + 1];
  size_t n = 0;
  for (size_t i = 0; i < gw->nroles; i++) all[n++] = &gw->roles[i];
  all[n++] = &gw->own;
  sb_str(b, "# HELP hsp_gateway_requests_total Requests answered, by role (\"\" for the "
            "gateway's own pages and unrouted requests).\n"
            "# TYPE hsp_gateway_requests_total counter\n");
  for (size_t i = 0; i < n; i++) {
    sb_str(b, "hsp_gateway_requests_total{role=\"");
    sb_label(b, all[i]->name);
    sb_fmt(b, "\"} %" PRIu64 "\n", all[i]->requests);
  }
  sb_str(b, "# HELP hsp_gateway_errors_total Requests answered with a gateway error or a 5xx.\n"
            "# TYPE hsp_gateway_errors_total counter\n");
  for (size_t i = 0; i < n; i++) {
    sb_str(b, "hsp_gateway_errors_total{role=\"");
    sb_label(b, all[i]->name);
    sb_fmt(b, "\"} %" PRIu64 "\n", all[i]->errors);
  }
  sb_str(b, "# HELP hsp_gateway_request_duration_seconds From request head to the end of the "
            "response.\n# TYPE hsp_gateway_request_duration_seconds histogram\n");
  for (size_t i = 0; i < n; i++) {
    uint64_t cum = 0;
    for (size_t k = 0; k < NBUCKETS; k++) {
      cum += all[i]->buckets[k];
      sb_str(b, "hsp_gateway_request_duration_seconds_bucket{role=\"");
      sb_label(b, all[i]->name);
      sb_fmt(b, "\",le=\"%g\"} %" PRIu64 "\n", bucket_le[k], cum);
    }
    sb_str(b, "hsp_gateway_request_duration_seconds_bucket{role=\"");
    sb_label(b, all[i]->name);
    sb_fmt(b, "\",le=\"+Inf\"} %" PRIu64 "\n", all[i]->count);
    sb_str(b, "hsp_gateway_request_duration_seconds_sum{role=\"");
    sb_label(b, all[i]->name);
    sb_fmt(b, "\"} %.6f\n", all[i]->sum_s);
    sb_str(b, "hsp_gateway_request_duration_seconds_count{role=\"");
    sb_label(b, all[i]->name);
    sb_fmt(b, "\"} %" PRIu64 "\n", all[i]->count);
  }
  sb_fmt(b,
         "# HELP hsp_gateway_open_sessions Open client connections.\n"
         "# TYPE hsp_gateway_open_sessions gauge\nhsp_gateway_open_sessions %zu\n"
         "# HELP hsp_gateway_upstream_streams Open streams to instances (pooled included).\n"
         "# TYPE hsp_gateway_upstream_streams gauge\nhsp_gateway_upstream_streams %zu\n"
         "# HELP hsp_gateway_tunnels Upgraded connections (WebSocket and others).\n"
         "# TYPE hsp_gateway_tunnels gauge\nhsp_gateway_tunnels %zu\n"
         "# HELP hsp_gateway_refused_total Connections refused over the limit.\n"
         "# TYPE hsp_gateway_refused_total counter\nhsp_gateway_refused_total %" PRIu64 "\n"
         "# HELP hsp_gateway_received_bytes_total Bytes read from clients.\n"
         "# TYPE hsp_gateway_received_bytes_total counter\n"
         "hsp_gateway_received_bytes_total %" PRIu64 "\n"
         "# HELP hsp_gateway_sent_bytes_total Bytes written to clients.\n"
         "# TYPE hsp_gateway_sent_bytes_total counter\nhsp_gateway_sent_bytes_total %" PRIu64
         "\n"
         "# HELP hsp_gateway_registry_seq Registry log sequence this gateway holds.\n"
         "# TYPE hsp_gateway_registry_seq gauge\nhsp_gateway_registry_seq %" PRIu64 "\n",
         gw->nconns, gw->nup, gw->ntunnels, gw->refused, gw->bytes_in, gw->bytes_out,
         up_seq(gw));
  if (gw->up.sessions)
    sb_fmt(b,
           "# HELP hsp_gateway_instance_sessions Connections to instances (data plane "
           "sessions; streams are channels on them).\n"
           "# TYPE hsp_gateway_instance_sessions gauge\nhsp_gateway_instance_sessions %zu\n",
           gw->up.sessions(gw->up.ud));
}

/* ---- Server-sent events ----------------------------------------------------------------- */

static void sse_send(conn_t *c, const char *event, const char *data, size_t len) {
  if (c->wpending > SSE_MAX_PENDING) {
    conn_close(c); /* a dashboard that does not read is dropped, not buffered for */
    return;
  }
  char head[64];
  int n = snprintf(head, sizeof head, "event: %s\ndata: ", event);
  client_writev(c, head, (size_t)n, data, len, "\n\n", 2);
}

static void sse_broadcast(hsp_gw_t *gw) {
  if (!gw->sse) return;
  sb_t b = {0};
  build_state(gw, &b);
  if (!b.oom) {
    for (conn_t *c = gw->sse, *next; c; c = next) {
      next = c->sse_next;
      sse_send(c, "state", b.p, b.len);
    }
  }
  free(b.p);
}

static void start_sse(conn_t *c) {
  hsp_gw_t *gw = c->gw;
  static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
                             "retry: 1000\n\n";
  c->status = 200;
  c->local = true;
  c->answered = true;
  client_write(c, head, sizeof head - 1);
  if (c->state == C_CLOSED) return;
  record_stats(c); /* counted now: the stream never ends by itself */
  uv_timer_stop(&c->timer);
  set_reading(c, true); /* only to see the client go */
  c->state = C_SSE;
  c->sse_next = gw->sse;
  c->sse_prev = NULL;
  if (gw->sse) gw->sse->sse_prev = c;
  gw->sse = c;
  gw->nsse++;
  sb_t b = {0};
  build_state(gw, &b);
  if (!b.oom) sse_send(c, "state", b.p, b.len);
  free(b.p);
}

/* ---- Request routing -------------------------------------------------------------------- */

static bool path_is(const hsp_http_route_t *r, const char *p) {
  return r->path.len == strlen(p) && memcmp(r->path.p, p, r->path.len) == 0;
}

static void local_route(conn_t *c) {
  hsp_gw_t *gw = c->gw;
  const hsp_http_route_t *r = &c->route;
  bool get = c->req.method == HSP_HTTP_GET || c->req.method == HSP_HTTP_HEAD;
  if (path_is(r, "/") || path_is(r, "/index.html")) {
    if (!get) { respond_error(c, 405, "method not allowed"); return; }
    respond(c, 200, "text/html; charset=utf-8", NULL, hsp_gw_dashboard_html,
            hsp_gw_dashboard_html_len);
  } else if (path_is(r, "/events")) {
    if (!get) { respond_error(c, 405, "method not allowed"); return; }
    if (c->req.method == HSP_HTTP_HEAD) {
      respond(c, 200, "text/event-stream", NULL, "", 0);
      return;
    }
    c->close_after = true;
    start_sse(c);
  } else if (path_is(r, "/metrics")) {
    if (!get) { respond_error(c, 405, "method not allowed"); return; }
    sb_t b = {0};
    build_metrics(gw, &b);
    if (b.oom) respond_error(c, 500, "out of memory");
    else respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, b.p, b.len);
    free(b.p);
  } else {
    respond_error(c, 404, "no such path: use /role/NAME@RANGE/..., /instance/KEY/..., "
                          "/list/NAME@RANGE, /metrics or /");
  }
}

static void list_route(conn_t *c) {
  hsp_gw_t *gw = c->gw;
  if (c->req.method != HSP_HTTP_GET && c->req.method != HSP_HTTP_HEAD)
    { respond_error(c, 405, "method not allowed"); return; }
  long n = gw->up.query(gw->up.ud, c->route.name, c->route.range, NULL, 0);
  if (n < 0) {
    respond_error(c, n == HSP_REG_ERANGE ? 400 : 500,
                  n == HSP_REG_ERANGE ? "invalid version range" : hsp_reg_strerror((int)n));
    return;
  }
  hsp_reg_instance_t *v = NULL;
  if (n > 0) {
    v = malloc((size_t)n * sizeof *v);
    if (!v) { respond_error(c, 500, "out of memory"); return; }
    long m = gw->up.query(gw->up.ud, c->route.name, c->route.range, v, (size_t)n);
    if (m < n) n = m < 0 ? 0 : m;
  }
  sb_t b = {0};
  sb_put(&b, "[", 1);
  for (long i = 0; i < n; i++) {
    if (i) sb_put(&b, ",", 1);
    json_instance(&b, gw, &v[i]);
  }
  sb_put(&b, "]\n", 2);
  free(v);
  if (b.oom) respond_error(c, 500, "out of memory");
  else respond(c, 200, "application/json", NULL, b.p, b.len);
  free(b.p);
}

/* Builds the head to send upstream, kept until the response starts (failover resends it). */
static bool build_forward_head(conn_t *c) {
  char target[TARGET_MAX + 2];
  const hsp_http_route_t *r = &c->route;
  size_t tl = r->path.len + (r->has_query ? 1 + r->query.len : 0);
  if (tl > TARGET_MAX) return false;
  memcpy(target, r->path.p, r->path.len);
  if (r->has_query) {
    target[r->path.len] = '?';
    memcpy(target + r->path.len + 1, r->query.p, r->query.len);
  }
  size_t cap = HEAD_BUF + TARGET_MAX + 1024;
  c->fwd_head = malloc(cap);
  if (!c->fwd_head) return false;
  /* HTTP/1.0 clients may send no Host; an HTTP/1.1 upstream needs one. */
  const char *host = hsp_http_headers_get(&c->hdrs, "host") ? NULL : "localhost";
  hsp_http_forward_opts_t o = {.client_addr = c->addr,
                               .host = host,
                               .proto = c->gw->cfg.proto,
                               .trust_forwarded = c->gw->cfg.trust_forwarded,
                               .upgrade = c->req.upgrade};
  int n = hsp_http_forward_request_head(c->fwd_head, cap,
                                        (hsp_http_str_t){c->method, c->method_len},
                                        (hsp_http_str_t){target, tl}, c->hdrs.items,
                                        c->hdrs.count, &o);
  if (n < 0) return false;
  c->fwd_len = (size_t)n;
  return true;
}

static void proxy_route(conn_t *c) {
  hsp_gw_t *gw = c->gw;
  hsp_http_route_t *r = &c->route;
  if (c->req.method == HSP_HTTP_CONNECT) { respond_error(c, 405, "CONNECT is not proxied"); return; }
  c->cands = malloc(MAX_CANDIDATES * sizeof *c->cands);
  if (!c->cands) { respond_error(c, 500, "out of memory"); return; }
  if (r->kind == HSP_HTTP_ROUTE_INSTANCE) {
    if (!gw->up.get(gw->up.ud, r->key, &c->cands[0]))
      { respond_error(c, 404, "no such instance"); return; }
    c->ncands = 1;
  } else {
    long n = gw->up.query(gw->up.ud, r->name, r->range, c->cands, MAX_CANDIDATES);
    if (n < 0) {
    respond_error(c, n == HSP_REG_ERANGE ? 400 : 500,
                  n == HSP_REG_ERANGE ? "invalid version range" : hsp_reg_strerror((int)n));
    return;
  }
    if (n == 0) {
      if (!role_exists(gw, r->name)) { respond_error(c, 404, "no such role"); return; }
      { respond_error(c, 404, "no instance satisfies the range"); return; }
    }
    if (n > MAX_CANDIDATES) n = MAX_CANDIDATES;
    /* Keep the healthy ones, rotated for round robin. */
    size_t k = 0;
    for (long i = 0; i < n; i++)
      if (!gw->up.health || gw->up.health(gw->up.ud, c->cands[i].key) == HSP_GW_HEALTHY)
        c->cands[k++] = c->cands[i];
    if (k == 0) {
      c->stats = role_stats(gw, r->name, true);
      { respond_error(c, 503, "no healthy instance"); return; }
    }
    if (gw->up.choose) {
      gw->up.choose(gw->up.ud, r->name, r->range, c->cands, k);
    } else {
      size_t rot = (size_t)(gw->rr++ % k);
      if (rot) {
        hsp_reg_instance_t *tmp = malloc(rot * sizeof *tmp);
        if (!tmp) { respond_error(c, 500, "out of memory"); return; }
        memcpy(tmp, c->cands, rot * sizeof *tmp);
        memmove(c->cands, c->cands + rot, (k - rot) * sizeof *tmp);
        memcpy(c->cands + (k - rot), tmp, rot * sizeof *tmp);
        free(tmp);
      }
    }
    c->ncands = k;
  }
  c->stats = role_stats(gw, c->cands[0].name, true);
  if (!build_forward_head(c)) { respond_error(c, 431, "request head too large to forward"); return; }
  start_upstream(c);
}

/* The request head is complete (the parser is paused right after it). */
static void handle_head(conn_t *c) {
  hsp_gw_t *gw = c->gw;
  c->t_start = uv_hrtime();
  c->close_after = !c->req.keep_alive;
  c->upgrade_req = c->req.upgrade;
  c->stats = &gw->own;
  touch(c);
  arm_timer(c, gw->cfg.idle_timeout_ms);
  if (hsp_http_route_parse(&c->route, c->target, c->target_len) != 0) {
    respond_error(c, 400, "bad route: name, key or escape");
  } else if (c->route.kind == HSP_HTTP_ROUTE_OTHER) {
    local_route(c);
  } else if (c->route.kind == HSP_HTTP_ROUTE_LIST) {
    list_route(c);
  } else {
    proxy_route(c);
  }
  if (c->state == C_CLOSED || c->state == C_SSE) return;
  if (c->local) c->state = C_LOCAL_BODY;
}

/* ---- Upstream side ---------------------------------------------------------------------- */

static int res_on_start(void *d, const hsp_http_start_line_t *l) {
  upconn_t *u = d;
  u->status = l->status;
  u->vmaj = l->version_major;
  u->vmin = l->version_minor;
  u->reason_len = l->reason.len < sizeof u->reason ? l->reason.len : sizeof u->reason;
  memcpy(u->reason, l->reason.p, u->reason_len);
  hsp_http_headers_init(&u->hdrs, u->items, MAX_FIELDS, u->hbuf, sizeof u->hbuf);
  return 0;
}

static int res_on_header(void *d, hsp_http_str_t n, hsp_http_str_t v) {
  upconn_t *u = d;
  return hsp_http_headers_add(&u->hdrs, n, v) == 0 ? 0 : -1;
}

static int res_on_headers_complete(void *d, const hsp_http_message_t *m) {
  upconn_t *u = d;
  conn_t *c = u->c;
  char head[HEAD_BUF + 512];
  hsp_http_response_opts_t o = {0};
  hsp_http_str_t reason = {u->reason, u->reason_len};
  if (m->status == 101 && m->upgrade) {
    if (!c->upgrade_req) return -1; /* an upgrade nobody asked for */
    o.upgrade = true;
    u->upgraded = true;
  } else if (m->status < 200) {
    u->interim = true;
    if (c->req.version_minor == 0) return 0; /* HTTP/1.0 clients get no interim responses */
  } else {
    uv_timer_stop(&c->uptimer);
    bool no_body = c->req.method == HSP_HTTP_HEAD || m->body == HSP_HTTP_BODY_NONE;
    bool unframed = !no_body && (m->body == HSP_HTTP_BODY_EOF || m->body == HSP_HTTP_BODY_CHUNKED);
    if (unframed && c->req.version_minor == 0) {
      o.identity = true;
      c->close_after = true;
    } else if (unframed) {
      u->chunk_out = true;
      o.chunked = m->body == HSP_HTTP_BODY_EOF;
    }
    o.close = c->close_after;
    o.keep_alive = !c->close_after && c->req.version_minor == 0;
    c->status = m->status;
  }
  int n = hsp_http_forward_response_head(head, sizeof head, m->status, reason, u->hdrs.items,
                                         u->hdrs.count, &o);
  if (n < 0) return -1;
  if (!u->interim) u->head_sent = c->answered = true;
  client_write(c, head, (size_t)n);
  if (c->state == C_CLOSED) return HSP_HTTP_PAUSE;
  return c->req.method == HSP_HTTP_HEAD && !u->interim && !u->upgraded ? HSP_HTTP_SKIP_BODY : 0;
}

static int res_on_body(void *d, const uint8_t *b, size_t n) {
  upconn_t *u = d;
  conn_t *c = u->c;
  if (u->chunk_out) {
    char h[24];
    size_t hl = hsp_http_chunk_header(h, n);
    client_writev(c, h, hl, b, n, "\r\n", 2);
  } else {
    client_write(c, b, n);
  }
  return c->state == C_CLOSED ? HSP_HTTP_PAUSE : 0;
}

static int res_on_message_complete(void *d, const hsp_http_message_t *m) {
  upconn_t *u = d;
  if (u->interim) {
    u->interim = false;
    return 0;
  }
  if (u->chunk_out) client_write(u->c, "0\r\n\r\n", 5);
  u->res_done = true;
  u->reusable = m->keep_alive && !u->upgraded;
  return HSP_HTTP_PAUSE;
}

static const hsp_http_callbacks_t res_cbs = {res_on_start, res_on_header,
                                             res_on_headers_complete, res_on_body, NULL,
                                             res_on_message_complete};

static void pool_remove(upconn_t *u) {
  hsp_gw_t *gw = u->gw;
  if (u->pool_prev) u->pool_prev->pool_next = u->pool_next;
  else gw->pool = u->pool_next;
  if (u->pool_next) u->pool_next->pool_prev = u->pool_prev;
  u->pooled = false;
  u->pool_prev = u->pool_next = NULL;
}

void hsp_gw_drop_idle(hsp_gw_t *gw, const uint8_t key[HSP_REG_KEY_BYTES]) {
  for (upconn_t *u = gw->pool, *next; u; u = next) {
    next = u->pool_next;
    if (memcmp(u->key, key, HSP_REG_KEY_BYTES) == 0) {
      pool_remove(u);
      up_free(u);
    }
  }
}

static void start_tunnel(conn_t *c, upconn_t *u, const uint8_t *rest, size_t len) {
  record_stats(c); /* the request is answered; the tunnel is not timed */
  c->state = C_TUNNEL;
  c->gw->ntunnels++;
  uv_timer_stop(&c->uptimer);
  touch(c);
  arm_timer(c, c->gw->cfg.tunnel_timeout_ms);
  if (len) client_write(c, rest, len);
  if (c->state == C_CLOSED) return;
  /* Bytes the client sent after its upgrade request belong to the tunnel. */
  if (c->roff < c->rlen) {
    u->s->ops->write(u->s, c->rbuf + c->roff, c->rlen - c->roff);
    c->roff = c->rlen = 0;
  }
  if (c->read_eof) u->s->ops->shutdown(u->s);
  set_reading(c, !c->read_eof);
}

static void response_complete(conn_t *c) {
  if (c->req_done) finish_exchange(c);
  /* Otherwise the request body still flows up; the exchange ends with it. */
}

static void up_on_data(void *ctx, const uint8_t *b, size_t n) {
  upconn_t *u = ctx;
  conn_t *c = u->c;
  if (!c) {
    /* An idle stream does not speak: whatever this is, the stream is no longer usable. */
    pool_remove(u);
    up_free(u);
    return;
  }
  touch(c);
  if (c->state == C_TUNNEL) {
    client_write(c, b, n);
  } else {
    u->any_bytes = true;
    size_t off = 0;
    while (off < n) {
      if (u->res_done) {
        /* Bytes after the response: the stream is out of step, never reuse it. */
        u->reusable = false;
        break;
      }
      size_t used;
      int rc = hsp_http_parser_execute(&u->parser, b + off, n - off, &used);
      off += used;
      if (c->state == C_CLOSED) return;
      if (rc < 0 || (rc == HSP_HTTP_UPGRADED && !u->upgraded)) {
        upstream_failed(c, u, 502, "invalid response from the instance");
        return;
      }
      if (rc == HSP_HTTP_UPGRADED) {
        start_tunnel(c, u, b + off, n - off);
        return;
      }
      if (u->res_done) {
        if (off < n) u->reusable = false;
        response_complete(c);
        return;
      }
    }
    if (u->res_done) return;
  }
  if (c->state != C_CLOSED && c->wpending > HSP_GW_HIGH_WATER && !u->blocked && u->s) {
    u->blocked = true;
    u->s->ops->set_reading(u->s, false);
  }
}

static void up_on_end(void *ctx) {
  upconn_t *u = ctx;
  conn_t *c = u->c;
  if (!c) {
    pool_remove(u);
    up_free(u);
    return;
  }
  u->eof = true;
  u->reusable = false;
  if (c->state == C_TUNNEL) {
    /* The instance ended the tunnel: the client gets what is queued, then the close. */
    conn_close_after_flush(c);
    return;
  }
  if (u->res_done) return;
  int rc = hsp_http_parser_finish(&u->parser);
  if (c->state == C_CLOSED) return;
  if (rc == 0 && u->res_done) {
    response_complete(c);
    return;
  }
  upstream_failed(c, u, 502, "the instance closed the connection before responding");
}

static void up_on_error(void *ctx, int err) {
  (void)err;
  upconn_t *u = ctx;
  conn_t *c = u->c;
  if (!c) {
    pool_remove(u);
    up_free(u);
    return;
  }
  if (c->state == C_TUNNEL) {
    conn_close_after_flush(c);
    return;
  }
  if (u->res_done) {
    u->reusable = false;
    return;
  }
  upstream_failed(c, u, 502, "the instance connection failed");
}

static void up_on_drain(void *ctx) {
  upconn_t *u = ctx;
  conn_t *c = u->c;
  if (!c || !c->up_blocked) return;
  c->up_blocked = false;
  if (c->state == C_TUNNEL) set_reading(c, true);
  else conn_process(c);
}

static void send_head(conn_t *c);
static void on_uptimer(uv_timer_t *t);

static void up_on_open(void *ctx, int status) {
  upconn_t *u = ctx;
  conn_t *c = u->c;
  hsp_gw_t *gw = u->gw;
  if (status < 0) {
    if (gw->up.mark_failed) gw->up.mark_failed(gw->up.ud, u->key, status);
    conn_drop_up(c);
    c->attempts++;
    start_upstream(c); /* the next candidate, or 502 */
    return;
  }
  u->open = true;
  send_head(c);
}

static const hsp_gw_stream_events_t up_events = {up_on_open, up_on_data, up_on_end, up_on_drain,
                                                 up_on_error};

static void send_head(conn_t *c) {
  upconn_t *u = c->up;
  hsp_http_parser_init(&u->parser, HSP_HTTP_RESPONSE, &res_cbs, u, u->scratch,
                       sizeof u->scratch, NULL);
  u->any_bytes = u->head_sent = u->res_done = u->upgraded = u->chunk_out = u->interim = false;
  u->reusable = false;
  if (u->s->ops->write(u->s, (const uint8_t *)c->fwd_head, c->fwd_len) < 0) {
    upstream_failed(c, u, 502, "the instance connection failed");
    return;
  }
  /* The response head is due once the request is complete: a server may read a whole upload
   * before answering. While the body flows, the idle timeout watches for stalls. */
  if (c->req_done) uv_timer_start(&c->uptimer, on_uptimer, c->gw->cfg.upstream_timeout_ms, 0);
  else uv_timer_stop(&c->uptimer);
  c->state = c->req_done ? C_WAIT : C_BODY;
  conn_process(c);
}

static upconn_t *pool_take(hsp_gw_t *gw, const uint8_t *key) {
  /* Most recently used first: the least likely to have been closed by the instance. */
  for (upconn_t *u = gw->pool; u; u = u->pool_next) {
    if (memcmp(u->key, key, HSP_REG_KEY_BYTES) == 0) {
      pool_remove(u);
      return u;
    }
  }
  return NULL;
}

/* Tries the candidates in order: a pooled stream, else a new one. */
static void start_upstream(conn_t *c) {
  hsp_gw_t *gw = c->gw;
  while (c->next_cand < c->ncands && c->attempts < 3 + (int)gw->cfg.pool_per_instance) {
    const uint8_t *key = c->cands[c->next_cand].key;
    upconn_t *u = pool_take(gw, key);
    if (u) {
      u->reused = true;
      u->c = c;
      c->up = u;
      send_head(c);
      return;
    }
    c->next_cand++;
    u = calloc(1, sizeof *u);
    if (!u) break;
    u->gw = gw;
    memcpy(u->key, key, HSP_REG_KEY_BYTES);
    u->c = c;
    int rc = gw->up.open(gw->up.ud, key, &up_events, u, &u->s);
    if (rc < 0) {
      free(u);
      if (gw->up.mark_failed) gw->up.mark_failed(gw->up.ud, key, rc);
      c->attempts++;
      continue;
    }
    gw->nup++;
    c->up = u;
    c->state = C_OPENING;
    uv_timer_start(&c->uptimer, on_uptimer, gw->cfg.upstream_timeout_ms, 0);
    return;
  }
  int status = c->attempts ? 502 : 503;
  const char *msg = c->attempts ? "instance failed" : "no healthy instance";
  if (c->state == C_HEAD) respond_error(c, status, msg); /* still inside handle_head */
  else answer_failure(c, status, msg);
}

static void upstream_failed(conn_t *c, upconn_t *u, int status, const char *why) {
  hsp_gw_t *gw = c->gw;
  bool retry = u->reused && !u->any_bytes && c->req.body == HSP_HTTP_BODY_NONE;
  if (!u->any_bytes && !u->reused && gw->up.mark_failed)
    gw->up.mark_failed(gw->up.ud, u->key, HSP_GW_ECLOSED);
  conn_drop_up(c);
  if (retry) {
    /* A pooled stream the instance had closed: the request went nowhere, send it anew. */
    c->attempts++;
    c->state = C_OPENING;
    start_upstream(c);
    return;
  }
  answer_failure(c, status, why);
}

static void on_uptimer(uv_timer_t *t) {
  conn_t *c = t->data;
  hsp_gw_t *gw = c->gw;
  if (c->state == C_CLOSED || !c->up || c->up->head_sent) return;
  if (gw->up.mark_failed) gw->up.mark_failed(gw->up.ud, c->up->key, HSP_GW_ECLOSED);
  answer_failure(c, 504, "the instance did not answer in time");
}

/* The stream of a completed exchange goes back to the pool if it can carry another. */
static void release_up(conn_t *c) {
  upconn_t *u = c->up;
  hsp_gw_t *gw = c->gw;
  if (!u) return;
  size_t same = 0;
  for (upconn_t *p = gw->pool; p; p = p->pool_next)
    if (memcmp(p->key, u->key, HSP_REG_KEY_BYTES) == 0) same++;
  /* Not kept for an instance the upstream stopped offering (e.g. it drains). */
  if (!u->reusable || u->eof || !u->s || same >= gw->cfg.pool_per_instance || gw->closing ||
      (gw->up.health && gw->up.health(gw->up.ud, u->key) != HSP_GW_HEALTHY)) {
    conn_drop_up(c);
    return;
  }
  c->up = NULL;
  u->c = NULL;
  u->pooled = true;
  u->idle_since = uv_now(gw->loop);
  if (u->blocked) {
    u->blocked = false;
    u->s->ops->set_reading(u->s, true);
  }
  u->pool_prev = NULL;
  u->pool_next = gw->pool;
  if (gw->pool) gw->pool->pool_prev = u;
  gw->pool = u;
}

/* ---- Client side ------------------------------------------------------------------------ */

static int req_on_start(void *d, const hsp_http_start_line_t *l) {
  conn_t *c = d;
  if (l->method_name.len >= sizeof c->method || l->target.len > TARGET_MAX) return -1;
  memcpy(c->method, l->method_name.p, l->method_name.len);
  c->method_len = l->method_name.len;
  memcpy(c->target, l->target.p, l->target.len);
  c->target_len = l->target.len;
  c->target[c->target_len] = '\0';
  hsp_http_headers_init(&c->hdrs, c->items, MAX_FIELDS, c->hbuf, sizeof c->hbuf);
  return 0;
}

static int req_on_header(void *d, hsp_http_str_t n, hsp_http_str_t v) {
  conn_t *c = d;
  return hsp_http_headers_add(&c->hdrs, n, v) == 0 ? 0 : -1;
}

static int req_on_headers_complete(void *d, const hsp_http_message_t *m) {
  conn_t *c = d;
  c->req = *m;
  c->head_ready = true;
  return HSP_HTTP_PAUSE;
}

static int req_on_body(void *d, const uint8_t *b, size_t n) {
  conn_t *c = d;
  if (c->state != C_BODY || !c->up) return 0; /* answered locally: dropped */
  upconn_t *u = c->up;
  int rc;
  if (c->req.body == HSP_HTTP_BODY_CHUNKED) {
    /* Re-chunked as it arrives: one chunk per slice. */
    char h[24];
    size_t hl = hsp_http_chunk_header(h, n);
    uint8_t *tmp = malloc(hl + n + 2);
    if (!tmp) return -1;
    memcpy(tmp, h, hl);
    memcpy(tmp + hl, b, n);
    memcpy(tmp + hl + n, "\r\n", 2);
    rc = u->s->ops->write(u->s, tmp, hl + n + 2);
    free(tmp);
  } else {
    rc = u->s->ops->write(u->s, b, n);
  }
  if (rc < 0) return 0; /* the stream reports its failure through on_error */
  if (u->s->ops->pending(u->s) > HSP_GW_HIGH_WATER) {
    c->up_blocked = true;
    return HSP_HTTP_PAUSE;
  }
  return 0;
}

static int req_on_message_complete(void *d, const hsp_http_message_t *m) {
  (void)m;
  conn_t *c = d;
  c->msg_done = true;
  return HSP_HTTP_PAUSE;
}

static const hsp_http_callbacks_t req_cbs = {req_on_start, req_on_header,
                                             req_on_headers_complete, req_on_body, NULL,
                                             req_on_message_complete};

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  conn_t *c = h->data;
  if (c->roff == c->rlen) {
    c->roff = c->rlen = 0;
  } else if (c->roff > 0) {
    memmove(c->rbuf, c->rbuf + c->roff, c->rlen - c->roff);
    c->rlen -= c->roff;
    c->roff = 0;
  }
  *buf = uv_buf_init((char *)c->rbuf + c->rlen, (unsigned)(RBUF_SIZE - c->rlen));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void set_reading(conn_t *c, bool on) {
  if (c->state == C_CLOSED || c->read_eof || c->reading == on) return;
  c->reading = on;
  if (on) uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  else uv_read_stop((uv_stream_t *)&c->tcp);
}

static void request_complete(conn_t *c) {
  c->req_done = true;
  if (c->local) {
    finish_exchange(c);
    return;
  }
  if (c->req.body == HSP_HTTP_BODY_CHUNKED && c->up && c->up->s)
    c->up->s->ops->write(c->up->s, (const uint8_t *)"0\r\n\r\n", 5);
  if (c->state == C_BODY) {
    c->state = C_WAIT;
    if (!c->answered)
      uv_timer_start(&c->uptimer, on_uptimer, c->gw->cfg.upstream_timeout_ms, 0);
  }
  if (c->up && c->up->res_done) finish_exchange(c);
}

static void next_request(conn_t *c) {
  hsp_gw_t *gw = c->gw;
  if (c->close_after) {
    conn_close_after_flush(c);
    return;
  }
  c->state = C_HEAD;
  c->req_done = c->local = c->got_bytes = c->gw_error = c->upgrade_req = c->answered = false;
  c->head_ready = c->msg_done = c->up_blocked = false;
  c->stats = NULL;
  c->status = 0;
  c->attempts = 0;
  /* A parse error before the next head must not answer as if it were the last request. */
  memset(&c->req, 0, sizeof c->req);
  c->req.version_minor = 1;
  c->ncands = c->next_cand = 0;
  free(c->cands);
  c->cands = NULL;
  free(c->fwd_head);
  c->fwd_head = NULL;
  if (c->roff < c->rlen) {
    c->got_bytes = true;
    arm_timer(c, gw->cfg.header_timeout_ms);
  } else {
    arm_timer(c, gw->cfg.idle_timeout_ms);
  }
  if (c->read_eof && c->roff == c->rlen) {
    conn_close_after_flush(c);
    return;
  }
  conn_process(c);
}

static void finish_exchange(conn_t *c) {
  record_stats(c);
  uv_timer_stop(&c->uptimer);
  release_up(c);
  if (c->upgrade_req) hsp_http_parser_resume(&c->parser); /* the upgrade was refused */
  next_request(c);
}

static bool can_parse(const conn_t *c) {
  return c->state == C_HEAD || c->state == C_LOCAL_BODY || (c->state == C_BODY && !c->up_blocked);
}

static void parse_error(conn_t *c, int rc) {
  protocol_error(c, hsp_http_error_status(rc), hsp_http_strerror(rc));
}

static void conn_process_now(conn_t *c) {
  while (c->roff < c->rlen && can_parse(c)) {
    size_t used = 0;
    int rc = hsp_http_parser_execute(&c->parser, c->rbuf + c->roff, c->rlen - c->roff, &used);
    c->roff += used;
    if (c->state == C_CLOSED) return;
    if (rc < 0) {
      parse_error(c, rc);
      return;
    }
    if (c->head_ready) {
      c->head_ready = false;
      handle_head(c);
      if (c->state == C_CLOSED || c->state == C_SSE || c->state == C_DRAIN) return;
    }
    if (c->msg_done) {
      c->msg_done = false;
      request_complete(c);
      if (c->state == C_CLOSED) return;
    }
  }
  if (c->state == C_CLOSED || c->state == C_SSE || c->state == C_DRAIN) return;
  if (c->state == C_TUNNEL) return;
  /* While a request is in flight the socket is still read (no epoll change per request),
   * but only into the room the buffer has: a client cannot make us hold more than that. */
  set_reading(c, c->rlen - c->roff < RBUF_SIZE);
}

/* Parses what the read buffer holds as far as the state allows. Calls made while it runs
 * (an exchange finishing inside a callback, a pooled stream ready at once) return at once:
 * the running loop re-checks the state after every step, so it does their work, in order,
 * without recursion. */
static void conn_process(conn_t *c) {
  if (c->in_process || c->state == C_CLOSED) return;
  c->in_process = true;
  conn_process_now(c);
  c->in_process = false;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  conn_t *c = s->data;
  if (c->state == C_CLOSED) return;
  if (n == 0) return;
  if (n < 0) {
    c->read_eof = true;
    c->reading = false;
    uv_read_stop(s);
    if (n != UV_EOF) {
      conn_close(c);
      return;
    }
    switch (c->state) {
    case C_TUNNEL:
      if (c->up && c->up->s) c->up->s->ops->shutdown(c->up->s);
      touch(c);
      arm_timer(c, TUNNEL_LINGER_MS);
      break;
    case C_HEAD:
      if (c->got_bytes && c->roff < c->rlen) break; /* parse what is left first */
      if (c->got_bytes) parse_error(c, HSP_HTTP_EINCOMPLETE);
      else conn_close(c);
      break;
    case C_BODY:
    case C_LOCAL_BODY:
    case C_OPENING:
      if (!c->req_done) {
        /* The body was cut short: nothing sensible can be forwarded or answered. */
        conn_close(c);
      }
      break;
    case C_DRAIN:
      if (c->shut_sent) conn_close(c);
      break;
    case C_SSE: conn_close(c); break;
    default: break; /* C_WAIT: the response is still sent, then the connection closes */
    }
    return;
  }
  c->gw->bytes_in += (uint64_t)n;
  if (c->state == C_DRAIN || c->state == C_SSE) {
    c->roff = c->rlen = 0; /* dropped */
    return;
  }
  c->rlen += (size_t)n;
  touch(c);
  if (c->state == C_TUNNEL) {
    upconn_t *u = c->up;
    if (u && u->s) {
      u->s->ops->write(u->s, c->rbuf + c->roff, c->rlen - c->roff);
      c->roff = c->rlen = 0;
      if (u->s->ops->pending(u->s) > HSP_GW_HIGH_WATER) {
        c->up_blocked = true;
        set_reading(c, false);
      }
    }
    return;
  }
  if (c->state == C_HEAD && !c->got_bytes) {
    /* The first byte of a request starts the head clock; later bytes do not reset it. */
    c->got_bytes = true;
    arm_timer(c, c->gw->cfg.header_timeout_ms);
  }
  conn_process(c);
}

static void on_timer(uv_timer_t *t) {
  conn_t *c = t->data;
  hsp_gw_t *gw = c->gw;
  uint64_t now = uv_now(gw->loop);
  switch (c->state) {
  case C_HEAD:
    if (c->got_bytes) {
      protocol_error(c, 408, "request head not received in time");
    } else {
      conn_close(c);
    }
    return;
  case C_DRAIN: conn_close(c); return;
  case C_SSE:
  case C_CLOSED: return;
  default: break;
  }
  uint64_t limit = c->state != C_TUNNEL ? gw->cfg.idle_timeout_ms
                   : c->read_eof          ? TUNNEL_LINGER_MS
                                          : gw->cfg.tunnel_timeout_ms;
  if (now - c->last_activity < limit) {
    arm_timer(c, limit - (now - c->last_activity));
    return;
  }
  if (c->state == C_BODY && !(c->up && c->up->head_sent))
    protocol_error(c, 408, "request body stalled");
  else conn_close(c);
}

static void on_connection(uv_stream_t *server, int status) {
  hsp_gw_t *gw = server->data;
  if (status < 0 || gw->closing) return;
  conn_t *c = calloc(1, sizeof *c);
  if (!c) return;
  c->gw = gw;
  uv_tcp_init(gw->loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || gw->nconns >= gw->cfg.max_connections) {
    if (gw->nconns >= gw->cfg.max_connections) gw->refused++;
    c->handles = 1;
    gw->handles++;
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    return;
  }
  uv_timer_init(gw->loop, &c->timer);
  uv_timer_init(gw->loop, &c->uptimer);
  c->timer.data = c->uptimer.data = c;
  c->handles = 3;
  gw->handles++;
  uv_tcp_nodelay(&c->tcp, 1);
  struct sockaddr_storage ss;
  int len = sizeof ss;
  strcpy(c->addr, "unknown");
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
    if (ss.ss_family == AF_INET) uv_ip4_name((struct sockaddr_in *)&ss, c->addr, sizeof c->addr);
    else if (ss.ss_family == AF_INET6)
      uv_ip6_name((struct sockaddr_in6 *)&ss, c->addr, sizeof c->addr);
  }
  hsp_http_parser_init(&c->parser, HSP_HTTP_REQUEST, &req_cbs, c, c->scratch, sizeof c->scratch,
                       &gw->cfg.limits);
  c->next = gw->conns;
  if (gw->conns) gw->conns->prev = c;
  gw->conns = c;
  gw->nconns++;
  c->state = C_HEAD;
  c->req.version_minor = 1;
  touch(c);
  arm_timer(c, gw->cfg.idle_timeout_ms);
  set_reading(c, true);
}

/* ---- The gateway ------------------------------------------------------------------------ */

static void on_tick(uv_timer_t *t) {
  hsp_gw_t *gw = t->data;
  gw->ticks++;
  /* Idle pooled streams are closed after the keep-alive idle time. */
  uint64_t now = uv_now(gw->loop);
  for (upconn_t *u = gw->pool, *next; u; u = next) {
    next = u->pool_next;
    if (now - u->idle_since > gw->cfg.idle_timeout_ms) {
      pool_remove(u);
      up_free(u);
    }
  }
  if (gw->dirty || (gw->ticks % TRAFFIC_EVERY_TICKS) == 0) {
    gw->dirty = false;
    sse_broadcast(gw);
  }
}

int hsp_gw_new(hsp_gw_t **out, uv_loop_t *loop, const hsp_gw_config_t *cfg,
               const hsp_gw_upstream_t *up) {
  if (!up || !up->query || !up->get || !up->each || !up->open) return HSP_GW_EINVAL;
  hsp_gw_t *gw = calloc(1, sizeof *gw);
  if (!gw) return HSP_GW_ENOMEM;
  gw->roles = calloc(MAX_ROLES, sizeof *gw->roles);
  if (!gw->roles) {
    free(gw);
    return HSP_GW_ENOMEM;
  }
  gw->loop = loop;
  gw->cfg = cfg ? *cfg : hsp_gw_default_config();
  if (!gw->cfg.proto) gw->cfg.proto = "http";
  gw->up = *up;
  uv_tcp_init(loop, &gw->server);
  gw->server.data = gw;
  uv_timer_init(loop, &gw->tick);
  gw->tick.data = gw;
  uv_check_init(loop, &gw->reaper);
  gw->reaper.data = gw;
  uv_check_init(loop, &gw->flusher);
  gw->flusher.data = gw;
  uv_idle_init(loop, &gw->flush_idle);
  gw->flush_idle.data = gw;
  gw->handles = 5;
  uv_timer_start(&gw->tick, on_tick, TICK_MS, TICK_MS);
  *out = gw;
  return 0;
}

int hsp_gw_listen(hsp_gw_t *gw, const char *host, int port) {
  struct sockaddr_storage ss;
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0)
    return HSP_GW_EINVAL;
  if (uv_tcp_bind(&gw->server, (const struct sockaddr *)&ss, 0) != 0) return HSP_GW_ELISTEN;
  if (uv_listen((uv_stream_t *)&gw->server, 511, on_connection) != 0) return HSP_GW_ELISTEN;
  int len = sizeof ss;
  if (uv_tcp_getsockname(&gw->server, (struct sockaddr *)&ss, &len) != 0) return HSP_GW_ELISTEN;
  gw->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                      : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  gw->listening = true;
  return 0;
}

int hsp_gw_port(const hsp_gw_t *gw) { return gw->port; }

void hsp_gw_changed(hsp_gw_t *gw) { gw->dirty = true; }

/* Handles of the gateway itself and its connections are counted together: the gateway is
 * freed when the last one closes. */
static void gw_maybe_done(hsp_gw_t *gw) {
  if (--gw->handles > 0) return;
  reap(gw);
  void (*cb)(void *) = gw->close_cb;
  void *ud = gw->close_ud;
  free(gw->roles);
  free(gw);
  if (cb) cb(ud);
}

static void gw_own_closed(uv_handle_t *h) { gw_maybe_done(h->data); }

void hsp_gw_close(hsp_gw_t *gw, void (*cb)(void *ud), void *ud) {
  gw->closing = true;
  gw->close_cb = cb;
  gw->close_ud = ud;
  while (gw->conns) conn_close(gw->conns);
  while (gw->pool) {
    upconn_t *u = gw->pool;
    pool_remove(u);
    up_free(u);
  }
  reap(gw);
  uv_close((uv_handle_t *)&gw->server, gw_own_closed);
  uv_close((uv_handle_t *)&gw->tick, gw_own_closed);
  uv_close((uv_handle_t *)&gw->reaper, gw_own_closed);
  uv_close((uv_handle_t *)&gw->flusher, gw_own_closed);
  uv_close((uv_handle_t *)&gw->flush_idle, gw_own_closed);
}
