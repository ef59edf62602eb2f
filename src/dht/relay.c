/* Blind relay pairing (relay.h). */
#include "relay.h"

#include <stdlib.h>
#include <string.h>

#include "hyper_conn_internal.h"

#define PROTOCOL "blind-relay"
#define LOCAL_ID 1 /* our only channel on this connection */
#define MSG_PAIR 0

struct hsp_dht_relay {
  hsp_dht_io_t *io;
  hsp_dht_conn_t *conn; /* to the relay server, once connected */
  hsp_dht_io_ticker_t ticker;
  uint64_t deadline;
  bool connecting, destroyed, reported;
  bool initiator;
  uint8_t token[32], id[32];
  uint32_t stream_id;
  hsp_dht_relay_cb cb;
  void *ctx;
  int result, socket; /* the reported outcome */
  hsp_ipv4_addr_t to;
  uint32_t remote_id;
};

long hsp_dht_relay_encode_open(uint8_t *buf, size_t cap, const uint8_t id[32]) {
  hsp_cenc_t s = hsp_cenc_for_encode(buf, cap);
  static const uint8_t head[2] = {0, 1};
  hsp_cenc_encode_raw(&s, head, 2);
  hsp_cenc_encode_uint(&s, LOCAL_ID);
  hsp_cenc_encode_string(&s, PROTOCOL, sizeof(PROTOCOL) - 1);
  hsp_cenc_encode_buffer(&s, id, 32);
  return s.error ? HSP_DHT_ERANGE : (long)s.start;
}

long hsp_dht_relay_encode_pair(uint8_t *buf, size_t cap, bool initiator, const uint8_t token[32],
                               uint32_t stream_id) {
  hsp_cenc_t s = hsp_cenc_for_encode(buf, cap);
  uint8_t flags = initiator ? 1 : 0;
  hsp_cenc_encode_uint(&s, LOCAL_ID);
  hsp_cenc_encode_uint(&s, MSG_PAIR);
  hsp_cenc_encode_raw(&s, &flags, 1);
  hsp_cenc_encode_raw(&s, token, 32);
  hsp_cenc_encode_uint(&s, stream_id);
  hsp_cenc_encode_uint(&s, 0); /* seq */
  return s.error ? HSP_DHT_ERANGE : (long)s.start;
}

/* One channel message (type + body) from the relay. */
static int parse_message(hsp_cenc_t *s, const uint8_t token[32], uint32_t *remote_id) {
  uint64_t type = hsp_cenc_decode_uint(s);
  if (s->error) return HSP_DHT_EMALFORMED;
  if (type != MSG_PAIR) return 0; /* unpair or newer messages: not for us */
  const uint8_t *flags = hsp_cenc_decode_fixed(s, 1);
  const uint8_t *tok = hsp_cenc_decode_fixed(s, 32);
  uint64_t id = hsp_cenc_decode_uint(s);
  hsp_cenc_decode_uint(s); /* seq */
  if (s->error || !flags || !tok || id > UINT32_MAX) return HSP_DHT_EMALFORMED;
  if (memcmp(tok, token, 32) != 0) return 0;
  *remote_id = (uint32_t)id;
  return 1;
}

int hsp_dht_relay_parse(const uint8_t *buf, size_t len, const uint8_t token[32],
                        uint32_t *remote_id) {
  hsp_cenc_t s = hsp_cenc_for_decode(buf, len);
  uint64_t channel = hsp_cenc_decode_uint(&s);
  if (s.error) return HSP_DHT_EMALFORMED;
  if (channel != 0) return parse_message(&s, token, remote_id);
  uint64_t type = hsp_cenc_decode_uint(&s);
  if (s.error) return HSP_DHT_EMALFORMED;
  switch (type) {
  case 1: /* open: the relay's side of our channel */
  case 4: /* pause/resume and other flow frames */
  case 5:
    return 0;
  case 2: /* reject */
  case 3: /* close */
    return HSP_DHT_EDESTROYED;
  case 0: { /* batch: channel id, then length-prefixed messages; length 0 = channel switch */
    hsp_cenc_decode_uint(&s);
    while (!s.error && hsp_cenc_remaining(&s) > 0) {
      hsp_bytes_t b = hsp_cenc_decode_buffer(&s);
      if (s.error) break;
      if (!b.len) { /* 00 then the next channel id; we only have one channel */
        hsp_cenc_decode_uint(&s);
        continue;
      }
      hsp_cenc_t m = hsp_cenc_for_decode(b.data, b.len);
      int r = parse_message(&m, token, remote_id);
      if (r != 0) return r;
    }
    return s.error ? HSP_DHT_EMALFORMED : 0;
  }
  default:
    return 0;
  }
}

/* The outcome is delivered from the ticker, never from inside a connection callback: the
 * owner may destroy us (and our connection) from it. */
static void report(hsp_dht_relay_t *r, int err, int socket, const hsp_ipv4_addr_t *to,
                   uint32_t remote_id) {
  if (r->reported || r->destroyed) return;
  r->reported = true;
  r->result = err;
  r->socket = socket;
  if (to) r->to = *to;
  r->remote_id = remote_id;
  r->deadline = 0;
  hsp_dht_io_wake(r->io);
}

