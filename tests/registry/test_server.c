/* Protocol codec round trips, the sans-I/O server against forged, replayed, misaddressed
 * and malformed requests, watch pushes, leases on a simulated clock, and replicas. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "replica.h"
#include "server.h"

/* ---- a captured outbox ---- */
typedef struct sent {
  uint64_t conn;
  uint8_t *buf;
  size_t len;
} sent_t;
static sent_t outbox[256];
static size_t nout;

static void capture(void *ud, uint64_t conn, const uint8_t *msg, size_t len) {
  (void)ud;
  if (nout == 256) return;
  outbox[nout].conn = conn;
  outbox[nout].buf = malloc(len);
  memcpy(outbox[nout].buf, msg, len);
  outbox[nout].len = len;
  nout++;
}
static void clear_outbox(void) {
  for (size_t i = 0; i < nout; i++) free(outbox[i].buf);
  nout = 0;
}
/* Decodes the last message sent (caller frees with hsp_reg_msg_free). */
static hsp_reg_msg_t last;
static hsp_reg_msg_t *last_msg(void) {
  hsp_reg_msg_free(&last);
  memset(&last, 0, sizeof last);
  if (nout == 0) return &last;
  CHECK_EQ_INT(hsp_reg_msg_decode(&last, outbox[nout - 1].buf, outbox[nout - 1].len), 0);
  return &last;
}

static int each_count;
static void count_each(void *ud, const hsp_reg_instance_t *in) {
  (void)ud;
  CHECK(in->name[0] != '\0');
  each_count++;
}

static uint8_t reg_pk[32], reg_sk[64];
static uint64_t now = 1700000000000ull;
static uint64_t next_id = 1;

typedef struct svc {
  uint8_t pk[32], sk[64];
} svc_t;

static svc_t new_svc(void) {
  svc_t s;
  crypto_sign_keypair(s.pk, s.sk);
  return s;
}

static size_t encode(hsp_reg_msg_t *m, uint8_t *buf, size_t cap) {
  long n = hsp_reg_msg_encode(m, buf, cap);
  CHECK(n > 0);
  return n > 0 ? (size_t)n : 0;
}

static hsp_reg_msg_t reg_msg(const svc_t *s, const char *name, const char *version, uint64_t ts) {
  hsp_reg_msg_t m;
  memset(&m, 0, sizeof m);
  m.id = next_id++;
  m.type = HSP_REG_MSG_REGISTER;
  memcpy(m.inst.key, s->pk, 32);
  snprintf(m.inst.name, sizeof m.inst.name, "%s", name);
  snprintf(m.inst.version, sizeof m.inst.version, "%s", version);
  snprintf(m.inst.tags, sizeof m.inst.tags, "{\"port\":5984}");
  m.inst.ttl_ms = 15000;
  memcpy(m.registry, reg_pk, 32);
  m.ts_ms = ts;
  CHECK_EQ_INT(hsp_reg_msg_sign(&m, s->sk), 0);
  return m;
}

static int send_to(hsp_reg_server_t *srv, uint64_t conn, hsp_reg_msg_t *m) {
  uint8_t buf[8192];
  size_t n = encode(m, buf, sizeof buf);
  return hsp_reg_server_handle(srv, conn, buf, n, now);
}

static long query(hsp_reg_server_t *srv, const char *name, const char *range) {
  hsp_reg_msg_t q;
  memset(&q, 0, sizeof q);
  q.id = next_id++;
  q.type = HSP_REG_MSG_QUERY;
  snprintf(q.name, sizeof q.name, "%s", name);
  snprintf(q.range, sizeof q.range, "%s", range);
  if (send_to(srv, 1, &q)) return -1;
  hsp_reg_msg_t *r = last_msg();
  CHECK_EQ_INT(r->type, HSP_REG_MSG_INSTANCES);
  CHECK_EQ_INT(r->id, q.id);
  return (long)r->ninstances;
}

