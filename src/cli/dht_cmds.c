/* dht-node and pipe commands on the libuv DHT I/O layer. */
#include "dht_cmds.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include <stdlib.h>

#include "crypto.h"
#include "dht_io.h"
#include "hex.h"
#include "hyper_conn.h"
#include "hyper_server.h"
#include "run.h"

typedef struct node_cmd {
  hsp_dht_io_t *io;
  hsp_cli_signals_t signals;
} node_cmd_t;

static void print_ready(hsp_dht_io_t *io, void *ctx) {
  (void)ctx;
  hsp_dht_node_t *n = hsp_dht_io_node(io);
  printf("ready %s %s\n", hsp_dht_node_id(n) ? "persistent" : "ephemeral",
         hsp_dht_node_firewalled(n) ? "firewalled" : "reachable");
  fflush(stdout);
}

static void on_signal(void *ctx) {
  node_cmd_t *c = ctx;
  hsp_cli_signals_close(&c->signals);
  hsp_dht_io_close(c->io, NULL, NULL);
}

int hsp_cmd_dht_node(const hsp_options_t *o) {
  uv_loop_t *loop = uv_default_loop();
  hsp_dht_io_opts_t io_opts;
  hsp_cli_io_opts(o, &io_opts);
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
  hsp_cli_signals_start(&c.signals, loop, on_signal, &c);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return 0;
}

/* ---- pipe ---- */

typedef struct pipe_cmd {
  hsp_dht_io_t *io;
  hsp_dht_conn_t *conn;
  uv_pipe_t in, out;
  bool in_open, stdin_ended, conn_closed;
  hsp_dht_server_t *server;
  hsp_cli_signals_t signals;
  bool closed, signalled;
  bool listen, has_allow;
  uint8_t allow[32];
  int writes; /* stdout writes in flight: stdout closes only when they are done */
  int rc;
  hsp_crypto_keypair_t kp;
  uint8_t remote[32];
} pipe_cmd_t;

static void close_all(pipe_cmd_t *p);

static void on_stdout_written(uv_write_t *w, int status) {
  (void)status;
  pipe_cmd_t *p = w->data;
  free(w);
  if (--p->writes == 0 && p->conn_closed) close_all(p);
}

static void pipe_on_read(hsp_dht_conn_t *c, const uint8_t *buf, ssize_t len) {
  pipe_cmd_t *p = hsp_dht_conn_user(c);
  if (len == HSP_DHT_CONN_EOF) return;
  uv_write_t *w = malloc(sizeof(*w) + (size_t)len);
  if (!w) return;
  memcpy(w + 1, buf, (size_t)len);
  uv_buf_t b = uv_buf_init((char *)(w + 1), (unsigned)len);
  w->data = p;
  p->writes++;
  uv_write(w, (uv_stream_t *)&p->out, &b, 1, on_stdout_written);
}

static void close_all(pipe_cmd_t *p) {
  if (p->writes || p->closed) return;
  p->closed = true;
  hsp_cli_signals_close(&p->signals);
  if (p->server) {
    /* Only reached on errors: the server is freed without waiting for the unannounce. */
    hsp_dht_server_close(p->server, NULL, NULL);
    p->server = NULL;
  }
  if (p->in_open) {
    p->in_open = false;
    uv_close((uv_handle_t *)&p->in, NULL);
    uv_close((uv_handle_t *)&p->out, NULL);
  }
  hsp_dht_io_close(p->io, NULL, NULL);
}

static void pipe_on_close(hsp_dht_conn_t *c, int status) {
  pipe_cmd_t *p = hsp_dht_conn_user(c);
  p->conn = NULL;
  if (p->server || (p->listen && !p->signalled)) {
    /* --listen serves one connection after another; stdin was consumed by the first. */
    if (status)
      fprintf(stderr, "hyperseaport pipe: connection closed: %s\n", hsp_dht_conn_strerror(status));
    return;
  }
  p->conn_closed = true;
  if (status) {
    fprintf(stderr, "hyperseaport pipe: connection closed: %s\n", hsp_dht_conn_strerror(status));
    p->rc = 1;
  }
  close_all(p);
}

static void alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  (void)h;
  buf->base = malloc(size);
  buf->len = buf->base ? size : 0;
}

static void stdin_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  pipe_cmd_t *p = s->data;
  if (n > 0 && p->conn) hsp_dht_conn_write(p->conn, (const uint8_t *)buf->base, (size_t)n, NULL, NULL);
  free(buf->base);
  if (n < 0) {
    uv_read_stop(s);
    p->stdin_ended = true;
    if (p->conn) hsp_dht_conn_end(p->conn);
  }
}

