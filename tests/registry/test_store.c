/* Store: changes, leases on a simulated clock, query order, replay refusal, chain
 * verification, followers, tampering, and durability across kill -9. */
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "store.h"

static uint8_t reg_pk[32], reg_sk[64];

static hsp_reg_instance_t inst(int i, const char *name, const char *version) {
  hsp_reg_instance_t in;
  memset(&in, 0, sizeof in);
  memset(in.key, 0, 32);
  in.key[0] = (uint8_t)(i & 0xff);
  in.key[1] = (uint8_t)(i >> 8);
  in.key[2] = (uint8_t)(i >> 16);
  in.key[31] = 0xaa;
  snprintf(in.name, sizeof in.name, "%s", name);
  snprintf(in.version, sizeof in.version, "%s", version);
  snprintf(in.tags, sizeof in.tags, "{\"host\":\"h%d\"}", i);
  in.ttl_ms = 15000;
  return in;
}

static char *tmp_path(const char *tag) {
  static char buf[256];
  snprintf(buf, sizeof buf, "/tmp/hsp_store_%s_%d.db", tag, (int)getpid());
  unlink(buf);
  char side[300];
  snprintf(side, sizeof side, "%s-wal", buf);
  unlink(side);
  snprintf(side, sizeof side, "%s-shm", buf);
  unlink(side);
  return buf;
}