static void test_roundtrip(void) {
  svc_t s = new_svc();
  hsp_reg_msg_t m = reg_msg(&s, "couchdb", "3.2.2", now);
  uint8_t a[4096], b[4096];
  size_t na = encode(&m, a, sizeof a);
  hsp_reg_msg_t d;
  CHECK_EQ_INT(hsp_reg_msg_decode(&d, a, na), 0);
  CHECK(hsp_reg_msg_verify(&d, s.pk));
  size_t nb = encode(&d, b, sizeof b);
  CHECK(na == nb && memcmp(a, b, na) == 0);
  /* every truncation and every trailing byte is rejected */
  int bad = 0;
  for (size_t i = 0; i < na; i++) bad += hsp_reg_msg_decode(&d, a, i) != 0;
  CHECK_EQ_INT(bad, (int)na);
  a[na] = 0;
  CHECK(hsp_reg_msg_decode(&d, a, na + 1) != 0);
  a[0] = 2;
  CHECK_EQ_INT(hsp_reg_msg_decode(&d, a, na), HSP_REG_EVERSION);

  hsp_reg_msg_t e;
  memset(&e, 0, sizeof e);
  e.type = HSP_REG_MSG_ERROR;
  e.id = 7;
  e.code = HSP_REG_ESIG;
  snprintf(e.message, sizeof e.message, "bad signature");
  na = encode(&e, a, sizeof a);
  CHECK_EQ_INT(hsp_reg_msg_decode(&d, a, na), 0);
  CHECK_EQ_INT(d.code, HSP_REG_ESIG);
  CHECK_EQ_STR(d.message, "bad signature");

  hsp_reg_msg_t q;
  memset(&q, 0, sizeof q);
  q.type = HSP_REG_MSG_QUERY;
  snprintf(q.name, sizeof q.name, "couchdb");
  snprintf(q.range, sizeof q.range, "not a range");
  na = encode(&q, a, sizeof a);
  CHECK_EQ_INT(hsp_reg_msg_decode(&d, a, na), HSP_REG_ERANGE);
  snprintf(q.name, sizeof q.name, "bad name!");
  snprintf(q.range, sizeof q.range, "1.x");
  na = encode(&q, a, sizeof a);
  CHECK_EQ_INT(hsp_reg_msg_decode(&d, a, na), HSP_REG_EINVAL);
}

typedef struct replica_feed {
  hsp_reg_replica_t *rep;
  uint64_t conn;
} replica_feed_t;

/* Delivers every captured message for `conn` to the replica; returns entries applied. */
static int deliver(hsp_reg_replica_t *rep, uint64_t conn) {
  int total = 0;
  for (size_t i = 0; i < nout; i++) {
    if (outbox[i].conn != conn) continue;
    int n = hsp_reg_replica_receive(rep, outbox[i].buf, outbox[i].len);
    CHECK(n >= 0);
    if (n > 0) total += n;
  }
  return total;
}