static void pipe_start(pipe_cmd_t *p, hsp_dht_conn_t *c) {
  p->conn = c;
  hsp_ipv4_addr_t peer;
  char host[HSP_CENC_IP_STRLEN];
  /* Diagnostic for tests (NAT lab): the UDP path the stream took; no relay exists yet. */
  if (hsp_dht_conn_remote_address(c, &peer)) {
    hsp_ipv4_format(peer.host, host);
    fprintf(stderr, "hyperseaport pipe: connected directly to %s:%u\n", host, peer.port);
  }
  hsp_dht_conn_set_callbacks(c, pipe_on_read, pipe_on_close, p);
  uv_read_start((uv_stream_t *)&p->in, alloc_cb, stdin_read);
}

static void on_connected(void *ctx, hsp_dht_conn_t *c, int err) {
  pipe_cmd_t *p = ctx;
  if (err) {
    fprintf(stderr, "hyperseaport pipe: connect failed: %s\n", hsp_dht_conn_strerror(err));
    p->rc = 1;
    close_all(p);
    return;
  }
  pipe_start(p, c);
}

static void on_incoming(void *ctx, hsp_dht_conn_t *c) {
  pipe_cmd_t *p = ctx;
  if (p->conn) { /* one at a time: stdin/stdout belong to the current connection */
    hsp_dht_conn_destroy(c);
    return;
  }
  pipe_start(p, c);
  if (p->stdin_ended) hsp_dht_conn_end(c);
}

static bool pipe_firewall(void *ctx, const uint8_t remote[32]) {
  pipe_cmd_t *p = ctx;
  bool reject = p->has_allow && memcmp(remote, p->allow, 32) != 0;
  if (reject) fprintf(stderr, "hyperseaport pipe: rejected a client (key not allowed)\n");
  return reject;
}

static void pipe_ready(hsp_dht_io_t *io, void *ctx) {
  pipe_cmd_t *p = ctx;
  if (p->server) return;
  if (p->listen) {
    int e = hsp_dht_server_listen(&p->server, io, &p->kp, pipe_firewall, on_incoming, p);
    if (e) {
      fprintf(stderr, "hyperseaport pipe: listen failed: %s\n", hsp_dht_conn_strerror(e));
      p->rc = 1;
      close_all(p);
      return;
    }
    char hex[65];
    hsp_hex_encode(hex, p->kp.public_key, 32);
    printf("%s\n", hex);
    fflush(stdout);
    return;
  }
  int err = hsp_dht_connect(io, &p->kp, p->remote, on_connected, p);
  if (err) on_connected(p, NULL, err);
}

static void server_closed(void *ctx) {
  pipe_cmd_t *p = ctx;
  if (p->conn) hsp_dht_conn_destroy(p->conn); /* its close callback finishes the exit */
  else close_all(p);
}

/* SIGINT/SIGTERM: unannounce (listen), drop the connection, exit cleanly. */
static void pipe_on_signal(void *ctx) {
  pipe_cmd_t *p = ctx;
  p->signalled = true;
  if (p->server) {
    hsp_dht_server_t *s = p->server;
    p->server = NULL;
    hsp_dht_server_close(s, server_closed, p);
  } else {
    server_closed(p);
  }
}

int hsp_cmd_pipe(const hsp_options_t *o) {
  uv_loop_t *loop = uv_default_loop();
  signal(SIGPIPE, SIG_IGN);
  pipe_cmd_t p = {.rc = 0};
  memcpy(p.remote, o->pipe_key, 32);
  p.listen = o->listen;
  p.has_allow = o->has_pipe_allow;
  memcpy(p.allow, o->pipe_allow, 32);
  if (o->has_pipe_seed) hsp_crypto_keypair_from_seed(&p.kp, o->pipe_seed);
  else hsp_crypto_keypair_random(&p.kp);
  hsp_dht_io_opts_t io_opts;
  hsp_cli_io_opts(o, &io_opts);
  int err = hsp_dht_io_create(&p.io, loop, &io_opts);
  if (err) {
    fprintf(stderr, "hyperseaport pipe: %s\n", hsp_dht_io_strerror(err));
    return 1;
  }
  uv_pipe_init(loop, &p.in, 0);
  uv_pipe_init(loop, &p.out, 0);
  uv_pipe_open(&p.in, 0);
  uv_pipe_open(&p.out, 1);
  p.in.data = p.out.data = &p;
  p.in_open = true;
  hsp_cli_signals_start(&p.signals, loop, pipe_on_signal, &p);
  hsp_dht_io_on_ready(p.io, pipe_ready, &p);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  hsp_crypto_keypair_wipe(&p.kp);
  return p.rc;
}