static void test_basic(void) {
  hsp_store_t *st;
  CHECK_EQ_INT(hsp_store_open(&st, ":memory:", reg_sk), 0);
  uint64_t now = 1000000;
  hsp_reg_entry_t e;
  hsp_reg_instance_t a = inst(1, "couchdb", "3.2.2"), b = inst(2, "couchdb", "3.3.0"),
                     c = inst(3, "couchdb", "3.2.2"), d = inst(4, "web", "1.0.0");
  CHECK_EQ_INT(hsp_store_register(st, &a, NULL, now, &e), 0);
  CHECK_EQ_INT(e.seq, 1);
  CHECK_EQ_INT(hsp_store_register(st, &b, NULL, now + 1, NULL), 0);
  CHECK_EQ_INT(hsp_store_register(st, &c, NULL, now + 2, NULL), 0);
  CHECK_EQ_INT(hsp_store_register(st, &d, NULL, now + 3, NULL), 0);

  hsp_reg_instance_t *out;
  size_t n;
  CHECK_EQ_INT(hsp_store_query(st, "couchdb", "3.x", &out, &n), 0);
  CHECK_EQ_INT(n, 3);
  if (n == 3) {
    CHECK_EQ_INT(out[0].key[0], 2); /* highest version first */
    CHECK_EQ_INT(out[1].key[0], 1); /* tie: registration order */
    CHECK_EQ_INT(out[2].key[0], 3);
    CHECK_EQ_STR(out[1].tags, "{\"host\":\"h1\"}");
    CHECK_EQ_INT(out[1].expires_ms, now + 15000);
  }
  free(out);
  CHECK_EQ_INT(hsp_store_query(st, "couchdb", "~3.2", &out, &n), 0);
  CHECK_EQ_INT(n, 2);
  free(out);
  CHECK_EQ_INT(hsp_store_query(st, "couchdb", "4", &out, &n), 0);
  CHECK_EQ_INT(n, 0);
  CHECK_EQ_INT(hsp_store_query(st, "couchdb", "not a range", &out, &n), HSP_REG_ERANGE);
  CHECK_EQ_INT(hsp_store_list(st, &out, &n), 0);
  CHECK_EQ_INT(n, 4);
  free(out);

  /* invalid registrations are refused before touching the log */
  hsp_reg_instance_t bad = inst(9, "bad name", "1.0.0");
  CHECK_EQ_INT(hsp_store_register(st, &bad, NULL, now, NULL), HSP_REG_EINVAL);
  bad = inst(9, "ok", "1.0");
  CHECK_EQ_INT(hsp_store_register(st, &bad, NULL, now, NULL), HSP_REG_EINVAL);
  bad = inst(9, "ok", "1.0.0");
  bad.ttl_ms = 10;
  CHECK_EQ_INT(hsp_store_register(st, &bad, NULL, now, NULL), HSP_REG_EINVAL);

  /* leases on the simulated clock: a renews, the others lapse */
  CHECK_EQ_INT(hsp_store_next_expiry(st), now + 15000);
  now += 10000;
  CHECK_EQ_INT(hsp_store_renew(st, a.key, 15000, NULL, now, &e), 0);
  CHECK_EQ_INT(e.inst.expires_ms, now + 15000);
  CHECK_EQ_INT(hsp_store_expire(st, now, NULL, NULL), 0);
  now += 5002;
  CHECK_EQ_INT(hsp_store_expire(st, now, NULL, NULL), 2); /* b, c (d at +5003) */
  now += 1;
  CHECK_EQ_INT(hsp_store_expire(st, now, NULL, NULL), 1);
  CHECK_EQ_INT(hsp_store_list(st, &out, &n), 0);
  CHECK_EQ_INT(n, 1);
  free(out);
  CHECK_EQ_INT(hsp_store_renew(st, b.key, 15000, NULL, now, NULL), HSP_REG_ENOTFOUND);
  CHECK_EQ_INT(hsp_store_deregister(st, a.key, 0, NULL, now, &e), 0);
  CHECK_EQ_INT(e.type, HSP_REG_DEREGISTER);
  CHECK_EQ_INT(hsp_store_deregister(st, a.key, 0, NULL, now, NULL), HSP_REG_ENOTFOUND);
  uint64_t seq;
  hsp_store_head(st, &seq, NULL);
  CHECK_EQ_INT(seq, 9); /* 4 register, 1 renew, 3 expire, 1 deregister */
  CHECK_EQ_INT(hsp_store_verify(st), 0);

  /* replay: a stamp is accepted once, and only if newer than the last from its signer */
  hsp_store_stamp_t s1 = {a.key, 500};
  CHECK_EQ_INT(hsp_store_register(st, &a, &s1, now, NULL), 0);
  CHECK_EQ_INT(hsp_store_register(st, &a, &s1, now, NULL), HSP_REG_EREPLAY);
  hsp_store_stamp_t s0 = {a.key, 499};
  CHECK_EQ_INT(hsp_store_renew(st, a.key, 15000, &s0, now, NULL), HSP_REG_EREPLAY);
  hsp_store_stamp_t s2 = {a.key, 501};
  CHECK_EQ_INT(hsp_store_renew(st, a.key, 15000, &s2, now, NULL), 0);
  CHECK_EQ_INT(hsp_store_verify(st), 0);
  hsp_store_close(st);
}

typedef struct copy_ctx {
  hsp_store_record_t recs[64];
  uint8_t bodies[64][HSP_REG_ENTRY_MAX];
  uint8_t sigs[64][64];
  size_t n;
} copy_ctx_t;

static int copy_cb(void *ud, const hsp_store_record_t *r) {
  copy_ctx_t *c = ud;
  memcpy(c->bodies[c->n], r->body, r->body_len);
  memcpy(c->sigs[c->n], r->sig, 64);
  c->recs[c->n] = (hsp_store_record_t){r->seq, c->bodies[c->n], r->body_len, NULL, c->sigs[c->n]};
  c->n++;
  return c->n == 64;
}

