/* secret-stream state machine over in-memory pipes with a simulated clock: both modes,
 * fragmentation, big messages, keepalive, timeout, end/destroy, tampering (every bit of the
 * header and data frames), replay, reordering, truncation, wrong keys, size caps, datagrams. */
#include "check.h"
#include "crypto.h"
#include "noise.h"
#include "secretstream.h"

#include <stdlib.h>
#include <string.h>

typedef struct bytes {
  uint8_t *data;
  size_t len;
} bytes_t;

static void bytes_append(bytes_t *b, const uint8_t *data, size_t len) {
  b->data = realloc(b->data, b->len + len + 1);
  memcpy(b->data + b->len, data, len);
  b->len += len;
}

/* One endpoint: its stream, what it wrote (not yet delivered) and what it received. */
typedef struct peer {
  hsp_ss_t ss;
  bytes_t out;
  bytes_t msgs;     /* concatenation of received messages */
  size_t msg_count;
  size_t empty_count;
  int opened;
  int fail_writes;
  int destroy_on_message;
} peer_t;

static int on_write(void *user, const uint8_t *data, size_t len) {
  peer_t *p = user;
  if (p->fail_writes) return -1;
  bytes_append(&p->out, data, len);
  return 0;
}

static int on_message(void *user, uint8_t *msg, size_t len) {
  peer_t *p = user;
  p->msg_count++;
  if (len == 0) p->empty_count++;
  bytes_append(&p->msgs, msg, len);
  if (p->destroy_on_message) hsp_ss_destroy(&p->ss);
  return 0;
}

static int on_open(void *user, hsp_ss_t *ss) {
  peer_t *p = user;
  (void)ss;
  p->opened++;
  return 0;
}

static void peer_free(peer_t *p) {
  hsp_ss_destroy(&p->ss);
  free(p->out.data);
  free(p->msgs.data);
  memset(p, 0, sizeof *p);
}

static hsp_noise_result_t fixed_handshake(bool initiator) {
  hsp_noise_result_t r;
  memset(&r, 0, sizeof r);
  r.is_initiator = initiator;
  for (int i = 0; i < 32; i++) {
    (initiator ? r.tx : r.rx)[i] = (uint8_t)(i + 1);
    (initiator ? r.rx : r.tx)[i] = (uint8_t)(0x80 + i);
  }
  for (int i = 0; i < 64; i++) r.hash[i] = (uint8_t)(7 * i);
  return r;
}

static hsp_ss_config_t base_config(peer_t *p, bool initiator) {
  hsp_ss_config_t cfg = {.is_initiator = initiator, .write = on_write, .on_message = on_message,
                         .on_open = on_open, .user = p};
  return cfg;
}

static void init_hs_pair(peer_t *a, peer_t *b, uint32_t keepalive) {
  memset(a, 0, sizeof *a);
  memset(b, 0, sizeof *b);
  hsp_noise_result_t ha = fixed_handshake(true), hb = fixed_handshake(false);
  hsp_ss_config_t ca = base_config(a, true), cb = base_config(b, false);
  ca.handshake = &ha;
  cb.handshake = &hb;
  ca.keepalive_ms = cb.keepalive_ms = keepalive;
  CHECK_EQ_INT(hsp_ss_init(&a->ss, &ca), 0);
  CHECK_EQ_INT(hsp_ss_init(&b->ss, &cb), 0);
  CHECK_EQ_INT(hsp_ss_start(&a->ss, 0), 0);
  CHECK_EQ_INT(hsp_ss_start(&b->ss, 0), 0);
}

/* Moves everything `from` wrote into `to`, in chunks of `chunk` bytes (0 = all at once). */
static int deliver(peer_t *from, peer_t *to, size_t chunk, uint64_t now) {
  int rc = 0;
  size_t off = 0;
  bytes_t pending = from->out;
  from->out = (bytes_t){0};
  while (off < pending.len && rc == 0) {
    size_t n = chunk && pending.len - off > chunk ? chunk : pending.len - off;
    rc = hsp_ss_recv(&to->ss, pending.data + off, n, now);
    off += n;
  }
  free(pending.data);
  return rc;
}