static void on_read(hsp_dht_conn_t *c, const uint8_t *buf, ssize_t len) {
  hsp_dht_relay_t *r = hsp_dht_conn_user(c);
  if (!r || r->reported) return;
  if (len <= 0) {
    report(r, HSP_DHT_CONN_ERELAYABORTED, 0, NULL, 0);
    return;
  }
  uint32_t remote_id = 0;
  int res = hsp_dht_relay_parse(buf, (size_t)len, r->token, &remote_id);
  if (res < 0) {
    report(r, HSP_DHT_CONN_ERELAYABORTED, 0, NULL, 0);
  } else if (res == 1) {
    hsp_ipv4_addr_t to;
    if (!hsp_dht_conn_remote_address(c, &to)) {
      report(r, HSP_DHT_CONN_ERELAYABORTED, 0, NULL, 0);
      return;
    }
    report(r, 0, c->socket_id, &to, remote_id);
  }
}

static void on_close(hsp_dht_conn_t *c, int status) {
  (void)status;
  hsp_dht_relay_t *r = hsp_dht_conn_user(c);
  if (!r) return;
  r->conn = NULL;
  report(r, HSP_DHT_CONN_ERELAYABORTED, 0, NULL, 0);
}

static void on_connected(void *ctx, hsp_dht_conn_t *c, int err) {
  hsp_dht_relay_t *r = ctx;
  r->connecting = false;
  if (r->destroyed) { /* destroyed while connecting: nothing to report to */
    if (c) hsp_dht_conn_destroy(c);
    hsp_dht_io_remove_ticker(r->io, &r->ticker);
    free(r);
    return;
  }
  if (err) {
    report(r, HSP_DHT_CONN_ERELAYABORTED, 0, NULL, 0);
    return;
  }
  r->conn = c;
  hsp_dht_conn_set_callbacks(c, on_read, on_close, r);
  uint8_t open[64], pair[64];
  long n1 = hsp_dht_relay_encode_open(open, sizeof(open), r->id);
  long n2 = hsp_dht_relay_encode_pair(pair, sizeof(pair), r->initiator, r->token, r->stream_id);
  if (n1 < 0 || n2 < 0 || hsp_dht_conn_write(c, open, (size_t)n1, NULL, NULL) != 0 ||
      hsp_dht_conn_write(c, pair, (size_t)n2, NULL, NULL) != 0)
    report(r, HSP_DHT_CONN_ERELAYABORTED, 0, NULL, 0);
}

static uint64_t relay_deadline(hsp_dht_io_ticker_t *t) {
  return ((hsp_dht_relay_t *)((char *)t - offsetof(hsp_dht_relay_t, ticker)))->deadline;
}

static void relay_advance(hsp_dht_io_ticker_t *t, uint64_t now) {
  (void)now;
  hsp_dht_relay_t *r = (hsp_dht_relay_t *)((char *)t - offsetof(hsp_dht_relay_t, ticker));
  if (!r->reported) report(r, HSP_DHT_CONN_ERELAYABORTED, 0, NULL, 0); /* not paired in time */
  r->deadline = UINT64_MAX;
  if (!r->destroyed) r->cb(r->ctx, r->result, r->socket, &r->to, r->remote_id);
}

int hsp_dht_relay_pair(hsp_dht_relay_t **out, hsp_dht_io_t *io, const hsp_crypto_keypair_t *kp,
                       const uint8_t relay_public_key[32], bool initiator,
                       const uint8_t token[32], uint32_t stream_id, hsp_dht_relay_cb cb,
                       void *ctx) {
  hsp_dht_relay_t *r = calloc(1, sizeof(*r));
  if (!r) return HSP_DHT_ENOMEM;
  r->io = io;
  r->initiator = initiator;
  memcpy(r->token, token, 32);
  memcpy(r->id, kp->public_key, 32); /* the relay accepts our channel with id = our key */
  r->stream_id = stream_id;
  r->cb = cb;
  r->ctx = ctx;
  r->deadline = hsp_dht_io_now(io) + HSP_DHT_RELAY_TIMEOUT_MS;
  r->ticker.deadline = relay_deadline;
  r->ticker.advance = relay_advance;
  r->connecting = true;
  int err = hsp_dht_connect(io, kp, relay_public_key, on_connected, r);
  if (err) {
    free(r);
    return err;
  }
  hsp_dht_io_add_ticker(io, &r->ticker);
  hsp_dht_io_wake(io);
  *out = r;
  return 0;
}

void hsp_dht_relay_destroy(hsp_dht_relay_t *r) {
  if (!r || r->destroyed) return;
  r->destroyed = true;
  r->deadline = UINT64_MAX;
  if (r->connecting) return; /* on_connected frees it */
  hsp_dht_io_remove_ticker(r->io, &r->ticker);
  if (r->conn) {
    hsp_dht_conn_t *c = r->conn;
    r->conn = NULL;
    hsp_dht_conn_set_callbacks(c, NULL, NULL, NULL);
    hsp_dht_conn_destroy(c);
  }
  free(r);
}

bool hsp_dht_relay_path(const hsp_dht_relay_t *r, int *socket, hsp_ipv4_addr_t *addr) {
  if (!r->conn || !hsp_dht_conn_remote_address(r->conn, addr)) return false;
  *socket = r->conn->socket_id;
  return true;
}