static void test_follower(void) {
  hsp_store_t *st, *f;
  CHECK_EQ_INT(hsp_store_open(&st, ":memory:", reg_sk), 0);
  CHECK_EQ_INT(hsp_store_open_follower(&f, ":memory:", reg_pk), 0);
  for (int i = 0; i < 10; i++) {
    hsp_reg_instance_t in = inst(i, i % 2 ? "a" : "b", i % 3 ? "1.0.0" : "2.0.0");
    CHECK_EQ_INT(hsp_store_register(st, &in, NULL, 1000 + (uint64_t)i, NULL), 0);
  }
  hsp_reg_instance_t in = inst(3, "a", "1.0.0");
  CHECK_EQ_INT(hsp_store_renew(st, in.key, 20000, NULL, 2000, NULL), 0);
  CHECK_EQ_INT(hsp_store_deregister(st, in.key, 1, NULL, 2001, NULL), 0);

  static copy_ctx_t c;
  memset(&c, 0, sizeof c);
  CHECK_EQ_INT(hsp_store_entries_after(st, 0, 0, copy_cb, &c), 0);
  CHECK_EQ_INT(c.n, 12);

  /* a follower refuses a gap, a tampered body, a wrong signature: nothing applied */
  CHECK_EQ_INT(hsp_store_follow(f, &c.recs[1], 1, NULL), HSP_REG_ECHAIN);
  c.bodies[2][c.recs[2].body_len - 1] ^= 1;
  CHECK_EQ_INT(hsp_store_follow(f, c.recs, 3, NULL), HSP_REG_ESIG);
  c.bodies[2][c.recs[2].body_len - 1] ^= 1;
  uint64_t seq;
  hsp_store_head(f, &seq, NULL);
  CHECK_EQ_INT(seq, 0);
  c.sigs[0][5] ^= 1;
  CHECK_EQ_INT(hsp_store_follow(f, c.recs, 1, NULL), HSP_REG_ESIG);
  c.sigs[0][5] ^= 1;

  /* a store signed by another registry key is refused */
  uint8_t pk2[32], sk2[64];
  crypto_sign_keypair(pk2, sk2);
  hsp_store_t *f2;
  CHECK_EQ_INT(hsp_store_open_follower(&f2, ":memory:", pk2), 0);
  CHECK_EQ_INT(hsp_store_follow(f2, c.recs, 1, NULL), HSP_REG_ESIG);
  hsp_store_close(f2);

  hsp_reg_entry_t es[12];
  CHECK_EQ_INT(hsp_store_follow(f, c.recs, 5, es), 0);
  CHECK_EQ_INT(es[4].seq, 5);
  CHECK_EQ_INT(hsp_store_follow(f, c.recs + 5, 7, NULL), 0);
  CHECK_EQ_INT(hsp_store_follow(f, c.recs + 5, 1, NULL), HSP_REG_ECHAIN); /* replayed */
  CHECK_EQ_INT(hsp_store_verify(f), 0);
  uint8_t h1[32], h2[32];
  uint64_t s1, s2;
  hsp_store_head(st, &s1, h1);
  hsp_store_head(f, &s2, h2);
  CHECK_EQ_INT(s1, s2);
  CHECK(memcmp(h1, h2, 32) == 0);
  hsp_reg_instance_t *x, *y;
  size_t nx, ny;
  CHECK_EQ_INT(hsp_store_query(st, "a", "*", &x, &nx), 0);
  CHECK_EQ_INT(hsp_store_query(f, "a", "*", &y, &ny), 0);
  CHECK_EQ_INT(nx, 4);
  CHECK_EQ_INT(nx, ny);
  for (size_t i = 0; i < nx && i < ny; i++) CHECK(memcmp(&x[i], &y[i], sizeof x[i]) == 0);
  free(x);
  free(y);
  /* followers never accept local changes */
  CHECK_EQ_INT(hsp_store_register(f, &in, NULL, 1, NULL), HSP_REG_EDENIED);
  hsp_store_close(f);
  hsp_store_close(st);
}

