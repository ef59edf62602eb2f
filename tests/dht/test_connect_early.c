/* The server's first packets reach a hyperdht client before the handshake reply does (the
 * server hands its stream over when it answers; a relayed reply takes one more hop). They
 * must be kept, not dropped and recovered by the server's 1 s RTO: 40 sequential
 * connects to a C server that writes one byte on each connection (private in-process DHT on
 * 127.0.0.1); each server stream must have delivered that byte without a retransmission.
 * 40 also exceeds the server's session table, whose handed-over entries must make room
 * (before, the 33rd connect within 10 s failed with "no handshake reply"). */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "dht.h"
#include "hyper_conn_internal.h"
#include "hyper_server.h"
#include "io_testnet.h"

#define CONNECTS 40
/* A loaded machine (ASan, parallel builds) can stall the loop past an RTO now and then;
 * the bug made every single connection retransmit. */
#define MAX_RETRANSMITTED 3

static uv_loop_t *loop;
static io_testnet_t net;
static hsp_dht_io_t *sio, *cio;
static hsp_dht_server_t *server;
static hsp_crypto_keypair_t skp, ckp;
static hsp_dht_conn_t *sconn;
static int done_count, failed, retransmitted, connect_tries;
static bool busy;
static uv_timer_t retry;

static void srv_read(hsp_dht_conn_t *c, const uint8_t *buf, ssize_t len) {
  (void)buf;
  if (len == HSP_DHT_CONN_EOF) hsp_dht_conn_destroy(c);
}

static void srv_close(hsp_dht_conn_t *c, int status) {
  (void)status;
  if (sconn == c) sconn = NULL;
}

static void on_connection(void *ctx, hsp_dht_conn_t *c) {
  (void)ctx;
  if (sconn) hsp_dht_conn_destroy(sconn);
  sconn = c;
  hsp_dht_conn_set_callbacks(c, srv_read, srv_close, NULL);
  CHECK_EQ_INT(hsp_dht_conn_write(c, (const uint8_t *)"x", 1, NULL, NULL), 0);
}

static void cli_close(hsp_dht_conn_t *c, int status) { (void)c, (void)status; }

static void cli_read(hsp_dht_conn_t *c, const uint8_t *buf, ssize_t len) {
  if (len <= 0 || !hsp_dht_conn_user(c)) return;
  CHECK(buf[0] == 'x');
  CHECK(sconn != NULL);
  if (sconn && (sconn->stream.stat_retransmits || sconn->stream.stat_rto_count)) retransmitted++;
  done_count++;
  busy = false;
  hsp_dht_conn_set_callbacks(c, cli_read, cli_close, NULL);
  hsp_dht_conn_destroy(c);
}

static void try_connect(void);

static void on_retry(uv_timer_t *t) {
  (void)t;
  try_connect();
}

static void on_connected(void *ctx, hsp_dht_conn_t *c, int err) {
  (void)ctx;
  if (err) {
    /* only the first connect may race the server's announce */
    if (done_count == 0 && ++connect_tries < 40) {
      uv_timer_start(&retry, on_retry, 250, 0);
    } else {
      fprintf(stderr, "connect %d failed: %s\n", done_count, hsp_dht_conn_strerror(err));
      failed++;
      busy = false;
    }
    return;
  }
  hsp_dht_conn_set_callbacks(c, cli_read, cli_close, &done_count);
}

static void try_connect(void) {
  busy = true;
  int err = hsp_dht_connect(cio, &ckp, skp.public_key, on_connected, NULL);
  if (err) on_connected(NULL, NULL, err);
}

static bool both_ready(void *ctx) {
  (void)ctx;
  return hsp_dht_io_ready(sio) && hsp_dht_io_ready(cio);
}

static bool idle(void *ctx) {
  (void)ctx;
  return !busy;
}

int main(void) {
  loop = uv_default_loop();
  CHECK_EQ_INT(io_testnet_start(&net, loop, 4), 0);
  CHECK(io_testnet_run_until(loop, io_testnet_ready_cb, &net, 30000));
  CHECK_EQ_INT(io_testnet_peer(&net, &sio), 0);
  /* A reachable client (OPEN, as a peer on loopback or with a public address soon is): the
   * server then hands its stream over before it replies. */
  hsp_dht_io_opts_t o;
  hsp_dht_io_opts_default(&o);
  o.host = "127.0.0.1";
  o.bootstrap = net.bootstrap;
  o.firewalled = false;
  CHECK_EQ_INT(hsp_dht_io_create(&cio, loop, &o), 0);
  CHECK(io_testnet_run_until(loop, both_ready, NULL, 30000));
  hsp_ipv4_addr_t pub;
  CHECK(hsp_dht_node_remote_address(hsp_dht_io_node(cio), &pub));
  hsp_crypto_keypair_random(&skp);
  hsp_crypto_keypair_random(&ckp);
  CHECK_EQ_INT(hsp_dht_server_listen(&server, sio, &skp, NULL, on_connection, NULL), 0);
  uv_timer_init(loop, &retry);
  for (int i = 0; i < CONNECTS && !failed; i++) {
    try_connect();
    CHECK(io_testnet_run_until(loop, idle, NULL, 30000));
  }
  printf("%d of %d connects got the first byte, %d needed a retransmission\n", done_count,
         CONNECTS, retransmitted);
  CHECK_EQ_INT(failed, 0);
  CHECK_EQ_INT(done_count, CONNECTS);
  CHECK(retransmitted <= MAX_RETRANSMITTED);

  if (sconn) hsp_dht_conn_destroy(sconn);
  uv_close((uv_handle_t *)&retry, NULL);
  hsp_dht_server_close(server, NULL, NULL);
  bool t = false;
  io_testnet_run_until(loop, io_testnet_flag, &t, 300);
  hsp_dht_io_close(sio, NULL, NULL);
  hsp_dht_io_close(cio, NULL, NULL);
  io_testnet_close(&net);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return check_summary("test_dht_connect_early");
}
