/*
 * Test harness for the data plane on a loopback HyperDHT, standing in for the registry:
 *
 *   dp_node service --bootstrap H:P --target-port N [--seed HEX] [--check SPEC]
 *                   [--interval MS] [--drain MS] [--delay MS]
 *     prints "key HEX" once announced, then "register" / "deregister" as its health checks
 *     decide; SIGTERM drains (prints "drained") and exits 0.
 *   dp_node proxy --bootstrap H:P [--port N] [--balance POLICY] [--wait MS] [--dead MS]
 *     prints "port N"; stdin lines: "sync K1 K2 ..." (the instance set, as the replica would
 *     give it), "remove K", "stats" (prints "stats accepted=... forwarded=... retried=...
 *     failed=... timed_out=... picks=K:n,..."), "exit".
 * Log lines go to stderr.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "dataplane.h"
#include "hex.h"
#include "hyper_server.h"

static uv_loop_t *loop;
static hsp_dht_io_t *io;
static hsp_dht_server_t *server;
static hsp_dp_service_t *svc;
static hsp_dp_proxy_t *proxy;
static uv_signal_t sigterm, sigint;
static uv_pipe_t in;
static bool in_open;
static hsp_crypto_keypair_t kp;
static const char *mode;
static const char *bootstrap;
static int target_port, listen_port, rc;
static const char *check_spec = "tcp", *balance = "p2c";
static uint64_t interval_ms = 1000, drain_ms = 30000, delay_ms, wait_ms = 10000, dead_ms;
static char linebuf[65536];
static size_t linelen;

static void log_line(void *ud, const char *line) {
  (void)ud;
  fprintf(stderr, "%s\n", line);
}

static void io_closed(void *ctx) { (void)ctx; }

static void shutdown_all(void) {
  uv_close((uv_handle_t *)&sigterm, NULL);
  uv_close((uv_handle_t *)&sigint, NULL);
  if (in_open) {
    in_open = false;
    uv_close((uv_handle_t *)&in, NULL);
  }
  hsp_dht_io_close(io, io_closed, NULL);
}

static void svc_closed(void *ctx) {
  (void)ctx;
  shutdown_all();
}

static void server_closed(void *ctx) {
  (void)ctx;
  hsp_dp_service_close(svc, svc_closed, NULL);
}

static void drained(void *ctx) {
  (void)ctx;
  printf("drained\n");
  fflush(stdout);
  if (server) {
    hsp_dht_server_t *s = server;
    server = NULL;
    hsp_dht_server_close(s, server_closed, NULL);
  } else {
    server_closed(NULL);
  }
}

static void proxy_closed(void *ctx) {
  (void)ctx;
  shutdown_all();
}

static void on_signal(uv_signal_t *s, int signum) {
  (void)s, (void)signum;
  uv_signal_stop(&sigterm);
  uv_signal_stop(&sigint);
  if (svc) hsp_dp_service_drain(svc, drained, NULL);
  else if (proxy) hsp_dp_proxy_close(proxy, proxy_closed, NULL);
  else shutdown_all();
}

static void on_register(void *ud) {
  (void)ud;
  printf("register\n");
  fflush(stdout);
}
static void on_deregister(void *ud) {
  (void)ud;
  printf("deregister\n");
  fflush(stdout);
}

static bool firewall(void *ctx, const uint8_t key[32]) {
  (void)ctx, (void)key;
  return false;
}
static void on_incoming(void *ctx, hsp_dht_conn_t *c) {
  (void)ctx;
  hsp_dp_service_connection(svc, c, NULL, 0);
}

static void stats_line(void) {
  hsp_dp_proxy_stats_t st;
  hsp_dp_proxy_get_stats(proxy, &st);
  printf("stats accepted=%llu forwarded=%llu retried=%llu failed=%llu timed_out=%llu waited=%llu\n",
         (unsigned long long)st.accepted, (unsigned long long)st.forwarded,
         (unsigned long long)st.retried, (unsigned long long)st.failed,
         (unsigned long long)st.timed_out, (unsigned long long)st.waited);
  fflush(stdout);
}

static void picks_line(const char *hex) {
  uint8_t key[32];
  hsp_bal_stats_t st;
  if (hsp_hex_decode(key, 32, hex) != 0 ||
      hsp_bal_stats(hsp_dp_proxy_balancer(proxy), key, &st) != 0) {
    printf("picks %s none\n", hex);
  } else {
    printf("picks %s %llu state=%d inflight=%u latency=%.2f\n", hex, (unsigned long long)st.picks,
           (int)st.state, st.in_flight, st.latency_ms);
  }
  fflush(stdout);
}

static void command(char *line) {
  if (strncmp(line, "sync", 4) == 0) {
    uint8_t keys[64][32];
    size_t n = 0;
    for (char *tok = strtok(line + 4, " "); tok && n < 64; tok = strtok(NULL, " "))
      if (hsp_hex_decode(keys[n], 32, tok) == 0) n++;
    hsp_dp_proxy_sync(proxy, (const uint8_t(*)[32])keys, n);
    printf("synced %zu\n", n);
  } else if (strncmp(line, "remove ", 7) == 0) {
    uint8_t key[32];
    if (hsp_hex_decode(key, 32, line + 7) == 0) hsp_dp_proxy_remove(proxy, key);
    printf("removed\n");
  } else if (strcmp(line, "stats") == 0) {
    stats_line();
    return;
  } else if (strncmp(line, "picks ", 6) == 0) {
    picks_line(line + 6);
    return;
  } else if (strcmp(line, "exit") == 0) {
    on_signal(&sigterm, SIGTERM);
    return;
  }
  fflush(stdout);
}

static void alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  (void)h, (void)size;
  static char b[4096];
  buf->base = b;
  buf->len = sizeof b;
}

static void stdin_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)s;
  if (n < 0) {
    if (in_open) {
      in_open = false;
      uv_close((uv_handle_t *)&in, NULL);
    }
    return;
  }
  for (ssize_t i = 0; i < n; i++) {
    char ch = buf->base[i];
    if (ch == '\n') {
      linebuf[linelen] = 0;
      linelen = 0;
      command(linebuf);
    } else if (linelen < sizeof linebuf - 1) {
      linebuf[linelen++] = ch;
    }
  }
}

static void on_ready(hsp_dht_io_t *dio, void *ctx) {
  (void)ctx;
  if (strcmp(mode, "service") == 0) {
    if (svc) return;
    hsp_dp_service_config_t cfg = {.target_port = (uint16_t)target_port,
                                   .drain_ms = drain_ms,
                                   .ready_delay_ms = delay_ms,
                                   .on_register = on_register,
                                   .on_deregister = on_deregister,
                                   .log = log_line};
    if (hsp_health_parse(check_spec, &cfg.health) != 0) {
      fprintf(stderr, "bad --check\n");
      rc = 2;
      shutdown_all();
      return;
    }
    cfg.health.interval_ms = interval_ms;
    cfg.health.timeout_ms = interval_ms < 2000 ? interval_ms : 2000;
    if (dead_ms) cfg.sess.dead_ms = dead_ms;
    if (hsp_dp_service_start(&svc, loop, &cfg) != 0 ||
        hsp_dht_server_listen(&server, dio, &kp, firewall, on_incoming, NULL) != 0) {
      fprintf(stderr, "service start failed\n");
      rc = 1;
      shutdown_all();
      return;
    }
    char hex[65];
    hsp_hex_encode(hex, kp.public_key, 32);
    printf("key %s\n", hex);
    fflush(stdout);
  } else {
    if (proxy) return;
    hsp_dp_proxy_config_t cfg = {.port = (uint16_t)listen_port, .role = "test@1", .wait_ms = wait_ms,
                                 .log = log_line};
    if (hsp_bal_policy_parse(balance, &cfg.balance.policy) != 0) {
      fprintf(stderr, "bad --balance\n");
      rc = 2;
      shutdown_all();
      return;
    }
    if (dead_ms) cfg.pool.sess.dead_ms = dead_ms;
    int err = hsp_dp_proxy_start(&proxy, loop, dio, &kp, &cfg);
    if (err) {
      fprintf(stderr, "proxy start failed: %s\n", uv_strerror(err));
      rc = 1;
      shutdown_all();
      return;
    }
    printf("port %u\n", hsp_dp_proxy_port(proxy));
    fflush(stdout);
    uv_pipe_init(loop, &in, 0);
    uv_pipe_open(&in, 0);
    in_open = true;
    uv_read_start((uv_stream_t *)&in, alloc_cb, stdin_read);
  }
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  mode = argv[1];
  const char *seed_hex = NULL;
  for (int i = 2; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--bootstrap")) bootstrap = v;
    else if (!strcmp(k, "--target-port")) target_port = atoi(v);
    else if (!strcmp(k, "--port")) listen_port = atoi(v);
    else if (!strcmp(k, "--seed")) seed_hex = v;
    else if (!strcmp(k, "--check")) check_spec = v;
    else if (!strcmp(k, "--interval")) interval_ms = strtoull(v, NULL, 10);
    else if (!strcmp(k, "--drain")) drain_ms = strtoull(v, NULL, 10);
    else if (!strcmp(k, "--delay")) delay_ms = strtoull(v, NULL, 10);
    else if (!strcmp(k, "--wait")) wait_ms = strtoull(v, NULL, 10);
    else if (!strcmp(k, "--dead")) dead_ms = strtoull(v, NULL, 10);
    else if (!strcmp(k, "--balance")) balance = v;
    else {
      fprintf(stderr, "unknown flag %s\n", k);
      return 2;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  if (seed_hex) {
    uint8_t seed[32];
    if (hsp_hex_decode(seed, 32, seed_hex) != 0) return 2;
    hsp_crypto_keypair_from_seed(&kp, seed);
  } else {
    hsp_crypto_keypair_random(&kp);
  }
  loop = uv_default_loop();
  hsp_dht_io_opts_t o;
  hsp_dht_io_opts_default(&o);
  o.host = "127.0.0.1";
  o.bootstrap = bootstrap ? bootstrap : "";
  int err = hsp_dht_io_create(&io, loop, &o);
  if (err) {
    fprintf(stderr, "dht: %s\n", hsp_dht_io_strerror(err));
    return 1;
  }
  uv_signal_init(loop, &sigterm);
  uv_signal_init(loop, &sigint);
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  uv_signal_start(&sigint, on_signal, SIGINT);
  hsp_dht_io_on_ready(io, on_ready, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  hsp_crypto_keypair_wipe(&kp);
  return rc;
}
