/* TCP <-> HyperDHT byte pipe (bridge.h). */
#include "bridge.h"

#include <stdlib.h>
#include <string.h>

typedef struct held {
  struct held *next;
  size_t len;
  uint8_t data[];
} held_t;

struct hsp_agent_bridge {
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  uv_shutdown_t shutdown_req;
  hsp_dht_conn_t *conn;
  hsp_agent_bridge_done_cb done;
  void *ctx;
  held_t *held, *held_tail; /* HyperDHT data waiting for the TCP end */
  size_t held_bytes;
  int dht_writes;  /* HyperDHT writes not yet acknowledged by the peer */
  int tcp_writes;  /* TCP writes not yet done */
  bool dht_paused; /* HyperDHT reading stopped while the TCP side is slow */
  bool tcp_ok, tcp_reading, tcp_eof, dht_eof, tcp_closed, tcp_closing, dht_closed, closing;
};

static void maybe_done(hsp_agent_bridge_t *b) {
  if (!b->closing || !b->tcp_closed || !b->dht_closed || b->dht_writes) return;
  for (held_t *h = b->held, *n; h; h = n) {
    n = h->next;
    free(h);
  }
  if (b->done) b->done(b->ctx, b);
  free(b);
}

static void tcp_closed(uv_handle_t *h) {
  hsp_agent_bridge_t *b = h->data;
  b->tcp_closed = true;
  maybe_done(b);
}

void hsp_agent_bridge_close(hsp_agent_bridge_t *b) {
  if (b->closing) return;
  b->closing = true;
  if (!b->tcp_closing) {
    b->tcp_closing = true;
    uv_close((uv_handle_t *)&b->tcp, tcp_closed);
  }
  if (b->conn) hsp_dht_conn_destroy(b->conn); /* dht_closed when its close callback runs */
  else b->dht_closed = true;
  maybe_done(b);
}

static void alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  (void)h;
  if (size > 65536) size = 65536;
  buf->base = malloc(size);
  buf->len = buf->base ? size : 0;
}

/* Both sides ended and everything written has arrived: nothing is left to carry. */
static void maybe_finished(hsp_agent_bridge_t *b) {
  if (b->tcp_eof && b->dht_eof && !b->dht_writes && !b->tcp_writes && !b->closing)
    hsp_agent_bridge_close(b);
}

static void read_start(hsp_agent_bridge_t *b);

static void dht_written(void *ctx, int status) {
  hsp_agent_bridge_t *b = ctx;
  b->dht_writes--;
  if (status && !b->closing) hsp_agent_bridge_close(b);
  if (b->closing) {
    maybe_done(b);
    return;
  }
  /* resume reading TCP once the peer has caught up */
  if (!b->tcp_reading && !b->tcp_eof && b->tcp_ok && b->conn &&
      hsp_dht_conn_write_queue_size(b->conn) < HSP_AGENT_BRIDGE_HIGH / 2)
    read_start(b);
  maybe_finished(b);
}

static void tcp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  hsp_agent_bridge_t *b = s->data;
  if (n > 0 && !b->closing) {
    if (hsp_dht_conn_write(b->conn, (const uint8_t *)buf->base, (size_t)n, dht_written, b) == 0) {
      b->dht_writes++;
      if (hsp_dht_conn_write_queue_size(b->conn) > HSP_AGENT_BRIDGE_HIGH) {
        uv_read_stop(s);
        b->tcp_reading = false;
      }
    } else {
      hsp_agent_bridge_close(b);
    }
  }
  free(buf->base);
  if (n < 0 && !b->closing) {
    uv_read_stop(s);
    b->tcp_reading = false;
    if (n != UV_EOF) {
      hsp_agent_bridge_close(b);
      return;
    }
    b->tcp_eof = true;
    hsp_dht_conn_end(b->conn);
    maybe_finished(b);
  }
}

static void read_start(hsp_agent_bridge_t *b) {
  if (uv_read_start((uv_stream_t *)&b->tcp, alloc_cb, tcp_read) == 0) b->tcp_reading = true;
  else hsp_agent_bridge_close(b);
}

static void tcp_written(uv_write_t *w, int status) {
  hsp_agent_bridge_t *b = w->data;
  free(w);
  b->tcp_writes--;
  if (status && !b->closing) {
    hsp_agent_bridge_close(b);
    return;
  }
  if (b->dht_paused && b->conn && !b->closing &&
      b->tcp.write_queue_size < HSP_AGENT_BRIDGE_HIGH / 2) {
    b->dht_paused = false;
    hsp_dht_conn_read_start(b->conn);
  }
  maybe_finished(b);
}

