/* Connect latency of the C hyperdht client: N sequential connects to a server that writes
 * one byte on every connection; each is timed until that byte arrives (the same end point
 * as the JS client in run.js). Prints "connect_ms <x>" per connect.
 *   dht_connect_bench BOOTSTRAP KEYHEX N
 *   dht_connect_bench --serve BOOTSTRAP   a C server doing the same ("key <hex>" once ready) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "hex.h"
#include "hyper_conn.h"
#include "hyper_server.h"

static hsp_dht_io_t *io;
static hsp_crypto_keypair_t kp;
static uint8_t key[32];
static int left;
static uint64_t started;
static int failed;

static void next(void);

static void on_close(hsp_dht_conn_t *c, int status) {
  (void)c, (void)status;
  if (left > 0) next();
  else hsp_dht_io_close(io, NULL, NULL);
}

static void on_read(hsp_dht_conn_t *c, const uint8_t *buf, ssize_t len) {
  (void)buf;
  if (len <= 0 || !hsp_dht_conn_user(c)) return;
  printf("connect_ms %.3f\n", (double)(uv_hrtime() - started) / 1e6);
  fflush(stdout);
  hsp_dht_conn_set_callbacks(c, on_read, on_close, NULL);
  hsp_dht_conn_destroy(c);
}

static void on_connected(void *ctx, hsp_dht_conn_t *c, int err) {
  (void)ctx;
  if (err) {
    fprintf(stderr, "connect failed: %s\n", hsp_dht_conn_strerror(err));
    failed = 1;
    hsp_dht_io_close(io, NULL, NULL);
    return;
  }
  hsp_dht_conn_set_callbacks(c, on_read, on_close, &left);
}

static void next(void) {
  left--;
  started = uv_hrtime();
  int err = hsp_dht_connect(io, &kp, key, on_connected, NULL);
  if (err) on_connected(NULL, NULL, err);
}

static void on_ready(hsp_dht_io_t *x, void *ctx) {
  (void)x, (void)ctx;
  next();
}

static hsp_dht_server_t *server;

static void served_close(hsp_dht_conn_t *c, int status) { (void)c, (void)status; }

static void served_read(hsp_dht_conn_t *c, const uint8_t *buf, ssize_t len) {
  (void)buf;
  if (len == HSP_DHT_CONN_EOF) hsp_dht_conn_end(c);
}

static void on_connection(void *ctx, hsp_dht_conn_t *c) {
  (void)ctx;
  hsp_dht_conn_set_callbacks(c, served_read, served_close, NULL);
  hsp_dht_conn_write(c, (const uint8_t *)"x", 1, NULL, NULL);
}

static void on_serve_ready(hsp_dht_io_t *x, void *ctx) {
  (void)ctx;
  if (hsp_dht_server_listen(&server, x, &kp, NULL, on_connection, NULL) != 0) {
    fprintf(stderr, "listen failed\n");
    exit(1);
  }
  char hex[65];
  hsp_hex_encode(hex, kp.public_key, 32);
  printf("key %s\n", hex);
  fflush(stdout);
}

static int serve(const char *bootstrap) {
  hsp_dht_io_opts_t o;
  hsp_dht_io_opts_default(&o);
  o.host = "127.0.0.1";
  o.bootstrap = bootstrap;
  if (hsp_dht_io_create(&io, uv_default_loop(), &o) != 0) return 1;
  hsp_crypto_keypair_random(&kp);
  hsp_dht_io_on_ready(io, on_serve_ready, NULL);
  return uv_run(uv_default_loop(), UV_RUN_DEFAULT);
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "--serve")) return serve(argv[2]);
  if (argc != 4 || hsp_hex_decode(key, 32, argv[2]) != 0) {
    fprintf(stderr, "usage: dht_connect_bench BOOTSTRAP KEYHEX N\n");
    return 2;
  }
  left = atoi(argv[3]);
  hsp_dht_io_opts_t o;
  hsp_dht_io_opts_default(&o);
  o.host = "127.0.0.1";
  o.bootstrap = argv[1];
  if (hsp_dht_io_create(&io, uv_default_loop(), &o) != 0) return 1;
  hsp_crypto_keypair_random(&kp);
  hsp_dht_io_on_ready(io, on_ready, NULL);
  uv_run(uv_default_loop(), UV_RUN_DEFAULT);
  uv_loop_close(uv_default_loop());
  return failed;
}
