/* Secret-stream over a UDX stream (hyper_conn.h). */
#include "hyper_conn_internal.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#define CHUNK 65536

const char *hsp_dht_conn_strerror(int err) {
  switch (err) {
  case HSP_DHT_CONN_EOF: return "end of stream";
  case HSP_DHT_CONN_ENOTFOUND: return "peer not found (no DHT node has a route to it)";
  case HSP_DHT_CONN_EFAILED: return "peer connection failed (no handshake reply)";
  case HSP_DHT_CONN_ESERVER: return "server error or incompatible handshake reply";
  case HSP_DHT_CONN_ECANNOTPUNCH: return "server cannot be holepunched (no relays)";
  case HSP_DHT_CONN_ETIMEDOUT: return "connection timed out";
  case HSP_DHT_CONN_EPUNCHABORTED: return "holepunch aborted";
  case HSP_DHT_CONN_EPROBETIMEOUT: return "holepunch probe timed out (NAT not classified)";
  case HSP_DHT_CONN_EDOUBLERANDOM: return "both peers are behind randomizing NATs (cannot holepunch)";
  case HSP_DHT_CONN_EREMOTEABORTED: return "the server aborted the holepunch";
  case HSP_DHT_CONN_ENOTPUNCHABLE: return "the NATs cannot be holepunched";
  case HSP_DHT_CONN_ERELAYABORTED: return "blind relay pairing failed";
  }
  if (err <= -100) return hsp_udx_strerror(err + 100);
  if (err <= -20) return hsp_crypto_strerror(err + 20);
  return hsp_dht_strerror(err);
}

typedef struct wreq {
  hsp_udx_write_t req;
  hsp_dht_conn_write_cb cb;
  void *ctx;
  uint8_t data[];
} wreq_t;

static void on_written(hsp_udx_write_t *req, int status) {
  wreq_t *w = (wreq_t *)req;
  if (w->cb) w->cb(w->ctx, status ? status - 100 : 0);
  free(w);
}

static int queue_bytes(hsp_dht_conn_t *c, wreq_t *w, size_t len, bool end) {
  int err = end ? hsp_udx_stream_write_end(&w->req, &c->stream, w->data, len, on_written)
                : hsp_udx_stream_write(&w->req, &c->stream, w->data, len, on_written);
  if (err) free(w);
  return err ? err - 100 : 0;
}

/* secret-stream's own frames (header, keepalives). */
static int ss_write(void *user, const uint8_t *data, size_t len) {
  hsp_dht_conn_t *c = user;
  wreq_t *w = malloc(sizeof(*w) + len);
  if (!w) return -1;
  w->cb = NULL;
  memcpy(w->data, data, len);
  return queue_bytes(c, w, len, false) ? -1 : 0;
}

typedef struct hsp_dht_conn_msg {
  struct hsp_dht_conn_msg *next;
  size_t len;
  uint8_t data[];
} held_msg_t;

static int ss_message(void *user, uint8_t *msg, size_t len) {
  hsp_dht_conn_t *c = user;
  if (!len) return 0;
  if (c->paused) {
    held_msg_t *m = malloc(sizeof(*m) + len);
    if (!m) return -1;
    m->next = NULL;
    m->len = len;
    memcpy(m->data, msg, len);
    if (c->held_tail) c->held_tail->next = m;
    else c->held_head = m;
    c->held_tail = m;
    c->held_bytes += len;
    return 0;
  }
  if (c->on_read) c->on_read(c, msg, (ssize_t)len);
  return 0;
}

static void free_held(hsp_dht_conn_t *c) {
  while (c->held_head) {
    held_msg_t *m = c->held_head;
    c->held_head = m->next;
    free(m);
  }
  c->held_tail = NULL;
  c->held_bytes = 0;
}

static void on_read(hsp_udx_stream_t *s, const uint8_t *buf, ssize_t len);

/* After read_start: held messages first, then UDX delivers what it buffered. Runs from the
 * ticker, so the read callback never runs inside hsp_dht_conn_read_start. */
static void resume_reading(hsp_dht_conn_t *c) {
  while (!c->paused && c->held_head && !c->stream.closed) {
    held_msg_t *m = c->held_head;
    c->held_head = m->next;
    if (!c->held_head) c->held_tail = NULL;
    c->held_bytes -= m->len;
    /* the callback may destroy the connection: that only schedules its close */
    if (c->on_read) c->on_read(c, m->data, (ssize_t)m->len);
    free(m);
  }
  if (!c->paused && !c->held_head) hsp_udx_stream_read_start(&c->stream, on_read);
}

