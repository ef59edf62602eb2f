/* Noise IK/XX state machines: C against C, every bit of every message tampered, truncation,
 * wrong and invalid keys, state errors, wiping. (Byte equality with the JS reference is
 * tests/interop/crypto_vectors.js.) */
#include "check.h"
#include "crypto.h"
#include "noise.h"

#include <stdlib.h>
#include <string.h>

static hsp_crypto_keypair_t kp_seed(uint8_t b) {
  uint8_t seed[32];
  memset(seed, b, sizeof seed);
  hsp_crypto_keypair_t kp;
  hsp_crypto_keypair_from_seed(&kp, seed);
  return kp;
}

static bool all_zero(const void *p, size_t len) {
  const uint8_t *b = p;
  for (size_t i = 0; i < len; i++)
    if (b[i]) return false;
  return true;
}

typedef struct msgbuf {
  uint8_t data[512];
  size_t len;
} msgbuf_t;

/* Sets up a pair with fixed keys (static seeds 1/2, ephemeral 3/4). */
static void pair(hsp_noise_t *i, hsp_noise_t *r, hsp_noise_pattern_t p) {
  hsp_crypto_keypair_t is = kp_seed(1), rs = kp_seed(2), ie = kp_seed(3), re = kp_seed(4);
  if (p == HSP_NOISE_IK) {
    CHECK_EQ_INT(hsp_noise_init_hyperdht(i, &is, rs.public_key), 0);
    CHECK_EQ_INT(hsp_noise_init_hyperdht(r, &rs, NULL), 0);
  } else {
    CHECK_EQ_INT(hsp_noise_init(i, p, true, &is, NULL, NULL, 0), 0);
    CHECK_EQ_INT(hsp_noise_init(r, p, false, &rs, NULL, NULL, 0), 0);
  }
  hsp_noise_set_ephemeral(i, &ie);
  hsp_noise_set_ephemeral(r, &re);
}

/* Runs the handshake; records each message; returns the first error. */
static int run(hsp_noise_t *i, hsp_noise_t *r, msgbuf_t msgs[3], int *count) {
  static const uint8_t payload[] = "payload";
  hsp_noise_t *side[2] = {i, r};
  uint8_t got[512];
  *count = 0;
  for (int k = 0; !hsp_noise_is_complete(i) || !hsp_noise_is_complete(r); k++) {
    hsp_noise_t *w = side[k % 2], *rd = side[1 - k % 2];
    size_t glen;
    int rc = hsp_noise_write_message(w, payload, sizeof payload, msgs[k].data,
                                     sizeof msgs[k].data, &msgs[k].len);
    if (rc) return rc;
    (*count)++;
    rc = hsp_noise_read_message(rd, msgs[k].data, msgs[k].len, got, sizeof got, &glen);
    if (rc) return rc;
    if (glen != sizeof payload || memcmp(got, payload, glen) != 0) return -1000;
  }
  return 0;
}

