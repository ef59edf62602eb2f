/* A client's self-healing connection to the registry (net.h). */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "frame.h"
#include "hyper_conn.h"
#include "net.h"
#include "protocol.h"

#define BACKOFF_MIN_MS 500u
#define BACKOFF_MAX_MS 8000u
/* Nothing heard for IDLE_MS: ask something cheap. Nothing heard for STALL_MS: the registry
 * (or the path to it) is gone, even if UDX has not given up yet (that takes ~15 s more). */
#define IDLE_MS 4000u
#define STALL_MS 10000u
#define CHECK_MS 1000u
/* The heartbeat is SYNC after 0, limit 1 under an id no caller uses (2^53 - 1, the largest
 * compact-encoding uint): every registry answers it, and its answer is not passed on. */
#define PING_ID ((UINT64_C(1) << 53) - 1)

enum state { S_CONNECTING, S_UP, S_WAIT, S_CLOSED };

struct hsp_reg_session {
  hsp_dht_io_t *io;
  uint8_t registry[HSP_REG_KEY_BYTES];
  hsp_crypto_keypair_t kp; /* our identity on the connection: fresh per process */
  hsp_reg_session_cbs_t cbs;
  void *ud;
  enum state state;
  hsp_dht_conn_t *conn;
  hsp_reg_framer_t framer;
  uv_timer_t timer;
  bool timer_open, connecting, reported_down, ping_out;
  uint32_t backoff_ms;
  uint64_t last_rx; /* uv_now of the last bytes received */
  void (*close_cb)(void *);
  void *close_ctx;
};

static void connect_now(hsp_reg_session_t *s);

static void maybe_free(hsp_reg_session_t *s) {
  if (s->state != S_CLOSED || s->timer_open || s->conn || s->connecting) return;
  hsp_reg_framer_free(&s->framer);
  hsp_crypto_keypair_wipe(&s->kp);
  void (*cb)(void *) = s->close_cb;
  void *ctx = s->close_ctx;
  free(s);
  if (cb) cb(ctx);
}

static uint64_t now(const hsp_reg_session_t *s) { return uv_now(hsp_dht_io_loop(s->io)); }

static void report_down(hsp_reg_session_t *s, int err) {
  if (s->reported_down) return;
  s->reported_down = true;
  if (s->cbs.on_down) s->cbs.on_down(s->ud, err);
}

static void send_ping(hsp_reg_session_t *s) {
  hsp_reg_msg_t m;
  memset(&m, 0, sizeof m);
  m.id = PING_ID;
  m.type = HSP_REG_MSG_SYNC;
  m.limit = 1;
  uint8_t buf[32];
  long n = hsp_reg_msg_encode(&m, buf, sizeof buf);
  if (n > 0 && hsp_reg_session_send(s, buf, (size_t)n) == 0) s->ping_out = true;
}

static void on_timer(uv_timer_t *t) {
  hsp_reg_session_t *s = t->data;
  if (s->state == S_WAIT) {
    connect_now(s);
    return;
  }
  if (s->state != S_UP) return;
  uint64_t quiet = now(s) - s->last_rx;
  if (quiet >= STALL_MS) {
    hsp_dht_conn_destroy(s->conn); /* its close callback reconnects */
    return;
  }
  if (quiet >= IDLE_MS && !s->ping_out) send_ping(s);
}

static void schedule_retry(hsp_reg_session_t *s) {
  s->state = S_WAIT;
  uint32_t d = s->backoff_ms;
  /* ±25 % so that the clients of a restarted registry do not return in lockstep */
  d = d - d / 4 + randombytes_uniform(d / 2 + 1);
  s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
  uv_timer_start(&s->timer, on_timer, d, 0);
}

static int deliver(void *ud, const uint8_t *msg, size_t len) {
  hsp_reg_session_t *s = ud;
  /* the heartbeat's answer: version byte, then the id as a 9-byte uint */
  hsp_cenc_t c = hsp_cenc_for_decode(msg, len);
  hsp_cenc_decode_uint8(&c);
  uint64_t id = hsp_cenc_decode_uint(&c);
  if (hsp_cenc_ok(&c) && id == PING_ID) {
    s->ping_out = false;
    return 0;
  }
  if (s->cbs.on_message) s->cbs.on_message(s->ud, msg, len);
  /* the callback may have closed the session */
  return s->state == S_UP ? 0 : 1;
}