static void test_server(void) {
  hsp_store_t *st;
  CHECK_EQ_INT(hsp_store_open(&st, ":memory:", reg_sk), 0);
  hsp_reg_server_config_t cfg = {.store = st, .secret = reg_sk, .send = capture};
  hsp_reg_server_t *srv = hsp_reg_server_new(&cfg);
  CHECK(srv != NULL);

  svc_t a = new_svc(), b = new_svc(), evil = new_svc();
  hsp_reg_msg_t ra = reg_msg(&a, "couchdb", "3.2.2", now);
  CHECK_EQ_INT(send_to(srv, 1, &ra), 0);
  hsp_reg_msg_t *r = last_msg();
  CHECK_EQ_INT(r->type, HSP_REG_MSG_OK);
  CHECK_EQ_INT(r->id, ra.id);
  CHECK_EQ_INT(r->seq, 1);
  CHECK_EQ_INT(r->expires_ms, now + 15000);

  /* replay of the very same bytes */
  CHECK_EQ_INT(send_to(srv, 1, &ra), HSP_REG_EREPLAY);
  CHECK_EQ_INT(last_msg()->type, HSP_REG_MSG_ERROR);
  CHECK_EQ_INT(last.code, HSP_REG_EREPLAY);
  /* stale and future timestamps */
  hsp_reg_msg_t old = reg_msg(&b, "couchdb", "3.3.0", now - 120000);
  CHECK_EQ_INT(send_to(srv, 1, &old), HSP_REG_EREPLAY);
  hsp_reg_msg_t fut = reg_msg(&b, "couchdb", "3.3.0", now + 120000);
  CHECK_EQ_INT(send_to(srv, 1, &fut), HSP_REG_EREPLAY);
  /* forged: b's key, signed by evil */
  hsp_reg_msg_t forged = reg_msg(&b, "couchdb", "3.3.0", now);
  hsp_reg_msg_sign(&forged, evil.sk);
  CHECK_EQ_INT(send_to(srv, 1, &forged), HSP_REG_ESIG);
  /* tampered after signing (version bumped) */
  hsp_reg_msg_t tampered = reg_msg(&b, "couchdb", "3.3.0", now + 1);
  snprintf(tampered.inst.version, sizeof tampered.inst.version, "9.0.0");
  CHECK_EQ_INT(send_to(srv, 1, &tampered), HSP_REG_ESIG);
  /* addressed to another registry */
  hsp_reg_msg_t other = reg_msg(&b, "couchdb", "3.3.0", now + 2);
  other.registry[0] ^= 1;
  hsp_reg_msg_sign(&other, b.sk);
  CHECK_EQ_INT(send_to(srv, 1, &other), HSP_REG_EDENIED);
  CHECK_EQ_INT(query(srv, "couchdb", "*"), 1);

  /* a watcher (conn 2) feeding a replica */
  hsp_reg_replica_t *rep;
  CHECK_EQ_INT(hsp_reg_replica_open(&rep, ":memory:", reg_pk), 0);
  uint8_t *wreq;
  long wn = hsp_reg_replica_watch_request(rep, 99, &wreq);
  CHECK(wn > 0);
  clear_outbox();
  CHECK_EQ_INT(hsp_reg_server_handle(srv, 2, wreq, (size_t)wn, now), 0);
  free(wreq);
  CHECK_EQ_INT(deliver(rep, 2), 1);
  CHECK_EQ_INT(hsp_reg_replica_count(rep), 1);

  now += 1000;
  hsp_reg_msg_t rb = reg_msg(&b, "couchdb", "3.3.0", now);
  clear_outbox();
  CHECK_EQ_INT(send_to(srv, 1, &rb), 0);
  CHECK_EQ_INT(deliver(rep, 2), 1); /* pushed */
  hsp_reg_instance_t got[4];
  CHECK_EQ_INT(hsp_reg_replica_query(rep, "couchdb", "3.x", got, 4), 2);
  CHECK(memcmp(got[0].key, b.pk, 32) == 0); /* 3.3.0 first */
  CHECK_EQ_INT(hsp_reg_replica_query(rep, "couchdb", "~3.2.0", got, 4), 1);
  CHECK_EQ_INT(hsp_reg_replica_query(rep, "couchdb", "bad range", got, 4), HSP_REG_ERANGE);

  /* deregister: by another instance refused; by itself and by the owner accepted */
  hsp_reg_msg_t d;
  memset(&d, 0, sizeof d);
  d.id = next_id++;
  d.type = HSP_REG_MSG_DEREGISTER;
  memcpy(d.inst.key, a.pk, 32);
  memcpy(d.signer, evil.pk, 32);
  memcpy(d.registry, reg_pk, 32);
  d.ts_ms = now;
  hsp_reg_msg_sign(&d, evil.sk);
  CHECK_EQ_INT(send_to(srv, 1, &d), HSP_REG_EDENIED);
  memcpy(d.signer, a.pk, 32); /* claims to be a, signed by evil */
  hsp_reg_msg_sign(&d, evil.sk);
  CHECK_EQ_INT(send_to(srv, 1, &d), HSP_REG_ESIG);
  CHECK_EQ_INT(query(srv, "couchdb", "*"), 2);
  memcpy(d.signer, reg_pk, 32); /* the owner */
  hsp_reg_msg_sign(&d, reg_sk);
  clear_outbox();
  CHECK_EQ_INT(send_to(srv, 1, &d), 0);
  CHECK_EQ_INT(deliver(rep, 2), 1);
  CHECK_EQ_INT(hsp_reg_replica_count(rep), 1);

  /* renew keeps b alive; lease expiry on the simulated clock removes it otherwise */
  now += 10000;
  hsp_reg_msg_t rn;
  memset(&rn, 0, sizeof rn);
  rn.id = next_id++;
  rn.type = HSP_REG_MSG_RENEW;
  memcpy(rn.inst.key, b.pk, 32);
  rn.inst.ttl_ms = 15000;
  memcpy(rn.registry, reg_pk, 32);
  rn.ts_ms = now;
  hsp_reg_msg_sign(&rn, b.sk);
  clear_outbox();
  CHECK_EQ_INT(send_to(srv, 1, &rn), 0);
  CHECK_EQ_INT(deliver(rep, 2), 1);
  CHECK_EQ_INT(hsp_reg_server_next_timer(srv), now + 15000);
  now += 14999;
  CHECK_EQ_INT(hsp_reg_server_tick(srv, now), 0);
  CHECK_EQ_INT(query(srv, "couchdb", "*"), 1);
  now += 1;
  clear_outbox();
  CHECK_EQ_INT(hsp_reg_server_tick(srv, now), 0);
  CHECK_EQ_INT(deliver(rep, 2), 1);
  CHECK_EQ_INT(hsp_reg_replica_count(rep), 0);
  CHECK_EQ_INT(query(srv, "couchdb", "*"), 0);
  /* renewing a lapsed lease: not found, the service must register again */
  rn.ts_ms = ++now;
  hsp_reg_msg_sign(&rn, b.sk);
  CHECK_EQ_INT(send_to(srv, 1, &rn), HSP_REG_ENOTFOUND);

  /* malformed input: answered with an error, the server keeps working */
  uint8_t junk[64];
  for (int i = 0; i < 200; i++) {
    randombytes_buf(junk, sizeof junk);
    size_t n = 1 + (size_t)(i % 64);
    if (i % 3 == 0) junk[0] = HSP_REG_PROTOCOL_VERSION;
    CHECK(hsp_reg_server_handle(srv, 3, junk, n, now) != 0);
  }
  CHECK_EQ_INT(hsp_reg_server_handle(srv, 3, junk, 0, now), HSP_REG_EINVAL);
  CHECK_EQ_INT(last_msg()->type, HSP_REG_MSG_ERROR);
  /* a response type sent as a request */
  uint8_t okmsg[] = {1, 5, HSP_REG_MSG_OK, 1, 1};
  CHECK_EQ_INT(hsp_reg_server_handle(srv, 3, okmsg, sizeof okmsg, now), HSP_REG_EINVAL);
  CHECK_EQ_INT(last_msg()->id, 5);
  hsp_reg_msg_t rc2 = reg_msg(&b, "couchdb", "3.3.1", now);
  CHECK_EQ_INT(send_to(srv, 1, &rc2), 0);
  CHECK_EQ_INT(query(srv, "couchdb", ">=3.3.1"), 1);
  CHECK_EQ_INT(hsp_store_verify(st), 0);

  /* SYNC with a limit: paged, `more` set until the head */
  hsp_reg_msg_t sy;
  memset(&sy, 0, sizeof sy);
  sy.id = next_id++;
  sy.type = HSP_REG_MSG_SYNC;
  sy.seq = 0;
  sy.limit = 3;
  clear_outbox();
  CHECK_EQ_INT(send_to(srv, 1, &sy), 0);
  r = last_msg();
  CHECK_EQ_INT(r->type, HSP_REG_MSG_ENTRIES);
  CHECK_EQ_INT(r->nrecords, 3);
  CHECK(r->more);
  hsp_reg_replica_t *rep2;
  CHECK_EQ_INT(hsp_reg_replica_open(&rep2, ":memory:", reg_pk), 0);
  CHECK_EQ_INT(deliver(rep2, 1), 3);
  sy.seq = 3;
  sy.limit = 0;
  clear_outbox();
  CHECK_EQ_INT(send_to(srv, 1, &sy), 0);
  CHECK(!last_msg()->more);
  CHECK(deliver(rep2, 1) > 0);
  CHECK_EQ_INT(hsp_reg_replica_seq(rep2), hsp_reg_replica_seq(rep) + 1);

  /* replicas refuse entries from another registry, and tampered ones */
  uint8_t pk2[32], sk2[64];
  crypto_sign_keypair(pk2, sk2);
  hsp_reg_replica_t *rep3;
  CHECK_EQ_INT(hsp_reg_replica_open(&rep3, ":memory:", pk2), 0);
  sy.seq = 0;
  clear_outbox();
  send_to(srv, 1, &sy);
  CHECK_EQ_INT(hsp_reg_replica_receive(rep3, outbox[0].buf, outbox[0].len), HSP_REG_ESIG);
  CHECK_EQ_INT(hsp_reg_replica_count(rep3), 0);
  hsp_reg_replica_close(rep3);
  CHECK_EQ_INT(hsp_reg_replica_open(&rep3, ":memory:", reg_pk), 0);
  /* flip a byte inside the first body's tags: the chain breaks, the last signature fails */
  uint8_t *copy = malloc(outbox[0].len);
  memcpy(copy, outbox[0].buf, outbox[0].len);
  uint8_t *hit = memmem(copy, outbox[0].len, "5984", 4);
  CHECK(hit != NULL);
  if (hit) *hit = '6';
  CHECK_EQ_INT(hsp_reg_replica_receive(rep3, copy, outbox[0].len), HSP_REG_ESIG);
  CHECK_EQ_INT(hsp_reg_replica_seq(rep3), 0);
  free(copy);
  hsp_reg_replica_close(rep3);

  hsp_reg_replica_close(rep2);
  hsp_reg_replica_close(rep);
  clear_outbox();
  hsp_reg_msg_free(&last);
  hsp_reg_server_free(srv);
  hsp_store_close(st);
}

