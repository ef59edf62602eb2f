#include "io_testnet.h"

#include <stdio.h>
#include <string.h>

int io_testnet_start(io_testnet_t *t, uv_loop_t *loop, size_t count) {
  memset(t, 0, sizeof(*t));
  t->loop = loop;
  if (count < 1 || count > IO_TESTNET_MAX) return HSP_DHT_EINVAL;
  for (size_t i = 0; i < count; i++) {
    hsp_dht_io_opts_t o;
    hsp_dht_io_opts_default(&o);
    o.host = "127.0.0.1";
    o.bootstrap = i == 0 ? "" : t->bootstrap;
    o.ephemeral = 0;
    o.firewalled = false;
    int err = hsp_dht_io_create(&t->nodes[i], loop, &o);
    if (err) return err;
    t->count++;
    if (i == 0) {
      hsp_ipv4_addr_t a = hsp_dht_io_address(t->nodes[0]);
      snprintf(t->bootstrap, sizeof(t->bootstrap), "127.0.0.1:%u", a.port);
    }
  }
  return 0;
}

bool io_testnet_ready(const io_testnet_t *t) {
  for (size_t i = 0; i < t->count; i++)
    if (!hsp_dht_io_ready(t->nodes[i])) return false;
  return t->count > 0;
}

int io_testnet_peer(const io_testnet_t *t, hsp_dht_io_t **out) {
  hsp_dht_io_opts_t o;
  hsp_dht_io_opts_default(&o);
  o.host = "127.0.0.1";
  o.bootstrap = t->bootstrap;
  return hsp_dht_io_create(out, t->loop, &o);
}

void io_testnet_close(io_testnet_t *t) {
  for (size_t i = 0; i < t->count; i++) hsp_dht_io_close(t->nodes[i], NULL, NULL);
  t->count = 0;
}

static void on_tick(uv_timer_t *h) { (void)h; }

bool io_testnet_flag(void *flag) { return *(bool *)flag; }
bool io_testnet_ready_cb(void *t) { return io_testnet_ready(t); }

bool io_testnet_run_until(uv_loop_t *loop, bool (*done)(void *ctx), void *ctx, uint64_t timeout_ms) {
  /* a periodic timer so the loop wakes up to look at the flag */
  uv_timer_t tick;
  uv_timer_init(loop, &tick);
  uv_timer_start(&tick, on_tick, 20, 20);
  uint64_t end = uv_now(loop) + timeout_ms;
  while (!done(ctx) && uv_now(loop) < end) uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  return done(ctx);
}

long io_testnet_rss_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long kib = -1;
  while (fgets(line, sizeof(line), f))
    if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) break;
  fclose(f);
  return kib;
}
