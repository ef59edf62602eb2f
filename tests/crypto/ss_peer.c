/*
 * A secret-stream endpoint over libuv TCP on 127.0.0.1, for the live interop tests
 * (tests/interop/crypto_live.js, against @hyperswarm/secret-stream) and the throughput
 * benchmark. tests/interop/crypto_peer.js is its JS twin and takes the same options.
 *
 *   --listen PORT | --connect PORT   (listen 0 picks a port, printed as "port N")
 *   --mode xx|ik    xx: secret-stream's own Noise XX over the socket (standalone mode);
 *                   ik: hyperdht's IK (NoiseWrap: prologue NS_PEER_HANDSHAKE, noisePayload
 *                   payloads), its two messages uint24-framed over the socket, then
 *                   secret-stream in handshake mode on the same socket.
 *                   The connecting side is the initiator.
 *   --seed HEX      static key seed (32 bytes)
 *   --remote HEX    ik initiator: the responder's public key; xx: the expected peer key
 *   --payload HEX   ik: this side's handshake payload
 *   --send N        bytes to send (in messages of --chunk bytes, default 65536)
 *   --expect N      bytes to receive
 *   --tamper K      flip one bit of the K-th byte written on the socket
 *   --checksum 0    skip the checksums (benchmark: measure the stream, not the hashing)
 *
 * Prints "remote", "stream_id" (the initiator's stream id: public, unlike the handshake hash it
 * is derived from), "payload" (ik), then "tx_bytes/tx_hash/rx_bytes/rx_hash" with
 * BLAKE2b-512 checksums and "rx_mbps"; on failure "error <reason>" and exit status 1.
 */
#include "crypto.h"
#include "hex.h"
#include "noise.h"
#include "secretstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define READ_BUF (1 << 20)
#define HIGH_WATER (4u << 20)

typedef struct app {
  uv_loop_t *loop;
  uv_tcp_t server;
  uv_tcp_t conn;
  uv_timer_t timer;
  uv_shutdown_t shutdown_req;
  bool listening, connected, closing;
  bool initiator, ik;
  hsp_crypto_keypair_t kp;
  uint8_t remote[32];
  bool has_remote;
  uint8_t payload[1024];
  size_t payload_len;
  /* ik handshake over the socket */
  hsp_noise_t noise;
  uint8_t hsbuf[4096];
  size_t hslen;
  /* stream */
  hsp_ss_t ss;
  bool ss_started, open;
  uint64_t to_send, sent, chunk, expect, received;
  crypto_generichash_state tx_hash, rx_hash;
  uint64_t rx_start_ns, rx_end_ns;
  bool remote_ended, local_shut;
  uint64_t tamper_at;
  uint64_t written; /* raw bytes handed to the socket */
  bool checksum;
  int failed;
} app_t;

static app_t app;
static uint8_t read_buf[READ_BUF];

static void finish(void);

static void fail_with(const char *what, int rc) {
  if (app.failed) return;
  printf("error %s: %s\n", what, rc < 0 && rc > -100 ? hsp_crypto_strerror(rc) : uv_strerror(rc));
  fflush(stdout);
  app.failed = 1;
  finish();
}

static void on_close(uv_handle_t *h) { (void)h; }

static void finish(void) {
  if (app.closing) return;
  app.closing = true;
  if (app.connected) uv_close((uv_handle_t *)&app.conn, on_close);
  if (app.listening) uv_close((uv_handle_t *)&app.server, on_close);
  uv_close((uv_handle_t *)&app.timer, on_close);
}

typedef struct wreq {
  uv_write_t req;
  size_t len;
  bool pooled;
  struct wreq *next;
  uint8_t data[];
} wreq_t;

/* Bulk frames are sealed BATCH at a time into one buffer and written with one request (one
 * syscall), and the buffers are recycled: fresh allocations of this size would fault in new
 * pages for every message and dominate the profile. */
#define BATCH_BYTES (1u << 20)
static wreq_t *pool;

static size_t batch_frames(void) {
  size_t n = BATCH_BYTES / (app.chunk + HSP_SS_FRAME_OVERHEAD);
  return n ? n : 1;
}

static wreq_t *frame_alloc(void) {
  wreq_t *w = pool;
  if (w) pool = w->next;
  else w = malloc(sizeof *w + batch_frames() * (app.chunk + HSP_SS_FRAME_OVERHEAD));
  if (w) w->pooled = true;
  return w;
}

static void req_free(wreq_t *w) {
  if (!w->pooled) {
    free(w);
    return;
  }
  w->next = pool;
  pool = w;
}

static void pool_drain(void) {
  while (pool) {
    wreq_t *w = pool;
    pool = w->next;
    free(w);
  }
}

static void pump(void);