/* A persisted replica resumes from its head after a restart and answers while the
 * registry is gone. */
static void test_replica_persist(void) {
  char path[128];
  snprintf(path, sizeof path, "/tmp/hsp_replica_%d.db", (int)getpid());
  unlink(path);
  hsp_store_t *st;
  CHECK_EQ_INT(hsp_store_open(&st, ":memory:", reg_sk), 0);
  hsp_reg_server_config_t cfg = {.store = st, .secret = reg_sk, .send = capture};
  hsp_reg_server_t *srv = hsp_reg_server_new(&cfg);
  for (int i = 0; i < 20; i++) {
    svc_t s = new_svc();
    hsp_reg_msg_t m = reg_msg(&s, i % 2 ? "api" : "db", i % 4 < 2 ? "1.0.0" : "2.0.0", now);
    CHECK_EQ_INT(send_to(srv, 1, &m), 0);
  }
  hsp_reg_replica_t *rep;
  CHECK_EQ_INT(hsp_reg_replica_open(&rep, path, reg_pk), 0);
  uint8_t *w;
  long wn = hsp_reg_replica_watch_request(rep, 1, &w);
  clear_outbox();
  hsp_reg_server_handle(srv, 2, w, (size_t)wn, now);
  free(w);
  CHECK_EQ_INT(deliver(rep, 2), 20);
  hsp_reg_replica_close(rep);
  hsp_reg_server_free(srv); /* the registry goes away */
  CHECK_EQ_INT(hsp_reg_replica_open(&rep, path, reg_pk), 0);
  CHECK_EQ_INT(hsp_reg_replica_seq(rep), 20);
  hsp_reg_instance_t got[16];
  CHECK_EQ_INT(hsp_reg_replica_query(rep, "api", "1", got, 16), 5);
  CHECK_EQ_INT(hsp_reg_replica_query(rep, "db", "*", got, 16), 10);
  each_count = 0;
  hsp_reg_replica_each(rep, count_each, NULL);
  CHECK_EQ_INT(each_count, 20);
  CHECK_EQ_STR(got[0].version, "2.0.0");
  for (int i = 1; i < 10; i++)
    if (!strcmp(got[i].version, got[i - 1].version)) CHECK(got[i].reg_seq > got[i - 1].reg_seq);
  hsp_reg_replica_close(rep);
  clear_outbox();
  hsp_store_close(st);
  unlink(path);
  char side[160];
  snprintf(side, sizeof side, "%s-wal", path);
  unlink(side);
  snprintf(side, sizeof side, "%s-shm", path);
  unlink(side);
}

