/* Memory of idle hyperdht connections in C: a server and a client DHT node in this process
 * (bootstrapped from BOOTSTRAP), one warm-up connection, then N more that exchange one
 * message each way and stay open. Prints the RSS growth per connection (both ends
 * counted, as in run.js's JS measurement):
 *   "idle_conn_kib <x> rss_before <kib> rss_after <kib> n <N> sizeof_conn <bytes>"
 *   dht_idle_bench BOOTSTRAP N */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "hyper_conn_internal.h"
#include "hyper_server.h"

static uv_loop_t *loop;
static hsp_dht_io_t *sio, *cio;
static hsp_dht_server_t *server;
static hsp_crypto_keypair_t skp, ckp;
static int want, opened, answered, failures;
static long rss_before;
static uv_timer_t timer;
static hsp_dht_conn_t **conns;
static int nconns;

static long rss_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long kib = -1;
  while (fgets(line, sizeof(line), f))
    if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
  fclose(f);
  return kib;
}

static void srv_read(hsp_dht_conn_t *c, const uint8_t *buf, ssize_t len) {
  if (len > 0) hsp_dht_conn_write(c, buf, (size_t)len, NULL, NULL); /* echo once */
}
static void any_close(hsp_dht_conn_t *c, int status) { (void)c, (void)status; }
static void on_connection(void *ctx, hsp_dht_conn_t *c) {
  (void)ctx;
  hsp_dht_conn_set_callbacks(c, srv_read, any_close, NULL);
}

static void connect_next(void);
static void retry(uv_timer_t *t) {
  (void)t;
  connect_next();
}

static void cli_read(hsp_dht_conn_t *c, const uint8_t *buf, ssize_t len) {
  (void)c, (void)buf;
  if (len <= 0) return;
  answered++;
  connect_next();
}

static void on_connected(void *ctx, hsp_dht_conn_t *c, int err) {
  (void)ctx;
  if (err) {
    /* the announce may still be on its way: retry a little later */
    if (++failures > 50) {
      fprintf(stderr, "connect failed: %s\n", hsp_dht_conn_strerror(err));
      exit(1);
    }
    opened--;
    uv_timer_start(&timer, retry, 200, 0);
    return;
  }
  conns[nconns++] = c;
  hsp_dht_conn_set_callbacks(c, cli_read, any_close, NULL);
  hsp_dht_conn_write(c, (const uint8_t *)"hello", 5, NULL, NULL);
}

static void finish(uv_timer_t *t) {
  (void)t;
  long after = rss_kib();
  printf("idle_conn_kib %.2f rss_before %ld rss_after %ld n %d sizeof_conn %zu\n",
         (double)(after - rss_before) / want, rss_before, after, want, sizeof(hsp_dht_conn_t));
  fflush(stdout);
  for (int i = 0; i < nconns; i++) hsp_dht_conn_destroy(conns[i]);
  hsp_dht_server_close(server, NULL, NULL);
  uv_close((uv_handle_t *)&timer, NULL);
  hsp_dht_io_close(sio, NULL, NULL);
  hsp_dht_io_close(cio, NULL, NULL);
}

static void settled(uv_timer_t *t) {
  (void)t;
  rss_before = rss_kib();
  connect_next();
}

static void connect_next(void) {
  if (answered == 1 && rss_before == 0) {
    /* warm-up done (pools, tables, code pages): measure from here after a pause */
    uv_timer_start(&timer, settled, 500, 0);
    return;
  }
  if (answered == want + 1) {
    uv_timer_start(&timer, finish, 1000, 0);
    return;
  }
  opened++;
  int err = hsp_dht_connect(cio, &ckp, skp.public_key, on_connected, NULL);
  if (err) on_connected(NULL, NULL, err);
}

static void on_ready(hsp_dht_io_t *io, void *ctx) {
  (void)io, (void)ctx;
  if (!hsp_dht_io_ready(sio) || !hsp_dht_io_ready(cio) || server) return;
  if (hsp_dht_server_listen(&server, sio, &skp, NULL, on_connection, NULL) != 0) exit(1);
  uv_timer_start(&timer, retry, 500, 0);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: dht_idle_bench BOOTSTRAP N\n");
    return 2;
  }
  want = atoi(argv[2]);
  conns = calloc((size_t)want + 1, sizeof(*conns));
  loop = uv_default_loop();
  uv_timer_init(loop, &timer);
  hsp_dht_io_opts_t o;
  hsp_dht_io_opts_default(&o);
  o.host = "127.0.0.1";
  o.bootstrap = argv[1];
  if (hsp_dht_io_create(&sio, loop, &o) || hsp_dht_io_create(&cio, loop, &o)) return 1;
  hsp_crypto_keypair_random(&skp);
  hsp_crypto_keypair_random(&ckp);
  hsp_dht_io_on_ready(sio, on_ready, NULL);
  hsp_dht_io_on_ready(cio, on_ready, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  free(conns);
  return 0;
}