static void test_complete(hsp_noise_pattern_t p) {
  hsp_noise_t i, r;
  msgbuf_t m[3];
  int count;
  pair(&i, &r, p);
  CHECK_EQ_INT(run(&i, &r, m, &count), 0);
  CHECK_EQ_INT(count, p == HSP_NOISE_IK ? 2 : 3);
  hsp_noise_result_t ri, rr;
  CHECK_EQ_INT(hsp_noise_get_result(&i, &ri), 0);
  CHECK_EQ_INT(hsp_noise_get_result(&r, &rr), 0);
  CHECK(memcmp(ri.tx, rr.rx, 32) == 0);
  CHECK(memcmp(ri.rx, rr.tx, 32) == 0);
  CHECK(memcmp(ri.tx, ri.rx, 32) != 0);
  CHECK(memcmp(ri.hash, rr.hash, 64) == 0);
  hsp_crypto_keypair_t is = kp_seed(1), rs = kp_seed(2);
  CHECK(memcmp(ri.remote_public_key, rs.public_key, 32) == 0);
  CHECK(memcmp(rr.remote_public_key, is.public_key, 32) == 0);
  CHECK(memcmp(hsp_noise_remote_static(&r), is.public_key, 32) == 0);
  CHECK(ri.is_initiator && !rr.is_initiator);
  /* message sizes of the protocol notes (7-byte payload here) */
  if (p == HSP_NOISE_IK) {
    CHECK_EQ_INT(m[0].len, 96 + 8);
    CHECK_EQ_INT(m[1].len, 48 + 8);
  } else {
    CHECK_EQ_INT(m[0].len, 32 + 8);
    CHECK_EQ_INT(m[1].len, 96 + 8);
    CHECK_EQ_INT(m[2].len, 64 + 8);
  }
  /* nothing but the result survives */
  CHECK(all_zero(i.ck, sizeof i.ck) && all_zero(i.k, sizeof i.k) && all_zero(i.h, sizeof i.h));
  CHECK(all_zero(&i.e, sizeof i.e) && all_zero(&i.s, sizeof i.s));
  /* state errors after completion */
  uint8_t buf[256];
  size_t len;
  CHECK_EQ_INT(hsp_noise_write_message(&i, NULL, 0, buf, sizeof buf, &len), HSP_CRYPTO_ESTATE);
  CHECK_EQ_INT(hsp_noise_read_message(&i, m[0].data, m[0].len, buf, sizeof buf, &len),
               HSP_CRYPTO_ESTATE);
  hsp_noise_wipe(&i);
  hsp_noise_wipe(&r);
  CHECK(all_zero(&i.result, sizeof i.result));
}

/* Flips every bit of every message in turn: the handshake must never complete. */
static void test_tamper_every_bit(hsp_noise_pattern_t p) {
  msgbuf_t ref[3];
  int count;
  hsp_noise_t i, r;
  pair(&i, &r, p);
  CHECK_EQ_INT(run(&i, &r, ref, &count), 0);
  int undetected = 0, total = 0;
  for (int target = 0; target < count; target++) {
    for (size_t bit = 0; bit < ref[target].len * 8; bit++) {
      hsp_noise_t a, b;
      pair(&a, &b, p);
      hsp_noise_t *side[2] = {&a, &b};
      bool failed = false;
      for (int k = 0; k < count && !failed; k++) {
        msgbuf_t m;
        uint8_t got[512];
        size_t glen;
        if (hsp_noise_write_message(side[k % 2], (const uint8_t *)"payload", 8, m.data,
                                    sizeof m.data, &m.len) != 0) {
          failed = true;
          break;
        }
        if (k == target) m.data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        if (hsp_noise_read_message(side[1 - k % 2], m.data, m.len, got, sizeof got, &glen) != 0)
          failed = true;
      }
      total++;
      if (!failed) undetected++;
      hsp_noise_wipe(&a);
      hsp_noise_wipe(&b);
    }
  }
  CHECK(total > 0);
  CHECK_EQ_INT(undetected, 0);
}

static void test_truncated_and_extended(void) {
  msgbuf_t ref[3];
  int count;
  hsp_noise_t i, r;
  pair(&i, &r, HSP_NOISE_IK);
  CHECK_EQ_INT(run(&i, &r, ref, &count), 0);
  int accepted = 0;
  uint8_t got[512];
  size_t glen;
  for (size_t len = 0; len <= ref[0].len + 1; len++) {
    if (len == ref[0].len) continue;
    hsp_noise_t a, b;
    pair(&a, &b, HSP_NOISE_IK);
    uint8_t m[512] = {0};
    memcpy(m, ref[0].data, ref[0].len);
    if (hsp_noise_read_message(&b, m, len, got, sizeof got, &glen) == 0) accepted++;
    CHECK(b.failed);
    /* fail closed: a failed state stays failed, even for the genuine message */
    CHECK_EQ_INT(hsp_noise_read_message(&b, ref[0].data, ref[0].len, got, sizeof got, &glen),
                 HSP_CRYPTO_EHANDSHAKE);
    hsp_noise_wipe(&a);
    hsp_noise_wipe(&b);
  }
  CHECK_EQ_INT(accepted, 0);
  /* payload buffer too small is an error, not an overflow */
  hsp_noise_t a, b;
  pair(&a, &b, HSP_NOISE_IK);
  CHECK_EQ_INT(hsp_noise_read_message(&b, ref[0].data, ref[0].len, got, 3, &glen),
               HSP_CRYPTO_EBUFSIZE);
}