/* A fresh replica takes a signed snapshot, then follows the log from its position. */
static void test_snapshot(void) {
  hsp_store_t *st;
  CHECK_EQ_INT(hsp_store_open(&st, ":memory:", reg_sk), 0);
  hsp_reg_server_config_t cfg = {.store = st, .secret = reg_sk, .send = capture};
  hsp_reg_server_t *srv = hsp_reg_server_new(&cfg);
  svc_t s[6];
  for (int i = 0; i < 6; i++) {
    s[i] = new_svc();
    hsp_reg_msg_t m = reg_msg(&s[i], "db", i < 3 ? "1.0.0" : "1.1.0", now);
    CHECK_EQ_INT(send_to(srv, 1, &m), 0);
  }
  now += 5000;
  hsp_reg_msg_t rn;
  memset(&rn, 0, sizeof rn);
  rn.type = HSP_REG_MSG_RENEW;
  memcpy(rn.inst.key, s[1].pk, 32);
  rn.inst.ttl_ms = 20000;
  memcpy(rn.registry, reg_pk, 32);
  rn.ts_ms = now;
  hsp_reg_msg_sign(&rn, s[1].sk);
  CHECK_EQ_INT(send_to(srv, 1, &rn), 0);
  hsp_reg_msg_t d;
  memset(&d, 0, sizeof d);
  d.type = HSP_REG_MSG_DEREGISTER;
  memcpy(d.inst.key, s[0].pk, 32);
  memcpy(d.signer, s[0].pk, 32);
  memcpy(d.registry, reg_pk, 32);
  d.ts_ms = now;
  hsp_reg_msg_sign(&d, s[0].sk);
  CHECK_EQ_INT(send_to(srv, 1, &d), 0);

  hsp_reg_replica_t *rep;
  CHECK_EQ_INT(hsp_reg_replica_open(&rep, ":memory:", reg_pk), 0);
  uint8_t *req;
  long n = hsp_reg_replica_snapshot_request(rep, 5, &req);
  clear_outbox();
  CHECK_EQ_INT(hsp_reg_server_handle(srv, 4, req, (size_t)n, now), 0);
  free(req);
  CHECK_EQ_INT(nout, 1);
  sent_t snap = outbox[0];
  /* tampered: refused, nothing installed */
  uint8_t *bad = malloc(snap.len);
  memcpy(bad, snap.buf, snap.len);
  uint8_t *hit = memmem(bad, snap.len, "1.1.0", 5);
  CHECK(hit != NULL);
  if (hit) hit[2] = '2';
  CHECK_EQ_INT(hsp_reg_replica_receive(rep, bad, snap.len), HSP_REG_ESIG);
  free(bad);
  CHECK_EQ_INT(hsp_reg_replica_count(rep), 0);
  CHECK_EQ_INT(hsp_reg_replica_receive(rep, snap.buf, snap.len), 5);
  CHECK_EQ_INT(hsp_reg_replica_seq(rep), 8);
  hsp_reg_instance_t got[8], want;
  CHECK_EQ_INT(hsp_reg_replica_query(rep, "db", "*", got, 8), 5);
  CHECK_EQ_STR(got[0].version, "1.1.0");
  CHECK_EQ_INT(hsp_store_get(st, s[1].pk, &want), 0);
  CHECK(hsp_reg_replica_get(rep, s[1].pk, &got[0]));
  CHECK(memcmp(&got[0], &want, sizeof want) == 0); /* renewed lease carried over */

  /* then follow: a later change chains from the snapshot's head */
  uint8_t *w;
  n = hsp_reg_replica_watch_request(rep, 6, &w);
  outbox[0].buf = NULL; /* keep the snapshot bytes for the replay below */
  clear_outbox();
  CHECK_EQ_INT(hsp_reg_server_handle(srv, 4, w, (size_t)n, now), 0);
  free(w);
  svc_t x = new_svc();
  hsp_reg_msg_t m = reg_msg(&x, "db", "2.0.0", now);
  CHECK_EQ_INT(send_to(srv, 1, &m), 0);
  CHECK_EQ_INT(deliver(rep, 4), 1);
  CHECK_EQ_INT(hsp_reg_replica_query(rep, "db", "*", got, 8), 6);
  CHECK(memcmp(got[0].key, x.pk, 32) == 0);
  /* an old snapshot replayed later cannot roll the replica back */
  CHECK_EQ_INT(hsp_reg_replica_receive(rep, snap.buf, snap.len), HSP_REG_EREPLAY);
  CHECK_EQ_INT(hsp_reg_replica_count(rep), 6);
  free(snap.buf);
  hsp_reg_replica_close(rep);
  clear_outbox();
  hsp_reg_server_free(srv);
  hsp_store_close(st);
}