static bool resume_due(const hsp_dht_conn_t *c) {
  return !c->paused && !c->stream.reading && !c->stream.closed;
}

static uint64_t tick_deadline(hsp_dht_io_ticker_t *t) {
  hsp_dht_conn_t *c = (hsp_dht_conn_t *)((char *)t - offsetof(hsp_dht_conn_t, ticker));
  return resume_due(c) ? 0 : hsp_ss_next_deadline(&c->ss);
}

static void tick_advance(hsp_dht_io_ticker_t *t, uint64_t now) {
  hsp_dht_conn_t *c = (hsp_dht_conn_t *)((char *)t - offsetof(hsp_dht_conn_t, ticker));
  if (resume_due(c)) resume_reading(c);
  if (!c->stream.closed && hsp_ss_tick(&c->ss, now) != 0) hsp_udx_stream_destroy(&c->stream);
}

static void on_read(hsp_udx_stream_t *s, const uint8_t *buf, ssize_t len) {
  hsp_dht_conn_t *c = s->data;
  if (len == HSP_UDX_EOF) {
    int err = hsp_ss_recv_end(&c->ss);
    if (err) {
      hsp_udx_stream_destroy(s);
      return;
    }
    if (c->on_read) c->on_read(c, NULL, HSP_DHT_CONN_EOF);
    return;
  }
  if (len > 0 && hsp_ss_recv_const(&c->ss, buf, (size_t)len, hsp_dht_io_now(c->io)) != 0)
    hsp_udx_stream_destroy(s);
}

static void on_close(hsp_udx_stream_t *s, int status) {
  hsp_dht_conn_t *c = s->data;
  int ss_err = c->ss_init ? hsp_ss_error(&c->ss) : 0;
  if (c->ticking) hsp_dht_io_remove_ticker(c->io, &c->ticker);
  if (c->socket_held) hsp_dht_io_socket_unref(c->io, c->socket_id);
  if (c->ss_init) hsp_ss_destroy(&c->ss);
  free_held(c);
  hsp_crypto_wipe(&c->keys, sizeof(c->keys));
  int st = status ? status - 100 : (ss_err && ss_err != HSP_CRYPTO_EDESTROYED ? ss_err - 20 : 0);
  if (c->on_close) c->on_close(c, st);
  if (c->on_free) c->on_free(c->on_free_ctx); /* e.g. the blind relay carrying it */
  free(c);
}

hsp_dht_conn_t *hsp_dht__conn_new(hsp_dht_io_t *io) {
  hsp_dht_conn_t *c = calloc(1, sizeof(*c));
  if (!c) return NULL;
  c->io = io;
  for (int tries = 0; tries < 8; tries++) {
    uint32_t id = randombytes_random();
    if (hsp_udx_stream_init(hsp_dht_io_udx(io), &c->stream, id, on_close) == 0) {
      c->stream.data = c;
      return c;
    }
  }
  free(c);
  return NULL;
}

int hsp_dht__conn_start(hsp_dht_conn_t *c, int socket, const hsp_ipv4_addr_t *to,
                        uint32_t remote_id, const hsp_noise_result_t *keys) {
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(to->port)};
  memcpy(&sa.sin_addr, to->host, 4);
  int err = hsp_udx_stream_connect(&c->stream, hsp_dht_io_socket(c->io, socket), remote_id,
                                   (const struct sockaddr *)&sa);
  if (err) return err - 100;
  c->socket_id = socket;
  c->socket_held = true;
  hsp_dht_io_socket_ref(c->io, socket);
  c->keys = *keys;
  hsp_ss_config_t cfg = {.is_initiator = keys->is_initiator,
                         .handshake = &c->keys,
                         .keepalive_ms = HSP_SS_DEFAULT_KEEPALIVE_MS,
                         .write = ss_write,
                         .on_message = ss_message,
                         .user = c};
  err = hsp_ss_init(&c->ss, &cfg);
  if (err) return err - 20;
  c->ss_init = true;
  hsp_udx_stream_read_start(&c->stream, on_read);
  err = hsp_ss_start(&c->ss, hsp_dht_io_now(c->io));
  if (err) return err - 20;
  c->ticker.deadline = tick_deadline;
  c->ticker.advance = tick_advance;
  hsp_dht_io_add_ticker(c->io, &c->ticker);
  c->ticking = true;
  c->started = true;
  return 0;
}

