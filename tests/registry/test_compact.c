/* Log compaction (store.h, docs/protocol.md "Log compaction"): 100,000 renews keep the log
 * bounded; verification, restart and kill -9 keep every guarantee; a replica behind the
 * compaction point is told ECHAIN, takes a SNAPSHOT and follows from there; a replica inside
 * the retained tail catches up with entries; followers compact too. */
#include <signal.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "replica.h"
#include "server.h"

static uint8_t reg_pk[32], reg_sk[64];

static hsp_reg_instance_t inst(int i) {
  hsp_reg_instance_t in;
  memset(&in, 0, sizeof in);
  in.key[0] = (uint8_t)(i & 0xff);
  in.key[1] = (uint8_t)(i >> 8);
  in.key[31] = 0xbb;
  snprintf(in.name, sizeof in.name, "svc%d", i % 7);
  snprintf(in.version, sizeof in.version, "1.%d.0", i % 5);
  snprintf(in.tags, sizeof in.tags, "{\"host\":\"h%d\"}", i);
  in.ttl_ms = 15000;
  return in;
}

static char *tmp_path(const char *tag) {
  static char buf[256];
  snprintf(buf, sizeof buf, "/tmp/hsp_compact_%s_%d.db", tag, (int)getpid());
  char side[300];
  unlink(buf);
  snprintf(side, sizeof side, "%s-wal", buf);
  unlink(side);
  snprintf(side, sizeof side, "%s-shm", buf);
  unlink(side);
  return buf;
}

static long file_size(const char *path) {
  struct stat sb;
  long total = 0;
  char side[300];
  if (stat(path, &sb) == 0) total += sb.st_size;
  snprintf(side, sizeof side, "%s-wal", path);
  if (stat(side, &sb) == 0) total += sb.st_size;
  return total;
}

static uint64_t log_len(hsp_store_t *st) {
  uint64_t head, base;
  hsp_store_head(st, &head, NULL);
  hsp_store_base(st, &base, NULL);
  return head - base;
}

static bool same_lists(hsp_store_t *a, hsp_store_t *b) {
  hsp_reg_instance_t *x, *y;
  size_t nx, ny;
  if (hsp_store_list(a, &x, &nx) || hsp_store_list(b, &y, &ny)) return false;
  bool same = nx == ny;
  for (size_t i = 0; same && i < nx; i++) same = !memcmp(&x[i], &y[i], sizeof x[i]);
  free(x);
  free(y);
  return same;
}

#define LIVE 50
#define RETAIN 1000

/* 100,000 renews of 50 live instances with a retention of 1000: the log never holds more
 * than 2 x 1000 entries, the database file stops growing, and everything verifies and
 * survives a restart. */