/* Group commit: one batch of mixed requests; every answer as if handled one by one, in
 * order, after the commit. */
static void test_batch(void) {
  hsp_store_t *st;
  CHECK_EQ_INT(hsp_store_open(&st, ":memory:", reg_sk), 0);
  hsp_reg_server_config_t cfg = {.store = st, .secret = reg_sk, .send = capture};
  hsp_reg_server_t *srv = hsp_reg_server_new(&cfg);
  static uint8_t bufs[10][1024];
  hsp_reg_input_t in[10];
  uint64_t ids[10];
  svc_t s[6];
  size_t k = 0;
  hsp_reg_msg_t w;
  memset(&w, 0, sizeof w);
  w.id = next_id++;
  w.type = HSP_REG_MSG_WATCH;
  ids[k] = w.id;
  in[k] = (hsp_reg_input_t){2, bufs[k], encode(&w, bufs[k], sizeof bufs[k])};
  k++;
  for (int i = 0; i < 6; i++) {
    s[i] = new_svc();
    hsp_reg_msg_t m = reg_msg(&s[i], "batch", "1.0.0", now);
    if (i == 4) hsp_reg_msg_sign(&m, s[0].sk); /* forged */
    ids[k] = m.id;
    in[k] = (hsp_reg_input_t){1, bufs[k], encode(&m, bufs[k], sizeof bufs[k])};
    k++;
  }
  in[k] = in[1]; /* replay of the first registration inside the same batch */
  ids[k++] = ids[1];
  hsp_reg_msg_t q;
  memset(&q, 0, sizeof q);
  q.id = next_id++;
  q.type = HSP_REG_MSG_QUERY;
  snprintf(q.name, sizeof q.name, "batch");
  snprintf(q.range, sizeof q.range, "*");
  ids[k] = q.id;
  in[k] = (hsp_reg_input_t){1, bufs[k], encode(&q, bufs[k], sizeof bufs[k])};
  k++;
  clear_outbox();
  CHECK_EQ_INT(hsp_reg_server_handle_many(srv, in, k, now), 0);
  /* conn 1 answers in request order */
  size_t j = 1;
  int oks = 0, errs = 0;
  for (size_t i = 0; i < nout; i++) {
    if (outbox[i].conn != 1) continue;
    hsp_reg_msg_t m;
    CHECK_EQ_INT(hsp_reg_msg_decode(&m, outbox[i].buf, outbox[i].len), 0);
    CHECK_EQ_INT(m.id, ids[j]);
    j++;
    if (m.type == HSP_REG_MSG_OK) oks++;
    if (m.type == HSP_REG_MSG_ERROR) errs++;
    if (m.type == HSP_REG_MSG_INSTANCES) CHECK_EQ_INT(m.ninstances, 5);
    hsp_reg_msg_free(&m);
  }
  CHECK_EQ_INT(j, k);
  CHECK_EQ_INT(oks, 5);
  CHECK_EQ_INT(errs, 2); /* forged, replayed */
  /* the watcher opened in the batch sees all five registrations */
  hsp_reg_replica_t *rep;
  CHECK_EQ_INT(hsp_reg_replica_open(&rep, ":memory:", reg_pk), 0);
  CHECK_EQ_INT(deliver(rep, 2), 5);
  /* and later changes */
  now += 1;
  hsp_reg_msg_t m = reg_msg(&s[4], "batch", "2.0.0", now);
  clear_outbox();
  CHECK_EQ_INT(send_to(srv, 1, &m), 0);
  CHECK_EQ_INT(deliver(rep, 2), 1);
  CHECK_EQ_INT(hsp_store_verify(st), 0);
  hsp_reg_replica_close(rep);
  clear_outbox();
  hsp_reg_server_free(srv);
  hsp_store_close(st);
}