static void test_wrong_keys(void) {
  hsp_crypto_keypair_t is = kp_seed(1), rs = kp_seed(2), other = kp_seed(9);
  uint8_t msg[256], got[256];
  size_t len, glen;

  /* IK: the initiator dials a key the responder does not own. */
  hsp_noise_t i, r;
  CHECK_EQ_INT(hsp_noise_init_hyperdht(&i, &is, other.public_key), 0);
  CHECK_EQ_INT(hsp_noise_init_hyperdht(&r, &rs, NULL), 0);
  CHECK_EQ_INT(hsp_noise_write_message(&i, NULL, 0, msg, sizeof msg, &len), 0);
  CHECK_EQ_INT(hsp_noise_read_message(&r, msg, len, got, sizeof got, &glen),
               HSP_CRYPTO_EHANDSHAKE);

  /* XX with an expected remote key: a different peer is rejected by both roles. */
  for (int initiator_checks = 0; initiator_checks < 2; initiator_checks++) {
    hsp_noise_t a, b;
    CHECK_EQ_INT(hsp_noise_init(&a, HSP_NOISE_XX, true, &is,
                                initiator_checks ? other.public_key : NULL, NULL, 0), 0);
    CHECK_EQ_INT(hsp_noise_init(&b, HSP_NOISE_XX, false, &rs,
                                initiator_checks ? NULL : other.public_key, NULL, 0), 0);
    hsp_noise_t *side[2] = {&a, &b};
    int rc = 0;
    for (int k = 0; k < 3 && rc == 0; k++) {
      rc = hsp_noise_write_message(side[k % 2], NULL, 0, msg, sizeof msg, &len);
      if (rc == 0) rc = hsp_noise_read_message(side[1 - k % 2], msg, len, got, sizeof got, &glen);
    }
    CHECK_EQ_INT(rc, HSP_CRYPTO_EREMOTEKEY);
  }
  /* ... and the right expected key is accepted. */
  hsp_noise_t a, b;
  CHECK_EQ_INT(hsp_noise_init(&a, HSP_NOISE_XX, true, &is, rs.public_key, NULL, 0), 0);
  CHECK_EQ_INT(hsp_noise_init(&b, HSP_NOISE_XX, false, &rs, is.public_key, NULL, 0), 0);
  int rc = 0;
  hsp_noise_t *side[2] = {&a, &b};
  for (int k = 0; k < 3 && rc == 0; k++) {
    rc = hsp_noise_write_message(side[k % 2], NULL, 0, msg, sizeof msg, &len);
    if (rc == 0) rc = hsp_noise_read_message(side[1 - k % 2], msg, len, got, sizeof got, &glen);
  }
  CHECK_EQ_INT(rc, 0);
  CHECK(hsp_noise_is_complete(&a) && hsp_noise_is_complete(&b));
}

static void test_invalid_points(void) {
  hsp_crypto_keypair_t is = kp_seed(1), rs = kp_seed(2);
  uint8_t identity[32] = {1}; /* the neutral element: small order, DH must refuse it */
  uint8_t msg[256], got[256];
  size_t len, glen;
  hsp_noise_t i;
  CHECK_EQ_INT(hsp_noise_init_hyperdht(&i, &is, identity), 0);
  CHECK_EQ_INT(hsp_noise_write_message(&i, NULL, 0, msg, sizeof msg, &len), HSP_CRYPTO_EPUBKEY);
  CHECK(i.failed);

  /* a responder given an initiator ephemeral of small order */
  hsp_noise_t a, r;
  CHECK_EQ_INT(hsp_noise_init_hyperdht(&a, &is, rs.public_key), 0);
  CHECK_EQ_INT(hsp_noise_init_hyperdht(&r, &rs, NULL), 0);
  CHECK_EQ_INT(hsp_noise_write_message(&a, NULL, 0, msg, sizeof msg, &len), 0);
  memcpy(msg, identity, 32);
  CHECK_EQ_INT(hsp_noise_read_message(&r, msg, len, got, sizeof got, &glen), HSP_CRYPTO_EPUBKEY);
}