static void test_bounded(void) {
  const char *path = tmp_path("bounded");
  hsp_store_t *st;
  CHECK_EQ_INT(hsp_store_open(&st, path, reg_sk), 0);
  hsp_store_set_retention(st, RETAIN);
  uint64_t now = 1000000;
  for (int i = 0; i < LIVE; i++) {
    hsp_reg_instance_t in = inst(i);
    CHECK_EQ_INT(hsp_store_register(st, &in, NULL, now, NULL), 0);
  }
  uint64_t max_len = 0;
  long size_at_10k = 0;
  for (int r = 0; r < 100000; r += 500) {
    CHECK_EQ_INT(hsp_store_batch_begin(st), 0);
    for (int k = 0; k < 500; k++) {
      hsp_reg_instance_t in = inst((r + k) % LIVE);
      now += 10;
      if (hsp_store_renew(st, in.key, 15000, NULL, now, NULL)) CHECK(0);
    }
    CHECK_EQ_INT(hsp_store_batch_commit(st), 0);
    if (log_len(st) > max_len) max_len = log_len(st);
    if (r == 10000) size_at_10k = file_size(path);
  }
  uint64_t head, base;
  hsp_store_head(st, &head, NULL);
  hsp_store_base(st, &base, NULL);
  CHECK_EQ_INT(head, LIVE + 100000);
  CHECK(max_len <= 2 * RETAIN + 500); /* a batch may overshoot by its own size */
  CHECK(head - base >= RETAIN);
  long size_end = file_size(path);
  printf("100000 renews: head %llu, base %llu, log at most %llu entries; db+wal %ld KiB after "
         "10k renews, %ld KiB after 100k\n",
         (unsigned long long)head, (unsigned long long)base, (unsigned long long)max_len,
         size_at_10k / 1024, size_end / 1024);
  /* freed pages are reused: the file does not keep growing with the number of renews */
  CHECK(size_end < size_at_10k + 1024 * 1024);
  CHECK_EQ_INT(hsp_store_verify(st), 0);
  hsp_reg_instance_t *before;
  size_t nbefore;
  CHECK_EQ_INT(hsp_store_list(st, &before, &nbefore), 0);
  CHECK_EQ_INT(nbefore, LIVE);
  hsp_store_close(st);

  /* restart: same head, base, instances; the chain still verifies and extends */
  CHECK_EQ_INT(hsp_store_open(&st, path, reg_sk), 0);
  uint64_t head2, base2;
  hsp_store_head(st, &head2, NULL);
  hsp_store_base(st, &base2, NULL);
  CHECK_EQ_INT(head2, head);
  CHECK_EQ_INT(base2, base);
  CHECK_EQ_INT(hsp_store_verify(st), 0);
  hsp_reg_instance_t *after;
  size_t nafter;
  CHECK_EQ_INT(hsp_store_list(st, &after, &nafter), 0);
  CHECK(nafter == nbefore && !memcmp(before, after, nbefore * sizeof *before));
  free(before);
  free(after);
  hsp_reg_instance_t gone = inst(3);
  CHECK_EQ_INT(hsp_store_deregister(st, gone.key, 0, NULL, now + 1, NULL), 0);
  CHECK_EQ_INT(hsp_store_expire(st, now + 100000, NULL, NULL), LIVE - 1);
  CHECK_EQ_INT(hsp_store_compact(st, UINT64_MAX), (int)(head2 + LIVE - base2));
  CHECK_EQ_INT(log_len(st), 0);
  CHECK_EQ_INT(hsp_store_verify(st), 0);
  hsp_reg_instance_t *none;
  size_t nnone;
  CHECK_EQ_INT(hsp_store_list(st, &none, &nnone), 0);
  CHECK_EQ_INT(nnone, 0);
  free(none);
  hsp_store_close(st);
  CHECK_EQ_INT(hsp_store_open(&st, path, reg_sk), 0);
  CHECK_EQ_INT(hsp_store_verify(st), 0);
  hsp_reg_instance_t again = inst(1);
  CHECK_EQ_INT(hsp_store_register(st, &again, NULL, now + 200000, NULL), 0);
  CHECK_EQ_INT(hsp_store_verify(st), 0);
  hsp_store_close(st);
  unlink(path);
}

static int never(void *ud, const hsp_store_record_t *r) {
  (void)ud, (void)r;
  CHECK(0);
  return 1;
}