static void fill(uint8_t *p, size_t len, uint32_t seed) {
  for (size_t i = 0; i < len; i++) {
    seed = seed * 1103515245u + 12345u;
    p[i] = (uint8_t)(seed >> 16);
  }
}

static void test_handshake_mode(void) {
  peer_t a, b;
  init_hs_pair(&a, &b, 0);
  CHECK_EQ_INT(a.opened, 1);
  CHECK_EQ_INT(a.out.len, 3 + 56);
  CHECK(hsp_ss_is_open(&a.ss));
  /* header frame: 38 00 00 ‖ own stream id */
  uint8_t id[32];
  hsp_noise_result_t ha = fixed_handshake(true);
  hsp_crypto_stream_id(id, ha.hash, true);
  CHECK(a.out.data[0] == 56 && a.out.data[1] == 0 && a.out.data[2] == 0);
  CHECK(memcmp(a.out.data + 3, id, 32) == 0);

  size_t sizes[] = {1, 0, 5, 65536, 1 << 20, 17};
  size_t total = 0;
  uint8_t *buf = malloc(1 << 20);
  for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
    fill(buf, sizes[k], (uint32_t)k);
    CHECK_EQ_INT(hsp_ss_write(&a.ss, buf, sizes[k], 1), 0);
    total += sizes[k];
  }
  /* odd chunk sizes split frames and length prefixes everywhere */
  CHECK_EQ_INT(deliver(&a, &b, 7, 1), 0);
  CHECK_EQ_INT(b.msg_count, 6);
  CHECK_EQ_INT(b.empty_count, 1); /* no keepalive configured: empty messages are delivered */
  CHECK_EQ_INT(b.msgs.len, total);
  size_t off = 0;
  for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
    fill(buf, sizes[k], (uint32_t)k);
    CHECK(memcmp(b.msgs.data + off, buf, sizes[k]) == 0);
    off += sizes[k];
  }
  /* the reverse direction, with a one-byte-at-a-time transport */
  CHECK_EQ_INT(hsp_ss_write(&b.ss, (const uint8_t *)"hi back", 7, 2), 0);
  CHECK_EQ_INT(deliver(&b, &a, 1, 2), 0);
  CHECK_EQ_INT(a.msg_count, 1);
  CHECK(a.msgs.len == 7 && memcmp(a.msgs.data, "hi back", 7) == 0);
  free(buf);
  peer_free(&a);
  peer_free(&b);
}

static void test_xx_mode(size_t chunk) {
  peer_t a = {0}, b = {0};
  uint8_t s1[32] = {1}, s2[32] = {2};
  hsp_crypto_keypair_t ka, kb;
  hsp_crypto_keypair_from_seed(&ka, s1);
  hsp_crypto_keypair_from_seed(&kb, s2);
  hsp_ss_config_t ca = base_config(&a, true), cb = base_config(&b, false);
  ca.keypair = &ka;
  ca.remote_public_key = kb.public_key;
  cb.keypair = &kb;
  CHECK_EQ_INT(hsp_ss_init(&a.ss, &ca), 0);
  CHECK_EQ_INT(hsp_ss_init(&b.ss, &cb), 0);
  CHECK_EQ_INT(hsp_ss_start(&a.ss, 0), 0);
  CHECK_EQ_INT(hsp_ss_start(&b.ss, 0), 0);
  CHECK_EQ_INT(a.out.len, 3 + 32);
  CHECK_EQ_INT(hsp_ss_write(&a.ss, (const uint8_t *)"x", 1, 0), HSP_CRYPTO_ESTATE);
  CHECK_EQ_INT(deliver(&a, &b, chunk, 0), 0);
  CHECK_EQ_INT(b.out.len, 3 + 96);
  CHECK_EQ_INT(deliver(&b, &a, chunk, 0), 0);
  CHECK_EQ_INT(a.opened, 1); /* msg3 and header written */
  CHECK_EQ_INT(a.out.len, 3 + 64 + 3 + 56);
  CHECK_EQ_INT(hsp_ss_write(&a.ss, (const uint8_t *)"hello", 5, 0), 0);
  CHECK_EQ_INT(deliver(&a, &b, chunk, 0), 0);
  CHECK_EQ_INT(b.opened, 1);
  CHECK_EQ_INT(b.msg_count, 1);
  CHECK(b.msgs.len == 5 && memcmp(b.msgs.data, "hello", 5) == 0);
  CHECK_EQ_INT(b.out.len, 3 + 56);
  CHECK_EQ_INT(hsp_ss_write(&b.ss, (const uint8_t *)"back", 4, 0), 0);
  CHECK_EQ_INT(deliver(&b, &a, chunk, 0), 0);
  CHECK(a.msgs.len == 4 && memcmp(a.msgs.data, "back", 4) == 0);
  CHECK(memcmp(hsp_ss_remote_public_key(&a.ss), kb.public_key, 32) == 0);
  CHECK(memcmp(hsp_ss_remote_public_key(&b.ss), ka.public_key, 32) == 0);
  CHECK(memcmp(hsp_ss_handshake_hash(&a.ss), hsp_ss_handshake_hash(&b.ss), 64) == 0);
  peer_free(&a);
  peer_free(&b);
}