static void test_state_errors(void) {
  hsp_crypto_keypair_t is = kp_seed(1);
  hsp_noise_t n;
  uint8_t buf[256];
  size_t len;
  CHECK_EQ_INT(hsp_noise_init(&n, HSP_NOISE_IK, true, &is, NULL, NULL, 0), HSP_CRYPTO_EINVAL);
  CHECK_EQ_INT(hsp_noise_init(&n, (hsp_noise_pattern_t)7, true, &is, NULL, NULL, 0),
               HSP_CRYPTO_EINVAL);
  CHECK_EQ_INT(hsp_noise_init_hyperdht(&n, &is, NULL), 0); /* responder */
  CHECK(!hsp_noise_is_my_turn(&n));
  CHECK_EQ_INT(hsp_noise_write_message(&n, NULL, 0, buf, sizeof buf, &len), HSP_CRYPTO_ESTATE);
  hsp_noise_result_t res;
  CHECK_EQ_INT(hsp_noise_get_result(&n, &res), HSP_CRYPTO_ESTATE);
  CHECK(hsp_noise_remote_static(&n) == NULL);

  hsp_crypto_keypair_t rs = kp_seed(2);
  hsp_noise_t i;
  CHECK_EQ_INT(hsp_noise_init_hyperdht(&i, &is, rs.public_key), 0);
  CHECK_EQ_INT(hsp_noise_message_size(&i, 10), 96 + 10);
  CHECK_EQ_INT(hsp_noise_write_message(&i, NULL, 0, buf, 95, &len), HSP_CRYPTO_EBUFSIZE);
  uint8_t *big = calloc(1, 70000), *msg = calloc(1, 70000);
  CHECK_EQ_INT(hsp_noise_write_message(&i, big, 65535 - 15, msg, 70000, &len), HSP_CRYPTO_EMSGSIZE);
  CHECK(!i.failed); /* a refused write leaves the handshake usable */
  CHECK_EQ_INT(hsp_noise_write_message(&i, big, 65535 - 16, msg, 70000, &len), HSP_CRYPTO_OK);
  CHECK_EQ_INT(len, 96 + 65535 - 16);
  free(big);
  free(msg);
}

static void test_ids(void) {
  uint8_t hash[64] = {0}, a[32], b[32];
  hsp_crypto_stream_id(a, hash, true);
  hsp_crypto_stream_id(b, hash, false);
  CHECK(memcmp(a, b, 32) != 0);
  static const uint8_t ids[] = {0, 1, 2};
  uint8_t ns[3][32];
  hsp_crypto_namespace(ns, "hyperswarm/secret-stream", ids, 3);
  CHECK(memcmp(ns[0], HSP_NS_SS_INITIATOR, 32) == 0);
  CHECK(memcmp(ns[2], HSP_NS_SS_SEND, 32) == 0);
  CHECK(hsp_crypto_equal("abc", "abc", 3) && !hsp_crypto_equal("abc", "abd", 3));
  CHECK(strcmp(hsp_crypto_strerror(HSP_CRYPTO_EDECRYPT), "unknown crypto error") != 0);
}

int main(void) {
  if (hsp_crypto_init() != 0) return 1;
  test_complete(HSP_NOISE_IK);
  test_complete(HSP_NOISE_XX);
  test_tamper_every_bit(HSP_NOISE_IK);
  test_tamper_every_bit(HSP_NOISE_XX);
  test_truncated_and_extended();
  test_wrong_keys();
  test_invalid_points();
  test_state_errors();
  test_ids();
  return check_summary("noise");
}
