/*
 * Test helper: one DHT node on the product I/O layer (hsp_dht_io, libuv, 127.0.0.1) that
 * runs hyperdht client operations (hyper_client.h) on command. Used by
 * tests/interop/dht_io_ops.js for matrix case 5 both ways through the real sockets.
 *
 *   dht_io_tool --bootstrap HOST:PORT[,...]
 * stdout: "listening <port>", "ready", then one answer per stdin command:
 *   announce TOPIC SEED        -> "op announce <err> <commits>"
 *   unannounce TOPIC SEED      -> "op unannounce <err> <commits>"
 *   lookup TOPIC PK            -> "op lookup <err> <replies> <replies holding PK>"
 *   mutput SEED SEQ TEXT       -> "op mutput <err> <commits>"
 *   mutget PK MINSEQ           -> "op mutget <err> <verified replies> <seq> <text>|-"
 *   immput TEXT                -> "op immput <err> <commits> <hash hex>"
 *   immget HASH                -> "op immget <err> <text>|-"
 *   listen SEED                -> "listen <public key hex>": a hyperdht server; a connection
 *                                 is announced with "conn" and starts with reading paused
 *   held                       -> "held <bytes>" received and held for the connection
 *   resume                     -> reading resumes; at the peer's end "eof <bytes> ok|corrupt"
 *                                 (the data must be the byte pattern (i * 7 + (i >> 13)) & 255)
 *   exit
 * (hex arguments are 64 characters; TEXT has no spaces.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "dht_io.h"
#include "hex.h"
#include "hyper_client.h"
#include "hyper_messages.h"
#include "hyper_server.h"

static uv_loop_t *loop;
static hsp_dht_io_t *io;
static uv_pipe_t in;
static char line[1024];
static size_t line_len;
static bool busy, closing;

typedef struct op {
  char name[16];
  uint8_t want[32]; /* lookup: public key; mutget: public key; immget: hash */
  size_t replies, matches;
  bool found;
  uint64_t seq;
  char text[256];
  uint8_t hash[32];
} op_t;
static op_t op;

static void on_reply(void *ctx, const hsp_dht_reply_t *r) {
  op_t *o = ctx;
  if (!r->has_value) return;
  if (!strcmp(o->name, "lookup")) {
    hsp_dht_lookup_reply_t lr;
    hsp_dht_peer_t p;
    size_t off = 0;
    if (hsp_dht_lookup_reply_decode(&lr, r->value.data, r->value.len) != 0) return;
    o->replies++;
    while (hsp_dht_lookup_reply_next(&lr, &off, &p) == 0)
      if (!memcmp(p.public_key, o->want, 32)) {
        o->matches++;
        break;
      }
  } else if (!strcmp(o->name, "mutget")) {
    hsp_dht_mutable_get_response_t m;
    if (hsp_dht_mutable_get_response_decode(&m, r->value.data, r->value.len) != 0) return;
    if (!hsp_dht_mutable_verify(m.signature, m.seq, m.value, o->want)) return;
    o->replies++;
    if (o->found && m.seq <= o->seq) return;
    o->found = true;
    o->seq = m.seq;
    size_t n = m.value.len < sizeof(o->text) - 1 ? m.value.len : sizeof(o->text) - 1;
    memcpy(o->text, m.value.data, n);
    o->text[n] = 0;
  } else if (!strcmp(o->name, "immget") && !o->found) {
    uint8_t h[32];
    hsp_crypto_hash(h, r->value.data, r->value.len);
    if (memcmp(h, o->want, 32) != 0) return; /* a node lying about the value */
    o->found = true;
    size_t n = r->value.len < sizeof(o->text) - 1 ? r->value.len : sizeof(o->text) - 1;
    memcpy(o->text, r->value.data, n);
    o->text[n] = 0;
  }
}