static void test_reopen_and_tamper(void) {
  const char *path = tmp_path("reopen");
  hsp_store_t *st;
  CHECK_EQ_INT(hsp_store_open(&st, path, reg_sk), 0);
  for (int i = 0; i < 5; i++) {
    hsp_reg_instance_t in = inst(i, "svc", "1.0.0");
    CHECK_EQ_INT(hsp_store_register(st, &in, NULL, 1000, NULL), 0);
  }
  hsp_store_close(st);
  uint8_t pk2[32], sk2[64];
  crypto_sign_keypair(pk2, sk2);
  CHECK_EQ_INT(hsp_store_open(&st, path, sk2), HSP_REG_EKEY);
  CHECK_EQ_INT(hsp_store_open(&st, path, reg_sk), 0);
  uint64_t seq;
  hsp_store_head(st, &seq, NULL);
  CHECK_EQ_INT(seq, 5);
  CHECK_EQ_INT(hsp_store_verify(st), 0);
  hsp_store_close(st);

  /* edit the live table behind the store's back: verify notices */
  sqlite3 *db;
  CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
  CHECK_EQ_INT(sqlite3_exec(db, "UPDATE instances SET version = '9.9.9' WHERE reg_seq = 2", 0, 0, 0), SQLITE_OK);
  sqlite3_close(db);
  CHECK_EQ_INT(hsp_store_open(&st, path, reg_sk), 0);
  CHECK_EQ_INT(hsp_store_verify(st), HSP_REG_ECHAIN);
  hsp_store_close(st);
  /* and a log entry */
  CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_exec(db, "UPDATE instances SET version = '1.0.0' WHERE reg_seq = 2", 0, 0, 0);
  CHECK_EQ_INT(sqlite3_exec(db, "DELETE FROM log WHERE seq = 3", 0, 0, 0), SQLITE_OK);
  sqlite3_close(db);
  CHECK_EQ_INT(hsp_store_open(&st, path, reg_sk), 0);
  CHECK_EQ_INT(hsp_store_verify(st), HSP_REG_ECHAIN);
  hsp_store_close(st);
  unlink(path);
}

/* The child registers as fast as it can and reports each index after its commit returned;
 * the parent kills it with SIGKILL mid-stream. Everything reported must be there. */
static void test_crash(void) {
  const char *path = tmp_path("crash");
  /* rounds 0-2 commit each registration, rounds 3-4 group-commit ten at a time */
  for (int round = 0; round < 5; round++) {
    int fd[2];
    CHECK_EQ_INT(pipe(fd), 0);
    pid_t pid = fork();
    if (pid == 0) {
      close(fd[0]);
      hsp_store_t *st;
      if (hsp_store_open(&st, path, reg_sk)) _exit(2);
      int group = round >= 3 ? 10 : 1;
      for (int i = round * 100000;; i += group) {
        if (group > 1 && hsp_store_batch_begin(st)) _exit(5);
        for (int k = 0; k < group; k++) {
          hsp_reg_instance_t in = inst(i + k, "crash", "1.0.0");
          if (hsp_store_register(st, &in, NULL, 1000 + (uint64_t)i, NULL)) _exit(3);
        }
        if (group > 1 && hsp_store_batch_commit(st)) _exit(6);
        for (int k = 0; k < group; k++) {
          int v = i + k;
          if (write(fd[1], &v, sizeof v) != sizeof v) _exit(4);
        }
      }
    }
    close(fd[1]);
    int acked[100000], n = 0, v;
    while (n < 150 + round * 50 && read(fd[0], &v, sizeof v) == sizeof v) acked[n++] = v;
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status));
    while (n < 100000 && read(fd[0], &v, sizeof v) == sizeof v) acked[n++] = v;
    close(fd[0]);

    hsp_store_t *st;
    CHECK_EQ_INT(hsp_store_open(&st, path, reg_sk), 0);
    CHECK_EQ_INT(hsp_store_verify(st), 0);
    int missing = 0;
    for (int i = 0; i < n; i++) {
      hsp_reg_instance_t want = inst(acked[i], "crash", "1.0.0"), got;
      if (hsp_store_get(st, want.key, &got) != 0) missing++;
    }
    CHECK_EQ_INT(missing, 0);
    printf("crash round %d: %d acknowledged, all present\n", round, n);
    hsp_store_close(st);
  }
  unlink(path);
}

int main(void) {
  CHECK(sodium_init() >= 0);
  crypto_sign_keypair(reg_pk, reg_sk);
  test_basic();
  test_follower();
  test_reopen_and_tamper();
  test_crash();
  return check_summary("test_registry_store");
}