static void on_written(uv_write_t *req, int status) {
  req_free((wreq_t *)req);
  if (status < 0) {
    if (!app.closing) fail_with("write", status);
    return;
  }
  pump();
}

static void send_req(wreq_t *w) {
  if (app.tamper_at && app.written < app.tamper_at && app.written + w->len >= app.tamper_at)
    w->data[app.tamper_at - app.written - 1] ^= 0x10;
  app.written += w->len;
  uv_buf_t buf = uv_buf_init((char *)w->data, (unsigned)w->len);
  int rc = uv_write(&w->req, (uv_stream_t *)&app.conn, &buf, 1, on_written);
  if (rc < 0) {
    req_free(w);
    fail_with("write", rc);
  }
}

static int raw_write(void *user, const uint8_t *data, size_t len) {
  (void)user;
  if (app.closing) return -1;
  wreq_t *w = malloc(sizeof *w + len);
  if (!w) return -1;
  w->len = len;
  w->pooled = false;
  memcpy(w->data, data, len);
  send_req(w);
  return 0;
}

/* Payload bytes: a window into a pseudo-random pattern, so checksums see varied data while
 * producing it costs a memcpy (as the JS twin's reused buffer does). */
#define PATTERN_SIZE (1u << 20)
static uint8_t *pattern;

static void pattern_init(void) {
  pattern = malloc(PATTERN_SIZE + HSP_SS_MAX_MESSAGE);
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i < PATTERN_SIZE; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    memcpy(pattern + i, &x, 8);
  }
}

static void fill(uint8_t *p, size_t len) {
  size_t off = (size_t)((app.sent * 7919) % PATTERN_SIZE);
  /* the pattern is only PATTERN_SIZE long: wrap around in pieces */
  while (len) {
    size_t n = PATTERN_SIZE - off < len ? PATTERN_SIZE - off : len;
    memcpy(p, pattern + off, n);
    p += n;
    len -= n;
    off = 0;
  }
}

static uint64_t now_ns(void) { return uv_hrtime(); }

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)req;
  if (status < 0 && !app.closing) {
    fail_with("shutdown", status);
    return;
  }
  app.local_shut = true;
  if (app.remote_ended) finish();
}

/* Sends data messages while the socket's queue is short; continues from write callbacks. */
static void pump(void) {
  if (app.closing || !app.open || app.ss.local_ended) return;
  while (app.sent < app.to_send && app.conn.write_queue_size < HIGH_WATER) {
    wreq_t *w = frame_alloc();
    if (!w) return fail_with("alloc", HSP_CRYPTO_ENOMEM);
    w->len = 0;
    for (size_t k = 0; k < batch_frames() && app.sent < app.to_send; k++) {
      size_t n = app.to_send - app.sent < app.chunk ? app.to_send - app.sent : app.chunk;
      uint8_t *frame = w->data + w->len;
      fill(frame + HSP_SS_PLAINTEXT_OFFSET, n);
      if (app.checksum) crypto_generichash_update(&app.tx_hash, frame + HSP_SS_PLAINTEXT_OFFSET, n);
      int rc = hsp_ss_seal(&app.ss, frame, n, uv_now(app.loop));
      if (rc) {
        req_free(w);
        return fail_with("seal", rc);
      }
      app.sent += n;
      w->len += n + HSP_SS_FRAME_OVERHEAD;
    }
    send_req(w);
    if (app.closing) return;
  }
  if (app.sent == app.to_send) {
    hsp_ss_end(&app.ss);
    uv_shutdown(&app.shutdown_req, (uv_stream_t *)&app.conn, on_shutdown);
  }
}

static int on_message(void *user, uint8_t *msg, size_t len) {
  (void)user;
  if (app.received == 0 && len) app.rx_start_ns = now_ns();
  if (app.checksum) crypto_generichash_update(&app.rx_hash, msg, len);
  app.received += len;
  if (app.received >= app.expect) app.rx_end_ns = now_ns();
  return 0;
}

static void print_hex(const char *name, const uint8_t *p, size_t len) {
  char text[2 * 1024 + 1];
  hsp_hex_encode(text, p, len);
  printf("%s %s\n", name, text);
}

static int on_open(void *user, hsp_ss_t *ss) {
  (void)user;
  app.open = true;
  print_hex("remote", hsp_ss_remote_public_key(ss), 32);
  uint8_t id[32];
  hsp_crypto_stream_id(id, hsp_ss_handshake_hash(ss), true);
  print_hex("stream_id", id, 32);
  fflush(stdout);
  pump();
  return 0;
}