static void tamper(const char *path, const char *sql) {
  sqlite3 *db;
  CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
  CHECK_EQ_INT(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
}

/* Explicit compaction; tampering with what compaction left (the checkpoint, the base's
 * hash or signature, rows below the base) is caught by verify. */
static void test_tamper(void) {
  const char *path = tmp_path("tamper");
  hsp_store_t *st;
  CHECK_EQ_INT(hsp_store_open(&st, path, reg_sk), 0);
  hsp_store_set_retention(st, 0);
  uint64_t now = 5000;
  for (int i = 0; i < 20; i++) {
    hsp_reg_instance_t in = inst(i);
    CHECK_EQ_INT(hsp_store_register(st, &in, NULL, now + (uint64_t)i, NULL), 0);
  }
  CHECK_EQ_INT(log_len(st), 20);
  CHECK_EQ_INT(hsp_store_compact(st, 12), 12);
  CHECK_EQ_INT(hsp_store_compact(st, 12), 0); /* idempotent */
  CHECK_EQ_INT(log_len(st), 8);
  CHECK_EQ_INT(hsp_store_verify(st), 0);
  /* the tail is served from the base on; below it is gone */
  CHECK_EQ_INT(hsp_store_entries_after(st, 11, 0, never, NULL), HSP_REG_ECHAIN);
  hsp_store_close(st);
  static const char *const attacks[][2] = {
      {"UPDATE checkpoint SET expires_ms = expires_ms + 1 WHERE reg_seq = 3", "checkpoint row"},
      {"DELETE FROM checkpoint WHERE reg_seq = 4", "checkpoint row deleted"},
      {"UPDATE meta SET v = substr(v, 1, 8) || zeroblob(32) || substr(v, 41) WHERE k = 'base'",
       "base hash"},
      {"UPDATE meta SET v = substr(v, 1, 40) || zeroblob(64) WHERE k = 'base'", "base signature"},
      {"INSERT INTO log SELECT seq - 20, body, hash, sig FROM log WHERE seq = 13", "row below base"},
  };
  for (size_t i = 0; i < sizeof attacks / sizeof attacks[0]; i++) {
    CHECK_EQ_INT(hsp_store_open(&st, path, reg_sk), 0);
    CHECK_EQ_INT(hsp_store_verify(st), 0);
    hsp_store_close(st);
    sqlite3 *db;
    CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_EQ_INT(sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS backup AS SELECT * FROM meta", NULL,
                              NULL, NULL),
                 SQLITE_OK);
    CHECK_EQ_INT(sqlite3_exec(db, "CREATE TABLE ckbackup AS SELECT * FROM checkpoint", NULL, NULL, NULL),
                 SQLITE_OK);
    CHECK_EQ_INT(sqlite3_exec(db, attacks[i][0], NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    CHECK_EQ_INT(hsp_store_open(&st, path, reg_sk), 0);
    int err = hsp_store_verify(st);
    if (err == 0) printf("tampering not detected: %s\n", attacks[i][1]);
    CHECK(err == HSP_REG_ECHAIN || err == HSP_REG_ESIG);
    hsp_store_close(st);
    tamper(path, "DELETE FROM meta; INSERT INTO meta SELECT * FROM backup; DROP TABLE backup;"
                 "DELETE FROM checkpoint; INSERT INTO checkpoint SELECT * FROM ckbackup;"
                 "DROP TABLE ckbackup; DELETE FROM log WHERE seq <= 12");
  }
  CHECK_EQ_INT(hsp_store_open(&st, path, reg_sk), 0);
  CHECK_EQ_INT(hsp_store_verify(st), 0);
  hsp_store_close(st);
  unlink(path);
}

/* A follower compacts too and keeps verifying; a fresh follower cannot follow a leader's
 * compacted log from 0 (entries_after refuses), but takes the snapshot. */
static int collect_recs_cb(void *ud, const hsp_store_record_t *r);
typedef struct recs {
  hsp_store_record_t r[4096];
  uint8_t *mem[4096];
  size_t n;
} recs_t;
static int collect_recs_cb(void *ud, const hsp_store_record_t *r) {
  recs_t *c = ud;
  uint8_t *m = malloc(r->body_len + 96);
  memcpy(m, r->body, r->body_len);
  memcpy(m + r->body_len, r->hash, 32);
  memcpy(m + r->body_len + 32, r->sig, 64);
  c->mem[c->n] = m;
  c->r[c->n] = (hsp_store_record_t){r->seq, m, r->body_len, m + r->body_len, m + r->body_len + 32};
  c->n++;
  return c->n == 4096;
}
static void free_recs(recs_t *c) {
  for (size_t i = 0; i < c->n; i++) free(c->mem[i]);
  c->n = 0;
}

typedef struct snap {
  hsp_reg_instance_t *all;
  size_t n, i;
} snap_t;
static int snap_next(void *ud, hsp_reg_instance_t *out) {
  snap_t *sn = ud;
  if (sn->i == sn->n) return 0;
  *out = sn->all[sn->i++];
  return 1;
}

static void test_follower(void) {
  hsp_store_t *st, *f;
  CHECK_EQ_INT(hsp_store_open(&st, ":memory:", reg_sk), 0);
  CHECK_EQ_INT(hsp_store_open_follower(&f, ":memory:", reg_pk), 0);
  hsp_store_set_retention(st, 100);
  hsp_store_set_retention(f, 30);
  uint64_t now = 7000;
  static recs_t c;
  for (int round = 0; round < 40; round++) {
    for (int i = 0; i < 10; i++) {
      hsp_reg_instance_t in = inst(i);
      now += 5;
      if (round == 0) CHECK_EQ_INT(hsp_store_register(st, &in, NULL, now, NULL), 0);
      else CHECK_EQ_INT(hsp_store_renew(st, in.key, 15000, NULL, now, NULL), 0);
    }
    uint64_t fseq;
    hsp_store_head(f, &fseq, NULL);
    CHECK_EQ_INT(hsp_store_entries_after(st, fseq, 0, collect_recs_cb, &c), 0);
    CHECK_EQ_INT(hsp_store_follow(f, c.r, c.n, NULL), 0);
    free_recs(&c);
    CHECK(log_len(f) <= 60);
  }
  CHECK(log_len(st) <= 200);
  CHECK_EQ_INT(hsp_store_verify(f), 0);
  CHECK_EQ_INT(hsp_store_verify(st), 0);
  CHECK(same_lists(st, f));
  /* a fresh follower is behind the leader's base: it installs a snapshot (which becomes its
   * checkpoint), follows from there, compacts, and verifies by replay over the checkpoint */
  hsp_store_t *g;
  CHECK_EQ_INT(hsp_store_open_follower(&g, ":memory:", reg_pk), 0);
  hsp_store_set_retention(g, 10);
  CHECK_EQ_INT(hsp_store_entries_after(st, 0, 0, collect_recs_cb, &c), HSP_REG_ECHAIN);
  CHECK_EQ_INT(c.n, 0);
  snap_t sn = {0};
  CHECK_EQ_INT(hsp_store_list(st, &sn.all, &sn.n), 0);
  uint64_t lseq;
  uint8_t lhash[32];
  hsp_store_head(st, &lseq, lhash);
  CHECK_EQ_INT(hsp_store_install_snapshot(g, lseq, lhash, snap_next, &sn), 0);
  free(sn.all);
  CHECK_EQ_INT(hsp_store_verify(g), 0);
  for (int i = 0; i < 50; i++) {
    hsp_reg_instance_t in = inst(i % 10);
    now += 5;
    CHECK_EQ_INT(hsp_store_renew(st, in.key, 15000, NULL, now, NULL), 0);
    uint64_t gseq;
    hsp_store_head(g, &gseq, NULL);
    CHECK_EQ_INT(hsp_store_entries_after(st, gseq, 0, collect_recs_cb, &c), 0);
    CHECK_EQ_INT(hsp_store_follow(g, c.r, c.n, NULL), 0);
    free_recs(&c);
  }
  uint64_t gbase;
  hsp_store_base(g, &gbase, NULL);
  CHECK(gbase > lseq); /* compacted past the snapshot */
  CHECK_EQ_INT(hsp_store_verify(g), 0);
  CHECK(same_lists(st, g));
  hsp_store_close(g);
  hsp_store_close(f);
  hsp_store_close(st);
}

/* ---- replicas through the sans-I/O server ---- */
typedef struct sent {
  uint64_t conn;
  uint8_t *buf;
  size_t len;
} sent_t;
static sent_t outbox[64];
static size_t nout;

static void capture(void *ud, uint64_t conn, const uint8_t *msg, size_t len) {
  (void)ud;
  if (nout == 64) return;
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
/* Feeds everything sent to conn into the replica; returns the first error or the total. */
static int deliver(hsp_reg_replica_t *rep, uint64_t conn) {
  int total = 0, err = 0;
  for (size_t i = 0; i < nout; i++) {
    if (outbox[i].conn != conn) continue;
    int n = hsp_reg_replica_receive(rep, outbox[i].buf, outbox[i].len);
    if (n < 0 && !err) err = n;
    if (n > 0) total += n;
  }
  clear_outbox();
  return err ? err : total;
}
static int request(hsp_reg_server_t *srv, hsp_reg_replica_t *rep, uint64_t conn, bool snapshot,
                   uint64_t now) {
  uint8_t *req;
  long n = snapshot ? hsp_reg_replica_snapshot_request(rep, conn, &req)
                    : hsp_reg_replica_watch_request(rep, conn, &req);
  CHECK(n > 0);
  clear_outbox();
  hsp_reg_server_handle(srv, conn, req, (size_t)n, now);
  free(req);
  return deliver(rep, conn);
}

static void changes(hsp_store_t *st, int count, uint64_t *now) {
  for (int i = 0; i < count; i++) {
    hsp_reg_instance_t in = inst(i % LIVE);
    *now += 3;
    CHECK_EQ_INT(hsp_store_renew(st, in.key, 15000, NULL, *now, NULL), 0);
  }
}

static void test_replica_behind(void) {
  hsp_store_t *st;
  CHECK_EQ_INT(hsp_store_open(&st, ":memory:", reg_sk), 0);
  hsp_store_set_retention(st, 200);
  hsp_reg_server_config_t cfg = {.store = st, .secret = reg_sk, .send = capture};
  hsp_reg_server_t *srv = hsp_reg_server_new(&cfg);
  uint64_t now = 9000;
  for (int i = 0; i < LIVE; i++) {
    hsp_reg_instance_t in = inst(i);
    CHECK_EQ_INT(hsp_store_register(st, &in, NULL, ++now, NULL), 0);
  }
  hsp_reg_replica_t *behind, *close_by;
  CHECK_EQ_INT(hsp_reg_replica_open(&behind, ":memory:", reg_pk), 0);
  CHECK_EQ_INT(hsp_reg_replica_open(&close_by, ":memory:", reg_pk), 0);
  CHECK_EQ_INT(request(srv, behind, 2, false, now), LIVE);
  hsp_reg_server_disconnect(srv, 2);
  changes(st, 300, &now);
  CHECK_EQ_INT(request(srv, close_by, 3, false, now), LIVE + 300);
  hsp_reg_server_disconnect(srv, 3);
  /* the leader compacts past `behind` (at seq 50), but not past `close_by` (at 350) */
  changes(st, 200, &now);
  uint64_t base;
  hsp_store_base(st, &base, NULL);
  CHECK(base > LIVE && base <= LIVE + 300);

  /* inside the retained tail: plain catch-up, no snapshot */
  CHECK_EQ_INT(request(srv, close_by, 3, false, now), 200);
  /* behind the base: the WATCH is answered ECHAIN; a snapshot, then a WATCH from it */
  CHECK_EQ_INT(request(srv, behind, 2, false, now), HSP_REG_ECHAIN);
  CHECK_EQ_INT(hsp_reg_replica_seq(behind), LIVE);
  CHECK_EQ_INT(request(srv, behind, 2, true, now), LIVE);
  uint64_t head;
  hsp_store_head(st, &head, NULL);
  CHECK_EQ_INT(hsp_reg_replica_seq(behind), head);
  CHECK_EQ_INT(request(srv, behind, 2, false, now), 0);
  /* both follow the pushes of later changes */
  CHECK_EQ_INT(request(srv, close_by, 3, false, now), 0);
  changes(st, 20, &now);
  hsp_reg_instance_t x = inst(7);
  CHECK_EQ_INT(hsp_store_deregister(st, x.key, 0, NULL, ++now, NULL), 0);
  CHECK_EQ_INT(request(srv, behind, 2, false, now), 21);
  CHECK_EQ_INT(request(srv, close_by, 3, false, now), 21);
  hsp_store_head(st, &head, NULL);
  CHECK_EQ_INT(hsp_reg_replica_seq(behind), head);
  CHECK_EQ_INT(hsp_reg_replica_seq(close_by), head);
  CHECK_EQ_INT(hsp_reg_replica_count(behind), LIVE - 1);
  CHECK_EQ_INT(hsp_reg_replica_count(close_by), LIVE - 1);
  hsp_reg_instance_t got;
  CHECK(!hsp_reg_replica_get(behind, x.key, &got));
  hsp_reg_instance_t y = inst(8), want;
  CHECK(hsp_reg_replica_get(behind, y.key, &got));
  CHECK_EQ_INT(hsp_store_get(st, y.key, &want), 0);
  CHECK_EQ_INT(got.expires_ms, want.expires_ms);
  CHECK_EQ_INT(got.renewed_ms, want.renewed_ms);
  printf("replica behind the compaction point (base %llu) recovered via snapshot at %llu\n",
         (unsigned long long)base, (unsigned long long)head);

  /* A refused WATCH leaves no watch behind (it would fail on every change); the
   * registered watchers get the pushes of the next changes (every lease expires). */
  hsp_reg_replica_t *fresh;
  CHECK_EQ_INT(hsp_reg_replica_open(&fresh, ":memory:", reg_pk), 0);
  CHECK_EQ_INT(request(srv, fresh, 4, false, now), HSP_REG_ECHAIN);
  clear_outbox();
  CHECK_EQ_INT(hsp_reg_server_tick(srv, now + 60000), 0);
  size_t to_fresh = 0, to_behind = 0;
  for (size_t i = 0; i < nout; i++) {
    to_fresh += outbox[i].conn == 4;
    to_behind += outbox[i].conn == 2;
  }
  CHECK_EQ_INT(to_fresh, 0);
  CHECK(to_behind > 0);
  sent_t keep[64];
  size_t nkeep = nout;
  memcpy(keep, outbox, nout * sizeof *keep);
  nout = 0;
  for (size_t i = 0; i < nkeep; i++)
    if (keep[i].conn == 3) capture(NULL, 3, keep[i].buf, keep[i].len);
  CHECK_EQ_INT(deliver(close_by, 3), LIVE - 1);
  for (size_t i = 0; i < nkeep; i++)
    if (keep[i].conn == 2) capture(NULL, 2, keep[i].buf, keep[i].len);
  CHECK_EQ_INT(deliver(behind, 2), LIVE - 1);
  for (size_t i = 0; i < nkeep; i++) free(keep[i].buf);
  CHECK_EQ_INT(hsp_reg_replica_count(behind), 0);
  CHECK_EQ_INT(hsp_reg_replica_count(close_by), 0);
  hsp_reg_replica_close(fresh);
  hsp_reg_replica_close(behind);
  hsp_reg_replica_close(close_by);
  hsp_reg_server_free(srv);
  hsp_store_close(st);
}

/* kill -9 while renewing with frequent compactions: every acknowledged renew is there and
 * the store verifies. */
static void test_crash(void) {
  const char *path = tmp_path("crash");
  hsp_store_t *st;
  CHECK_EQ_INT(hsp_store_open(&st, path, reg_sk), 0);
  for (int i = 0; i < LIVE; i++) {
    hsp_reg_instance_t in = inst(i);
    CHECK_EQ_INT(hsp_store_register(st, &in, NULL, 1000, NULL), 0);
  }
  hsp_store_close(st);
  for (int round = 0; round < 3; round++) {
    int fd[2];
    CHECK_EQ_INT(pipe(fd), 0);
    pid_t pid = fork();
    if (pid == 0) {
      close(fd[0]);
      hsp_store_t *c;
      if (hsp_store_open(&c, path, reg_sk)) _exit(2);
      hsp_store_set_retention(c, 20);
      for (uint64_t t = 100000 * (uint64_t)(round + 1);; t++) {
        hsp_reg_instance_t in = inst((int)(t % LIVE));
        hsp_reg_entry_t e;
        if (hsp_store_renew(c, in.key, 15000, NULL, t, &e)) _exit(3);
        uint64_t v[2] = {e.seq, t};
        if (write(fd[1], v, sizeof v) != sizeof v) _exit(4);
      }
    }
    close(fd[1]);
    uint64_t v[2], last[2] = {0, 0};
    int n = 0;
    while (n < 100 + 40 * round && read(fd[0], v, sizeof v) == sizeof v) {
      memcpy(last, v, sizeof v);
      n++;
    }
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status));
    while (read(fd[0], v, sizeof v) == sizeof v) {
      memcpy(last, v, sizeof v);
      n++;
    }
    close(fd[0]);
    CHECK_EQ_INT(hsp_store_open(&st, path, reg_sk), 0);
    CHECK_EQ_INT(hsp_store_verify(st), 0);
    uint64_t head;
    hsp_store_head(st, &head, NULL);
    CHECK(head >= last[0]);
    CHECK(log_len(st) <= 41);
    hsp_reg_instance_t in = inst((int)(last[1] % LIVE)), got;
    CHECK_EQ_INT(hsp_store_get(st, in.key, &got), 0);
    CHECK(got.renewed_ms >= last[1]);
    printf("crash round %d: %d renews acknowledged up to seq %llu, head %llu, log %llu\n", round,
           n, (unsigned long long)last[0], (unsigned long long)head,
           (unsigned long long)log_len(st));
    hsp_store_close(st);
  }
  unlink(path);
}

int main(void) {
  CHECK(sodium_init() >= 0);
  crypto_sign_keypair(reg_pk, reg_sk);
  test_tamper();
  test_follower();
  test_replica_behind();
  test_crash();
  test_bounded();
  return check_summary("test_registry_compact");
}