static int heard, heard_null;
static void listen(void *ud, const hsp_reg_entry_t *e) {
  (void)ud;
  if (e) heard++;
  else heard_null++;
}

/* A replica ahead of a registry (the registry lost its log): ECHAIN, reset, resync. */
static void test_diverged(void) {
  hsp_store_t *st;
  CHECK_EQ_INT(hsp_store_open(&st, ":memory:", reg_sk), 0);
  hsp_reg_server_config_t cfg = {.store = st, .secret = reg_sk, .send = capture};
  hsp_reg_server_t *srv = hsp_reg_server_new(&cfg);
  hsp_reg_replica_t *rep;
  CHECK_EQ_INT(hsp_reg_replica_open(&rep, ":memory:", reg_pk), 0);
  hsp_reg_replica_set_listener(rep, listen, NULL);
  for (int i = 0; i < 3; i++) {
    svc_t s = new_svc();
    hsp_reg_msg_t m = reg_msg(&s, "x", "1.0.0", now);
    CHECK_EQ_INT(send_to(srv, 1, &m), 0);
  }
  uint8_t *w;
  long n = hsp_reg_replica_watch_request(rep, 1, &w);
  clear_outbox();
  hsp_reg_server_handle(srv, 2, w, (size_t)n, now);
  free(w);
  CHECK_EQ_INT(deliver(rep, 2), 3);
  CHECK_EQ_INT(heard, 3);
  hsp_reg_server_free(srv);
  hsp_store_close(st);

  /* the registry comes back with an empty log */
  CHECK_EQ_INT(hsp_store_open(&st, ":memory:", reg_sk), 0);
  cfg.store = st;
  srv = hsp_reg_server_new(&cfg);
  svc_t s = new_svc();
  hsp_reg_msg_t m = reg_msg(&s, "x", "2.0.0", now);
  CHECK_EQ_INT(send_to(srv, 1, &m), 0);
  n = hsp_reg_replica_watch_request(rep, 2, &w);
  clear_outbox();
  CHECK_EQ_INT(hsp_reg_server_handle(srv, 2, w, (size_t)n, now), HSP_REG_ECHAIN);
  free(w);
  CHECK_EQ_INT(hsp_reg_replica_receive(rep, outbox[0].buf, outbox[0].len), HSP_REG_ECHAIN);
  CHECK_EQ_INT(hsp_reg_replica_reset(rep), 0);
  CHECK_EQ_INT(heard_null, 1);
  CHECK_EQ_INT(hsp_reg_replica_count(rep), 0);
  CHECK_EQ_INT(hsp_reg_replica_seq(rep), 0);
  n = hsp_reg_replica_watch_request(rep, 3, &w);
  clear_outbox();
  CHECK_EQ_INT(hsp_reg_server_handle(srv, 2, w, (size_t)n, now), 0);
  free(w);
  CHECK_EQ_INT(deliver(rep, 2), 1);
  hsp_reg_instance_t got[4];
  CHECK_EQ_INT(hsp_reg_replica_query(rep, "x", "*", got, 4), 1);
  CHECK_EQ_STR(got[0].version, "2.0.0");
  hsp_reg_replica_close(rep);
  clear_outbox();
  hsp_reg_server_free(srv);
  hsp_store_close(st);
}