static void test_xx_wrong_remote(void) {
  peer_t a = {0}, b = {0};
  uint8_t s1[32] = {1}, s2[32] = {2}, s3[32] = {3};
  hsp_crypto_keypair_t ka, kb, kc;
  hsp_crypto_keypair_from_seed(&ka, s1);
  hsp_crypto_keypair_from_seed(&kb, s2);
  hsp_crypto_keypair_from_seed(&kc, s3);
  hsp_ss_config_t ca = base_config(&a, true), cb = base_config(&b, false);
  ca.keypair = &ka;
  ca.remote_public_key = kc.public_key; /* expects someone else */
  cb.keypair = &kb;
  CHECK_EQ_INT(hsp_ss_init(&a.ss, &ca), 0);
  CHECK_EQ_INT(hsp_ss_init(&b.ss, &cb), 0);
  CHECK_EQ_INT(hsp_ss_start(&a.ss, 0), 0);
  CHECK_EQ_INT(hsp_ss_start(&b.ss, 0), 0);
  CHECK_EQ_INT(deliver(&a, &b, 0, 0), 0);
  CHECK_EQ_INT(deliver(&b, &a, 0, 0), HSP_CRYPTO_EREMOTEKEY);
  CHECK_EQ_INT(a.opened, 0);
  CHECK_EQ_INT(a.out.len, 0); /* nothing more was sent */
  CHECK_EQ_INT(hsp_ss_error(&a.ss), HSP_CRYPTO_EREMOTEKEY);
  CHECK_EQ_INT(hsp_ss_write(&a.ss, (const uint8_t *)"x", 1, 0), HSP_CRYPTO_EDESTROYED);
  peer_free(&a);
  peer_free(&b);
}

/* Records header + data frames from a fresh sender. */
static bytes_t sample_stream(void) {
  peer_t a, b;
  init_hs_pair(&a, &b, 0);
  hsp_ss_write(&a.ss, (const uint8_t *)"hello", 5, 0);
  hsp_ss_write(&a.ss, NULL, 0, 0);
  hsp_ss_write(&a.ss, (const uint8_t *)"world!", 6, 0);
  bytes_t out = a.out;
  a.out = (bytes_t){0};
  peer_free(&a);
  peer_free(&b);
  return out;
}

static const char *const SAMPLE_MSGS = "helloworld!";

static void fresh_receiver(peer_t *b) {
  memset(b, 0, sizeof *b);
  hsp_noise_result_t hb = fixed_handshake(false);
  hsp_ss_config_t cb = base_config(b, false);
  cb.handshake = &hb;
  CHECK_EQ_INT(hsp_ss_init(&b->ss, &cb), 0);
  CHECK_EQ_INT(hsp_ss_start(&b->ss, 0), 0);
}

static void test_tamper_every_bit(void) {
  bytes_t ref = sample_stream();
  CHECK_EQ_INT(ref.len, 59 + 25 + 20 + 26);
  int undetected = 0, forged = 0;
  uint8_t *copy = malloc(ref.len);
  for (size_t bit = 0; bit < ref.len * 8; bit++) {
    peer_t b;
    fresh_receiver(&b);
    memcpy(copy, ref.data, ref.len);
    copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    int rc = hsp_ss_recv(&b.ss, copy, ref.len, 0);
    if (rc == 0) rc = hsp_ss_recv_end(&b.ss);
    if (rc == 0) undetected++;
    /* whatever was delivered before the failure is a genuine prefix */
    if (b.msgs.len > 11 || (b.msgs.len && memcmp(b.msgs.data, SAMPLE_MSGS, b.msgs.len) != 0))
      forged++;
    CHECK(!hsp_ss_is_open(&b.ss));
    peer_free(&b);
  }
  CHECK_EQ_INT(undetected, 0);
  CHECK_EQ_INT(forged, 0);
  free(copy);
  free(ref.data);
}

