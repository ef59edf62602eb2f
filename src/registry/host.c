/* The registry as a HyperDHT server (net.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "frame.h"
#include "hex.h"
#include "hyper_server.h"
#include "net.h"
#include "server.h"

uint64_t hsp_reg_clock_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A wall clock that jumps must not leave the expiry timer asleep for long. */
#define MAX_TIMER_MS 10000u

typedef struct host_conn host_conn_t;
struct host_conn {
  hsp_reg_host_t *host;
  hsp_dht_conn_t *conn;
  uint64_t id;
  hsp_reg_framer_t framer;
  host_conn_t *prev, *next;
};

typedef struct pending {
  uint64_t conn;
  uint8_t *msg;
  size_t len;
} pending_t;

struct hsp_reg_host {
  hsp_dht_io_t *io;
  hsp_dht_server_t *server;
  hsp_reg_server_t *reg;
  hsp_reg_log_fn log;
  void *ud;
  host_conn_t *conns;
  uint64_t next_id;
  size_t nconns;
  /* Messages read during this loop iteration, handled together by the check handle. */
  pending_t *pending;
  size_t npending, cappending;
  uv_check_t check;
  uv_timer_t timer;
  int open_handles;
  bool closing, server_closed;
  void (*close_cb)(void *);
  void *close_ctx;
};

