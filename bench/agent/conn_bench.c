/* New-connection latency to a service's backend, timed until the backend's first byte:
 *   agent_conn_bench tcp PORT N            through a TCP port (the proxy: warm session)
 *   agent_conn_bench fresh BOOTSTRAP KEY N a fresh HyperDHT connect each time (what a proxy
 *                                          without sessions pays), plain connection: one byte
 *                                          is sent first so the service pipes it at once
 * Prints "conn_ms <x>" per connection, sequentially. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "hex.h"
#include "hyper_conn.h"

static uv_loop_t *loop;
static hsp_dht_io_t *io;
static hsp_crypto_keypair_t kp;
static uint8_t key[32];
static int left, port, failed;
static uint64_t started;
static uv_tcp_t tcp;
static uv_connect_t creq;
static char rbuf[65536];

static void next(void);

static void done_one(void) {
  printf("conn_ms %.3f\n", (double)(uv_hrtime() - started) / 1e6);
  fflush(stdout);
}

/* ---- tcp ---- */

static void tcp_closed(uv_handle_t *h) {
  (void)h;
  if (left > 0) next();
}

static void tcp_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  (void)h, (void)size;
  buf->base = rbuf;
  buf->len = sizeof rbuf;
}

static void tcp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  if (n == 0) return;
  if (n > 0) done_one();
  else failed = 1;
  uv_read_stop(s);
  uv_close((uv_handle_t *)s, tcp_closed);
}

static void tcp_connected(uv_connect_t *r, int status) {
  if (status < 0) {
    fprintf(stderr, "connect: %s\n", uv_strerror(status));
    failed = 1;
    uv_close((uv_handle_t *)r->handle, NULL);
    return;
  }
  uv_read_start(r->handle, tcp_alloc, tcp_read);
}

/* ---- fresh hyperdht connect ---- */

static void dht_closed(hsp_dht_conn_t *c, int status) {
  (void)c, (void)status;
  if (left > 0) next();
  else hsp_dht_io_close(io, NULL, NULL);
}

static void dht_read(hsp_dht_conn_t *c, const uint8_t *buf, ssize_t len) {
  (void)buf;
  if (len <= 0 || !hsp_dht_conn_user(c)) return;
  done_one();
  hsp_dht_conn_set_callbacks(c, dht_read, dht_closed, NULL);
  hsp_dht_conn_destroy(c);
}

static void dht_connected(void *ctx, hsp_dht_conn_t *c, int err) {
  (void)ctx;
  if (err) {
    /* counted, and the run goes on: the driver reports how many failed */
    printf("conn_failed %s\n", hsp_dht_conn_strerror(err));
    fflush(stdout);
    if (left > 0) next();
    else hsp_dht_io_close(io, NULL, NULL);
    return;
  }
  hsp_dht_conn_set_callbacks(c, dht_read, dht_closed, &left);
  hsp_dht_conn_write(c, (const uint8_t *)"x", 1, NULL, NULL);
}

static void next(void) {
  left--;
  started = uv_hrtime();
  if (io) {
    int err = hsp_dht_connect(io, &kp, key, dht_connected, NULL);
    if (err) dht_connected(NULL, NULL, err);
    return;
  }
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", port, &a);
  uv_tcp_init(loop, &tcp);
  uv_tcp_nodelay(&tcp, 1);
  uv_tcp_connect(&creq, &tcp, (const struct sockaddr *)&a, tcp_connected);
}

static void on_ready(hsp_dht_io_t *x, void *ctx) {
  (void)x, (void)ctx;
  next();
}

int main(int argc, char **argv) {
  loop = uv_default_loop();
  if (argc == 4 && strcmp(argv[1], "tcp") == 0) {
    port = atoi(argv[2]);
    left = atoi(argv[3]);
    next();
  } else if (argc == 5 && strcmp(argv[1], "fresh") == 0 && hsp_hex_decode(key, 32, argv[3]) == 0) {
    left = atoi(argv[4]);
    hsp_dht_io_opts_t o;
    hsp_dht_io_opts_default(&o);
    o.host = "127.0.0.1";
    o.bootstrap = argv[2];
    if (hsp_dht_io_create(&io, loop, &o) != 0) return 1;
    hsp_crypto_keypair_random(&kp);
    hsp_dht_io_on_ready(io, on_ready, NULL);
  } else {
    fprintf(stderr, "usage: agent_conn_bench tcp PORT N | fresh BOOTSTRAP KEY N\n");
    return 2;
  }
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return failed;
}