static int start_stream(const hsp_noise_result_t *hs) {
  hsp_ss_config_t cfg = {.is_initiator = app.initiator,
                         .handshake = hs,
                         .keypair = hs ? NULL : &app.kp,
                         .remote_public_key = app.has_remote && !hs ? app.remote : NULL,
                         .keepalive_ms = HSP_SS_DEFAULT_KEEPALIVE_MS,
                         .write = raw_write,
                         .on_message = on_message,
                         .on_open = on_open};
  int rc = hsp_ss_init(&app.ss, &cfg);
  app.ss_started = true;
  if (rc == 0) rc = hsp_ss_start(&app.ss, uv_now(app.loop));
  return rc;
}

/* ik: frames of the two Noise messages, then the rest goes to the stream. */
static int ik_consume(uint8_t *data, size_t len, size_t *used) {
  size_t take = len < sizeof app.hsbuf - app.hslen ? len : sizeof app.hsbuf - app.hslen;
  memcpy(app.hsbuf + app.hslen, data, take);
  app.hslen += take;
  *used = take;
  if (app.hslen < 3) return 0;
  size_t flen = app.hsbuf[0] | app.hsbuf[1] << 8 | (size_t)app.hsbuf[2] << 16;
  if (flen > sizeof app.hsbuf - 3) return HSP_CRYPTO_EMSGSIZE;
  if (app.hslen < 3 + flen) return 0;
  /* bytes past the frame belong to the stream: give them back */
  *used = take - (app.hslen - 3 - flen);
  uint8_t pay[4096];
  size_t plen;
  int rc = hsp_noise_read_message(&app.noise, app.hsbuf + 3, flen, pay, sizeof pay, &plen);
  app.hslen = 0;
  if (rc) return rc;
  print_hex("payload", pay, plen);
  if (!app.initiator) {
    uint8_t frame[3 + 2048];
    size_t mlen;
    rc = hsp_noise_write_message(&app.noise, app.payload, app.payload_len, frame + 3,
                                 sizeof frame - 3, &mlen);
    if (rc) return rc;
    frame[0] = (uint8_t)mlen;
    frame[1] = (uint8_t)(mlen >> 8);
    frame[2] = 0;
    if (raw_write(NULL, frame, 3 + mlen) < 0) return HSP_CRYPTO_ECALLBACK;
  }
  hsp_noise_result_t res;
  rc = hsp_noise_get_result(&app.noise, &res);
  hsp_noise_wipe(&app.noise);
  if (rc == 0) rc = start_stream(&res);
  hsp_noise_wipe_result(&res);
  return rc;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  *buf = uv_buf_init((char *)read_buf, READ_BUF);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  (void)s;
  if (app.closing) return;
  if (nread == UV_EOF) {
    int rc = app.ss_started ? hsp_ss_recv_end(&app.ss) : HSP_CRYPTO_ETRUNCATED;
    if (rc) return fail_with("remote end", rc);
    app.remote_ended = true;
    if (app.local_shut) finish();
    return;
  }
  if (nread < 0) return fail_with("read", (int)nread);
  uint8_t *data = (uint8_t *)buf->base;
  size_t len = (size_t)nread;
  while (len && !app.ss_started) {
    size_t used;
    int rc = ik_consume(data, len, &used);
    if (rc) return fail_with("handshake", rc);
    data += used;
    len -= used;
  }
  if (len) {
    int rc = hsp_ss_recv(&app.ss, data, len, uv_now(app.loop));
    if (rc) return fail_with("stream", rc);
  }
}

static void on_tick(uv_timer_t *t) {
  (void)t;
  if (app.ss_started && !app.closing) {
    int rc = hsp_ss_tick(&app.ss, uv_now(app.loop));
    if (rc) fail_with("tick", rc);
  }
}

static void begin(void) {
  app.connected = true;
  uv_tcp_nodelay(&app.conn, 1);
  uv_read_start((uv_stream_t *)&app.conn, alloc_cb, read_cb);
  uv_timer_start(&app.timer, on_tick, 1000, 1000);
  int rc = 0;
  if (!app.ik) {
    rc = start_stream(NULL);
  } else {
    rc = hsp_noise_init_hyperdht(&app.noise, &app.kp, app.initiator ? app.remote : NULL);
    if (rc == 0 && app.initiator) {
      uint8_t frame[3 + 2048];
      size_t mlen;
      rc = hsp_noise_write_message(&app.noise, app.payload, app.payload_len, frame + 3,
                                   sizeof frame - 3, &mlen);
      if (rc == 0) {
        frame[0] = (uint8_t)mlen;
        frame[1] = (uint8_t)(mlen >> 8);
        frame[2] = 0;
        raw_write(NULL, frame, 3 + mlen);
      }
    }
  }
  if (rc) fail_with("start", rc);
}