static void on_done(void *ctx, const hsp_dht_query_result_t *res) {
  op_t *o = ctx;
  if (!strcmp(o->name, "lookup")) {
    printf("op lookup %d %zu %zu\n", res->err, o->replies, o->matches);
  } else if (!strcmp(o->name, "mutget")) {
    printf("op mutget %d %zu %llu %s\n", res->err, o->replies, (unsigned long long)o->seq,
           o->found ? o->text : "-");
  } else if (!strcmp(o->name, "immget")) {
    printf("op immget %d %s\n", res->err, o->found ? o->text : "-");
  } else if (!strcmp(o->name, "immput")) {
    char hex[65];
    hsp_hex_encode(hex, o->hash, 32);
    printf("op immput %d %zu %s\n", res->err, res->commits_ok, hex);
  } else {
    printf("op %s %d %zu\n", o->name, res->err, res->commits_ok);
  }
  fflush(stdout);
  busy = false;
}

static void on_closed(void *ctx) { (void)ctx; }

/* ---- listen: a server whose connection starts paused ---- */
static hsp_dht_server_t *server;
static hsp_dht_conn_t *conn;
static size_t conn_bytes, conn_max_held;
static bool conn_corrupt;

static void srv_read(hsp_dht_conn_t *c, const uint8_t *buf, ssize_t len) {
  if (len == HSP_DHT_CONN_EOF) {
    printf("eof %zu %s\n", conn_bytes, conn_corrupt ? "corrupt" : "ok");
    fflush(stdout);
    hsp_dht_conn_end(c);
    return;
  }
  for (ssize_t i = 0; i < len; i++, conn_bytes++)
    if (buf[i] != (uint8_t)(conn_bytes * 7 + (conn_bytes >> 13))) conn_corrupt = true;
}

static void srv_close(hsp_dht_conn_t *c, int status) {
  (void)c, (void)status;
  conn = NULL;
}

static void on_connection(void *ctx, hsp_dht_conn_t *c) {
  (void)ctx;
  if (conn) {
    hsp_dht_conn_destroy(c);
    return;
  }
  conn = c;
  hsp_dht_conn_set_callbacks(c, srv_read, srv_close, NULL);
  hsp_dht_conn_read_stop(c);
  printf("conn\n");
  fflush(stdout);
}

static void server_closed(void *ctx) {
  (void)ctx;
  hsp_dht_io_close(io, on_closed, NULL);
}

static void shutdown_all(void) {
  if (closing) return;
  closing = true;
  uv_close((uv_handle_t *)&in, NULL);
  if (conn) hsp_dht_conn_destroy(conn);
  if (server) hsp_dht_server_close(server, server_closed, NULL);
  else hsp_dht_io_close(io, on_closed, NULL);
}