/* Many watchers each get a push under their own id (encoded once, re-headed each). */
static void test_fanout(void) {
  hsp_store_t *st;
  CHECK_EQ_INT(hsp_store_open(&st, ":memory:", reg_sk), 0);
  hsp_reg_server_config_t cfg = {.store = st, .secret = reg_sk, .send = capture};
  hsp_reg_server_t *srv = hsp_reg_server_new(&cfg);
  hsp_reg_replica_t *rep[5];
  for (int i = 0; i < 5; i++) {
    svc_t s = new_svc();
    hsp_reg_msg_t m = reg_msg(&s, "f", "1.0.0", now);
    CHECK_EQ_INT(send_to(srv, 1, &m), 0);
  }
  for (int i = 0; i < 5; i++) {
    CHECK_EQ_INT(hsp_reg_replica_open(&rep[i], ":memory:", reg_pk), 0);
    uint8_t *w;
    long n = hsp_reg_replica_watch_request(rep[i], 1000 + (uint64_t)i, &w);
    clear_outbox();
    hsp_reg_server_handle(srv, 10 + (uint64_t)i, w, (size_t)n, now);
    free(w);
    CHECK_EQ_INT(deliver(rep[i], 10 + (uint64_t)i), 5);
  }
  /* watcher 4 goes away */
  hsp_reg_server_disconnect(srv, 14);
  svc_t s = new_svc();
  hsp_reg_msg_t m = reg_msg(&s, "f", "2.0.0", now);
  clear_outbox();
  CHECK_EQ_INT(send_to(srv, 1, &m), 0);
  for (int i = 0; i < 5; i++) {
    int pushes = 0;
    for (size_t k = 0; k < nout; k++) {
      if (outbox[k].conn != 10 + (uint64_t)i) continue;
      hsp_reg_msg_t r;
      CHECK_EQ_INT(hsp_reg_msg_decode(&r, outbox[k].buf, outbox[k].len), 0);
      CHECK_EQ_INT(r.id, 1000 + i);
      CHECK_EQ_INT(r.type, HSP_REG_MSG_ENTRIES);
      hsp_reg_msg_free(&r);
      pushes++;
    }
    CHECK_EQ_INT(pushes, i == 4 ? 0 : 1);
    CHECK_EQ_INT(deliver(rep[i], 10 + (uint64_t)i), i == 4 ? 0 : 1);
    CHECK_EQ_INT(hsp_reg_replica_count(rep[i]), i == 4 ? 5 : 6);
    hsp_reg_replica_close(rep[i]);
  }
  clear_outbox();
  hsp_reg_server_free(srv);
  hsp_store_close(st);
}

int main(void) {
  CHECK(sodium_init() >= 0);
  crypto_sign_keypair(reg_pk, reg_sk);
  test_roundtrip();
  test_server();
  test_replica_persist();
  test_snapshot();
  test_batch();
  test_diverged();
  test_fanout();
  return check_summary("test_registry_server");
}