static void test_replay_reorder_truncate(void) {
  bytes_t ref = sample_stream();
  const size_t h = 59, f1 = 25, f2 = 20, f3 = 26;
  uint8_t buf[512];
  peer_t b;

  /* replay: header, frame 1, frame 1 again */
  fresh_receiver(&b);
  memcpy(buf, ref.data, h + f1);
  memcpy(buf + h + f1, ref.data + h, f1);
  CHECK_EQ_INT(hsp_ss_recv(&b.ss, buf, h + 2 * f1, 0), HSP_CRYPTO_EDECRYPT);
  CHECK_EQ_INT(b.msg_count, 1);
  peer_free(&b);

  /* reorder: header, frame 2, frame 1 */
  fresh_receiver(&b);
  memcpy(buf, ref.data, h);
  memcpy(buf + h, ref.data + h + f1, f2);
  memcpy(buf + h + f2, ref.data + h, f1);
  CHECK_EQ_INT(hsp_ss_recv(&b.ss, buf, h + f1 + f2, 0), HSP_CRYPTO_EDECRYPT);
  CHECK_EQ_INT(b.msg_count, 0);
  peer_free(&b);

  /* drop: header, frame 3 */
  fresh_receiver(&b);
  memcpy(buf, ref.data, h);
  memcpy(buf + h, ref.data + h + f1 + f2, f3);
  CHECK_EQ_INT(hsp_ss_recv(&b.ss, buf, h + f3, 0), HSP_CRYPTO_EDECRYPT);
  peer_free(&b);

  /* replayed header */
  fresh_receiver(&b);
  memcpy(buf, ref.data, h);
  memcpy(buf + h, ref.data, h);
  CHECK_EQ_INT(hsp_ss_recv(&b.ss, buf, 2 * h, 0), HSP_CRYPTO_EDECRYPT);
  peer_free(&b);

  /* the stream ends at every possible byte: each cut is detected as truncation unless it
   * falls on a frame boundary after the header */
  for (size_t cut = 0; cut < ref.len; cut++) {
    fresh_receiver(&b);
    memcpy(buf, ref.data, ref.len);
    int rc = hsp_ss_recv(&b.ss, buf, cut, 0);
    if (rc == 0) rc = hsp_ss_recv_end(&b.ss);
    bool boundary = cut == h || cut == h + f1 || cut == h + f1 + f2;
    if (boundary) CHECK_EQ_INT(rc, 0);
    else CHECK_EQ_INT(rc, HSP_CRYPTO_ETRUNCATED);
    peer_free(&b);
  }

  /* a data frame shorter than the 17 bytes of overhead */
  fresh_receiver(&b);
  memcpy(buf, ref.data, h);
  memcpy(buf + h, "\x10\x00\x00", 3);
  memset(buf + h + 3, 0, 16);
  CHECK_EQ_INT(hsp_ss_recv(&b.ss, buf, h + 19, 0), HSP_CRYPTO_EMSGSIZE);
  peer_free(&b);

  /* a header of the wrong length, and our own header reflected back at us */
  fresh_receiver(&b);
  memcpy(buf, "\x37\x00\x00", 3);
  memcpy(buf + 3, ref.data + 3, 55);
  CHECK_EQ_INT(hsp_ss_recv(&b.ss, buf, 58, 0), HSP_CRYPTO_EHEADER);
  peer_free(&b);
  peer_t a, c;
  init_hs_pair(&a, &c, 0);
  memcpy(buf, a.out.data, a.out.len);
  CHECK_EQ_INT(hsp_ss_recv(&a.ss, buf, a.out.len, 0), HSP_CRYPTO_EHEADER);
  CHECK(a.ss.error == HSP_CRYPTO_EHEADER);
  /* keys are gone after a failure */
  hsp_noise_result_t zero;
  memset(&zero, 0, sizeof zero);
  CHECK(memcmp(&a.ss.keys, &zero, sizeof zero) == 0);
  peer_free(&a);
  peer_free(&c);
  free(ref.data);
}

