/*
 * Runs the HTTP gateway over a static upstream (instances mapped to 127.0.0.1 ports) for the
 * gateway tests and benchmark. Prints "listening PORT", then takes commands on stdin, one per
 * line, answering "ok" or "error ...":
 *   add KEYHEX NAME VERSION PORT [TAGS]   register (or replace) an instance at 127.0.0.1:PORT;
 *                                         PORT "dht": reached over HyperDHT by its key
 *   del KEYHEX                            deregister it
 *   quit                                  close everything and exit (as does end of input)
 * Options: --port N --header-timeout MS --idle-timeout MS --upstream-timeout MS
 *          --tunnel-timeout MS --fail-ms MS --bootstrap HOST:PORT[,...] (joins that DHT, on
 *          127.0.0.1, before listening)
 */
#include "gateway.h"
#include "hex.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uv_loop_t *loop;
static hsp_gw_t *gw;
static hsp_gw_static_t *st;
static uv_pipe_t in;
static char line[4096];
static size_t line_len;
static bool quitting;
static hsp_dht_io_t *io;
static hsp_crypto_keypair_t kp;

static void reply(const char *s) {
  printf("%s\n", s);
  fflush(stdout);
}

static void on_io_closed(void *ud) { (void)ud; }

static void on_gw_closed(void *ud) {
  (void)ud;
  hsp_gw_static_free(st);
  st = NULL;
  if (io) hsp_dht_io_close(io, on_io_closed, NULL);
}

static void on_in_closed(uv_handle_t *h) { (void)h; }

static void quit(void) {
  if (quitting) return;
  quitting = true;
  uv_close((uv_handle_t *)&in, on_in_closed);
  hsp_gw_close(gw, on_gw_closed, NULL);
}

static void command(char *cmd) {
  char *argv[6] = {0};
  int argc = 0;
  char *save = NULL;
  for (char *t = strtok_r(cmd, " ", &save); t && argc < 6; t = strtok_r(NULL, argc == 5 ? "" : " ", &save))
    argv[argc++] = t;
  if (argc == 0) return;
  uint8_t key[HSP_REG_KEY_BYTES];
  if (strcmp(argv[0], "quit") == 0) {
    reply("ok");
    quit();
  } else if (strcmp(argv[0], "add") == 0 && argc >= 5 &&
             hsp_hex_decode(key, sizeof key, argv[1]) == 0) {
    hsp_reg_instance_t inst = {0};
    memcpy(inst.key, key, sizeof key);
    snprintf(inst.name, sizeof inst.name, "%s", argv[2]);
    snprintf(inst.version, sizeof inst.version, "%s", argv[3]);
    snprintf(inst.tags, sizeof inst.tags, "%s", argc > 5 ? argv[5] : "");
    inst.ttl_ms = HSP_REG_TTL_DEFAULT_MS;
    inst.registered_ms = (uint64_t)time(NULL) * 1000;
    inst.renewed_ms = inst.registered_ms;
    inst.expires_ms = inst.registered_ms + inst.ttl_ms;
    bool dht = strcmp(argv[4], "dht") == 0;
    int rc = hsp_gw_static_add(st, &inst, dht ? NULL : "127.0.0.1", dht ? 0 : atoi(argv[4]));
    hsp_gw_changed(gw);
    reply(rc == 0 ? "ok" : "error add");
  } else if (strcmp(argv[0], "del") == 0 && argc == 2 &&
             hsp_hex_decode(key, sizeof key, argv[1]) == 0) {
    int rc = hsp_gw_static_remove(st, key);
    hsp_gw_changed(gw);
    reply(rc == 0 ? "ok" : "error del");
  } else {
    reply("error unknown command");
  }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h;
  (void)hint;
  static char b[4096];
  *buf = uv_buf_init(b, sizeof b);
}

static void on_stdin(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)s;
  if (n < 0) {
    quit();
    return;
  }
  for (ssize_t i = 0; i < n && !quitting; i++) {
    char ch = buf->base[i];
    if (ch == '\n') {
      line[line_len] = '\0';
      line_len = 0;
      command(line);
    } else if (line_len + 1 < sizeof line) {
      line[line_len++] = ch;
    }
  }
}

static int port;

static void start(void) {
  int rc = hsp_gw_listen(gw, "127.0.0.1", port);
  if (rc != 0) {
    fprintf(stderr, "gateway_tool: %s\n", hsp_gw_strerror(rc));
    exit(1);
  }
  printf("listening %d\n", hsp_gw_port(gw));
  fflush(stdout);
  uv_pipe_init(loop, &in, 0);
  uv_pipe_open(&in, 0);
  uv_read_start((uv_stream_t *)&in, on_alloc, on_stdin);
}

static void on_ready(hsp_dht_io_t *d, void *ctx) {
  (void)d;
  (void)ctx;
  start();
}

int main(int argc, char **argv) {
  hsp_gw_config_t cfg = hsp_gw_default_config();
  const char *bootstrap = NULL;
  uint64_t fail_ms = 30000;
  for (int i = 1; i + 1 < argc; i += 2) {
    uint64_t v = strtoull(argv[i + 1], NULL, 10);
    if (strcmp(argv[i], "--port") == 0) port = (int)v;
    else if (strcmp(argv[i], "--bootstrap") == 0) bootstrap = argv[i + 1];
    else if (strcmp(argv[i], "--header-timeout") == 0) cfg.header_timeout_ms = v;
    else if (strcmp(argv[i], "--idle-timeout") == 0) cfg.idle_timeout_ms = v;
    else if (strcmp(argv[i], "--upstream-timeout") == 0) cfg.upstream_timeout_ms = v;
    else if (strcmp(argv[i], "--tunnel-timeout") == 0) cfg.tunnel_timeout_ms = v;
    else if (strcmp(argv[i], "--fail-ms") == 0) fail_ms = v;
    else {
      fprintf(stderr, "gateway_tool: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  /* A client that resets its connection must not kill the process on the next write. */
  signal(SIGPIPE, SIG_IGN);
  loop = uv_default_loop();
  hsp_gw_upstream_t up;
  if (hsp_gw_static_new(&st, loop, fail_ms) != 0) return 1;
  hsp_gw_static_upstream(st, &up);
  if (hsp_gw_new(&gw, loop, &cfg, &up) != 0) return 1;
  if (bootstrap) {
    hsp_dht_io_opts_t o;
    hsp_dht_io_opts_default(&o);
    o.host = "127.0.0.1";
    o.bootstrap = bootstrap;
    int rc = hsp_dht_io_create(&io, loop, &o);
    if (rc != 0) {
      fprintf(stderr, "gateway_tool: %s\n", hsp_dht_io_strerror(rc));
      return 1;
    }
    hsp_crypto_keypair_random(&kp);
    hsp_gw_static_set_dht(st, io, &kp);
    hsp_dht_io_on_ready(io, on_ready, NULL);
  } else {
    start();
  }
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return 0;
}