static void tcp_send(hsp_agent_bridge_t *b, const uint8_t *data, size_t len) {
  uv_write_t *w = malloc(sizeof *w + len);
  if (!w) {
    hsp_agent_bridge_close(b);
    return;
  }
  memcpy(w + 1, data, len);
  w->data = b;
  uv_buf_t buf = uv_buf_init((char *)(w + 1), (unsigned)len);
  if (uv_write(w, (uv_stream_t *)&b->tcp, &buf, 1, tcp_written) != 0) {
    free(w);
    hsp_agent_bridge_close(b);
    return;
  }
  b->tcp_writes++;
  /* the TCP side reads slower than the peer sends: let UDX's window push back */
  if (!b->dht_paused && b->conn && b->tcp.write_queue_size > HSP_AGENT_BRIDGE_HIGH) {
    b->dht_paused = true;
    hsp_dht_conn_read_stop(b->conn);
  }
}

static void tcp_shutdown_done(uv_shutdown_t *r, int status) {
  (void)status;
  hsp_agent_bridge_t *b = r->data;
  maybe_finished(b);
}

static void dht_eof(hsp_agent_bridge_t *b) {
  b->dht_eof = true;
  b->shutdown_req.data = b;
  if (uv_shutdown(&b->shutdown_req, (uv_stream_t *)&b->tcp, tcp_shutdown_done) != 0)
    maybe_finished(b);
}

static void dht_read(hsp_dht_conn_t *c, const uint8_t *buf, ssize_t len) {
  hsp_agent_bridge_t *b = hsp_dht_conn_user(c);
  if (b->closing) return;
  if (!b->tcp_ok) { /* the TCP end is still connecting: hold on to it */
    if (len == HSP_DHT_CONN_EOF) {
      b->dht_eof = true;
      return;
    }
    held_t *h = b->held_bytes + (size_t)len <= HSP_AGENT_BRIDGE_HOLD ? malloc(sizeof *h + (size_t)len) : NULL;
    if (!h) {
      hsp_agent_bridge_close(b);
      return;
    }
    h->next = NULL;
    h->len = (size_t)len;
    memcpy(h->data, buf, (size_t)len);
    if (b->held_tail) b->held_tail->next = h;
    else b->held = h;
    b->held_tail = h;
    b->held_bytes += (size_t)len;
    return;
  }
  if (len == HSP_DHT_CONN_EOF) dht_eof(b);
  else tcp_send(b, buf, (size_t)len);
}

static void dht_close(hsp_dht_conn_t *c, int status) {
  hsp_agent_bridge_t *b = hsp_dht_conn_user(c);
  (void)status;
  b->conn = NULL;
  b->dht_closed = true;
  if (!b->closing) hsp_agent_bridge_close(b);
  else maybe_done(b);
}

/* Both ends are there: flush what waited, start reading TCP. */
static void start(hsp_agent_bridge_t *b) {
  if (!b->tcp_ok || !b->conn || b->closing) return;
  for (held_t *h = b->held, *n; h && !b->closing; h = n) {
    n = h->next;
    tcp_send(b, h->data, h->len);
    b->held = n;
    free(h);
  }
  b->held_tail = NULL;
  b->held_bytes = 0;
  if (b->closing) return;
  if (b->dht_eof) dht_eof(b);
  read_start(b);
}

hsp_agent_bridge_t *hsp_agent_bridge_new(uv_loop_t *loop, hsp_agent_bridge_done_cb done, void *ctx) {
  hsp_agent_bridge_t *b = calloc(1, sizeof *b);
  if (!b) return NULL;
  if (uv_tcp_init(loop, &b->tcp) != 0) {
    free(b);
    return NULL;
  }
  b->tcp.data = b;
  b->done = done;
  b->ctx = ctx;
  return b;
}

uv_tcp_t *hsp_agent_bridge_tcp(hsp_agent_bridge_t *b) { return &b->tcp; }

void hsp_agent_bridge_tcp_ready(hsp_agent_bridge_t *b) {
  b->tcp_ok = true;
  uv_tcp_nodelay(&b->tcp, 1);
  start(b);
}

static void on_tcp_connect(uv_connect_t *r, int status) {
  hsp_agent_bridge_t *b = r->data;
  if (b->closing) return;
  if (status) {
    hsp_agent_bridge_close(b);
    return;
  }
  hsp_agent_bridge_tcp_ready(b);
}

int hsp_agent_bridge_connect(hsp_agent_bridge_t *b, const struct sockaddr *addr) {
  b->connect_req.data = b;
  return uv_tcp_connect(&b->connect_req, &b->tcp, addr, on_tcp_connect);
}

void hsp_agent_bridge_attach_first(hsp_agent_bridge_t *b, hsp_dht_conn_t *conn,
                                   const uint8_t *first, size_t len) {
  if (first && len && !b->closing) {
    hsp_dht_conn_set_callbacks(conn, dht_read, dht_close, b);
    dht_read(conn, first, (ssize_t)len); /* held until the TCP end is connected */
  }
  hsp_agent_bridge_attach(b, conn);
}

void hsp_agent_bridge_attach(hsp_agent_bridge_t *b, hsp_dht_conn_t *conn) {
  b->conn = conn;
  hsp_dht_conn_set_callbacks(conn, dht_read, dht_close, b);
  if (b->closing) {
    hsp_dht_conn_destroy(conn);
    return;
  }
  start(b);
}