static void test_wrong_keys(void) {
  bytes_t ref = sample_stream();
  peer_t b = {0};
  hsp_noise_result_t hb = fixed_handshake(false);
  hb.rx[0] ^= 1;
  hsp_ss_config_t cb = base_config(&b, false);
  cb.handshake = &hb;
  CHECK_EQ_INT(hsp_ss_init(&b.ss, &cb), 0);
  CHECK_EQ_INT(hsp_ss_start(&b.ss, 0), 0);
  CHECK_EQ_INT(hsp_ss_recv(&b.ss, ref.data, ref.len, 0), HSP_CRYPTO_EDECRYPT);
  CHECK_EQ_INT(b.msg_count, 0);
  peer_free(&b);

  /* another handshake hash: the stream id in the header no longer matches */
  ref = (free(ref.data), sample_stream());
  memset(&b, 0, sizeof b);
  hb = fixed_handshake(false);
  hb.hash[5] ^= 1;
  cb = base_config(&b, false);
  cb.handshake = &hb;
  CHECK_EQ_INT(hsp_ss_init(&b.ss, &cb), 0);
  CHECK_EQ_INT(hsp_ss_start(&b.ss, 0), 0);
  CHECK_EQ_INT(hsp_ss_recv(&b.ss, ref.data, ref.len, 0), HSP_CRYPTO_EHEADER);
  peer_free(&b);

  /* a role mismatch between config and handshake result is refused */
  hb = fixed_handshake(false);
  cb = base_config(&b, true);
  cb.handshake = &hb;
  CHECK_EQ_INT(hsp_ss_init(&b.ss, &cb), HSP_CRYPTO_EINVAL);
  free(ref.data);
}

static void test_keepalive_and_timeout(void) {
  peer_t a, b;
  init_hs_pair(&a, &b, 5000);
  CHECK_EQ_INT(deliver(&a, &b, 0, 0), 0);
  CHECK_EQ_INT(hsp_ss_next_deadline(&a.ss), 5000);
  CHECK_EQ_INT(hsp_ss_tick(&a.ss, 4999), 0);
  CHECK_EQ_INT(a.out.len, 0);
  CHECK_EQ_INT(hsp_ss_tick(&a.ss, 5000), 0);
  CHECK_EQ_INT(a.out.len, 20); /* 11 00 00 + 17 bytes */
  CHECK(a.out.data[0] == 0x11 && a.out.data[1] == 0 && a.out.data[2] == 0);
  CHECK_EQ_INT(hsp_ss_next_deadline(&a.ss), 10000);
  CHECK_EQ_INT(deliver(&a, &b, 0, 5000), 0);
  CHECK_EQ_INT(b.msg_count, 0); /* keepalives are eaten by a receiver with keepalive on */
  CHECK_EQ_INT(hsp_ss_write(&a.ss, (const uint8_t *)"x", 1, 6000), 0);
  CHECK_EQ_INT(hsp_ss_next_deadline(&a.ss), 11000); /* writes refresh the timer */
  CHECK_EQ_INT(hsp_ss_end(&a.ss), 0);
  CHECK_EQ_INT(hsp_ss_next_deadline(&a.ss), UINT64_MAX);
  a.out.len = 0;
  CHECK_EQ_INT(hsp_ss_tick(&a.ss, 20000), 0);
  CHECK_EQ_INT(a.out.len, 0); /* no keepalive after end */
  CHECK_EQ_INT(hsp_ss_write(&a.ss, (const uint8_t *)"x", 1, 20000), HSP_CRYPTO_EENDED);
  peer_free(&a);
  peer_free(&b);

  /* timeout: destroyed when nothing arrives for timeout_ms; every receive refreshes it */
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  hsp_noise_result_t ha = fixed_handshake(true), hb = fixed_handshake(false);
  hsp_ss_config_t ca = base_config(&a, true), cb = base_config(&b, false);
  ca.handshake = &ha;
  cb.handshake = &hb;
  cb.timeout_ms = 1000;
  CHECK_EQ_INT(hsp_ss_init(&a.ss, &ca), 0);
  CHECK_EQ_INT(hsp_ss_init(&b.ss, &cb), 0);
  CHECK_EQ_INT(hsp_ss_start(&a.ss, 0), 0);
  CHECK_EQ_INT(hsp_ss_start(&b.ss, 0), 0);
  CHECK_EQ_INT(hsp_ss_next_deadline(&b.ss), 1000);
  CHECK_EQ_INT(deliver(&a, &b, 0, 500), 0);
  CHECK_EQ_INT(hsp_ss_next_deadline(&b.ss), 1500);
  CHECK_EQ_INT(hsp_ss_tick(&b.ss, 1499), 0);
  CHECK(hsp_ss_is_open(&b.ss));
  CHECK_EQ_INT(hsp_ss_tick(&b.ss, 1500), HSP_CRYPTO_ETIMEDOUT);
  CHECK(!hsp_ss_is_open(&b.ss));
  CHECK_EQ_INT(hsp_ss_error(&b.ss), HSP_CRYPTO_ETIMEDOUT);
  CHECK_EQ_INT(hsp_ss_tick(&b.ss, 1600), HSP_CRYPTO_EDESTROYED);
  peer_free(&a);
  peer_free(&b);
}

