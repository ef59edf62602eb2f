/* Test client for connect options the CLI does not expose (NAT lab, blind relay):
 *   dht_connect_tool BOOTSTRAP KEYHEX [RELAY_KEYHEX]
 * Connects (with relayThrough when RELAY_KEYHEX is given), prints "connected HOST:PORT" (the
 * UDP path the stream took), writes "ping" and prints "echo DATA" for the first data back,
 * then exits 0; "failed: REASON" and exit 1 on an error or after 40 s. */
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "hex.h"
#include "hyper_conn.h"

static hsp_dht_io_t *io;
static hsp_crypto_keypair_t kp;
static uint8_t key[32], relay[32];
static bool has_relay;
static int rc = 1;
static uv_timer_t timer;

static void stop(int code) {
  rc = code;
  uv_timer_stop(&timer);
  uv_close((uv_handle_t *)&timer, NULL);
  hsp_dht_io_close(io, NULL, NULL);
}

static void on_close(hsp_dht_conn_t *c, int status) { (void)c, (void)status; }

static void on_read(hsp_dht_conn_t *c, const uint8_t *buf, ssize_t len) {
  if (len <= 0) return;
  printf("echo %.*s\n", (int)len, (const char *)buf);
  fflush(stdout);
  hsp_dht_conn_set_callbacks(c, NULL, on_close, NULL);
  hsp_dht_conn_destroy(c);
  stop(0);
}

static void on_connected(void *ctx, hsp_dht_conn_t *c, int err) {
  (void)ctx;
  if (err) {
    printf("failed: %s\n", hsp_dht_conn_strerror(err));
    fflush(stdout);
    stop(1);
    return;
  }
  hsp_ipv4_addr_t a;
  if (hsp_dht_conn_remote_address(c, &a))
    printf("connected %u.%u.%u.%u:%u\n", a.host[0], a.host[1], a.host[2], a.host[3], a.port);
  fflush(stdout);
  hsp_dht_conn_set_callbacks(c, on_read, on_close, NULL);
  hsp_dht_conn_write(c, (const uint8_t *)"ping", 4, NULL, NULL);
}

static void on_ready(hsp_dht_io_t *x, void *ctx) {
  (void)x, (void)ctx;
  hsp_dht_connect_opts_t o = {.local_connection = true, .relay_through = has_relay ? relay : NULL};
  int err = hsp_dht_connect_with(io, &kp, key, &o, on_connected, NULL);
  if (err) on_connected(NULL, NULL, err);
}

static void on_timeout(uv_timer_t *t) {
  (void)t;
  printf("failed: timeout\n");
  fflush(stdout);
  stop(1);
}

int main(int argc, char **argv) {
  if (argc < 3 || hsp_hex_decode(key, 32, argv[2]) != 0 ||
      (argc > 3 && hsp_hex_decode(relay, 32, argv[3]) != 0)) {
    fprintf(stderr, "usage: dht_connect_tool BOOTSTRAP KEYHEX [RELAY_KEYHEX]\n");
    return 2;
  }
  has_relay = argc > 3;
  hsp_dht_io_opts_t o;
  hsp_dht_io_opts_default(&o);
  o.bootstrap = argv[1];
  uv_loop_t *loop = uv_default_loop();
  if (hsp_dht_io_create(&io, loop, &o) != 0) return 1;
  hsp_crypto_keypair_random(&kp);
  hsp_dht_io_on_ready(io, on_ready, NULL);
  uv_timer_init(loop, &timer);
  uv_timer_start(&timer, on_timeout, 40000, 0);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return rc;
}
