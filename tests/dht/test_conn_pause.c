/* Read back-pressure of hyperdht connections (hsp_dht_conn_read_stop/read_start) through
 * the real I/O layer: a C client writes 50 MiB to a C server on a private in-process DHT
 * (127.0.0.1) whose reader starts paused. While paused the server holds at most the UDX
 * receive window and the client's acknowledged bytes stop growing; after resume
 * (and more pauses from inside the read callback) every byte arrives intact and in order,
 * then the end of stream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "hyper_server.h"
#include "io_testnet.h"

#define TOTAL (50u * 1024 * 1024)
#define CHUNK (256u * 1024)
#define MAX_QUEUED (8u * 1024 * 1024)
/* What a paused C sender fills: the UDX window (4 MiB) and, at most, one secret-stream
 * frame held by the pause. (UDX itself caps what it holds at 1.5 windows whatever the
 * sender does.) */
#define MAX_BUFFERED (HSP_UDX_DEFAULT_RWND + 65536u + 64u)

static uv_loop_t *loop;
static io_testnet_t net;
static hsp_dht_io_t *sio, *cio;
static hsp_dht_server_t *server;
static hsp_crypto_keypair_t skp, ckp;
static hsp_dht_conn_t *sconn, *cconn;
static size_t sent, received, max_buffered, pauses;
static bool connected, got_eof, corrupt, server_closed, client_closed, ended;
static uv_timer_t pump, resume_timer;

static uint8_t pattern(size_t i) { return (uint8_t)(i * 7 + (i >> 13)); }

static void on_resume(uv_timer_t *t) {
  (void)t;
  if (sconn) hsp_dht_conn_read_start(sconn);
}

static void srv_read(hsp_dht_conn_t *c, const uint8_t *buf, ssize_t len) {
  if (len == HSP_DHT_CONN_EOF) {
    got_eof = true;
    hsp_dht_conn_destroy(c);
    return;
  }
  if (len <= 0) return;
  for (ssize_t i = 0; i < len; i++)
    if (buf[i] != pattern(received + (size_t)i)) corrupt = true;
  size_t before = received;
  received += (size_t)len;
  /* pause every 8 MiB from inside the callback, resume 50 ms later */
  if (before / (8u << 20) != received / (8u << 20) && received < TOTAL) {
    pauses++;
    hsp_dht_conn_read_stop(c);
    uv_timer_start(&resume_timer, on_resume, 50, 0);
  }
}

static void srv_close(hsp_dht_conn_t *c, int status) {
  (void)c, (void)status;
  sconn = NULL;
  server_closed = true;
}

static void on_connection(void *ctx, hsp_dht_conn_t *c) {
  (void)ctx;
  sconn = c;
  hsp_dht_conn_set_callbacks(c, srv_read, srv_close, NULL);
  CHECK_EQ_INT(hsp_dht_conn_read_stop(c), 0);
}

static void cli_read(hsp_dht_conn_t *c, const uint8_t *buf, ssize_t len) {
  (void)buf;
  if (len == HSP_DHT_CONN_EOF) hsp_dht_conn_destroy(c);
}

static void cli_close(hsp_dht_conn_t *c, int status) {
  (void)c, (void)status;
  cconn = NULL;
  client_closed = true;
}

static uint8_t chunk[CHUNK];

static void on_pump(uv_timer_t *t) {
  (void)t;
  if (!cconn) return;
  while (sent < TOTAL && hsp_dht_conn_write_queue_size(cconn) < MAX_QUEUED) {
    size_t n = TOTAL - sent < CHUNK ? TOTAL - sent : CHUNK;
    for (size_t i = 0; i < n; i++) chunk[i] = pattern(sent + i);
    CHECK_EQ_INT(hsp_dht_conn_write(cconn, chunk, n, NULL, NULL), 0);
    sent += n;
  }
  if (sent == TOTAL && !ended) {
    ended = true;
    hsp_dht_conn_end(cconn);
  }
  if (sconn) {
    size_t b = hsp_dht_conn_read_queue_size(sconn);
    if (b > max_buffered) max_buffered = b;
  }
}

static int connect_tries;
static void try_connect(void);

static void on_retry(uv_timer_t *t) {
  (void)t;
  try_connect();
}