static void test_end_and_destroy(void) {
  peer_t a, b;
  init_hs_pair(&a, &b, 0);
  CHECK_EQ_INT(hsp_ss_write(&a.ss, (const uint8_t *)"last", 4, 0), 0);
  CHECK_EQ_INT(hsp_ss_end(&a.ss), 0);
  CHECK_EQ_INT(deliver(&a, &b, 0, 0), 0);
  CHECK_EQ_INT(hsp_ss_recv_end(&b.ss), 0);
  CHECK(!hsp_ss_is_finished(&b.ss));
  CHECK_EQ_INT(hsp_ss_write(&b.ss, (const uint8_t *)"still", 5, 0), 0); /* half-open */
  CHECK_EQ_INT(hsp_ss_end(&b.ss), 0);
  CHECK(hsp_ss_is_finished(&b.ss));
  uint8_t more[3] = {1, 2, 3};
  CHECK(hsp_ss_recv(&b.ss, more, 3, 0) != 0); /* nothing after the end */
  peer_free(&a);
  peer_free(&b);

  /* ending before the peer's header arrived is truncation */
  init_hs_pair(&a, &b, 0);
  CHECK_EQ_INT(hsp_ss_recv_end(&b.ss), HSP_CRYPTO_ETRUNCATED);
  peer_free(&a);
  peer_free(&b);

  /* destroy from inside the message callback stops delivery at once */
  init_hs_pair(&a, &b, 0);
  b.destroy_on_message = 1;
  hsp_ss_write(&a.ss, (const uint8_t *)"one", 3, 0);
  hsp_ss_write(&a.ss, (const uint8_t *)"two", 3, 0);
  CHECK_EQ_INT(deliver(&a, &b, 0, 0), HSP_CRYPTO_EDESTROYED);
  CHECK_EQ_INT(b.msg_count, 1);
  peer_free(&a);
  peer_free(&b);

  /* a failing transport destroys the stream */
  init_hs_pair(&a, &b, 0);
  a.fail_writes = 1;
  CHECK_EQ_INT(hsp_ss_write(&a.ss, (const uint8_t *)"x", 1, 0), HSP_CRYPTO_ECALLBACK);
  CHECK_EQ_INT(hsp_ss_write(&a.ss, (const uint8_t *)"x", 1, 0), HSP_CRYPTO_EDESTROYED);
  peer_free(&a);
  peer_free(&b);
  hsp_ss_destroy(&a.ss); /* idempotent on a destroyed (zeroed) stream */
}