void hsp_dht_conn_set_callbacks(hsp_dht_conn_t *c, hsp_dht_conn_read_cb r,
                                hsp_dht_conn_close_cb cl, void *user) {
  c->on_read = r;
  c->on_close = cl;
  c->user = user;
}

void *hsp_dht_conn_user(const hsp_dht_conn_t *c) { return c->user; }

int hsp_dht_conn_write(hsp_dht_conn_t *c, const uint8_t *buf, size_t len,
                       hsp_dht_conn_write_cb cb, void *ctx) {
  struct iovec v = {.iov_base = (void *)buf, .iov_len = len};
  return hsp_dht_conn_writev(c, &v, 1, cb, ctx);
}

int hsp_dht_conn_writev(hsp_dht_conn_t *c, const struct iovec *iov, size_t iovcnt,
                        hsp_dht_conn_write_cb cb, void *ctx) {
  if (!c->started || !hsp_ss_is_open(&c->ss)) return HSP_DHT_EINVAL;
  size_t len = 0;
  for (size_t i = 0; i < iovcnt; i++) {
    if (iov[i].iov_len > SIZE_MAX / 2 - len) return HSP_DHT_EINVAL;
    len += iov[i].iov_len;
  }
  size_t chunks = len ? (len + CHUNK - 1) / CHUNK : 0;
  size_t total = len + chunks * HSP_SS_FRAME_OVERHEAD;
  wreq_t *w = malloc(sizeof(*w) + total + 1);
  if (!w) return HSP_DHT_ENOMEM;
  w->cb = cb;
  w->ctx = ctx;
  /* Each chunk is one secret-stream message, gathered straight into its place in the one
   * buffer and sealed there: the pieces are copied once. */
  uint8_t *p = w->data;
  uint64_t now = hsp_dht_io_now(c->io);
  size_t vi = 0, voff = 0;
  for (size_t off = 0; off < len; off += CHUNK) {
    size_t n = len - off < CHUNK ? len - off : CHUNK;
    uint8_t *dst = p + HSP_SS_PLAINTEXT_OFFSET;
    for (size_t got = 0; got < n;) {
      size_t k = iov[vi].iov_len - voff;
      if (k > n - got) k = n - got;
      if (k) memcpy(dst + got, (const uint8_t *)iov[vi].iov_base + voff, k);
      got += k;
      voff += k;
      if (voff == iov[vi].iov_len) {
        vi++;
        voff = 0;
      }
    }
    int err = hsp_ss_seal(&c->ss, p, n, now);
    if (err) {
      free(w);
      return err - 20;
    }
    p += n + HSP_SS_FRAME_OVERHEAD;
  }
  return queue_bytes(c, w, total, false);
}

int hsp_dht_conn_read_stop(hsp_dht_conn_t *c) {
  if (!c->started) return HSP_DHT_EINVAL;
  c->paused = true;
  hsp_udx_stream_read_stop(&c->stream);
  return 0;
}

int hsp_dht_conn_read_start(hsp_dht_conn_t *c) {
  if (!c->started) return HSP_DHT_EINVAL;
  if (!c->paused) return 0;
  c->paused = false;
  hsp_dht_io_wake(c->io);
  return 0;
}

size_t hsp_dht_conn_read_queue_size(const hsp_dht_conn_t *c) {
  return c->held_bytes + hsp_udx_stream_read_queue_size(&c->stream);
}

size_t hsp_dht_conn_write_queue_size(const hsp_dht_conn_t *c) {
  return hsp_udx_stream_write_queue_size(&c->stream);
}

int hsp_dht_conn_end(hsp_dht_conn_t *c) {
  if (!c->started) return HSP_DHT_EINVAL;
  hsp_ss_end(&c->ss);
  wreq_t *w = malloc(sizeof(*w) + 1);
  if (!w) return HSP_DHT_ENOMEM;
  w->cb = NULL;
  return queue_bytes(c, w, 0, true);
}

void hsp_dht_conn_destroy(hsp_dht_conn_t *c) { hsp_udx_stream_destroy(&c->stream); }

const uint8_t *hsp_dht_conn_remote_public_key(const hsp_dht_conn_t *c) {
  return c->keys.remote_public_key;
}

bool hsp_dht_conn_remote_address(const hsp_dht_conn_t *c, hsp_ipv4_addr_t *out) {
  if (!c->started || c->stream.remote_addr.ss_family != AF_INET) return false;
  const struct sockaddr_in *sa = (const struct sockaddr_in *)&c->stream.remote_addr;
  memcpy(out->host, &sa->sin_addr, 4);
  out->port = ntohs(sa->sin_port);
  return true;
}