static void command(char *cmd) {
  char name[16] = "", a[300] = "", b[300] = "", c[300] = "";
  if (sscanf(cmd, "%15s %299s %299s %299s", name, a, b, c) < 1) return;
  if (!strcmp(name, "exit")) {
    shutdown_all();
    return;
  }
  if (!strcmp(name, "listen")) {
    uint8_t seed[32];
    hsp_crypto_keypair_t skp;
    char key[65];
    if (server || hsp_hex_decode(seed, 32, a)) {
      printf("error listen\n");
    } else {
      hsp_crypto_keypair_from_seed(&skp, seed);
      int err = hsp_dht_server_listen(&server, io, &skp, NULL, on_connection, NULL);
      hsp_hex_encode(key, skp.public_key, 32);
      if (err) printf("error listen %d\n", err);
      else printf("listen %s\n", key);
    }
    fflush(stdout);
    return;
  }
  if (!strcmp(name, "held") || !strcmp(name, "resume")) {
    size_t held = conn ? hsp_dht_conn_read_queue_size(conn) : 0;
    if (held > conn_max_held) conn_max_held = held;
    if (name[0] == 'h') printf("held %zu %zu\n", held, conn_max_held);
    else if (conn) hsp_dht_conn_read_start(conn);
    fflush(stdout);
    return;
  }
  memset(&op, 0, sizeof(op));
  snprintf(op.name, sizeof(op.name), "%s", name);
  hsp_dht_query_cbs_t cbs = {on_reply, on_done, &op};
  hsp_dht_node_t *node = hsp_dht_io_node(io);
  uint8_t x[32], y[32];
  hsp_crypto_keypair_t kp;
  long q = -1;
  if ((!strcmp(name, "announce") || !strcmp(name, "unannounce")) && !hsp_hex_decode(x, 32, a) &&
      !hsp_hex_decode(y, 32, b)) {
    hsp_crypto_keypair_from_seed(&kp, y);
    q = name[0] == 'a' ? hsp_dht_announce(node, x, &kp, NULL, 0, &cbs)
                       : hsp_dht_unannounce(node, x, &kp, &cbs);
  } else if (!strcmp(name, "lookup") && !hsp_hex_decode(x, 32, a) &&
             !hsp_hex_decode(op.want, 32, b)) {
    q = hsp_dht_lookup(node, x, &cbs);
  } else if (!strcmp(name, "mutput") && !hsp_hex_decode(y, 32, a) && c[0]) {
    hsp_crypto_keypair_from_seed(&kp, y);
    q = hsp_dht_mutable_put(node, &kp, strtoull(b, NULL, 10), (const uint8_t *)c, strlen(c), &cbs);
  } else if (!strcmp(name, "mutget") && !hsp_hex_decode(op.want, 32, a)) {
    q = hsp_dht_mutable_get(node, op.want, strtoull(b, NULL, 10), &cbs);
  } else if (!strcmp(name, "immput") && a[0]) {
    hsp_crypto_hash(op.hash, (const uint8_t *)a, strlen(a));
    q = hsp_dht_immutable_put(node, (const uint8_t *)a, strlen(a), &cbs);
  } else if (!strcmp(name, "immget") && !hsp_hex_decode(op.want, 32, a)) {
    q = hsp_dht_immutable_get(node, op.want, &cbs);
  }
  if (q < 0) {
    printf("error %s %ld\n", name, q);
    fflush(stdout);
    return;
  }
  busy = true;
}

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  (void)h, (void)size;
  static char space[4096];
  *buf = uv_buf_init(space, sizeof(space));
}

/* One command at a time: the next line waits in `line` until the current query is done. */
static void run_lines(void) {
  char *nl;
  while (!busy && !closing && (nl = memchr(line, '\n', line_len))) {
    *nl = 0;
    char cmd[sizeof(line)];
    memcpy(cmd, line, (size_t)(nl - line) + 1);
    size_t used = (size_t)(nl - line) + 1;
    memmove(line, line + used, line_len - used);
    line_len -= used;
    command(cmd);
  }
}

static void on_stdin(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)s;
  if (n < 0) {
    shutdown_all();
    return;
  }
  if ((size_t)n > sizeof(line) - line_len) n = (ssize_t)(sizeof(line) - line_len);
  memcpy(line + line_len, buf->base, (size_t)n);
  line_len += (size_t)n;
  run_lines();
}

static void on_check(uv_check_t *h) {
  (void)h;
  run_lines();
}

static void on_ready(hsp_dht_io_t *x, void *ctx) {
  (void)x, (void)ctx;
  printf("ready\n");
  fflush(stdout);
  uv_pipe_init(loop, &in, 0);
  uv_pipe_open(&in, 0);
  uv_read_start((uv_stream_t *)&in, on_alloc, on_stdin);
}

int main(int argc, char **argv) {
  const char *bootstrap = NULL;
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp(argv[i], "--bootstrap")) bootstrap = argv[++i];
  if (!bootstrap) {
    fprintf(stderr, "usage: dht_io_tool --bootstrap HOST:PORT[,...]\n");
    return 2;
  }
  loop = uv_default_loop();
  hsp_dht_io_opts_t o;
  hsp_dht_io_opts_default(&o);
  o.host = "127.0.0.1";
  o.bootstrap = bootstrap;
  int err = hsp_dht_io_create(&io, loop, &o);
  if (err) {
    fprintf(stderr, "dht_io_tool: %s\n", hsp_dht_io_strerror(err));
    return 1;
  }
  printf("listening %u\n", hsp_dht_io_address(io).port);
  fflush(stdout);
  uv_check_t check;
  uv_check_init(loop, &check);
  uv_check_start(&check, on_check);
  uv_unref((uv_handle_t *)&check);
  hsp_dht_io_on_ready(io, on_ready, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&check, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return 0;
}