static void test_sizes(void) {
  peer_t a, b;
  init_hs_pair(&a, &b, 0);
  CHECK_EQ_INT(hsp_ss_write(&a.ss, NULL, HSP_SS_MAX_MESSAGE + 1, 0), HSP_CRYPTO_EMSGSIZE);
  CHECK(hsp_ss_is_open(&a.ss)); /* a refused write is not fatal */
  uint8_t *big = malloc(HSP_SS_MAX_MESSAGE);
  fill(big, HSP_SS_MAX_MESSAGE, 99);
  CHECK_EQ_INT(hsp_ss_write(&a.ss, big, HSP_SS_MAX_MESSAGE, 0), 0);
  CHECK_EQ_INT(a.out.len, 59 + 3 + 0xffffff);
  CHECK(a.out.data[59] == 0xff && a.out.data[60] == 0xff && a.out.data[61] == 0xff);
  CHECK_EQ_INT(deliver(&a, &b, 1 << 20, 0), 0);
  CHECK_EQ_INT(b.msg_count, 1);
  CHECK(b.msgs.len == HSP_SS_MAX_MESSAGE && memcmp(b.msgs.data, big, HSP_SS_MAX_MESSAGE) == 0);
  free(big);
  peer_free(&a);
  peer_free(&b);

  /* a receiver cap refuses a big frame as soon as its length is known */
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  hsp_noise_result_t ha = fixed_handshake(true), hb = fixed_handshake(false);
  hsp_ss_config_t ca = base_config(&a, true), cb = base_config(&b, false);
  ca.handshake = &ha;
  cb.handshake = &hb;
  cb.max_frame = 1024;
  CHECK_EQ_INT(hsp_ss_init(&a.ss, &ca), 0);
  CHECK_EQ_INT(hsp_ss_init(&b.ss, &cb), 0);
  hsp_ss_start(&a.ss, 0);
  hsp_ss_start(&b.ss, 0);
  uint8_t msg[2000] = {0};
  CHECK_EQ_INT(hsp_ss_write(&a.ss, msg, 1000, 0), 0);
  CHECK_EQ_INT(deliver(&a, &b, 0, 0), 0);
  CHECK_EQ_INT(hsp_ss_write(&a.ss, msg, 2000, 0), 0);
  CHECK_EQ_INT(hsp_ss_recv(&b.ss, a.out.data, 3, 0), HSP_CRYPTO_EMSGSIZE);
  CHECK_EQ_INT(b.ss.body_cap < 2000, 1);
  peer_free(&a);
  peer_free(&b);

  /* before the header, nothing big is buffered either */
  fresh_receiver(&b);
  uint8_t huge[3] = {0xff, 0xff, 0xff};
  CHECK_EQ_INT(hsp_ss_recv(&b.ss, huge, 3, 0), HSP_CRYPTO_EMSGSIZE);
  peer_free(&b);
}

static void test_zero_copy_seal(void) {
  peer_t a, b;
  init_hs_pair(&a, &b, 0);
  CHECK_EQ_INT(deliver(&a, &b, 0, 0), 0);
  uint8_t frame[100 + HSP_SS_FRAME_OVERHEAD];
  fill(frame + HSP_SS_PLAINTEXT_OFFSET, 100, 5);
  uint8_t want[100];
  memcpy(want, frame + HSP_SS_PLAINTEXT_OFFSET, 100);
  CHECK_EQ_INT(hsp_ss_seal(&a.ss, frame, 100, 0), 0);
  CHECK_EQ_INT(hsp_ss_recv(&b.ss, frame, sizeof frame, 0), 0);
  CHECK(b.msgs.len == 100 && memcmp(b.msgs.data, want, 100) == 0);
  peer_free(&a);
  peer_free(&b);
}

