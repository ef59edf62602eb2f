/* dht-node and pipe commands on the libuv DHT I/O layer. */
#include "dht_cmds.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "dht_io.h"

typedef struct node_cmd {
  hsp_dht_io_t *io;
  uv_signal_t sigint, sigterm;
} node_cmd_t;

static void print_ready(hsp_dht_io_t *io, void *ctx) {
  (void)ctx;
  hsp_dht_node_t *n = hsp_dht_io_node(io);
  printf("ready %s %s\n", hsp_dht_node_id(n) ? "persistent" : "ephemeral",
         hsp_dht_node_firewalled(n) ? "firewalled" : "reachable");
  fflush(stdout);
}

static void on_closed_handle(uv_handle_t *h) { (void)h; }

static void on_signal(uv_signal_t *s, int signum) {
  (void)signum;
  node_cmd_t *c = s->data;
  uv_close((uv_handle_t *)&c->sigint, on_closed_handle);
  uv_close((uv_handle_t *)&c->sigterm, on_closed_handle);
  hsp_dht_io_close(c->io, NULL, NULL);
}

/* The bind host and bootstrap list shared by both commands. */
static void io_opts_from(const hsp_options_t *o, hsp_dht_io_opts_t *io) {
  hsp_dht_io_opts_default(io);
  if (o->has_host) io->host = o->host;
  io->bootstrap = o->has_bootstrap ? o->bootstrap : NULL;
}

int hsp_cmd_dht_node(const hsp_options_t *o) {
  uv_loop_t *loop = uv_default_loop();
  hsp_dht_io_opts_t io_opts;
  io_opts_from(o, &io_opts);
  io_opts.port = (uint16_t)o->port;
  /* A node started by hand is meant to serve others: persistent and reachable like the
   * nodes of hyperdht's testnet (an unreachable one still becomes ephemeral via NAT checks). */
  io_opts.ephemeral = 0;
  io_opts.firewalled = false;
  node_cmd_t c;
  int err = hsp_dht_io_create(&c.io, loop, &io_opts);
  if (err) {
    fprintf(stderr, "hyperseaport dht-node: %s\n", hsp_dht_io_strerror(err));
    return 1;
  }
  hsp_ipv4_addr_t a = hsp_dht_io_address(c.io);
  printf("listening %u.%u.%u.%u:%u\n", a.host[0], a.host[1], a.host[2], a.host[3], a.port);
  fflush(stdout);
  hsp_dht_io_on_ready(c.io, print_ready, NULL);
  uv_signal_init(loop, &c.sigint);
  uv_signal_init(loop, &c.sigterm);
  c.sigint.data = c.sigterm.data = &c;
  uv_signal_start(&c.sigint, on_signal, SIGINT);
  uv_signal_start(&c.sigterm, on_signal, SIGTERM);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return 0;
}