static void logf_(hsp_reg_host_t *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(hsp_reg_host_t *h, const char *fmt, ...) {
  if (!h->log) return;
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  h->log(h->ud, line);
}

static host_conn_t *find_conn(hsp_reg_host_t *h, uint64_t id) {
  for (host_conn_t *c = h->conns; c; c = c->next)
    if (c->id == id) return c;
  return NULL;
}

static void send_cb(void *ud, uint64_t conn, const uint8_t *msg, size_t len) {
  hsp_reg_host_t *h = ud;
  host_conn_t *c = find_conn(h, conn);
  if (!c) return; /* gone meanwhile: its client asks again on its next connection */
  size_t n;
  uint8_t *frame = hsp_reg_frame_encode(msg, len, &n);
  if (!frame) return;
  if (hsp_dht_conn_write(c->conn, frame, n, NULL, NULL) != 0) hsp_dht_conn_destroy(c->conn);
  free(frame);
}

static void on_change(void *ud, const hsp_reg_entry_t *e) {
  hsp_reg_host_t *h = ud;
  char key[65];
  hsp_hex_encode(key, e->inst.key, HSP_REG_KEY_BYTES);
  switch (e->type) {
  case HSP_REG_REGISTER:
    logf_(h, "registered %s@%s %s (ttl %u ms)", e->inst.name, e->inst.version, key,
          (unsigned)e->inst.ttl_ms);
    break;
  case HSP_REG_DEREGISTER:
    logf_(h, "deregistered %s%s", key, e->by ? " (by the registry owner)" : "");
    break;
  case HSP_REG_EXPIRE: logf_(h, "expired %s: its lease lapsed", key); break;
  default: break; /* renewals would flood the log */
  }
}

static void arm_timer(hsp_reg_host_t *h);

static void on_timer(uv_timer_t *t) {
  hsp_reg_host_t *h = t->data;
  hsp_reg_server_tick(h->reg, hsp_reg_clock_ms());
  arm_timer(h);
}

static void arm_timer(hsp_reg_host_t *h) {
  if (h->closing) return;
  uint64_t next = hsp_reg_server_next_timer(h->reg);
  if (next == UINT64_MAX) {
    uv_timer_stop(&h->timer);
    return;
  }
  uint64_t now = hsp_reg_clock_ms();
  uint64_t delay = next > now ? next - now : 0;
  if (delay > MAX_TIMER_MS) delay = MAX_TIMER_MS;
  uv_timer_start(&h->timer, on_timer, delay, 0);
}

static void on_check(uv_check_t *ck) {
  hsp_reg_host_t *h = ck->data;
  if (!h->npending) return;
  hsp_reg_input_t *in = malloc(h->npending * sizeof *in);
  size_t n = 0;
  if (in) {
    for (size_t i = 0; i < h->npending; i++)
      if (h->pending[i].conn) in[n++] = (hsp_reg_input_t){h->pending[i].conn, h->pending[i].msg, h->pending[i].len};
    if (n) hsp_reg_server_handle_many(h->reg, in, n, hsp_reg_clock_ms());
    free(in);
  } /* else: out of memory, nothing answered; the clients time out and resend */
  for (size_t i = 0; i < h->npending; i++) free(h->pending[i].msg);
  h->npending = 0;
  arm_timer(h);
}

static int queue_msg(void *ud, const uint8_t *msg, size_t len) {
  host_conn_t *c = ud;
  hsp_reg_host_t *h = c->host;
  if (h->npending == h->cappending) {
    size_t cap = h->cappending ? h->cappending * 2 : 64;
    void *p = realloc(h->pending, cap * sizeof *h->pending);
    if (!p) return HSP_REG_ENOMEM;
    h->pending = p;
    h->cappending = cap;
  }
  uint8_t *copy = malloc(len ? len : 1);
  if (!copy) return HSP_REG_ENOMEM;
  if (len) memcpy(copy, msg, len);
  h->pending[h->npending++] = (pending_t){c->id, copy, len};
  return 0;
}

static void conn_read(hsp_dht_conn_t *dc, const uint8_t *buf, ssize_t len) {
  host_conn_t *c = hsp_dht_conn_user(dc);
  if (len == HSP_DHT_CONN_EOF) {
    hsp_dht_conn_end(dc); /* the client is done: finish our side too */
    return;
  }
  int err = hsp_reg_framer_push(&c->framer, buf, (size_t)len, queue_msg, c);
  if (err) {
    char key[17];
    hsp_hex_encode(key, hsp_dht_conn_remote_public_key(dc), 8);
    logf_(c->host, "dropped the connection of client %s…: %s", key,
          err == HSP_REG_EINVAL ? "frame larger than any request" : hsp_reg_strerror(err));
    hsp_dht_conn_destroy(dc);
  }
}

static void maybe_closed(hsp_reg_host_t *h);

static void conn_close(hsp_dht_conn_t *dc, int status) {
  (void)status;
  host_conn_t *c = hsp_dht_conn_user(dc);
  hsp_reg_host_t *h = c->host;
  /* Its unhandled messages are dropped: no watch may outlive the connection. */
  for (size_t i = 0; i < h->npending; i++)
    if (h->pending[i].conn == c->id) h->pending[i].conn = 0;
  hsp_reg_server_disconnect(h->reg, c->id);
  if (c->prev) c->prev->next = c->next;
  else h->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  h->nconns--;
  hsp_reg_framer_free(&c->framer);
  free(c);
  maybe_closed(h);
}

static void on_connection(void *ctx, hsp_dht_conn_t *dc) {
  hsp_reg_host_t *h = ctx;
  host_conn_t *c = calloc(1, sizeof *c);
  if (!c || h->closing) {
    free(c);
    hsp_dht_conn_destroy(dc);
    return;
  }
  c->host = h;
  c->conn = dc;
  c->id = ++h->next_id;
  hsp_reg_framer_init(&c->framer, HSP_REG_FRAME_REQUEST_MAX);
  c->next = h->conns;
  if (h->conns) h->conns->prev = c;
  h->conns = c;
  h->nconns++;
  hsp_dht_conn_set_callbacks(dc, conn_read, conn_close, c);
}

static bool firewall(void *ctx, const uint8_t remote[32]) {
  (void)ctx, (void)remote;
  return false; /* knowing the registry's public key is the admission ticket */
}

int hsp_reg_host_start(hsp_reg_host_t **out, hsp_dht_io_t *io, hsp_store_t *store,
                       const hsp_crypto_keypair_t *kp, hsp_reg_log_fn log, void *ud) {
  *out = NULL;
  hsp_reg_host_t *h = calloc(1, sizeof *h);
  if (!h) return HSP_REG_ENOMEM;
  h->io = io;
  h->log = log;
  h->ud = ud;
  hsp_reg_server_config_t cfg = {.store = store, .secret = kp->secret_key, .send = send_cb,
                                 .ud = h, .on_change = on_change};
  h->reg = hsp_reg_server_new(&cfg);
  if (!h->reg) {
    free(h);
    return HSP_REG_ENOMEM;
  }
  int err = hsp_dht_server_listen(&h->server, io, kp, firewall, on_connection, h);
  if (err) {
    hsp_reg_server_free(h->reg);
    free(h);
    return err;
  }
  uv_loop_t *loop = hsp_dht_io_loop(io);
  uv_check_init(loop, &h->check);
  uv_timer_init(loop, &h->timer);
  h->check.data = h->timer.data = h;
  h->open_handles = 2;
  uv_check_start(&h->check, on_check);
  /* Leases that ended while the registry was down end now. */
  hsp_reg_server_tick(h->reg, hsp_reg_clock_ms());
  arm_timer(h);
  *out = h;
  return 0;
}

static void maybe_closed(hsp_reg_host_t *h) {
  if (!h->closing || h->open_handles || h->nconns || !h->server_closed) return;
  for (size_t i = 0; i < h->npending; i++) free(h->pending[i].msg);
  free(h->pending);
  hsp_reg_server_free(h->reg);
  void (*cb)(void *) = h->close_cb;
  void *ctx = h->close_ctx;
  free(h);
  if (cb) cb(ctx);
}

static void handle_closed(uv_handle_t *handle) {
  hsp_reg_host_t *h = handle->data;
  h->open_handles--;
  maybe_closed(h);
}

static void server_closed(void *ctx) {
  hsp_reg_host_t *h = ctx;
  h->server_closed = true;
  maybe_closed(h);
}

void hsp_reg_host_close(hsp_reg_host_t *h, void (*cb)(void *ctx), void *ctx) {
  if (h->closing) return;
  h->closing = true;
  h->close_cb = cb;
  h->close_ctx = ctx;
  for (host_conn_t *c = h->conns; c; c = c->next) hsp_dht_conn_destroy(c->conn);
  uv_close((uv_handle_t *)&h->check, handle_closed);
  uv_close((uv_handle_t *)&h->timer, handle_closed);
  hsp_dht_server_close(h->server, server_closed, h);
}