static void conn_read(hsp_dht_conn_t *c, const uint8_t *buf, ssize_t len) {
  hsp_reg_session_t *s = hsp_dht_conn_user(c);
  if (len == HSP_DHT_CONN_EOF) {
    hsp_dht_conn_destroy(c); /* the registry is going away */
    return;
  }
  s->last_rx = now(s);
  s->backoff_ms = BACKOFF_MIN_MS; /* a registry that talks is a registry that works */
  int err = hsp_reg_framer_push(&s->framer, buf, (size_t)len, deliver, s);
  if (err < 0) hsp_dht_conn_destroy(c);
}

static void conn_close(hsp_dht_conn_t *c, int status) {
  hsp_reg_session_t *s = hsp_dht_conn_user(c);
  s->conn = NULL;
  if (s->state == S_CLOSED) {
    maybe_free(s);
    return;
  }
  report_down(s, status ? status : HSP_DHT_CONN_EOF);
  schedule_retry(s);
}

static void on_connected(void *ctx, hsp_dht_conn_t *c, int err) {
  hsp_reg_session_t *s = ctx;
  s->connecting = false;
  if (s->state == S_CLOSED) {
    if (c) {
      s->conn = c;
      hsp_dht_conn_set_callbacks(c, NULL, conn_close, s);
      hsp_dht_conn_destroy(c);
    }
    maybe_free(s);
    return;
  }
  if (err) {
    report_down(s, err);
    schedule_retry(s);
    return;
  }
  s->conn = c;
  s->state = S_UP;
  s->reported_down = false;
  s->ping_out = false;
  s->last_rx = now(s);
  s->framer.len = 0;
  hsp_dht_conn_set_callbacks(c, conn_read, conn_close, s);
  uv_timer_start(&s->timer, on_timer, CHECK_MS, CHECK_MS);
  if (s->cbs.on_up) s->cbs.on_up(s->ud);
}

static void connect_now(hsp_reg_session_t *s) {
  s->state = S_CONNECTING;
  s->connecting = true;
  int err = hsp_dht_connect(s->io, &s->kp, s->registry, on_connected, s);
  if (err) on_connected(s, NULL, err);
}

int hsp_reg_session_start(hsp_reg_session_t **out, hsp_dht_io_t *io,
                          const uint8_t registry[HSP_REG_KEY_BYTES],
                          const hsp_reg_session_cbs_t *cbs, void *ud) {
  hsp_reg_session_t *s = calloc(1, sizeof *s);
  if (!s) return HSP_REG_ENOMEM;
  s->io = io;
  memcpy(s->registry, registry, HSP_REG_KEY_BYTES);
  hsp_crypto_keypair_random(&s->kp);
  s->cbs = *cbs;
  s->ud = ud;
  s->backoff_ms = BACKOFF_MIN_MS;
  hsp_reg_framer_init(&s->framer, HSP_REG_SNAPSHOT_MAX);
  uv_timer_init(hsp_dht_io_loop(io), &s->timer);
  s->timer.data = s;
  s->timer_open = true;
  *out = s;
  connect_now(s);
  return 0;
}

bool hsp_reg_session_up(const hsp_reg_session_t *s) { return s->state == S_UP; }

int hsp_reg_session_send(hsp_reg_session_t *s, const uint8_t *msg, size_t len) {
  if (s->state != S_UP) return HSP_DHT_CONN_EFAILED;
  size_t n;
  uint8_t *frame = hsp_reg_frame_encode(msg, len, &n);
  if (!frame) return HSP_DHT_ENOMEM;
  int err = hsp_dht_conn_write(s->conn, frame, n, NULL, NULL);
  free(frame);
  return err;
}

static void timer_closed(uv_handle_t *h) {
  hsp_reg_session_t *s = h->data;
  s->timer_open = false;
  maybe_free(s);
}

void hsp_reg_session_close(hsp_reg_session_t *s, void (*cb)(void *ctx), void *ctx) {
  if (s->state == S_CLOSED) return;
  s->state = S_CLOSED;
  s->close_cb = cb;
  s->close_ctx = ctx;
  if (s->conn) hsp_dht_conn_destroy(s->conn);
  uv_close((uv_handle_t *)&s->timer, timer_closed);
}