static void on_connected(void *ctx, hsp_dht_conn_t *c, int err) {
  (void)ctx;
  if (err) {
    /* the server's announce may not have reached the closest nodes yet */
    if (++connect_tries < 40) uv_timer_start(&resume_timer, on_retry, 250, 0);
    else fprintf(stderr, "connect failed: %s\n", hsp_dht_conn_strerror(err));
    return;
  }
  cconn = c;
  connected = true;
  hsp_dht_conn_set_callbacks(c, cli_read, cli_close, NULL);
}

static void try_connect(void) {
  int err = hsp_dht_connect(cio, &ckp, skp.public_key, on_connected, NULL);
  if (err) on_connected(NULL, NULL, err);
}

static bool both_ready(void *ctx) {
  (void)ctx;
  return hsp_dht_io_ready(sio) && hsp_dht_io_ready(cio);
}

static bool both_connected(void *ctx) {
  (void)ctx;
  return connected && sconn != NULL;
}

/* The client's bytes acknowledged by the server (includes secret-stream framing). */
static size_t acked(void) { return cconn ? sent - hsp_dht_conn_write_queue_size(cconn) : 0; }

typedef struct stall {
  size_t last;
  uint64_t since;
} stall_t;

static bool stalled(void *ctx) {
  stall_t *s = ctx;
  size_t a = acked();
  uint64_t now = uv_now(loop);
  if (a != s->last) {
    s->last = a;
    s->since = now;
  }
  return a > 0 && now - s->since >= 1500;
}

static bool done(void *ctx) {
  (void)ctx;
  return server_closed && client_closed;
}

int main(void) {
  loop = uv_default_loop();
  CHECK_EQ_INT(io_testnet_start(&net, loop, 4), 0);
  CHECK(io_testnet_run_until(loop, io_testnet_ready_cb, &net, 30000));
  CHECK_EQ_INT(io_testnet_peer(&net, &sio), 0);
  CHECK_EQ_INT(io_testnet_peer(&net, &cio), 0);
  CHECK(io_testnet_run_until(loop, both_ready, NULL, 30000));
  hsp_crypto_keypair_random(&skp);
  hsp_crypto_keypair_random(&ckp);
  CHECK_EQ_INT(hsp_dht_server_listen(&server, sio, &skp, NULL, on_connection, NULL), 0);
  uv_timer_init(loop, &pump);
  uv_timer_init(loop, &resume_timer);
  try_connect();
  CHECK(io_testnet_run_until(loop, both_connected, NULL, 30000));
  long rss0 = io_testnet_rss_kib();
  uv_timer_start(&pump, on_pump, 2, 2);

  /* paused: the client's progress stops once the window is full */
  stall_t st = {0, uv_now(loop)};
  CHECK(io_testnet_run_until(loop, stalled, &st, 60000));
  size_t buffered = sconn ? hsp_dht_conn_read_queue_size(sconn) : 0;
  long rss1 = io_testnet_rss_kib();
  printf("paused: client wrote %zu KiB, %zu KiB acknowledged, server holds %zu KiB "
         "(max %zu KiB), RSS %ld -> %ld KiB\n",
         sent / 1024, acked() / 1024, buffered / 1024, max_buffered / 1024, rss0, rss1);
  CHECK(received == 0);
  CHECK(acked() >= 1024u * 1024);    /* the window was used */
  CHECK(acked() <= buffered + 64u);  /* and everything acknowledged is held, nothing lost */
  CHECK(buffered <= MAX_BUFFERED);
  CHECK(max_buffered <= MAX_BUFFERED);
  CHECK(sent < TOTAL);

  /* resume: everything arrives, with more pauses on the way */
  hsp_dht_conn_read_start(sconn);
  CHECK(io_testnet_run_until(loop, done, NULL, 120000));
  printf("resumed: %zu of %u bytes received, %zu pauses, max held %zu KiB, RSS %ld KiB\n",
         received, TOTAL, pauses, max_buffered / 1024, io_testnet_rss_kib());
  CHECK_EQ_INT(received, TOTAL);
  CHECK(!corrupt);
  CHECK(got_eof);
  CHECK(pauses >= 5);
  CHECK(max_buffered <= MAX_BUFFERED);

  uv_timer_stop(&pump);
  uv_close((uv_handle_t *)&pump, NULL);
  uv_close((uv_handle_t *)&resume_timer, NULL);
  hsp_dht_server_close(server, NULL, NULL);
  bool t = false;
  io_testnet_run_until(loop, io_testnet_flag, &t, 300);
  hsp_dht_io_close(sio, NULL, NULL);
  hsp_dht_io_close(cio, NULL, NULL);
  io_testnet_close(&net);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return check_summary("test_dht_conn_pause");
}