static void on_connect(uv_connect_t *req, int status) {
  (void)req;
  if (status < 0) return fail_with("connect", status);
  begin();
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) return fail_with("accept", status);
  if (app.connected) return; /* one connection per run */
  uv_tcp_init(app.loop, &app.conn);
  if (uv_accept(server, (uv_stream_t *)&app.conn) != 0) return fail_with("accept", -1);
  uv_close((uv_handle_t *)&app.server, on_close);
  app.listening = false;
  begin();
}

static int usage(void) {
  fprintf(stderr, "usage: see the comment at the top of ss_peer.c\n");
  return 2;
}

int main(int argc, char **argv) {
  if (hsp_crypto_init() != 0) return 1;
  int listen_port = -1, connect_port = -1;
  uint8_t seed[32];
  bool has_seed = false;
  app.chunk = 65536;
  app.checksum = true;
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *k = argv[i], *v = argv[i + 1];
    if (!strcmp(k, "--listen")) listen_port = atoi(v);
    else if (!strcmp(k, "--connect")) connect_port = atoi(v);
    else if (!strcmp(k, "--mode")) app.ik = !strcmp(v, "ik");
    else if (!strcmp(k, "--seed")) has_seed = hsp_hex_decode(seed, 32, v) == 0;
    else if (!strcmp(k, "--remote")) {
      if (hsp_hex_decode(app.remote, 32, v) != 0) return usage();
      app.has_remote = true;
    } else if (!strcmp(k, "--payload")) {
      app.payload_len = strlen(v) / 2;
      if (app.payload_len > sizeof app.payload || hsp_hex_decode(app.payload, app.payload_len, v))
        return usage();
    } else if (!strcmp(k, "--send")) app.to_send = strtoull(v, NULL, 10);
    else if (!strcmp(k, "--chunk")) app.chunk = strtoull(v, NULL, 10);
    else if (!strcmp(k, "--expect")) app.expect = strtoull(v, NULL, 10);
    else if (!strcmp(k, "--tamper")) app.tamper_at = strtoull(v, NULL, 10);
    else if (!strcmp(k, "--checksum")) app.checksum = strcmp(v, "0") != 0;
    else return usage();
  }
  if ((listen_port < 0) == (connect_port < 0) || !app.chunk || app.chunk > HSP_SS_MAX_MESSAGE)
    return usage();
  if (has_seed) hsp_crypto_keypair_from_seed(&app.kp, seed);
  else hsp_crypto_keypair_random(&app.kp);
  app.initiator = connect_port >= 0;
  if (app.ik && app.initiator && !app.has_remote) return usage();
  pattern_init();
  crypto_generichash_init(&app.tx_hash, NULL, 0, 64);
  crypto_generichash_init(&app.rx_hash, NULL, 0, 64);

  app.loop = uv_default_loop();
  uv_timer_init(app.loop, &app.timer);
  struct sockaddr_in addr;
  if (!app.initiator) {
    uv_ip4_addr("127.0.0.1", listen_port, &addr);
    uv_tcp_init(app.loop, &app.server);
    app.listening = true;
    int rc = uv_tcp_bind(&app.server, (const struct sockaddr *)&addr, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&app.server, 1, on_connection);
    if (rc) {
      fail_with("listen", rc);
    } else {
      int alen = sizeof addr;
      uv_tcp_getsockname(&app.server, (struct sockaddr *)&addr, &alen);
      printf("port %d\n", ntohs(addr.sin_port));
      fflush(stdout);
    }
  } else {
    static uv_connect_t creq;
    uv_ip4_addr("127.0.0.1", connect_port, &addr);
    uv_tcp_init(app.loop, &app.conn);
    int rc = uv_tcp_connect(&creq, &app.conn, (const struct sockaddr *)&addr, on_connect);
    if (rc) fail_with("connect", rc);
  }
  uv_run(app.loop, UV_RUN_DEFAULT);

  uint8_t h[64];
  crypto_generichash_final(&app.tx_hash, h, 64);
  printf("tx_bytes %llu\n", (unsigned long long)app.sent);
  print_hex("tx_hash", h, 64);
  crypto_generichash_final(&app.rx_hash, h, 64);
  printf("rx_bytes %llu\n", (unsigned long long)app.received);
  print_hex("rx_hash", h, 64);
  if (app.received && app.rx_end_ns > app.rx_start_ns)
    printf("rx_mbps %.1f\n", app.received / 1e6 / ((app.rx_end_ns - app.rx_start_ns) / 1e9));
  if (app.ss_started) hsp_ss_destroy(&app.ss);
  hsp_noise_wipe(&app.noise);
  hsp_crypto_keypair_wipe(&app.kp);
  uv_loop_close(app.loop);
  pool_drain();
  free(pattern);
  if (!app.failed && app.received != app.expect) {
    printf("error received %llu bytes, expected %llu\n", (unsigned long long)app.received,
           (unsigned long long)app.expect);
    return 1;
  }
  return app.failed ? 1 : 0;
}