static void test_datagrams(void) {
  peer_t a, b;
  init_hs_pair(&a, &b, 0);
  uint8_t d[64], plain[64];
  size_t dlen, plen;
  CHECK_EQ_INT(hsp_ss_seal_datagram(&a.ss, d, sizeof d, &dlen, (const uint8_t *)"ping", 4), 0);
  CHECK_EQ_INT(dlen, 4 + HSP_SS_DGRAM_OVERHEAD);
  CHECK_EQ_INT(hsp_ss_open_datagram(&b.ss, plain, sizeof plain, &plen, d, dlen), 0);
  CHECK(plen == 4 && memcmp(plain, "ping", 4) == 0);
  /* no replay window in the reference: the same datagram opens again */
  CHECK_EQ_INT(hsp_ss_open_datagram(&b.ss, plain, sizeof plain, &plen, d, dlen), 0);
  /* the sender cannot open its own datagrams (direction keys differ) */
  CHECK_EQ_INT(hsp_ss_open_datagram(&a.ss, plain, sizeof plain, &plen, d, dlen),
               HSP_CRYPTO_EDECRYPT);
  for (size_t bit = 0; bit < dlen * 8; bit++) {
    uint8_t t[64];
    memcpy(t, d, dlen);
    t[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    CHECK_EQ_INT(hsp_ss_open_datagram(&b.ss, plain, sizeof plain, &plen, t, dlen),
                 HSP_CRYPTO_EDECRYPT);
  }
  CHECK_EQ_INT(hsp_ss_open_datagram(&b.ss, plain, sizeof plain, &plen, d, 23), HSP_CRYPTO_EMSGSIZE);
  CHECK(hsp_ss_is_open(&b.ss)); /* forged datagrams are dropped, not fatal */
  /* counters: consecutive, little-endian; wrapping back to the start is refused */
  uint8_t d2[64];
  size_t d2len;
  CHECK_EQ_INT(hsp_ss_seal_datagram(&a.ss, d2, sizeof d2, &d2len, NULL, 0), 0);
  uint64_t c1 = 0, c2 = 0;
  for (int i = 7; i >= 0; i--) {
    c1 = c1 << 8 | d[i];
    c2 = c2 << 8 | d2[i];
  }
  CHECK(c2 == c1 + 1);
  memcpy(a.ss.dgram.counter, a.ss.dgram.initial, 8);
  for (int i = 0; i < 8; i++)
    if (a.ss.dgram.counter[i]-- != 0) break; /* counter = initial - 1 */
  CHECK_EQ_INT(hsp_ss_seal_datagram(&a.ss, d2, sizeof d2, &d2len, NULL, 0), HSP_CRYPTO_ENONCE);
  CHECK(!hsp_ss_is_open(&a.ss));
  peer_free(&a);
  peer_free(&b);
}

static void test_recv_const(void) {
  peer_t a, b;
  init_hs_pair(&a, &b, 0);
  CHECK_EQ_INT(hsp_ss_write(&a.ss, (const uint8_t *)"constant", 8, 0), 0);
  uint8_t *copy = malloc(a.out.len);
  memcpy(copy, a.out.data, a.out.len);
  CHECK_EQ_INT(hsp_ss_recv_const(&b.ss, a.out.data, a.out.len, 0), 0);
  CHECK(memcmp(copy, a.out.data, a.out.len) == 0); /* input untouched */
  CHECK(b.msgs.len == 8 && memcmp(b.msgs.data, "constant", 8) == 0);
  /* an empty frame (found by the fuzzer: the copying path once offset a NULL buffer) */
  static const uint8_t empty[3] = {0, 0, 0};
  CHECK_EQ_INT(hsp_ss_recv_const(&b.ss, empty, 3, 0), HSP_CRYPTO_EMSGSIZE);
  peer_t c;
  fresh_receiver(&c);
  CHECK_EQ_INT(hsp_ss_recv_const(&c.ss, empty, 3, 0), HSP_CRYPTO_EHEADER);
  peer_free(&c);
  free(copy);
  peer_free(&a);
  peer_free(&b);
}

static void test_bad_config(void) {
  hsp_ss_t ss;
  hsp_ss_config_t cfg = {0};
  CHECK_EQ_INT(hsp_ss_init(&ss, &cfg), HSP_CRYPTO_EINVAL);
  CHECK_EQ_INT(hsp_ss_write(&ss, (const uint8_t *)"x", 1, 0), HSP_CRYPTO_EDESTROYED);
  uint8_t x = 0;
  CHECK_EQ_INT(hsp_ss_recv(&ss, &x, 1, 0), HSP_CRYPTO_EDESTROYED);
  hsp_ss_destroy(&ss);
}

int main(void) {
  if (hsp_crypto_init() != 0) return 1;
  test_handshake_mode();
  test_xx_mode(0);
  test_xx_mode(1);
  test_xx_mode(5);
  test_xx_wrong_remote();
  test_tamper_every_bit();
  test_replay_reorder_truncate();
  test_wrong_keys();
  test_keepalive_and_timeout();
  test_end_and_destroy();
  test_sizes();
  test_zero_copy_seal();
  test_datagrams();
  test_recv_const();
  test_bad_config();
  return check_summary("secretstream");
}
