#include "store.h"

#include <sodium.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"

static const char *const SCHEMA[] = {
    "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BLOB NOT NULL)",
    ("CREATE TABLE IF NOT EXISTS instances ("
     " key BLOB PRIMARY KEY, name TEXT NOT NULL, version TEXT NOT NULL, tags TEXT NOT NULL,"
     " ttl_ms INTEGER NOT NULL, registered_ms INTEGER NOT NULL, renewed_ms INTEGER NOT NULL,"
     " expires_ms INTEGER NOT NULL, reg_seq INTEGER NOT NULL)"),
    "CREATE INDEX IF NOT EXISTS instances_by_name ON instances (name)",
    ("CREATE TABLE IF NOT EXISTS log ("
     " seq INTEGER PRIMARY KEY, body BLOB NOT NULL, hash BLOB NOT NULL, sig BLOB NOT NULL)"),
    "CREATE TABLE IF NOT EXISTS request_clock (signer BLOB PRIMARY KEY, ts_ms INTEGER NOT NULL)",
    /* The live set as of the log's base (its first retained entry minus one): what
     * compaction folded out of the log, so the log still replays to `instances`. */
    ("CREATE TABLE IF NOT EXISTS checkpoint ("
     " key BLOB PRIMARY KEY, name TEXT NOT NULL, version TEXT NOT NULL, tags TEXT NOT NULL,"
     " ttl_ms INTEGER NOT NULL, registered_ms INTEGER NOT NULL, renewed_ms INTEGER NOT NULL,"
     " expires_ms INTEGER NOT NULL, reg_seq INTEGER NOT NULL)"),
};

#define COLS "key, name, version, tags, ttl_ms, registered_ms, renewed_ms, expires_ms, reg_seq"

enum stmt_id {
  S_BEGIN, S_COMMIT, S_ROLLBACK,
  S_LOG_INSERT, S_LOG_AFTER, S_LOG_HEAD,
  S_INST_DELETE, S_INST_INSERT, S_INST_RENEW, S_INST_GET, S_INST_BY_NAME, S_INST_ALL,
  S_INST_EXPIRED, S_INST_NEXT_EXPIRY,
  S_CLOCK_GET, S_CLOCK_DELETE, S_CLOCK_INSERT,
  S_META_GET, S_META_INSERT, S_META_DELETE, S_LOG_CLEAR, S_INST_CLEAR,
  S_SAVEPOINT, S_RELEASE, S_ROLLBACK_TO,
  S_CK_DELETE, S_CK_INSERT, S_CK_RENEW, S_CK_ALL, S_CK_CLEAR, S_LOG_PRUNE, S_LOG_COUNT,
  S_COUNT
};

static const char *const SQL[S_COUNT] = {
    [S_BEGIN] = "BEGIN",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_LOG_INSERT] = "INSERT INTO log (seq, body, hash, sig) VALUES (?, ?, ?, ?)",
    [S_LOG_AFTER] = "SELECT seq, body, hash, sig FROM log WHERE seq > ? ORDER BY seq LIMIT ?",
    [S_LOG_HEAD] = "SELECT seq, hash FROM log ORDER BY seq DESC LIMIT 1",
    [S_INST_DELETE] = "DELETE FROM instances WHERE key = ?",
    [S_INST_INSERT] = "INSERT INTO instances (" COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [S_INST_RENEW] =
        "UPDATE instances SET ttl_ms = ?, renewed_ms = ?, expires_ms = ? WHERE key = ?",
    [S_INST_GET] = "SELECT " COLS " FROM instances WHERE key = ?",
    [S_INST_BY_NAME] = "SELECT " COLS " FROM instances WHERE name = ? ORDER BY reg_seq",
    [S_INST_ALL] = "SELECT " COLS " FROM instances ORDER BY name, reg_seq",
    [S_INST_EXPIRED] =
        "SELECT key FROM instances WHERE expires_ms <= ? ORDER BY expires_ms, reg_seq",
    [S_INST_NEXT_EXPIRY] = "SELECT MIN(expires_ms) FROM instances",
    [S_CLOCK_GET] = "SELECT ts_ms FROM request_clock WHERE signer = ?",
    [S_CLOCK_DELETE] = "DELETE FROM request_clock WHERE signer = ?",
    [S_CLOCK_INSERT] = "INSERT INTO request_clock (signer, ts_ms) VALUES (?, ?)",
    [S_META_GET] = "SELECT v FROM meta WHERE k = ?",
    [S_META_INSERT] = "INSERT INTO meta (k, v) VALUES (?, ?)",
    [S_META_DELETE] = "DELETE FROM meta WHERE k = ?",
    [S_LOG_CLEAR] = "DELETE FROM log",
    [S_INST_CLEAR] = "DELETE FROM instances",
    [S_SAVEPOINT] = "SAVEPOINT change",
    [S_RELEASE] = "RELEASE change",
    [S_ROLLBACK_TO] = "ROLLBACK TO change",
    [S_CK_DELETE] = "DELETE FROM checkpoint WHERE key = ?",
    [S_CK_INSERT] = "INSERT INTO checkpoint (" COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [S_CK_RENEW] =
        "UPDATE checkpoint SET ttl_ms = ?, renewed_ms = ?, expires_ms = ? WHERE key = ?",
    [S_CK_ALL] = "SELECT " COLS " FROM checkpoint",
    [S_CK_CLEAR] = "DELETE FROM checkpoint",
    [S_LOG_PRUNE] = "DELETE FROM log WHERE seq <= ?",
    [S_LOG_COUNT] = "SELECT COUNT(*) FROM log",
};

/* The statements that change one copy of the live set: `instances` (now) or `checkpoint`
 * (at the log's base). Both go through apply_sql, so they cannot drift apart. */
typedef struct table {
  enum stmt_id del, ins, renew;
} table_t;
static const table_t LIVE = {S_INST_DELETE, S_INST_INSERT, S_INST_RENEW};
static const table_t CKPT = {S_CK_DELETE, S_CK_INSERT, S_CK_RENEW};

struct hsp_store {
  sqlite3 *db;
  sqlite3_stmt *stmt[S_COUNT];
  bool leader;
  uint8_t secret[HSP_REG_SECRET_BYTES];
  uint8_t pub[HSP_REG_KEY_BYTES];
  uint64_t head_seq;
  uint8_t head_hash[HSP_REG_HASH_BYTES];
  /* Where the log starts: 0/zeros, the position of an installed snapshot, or the last
   * entry folded into the checkpoint by compaction (then base_sig is that entry's
   * signature, which still proves the base came from the registry). */
  uint64_t base_seq;
  uint8_t base_hash[HSP_REG_HASH_BYTES];
  uint8_t base_sig[HSP_REG_SIG_BYTES];
  bool has_base_sig;
  uint64_t retain; /* automatic compaction keeps at least this many entries (0 = never) */
  /* Group commit: inside a batch each change is a savepoint of one outer transaction. */
  bool batch;
  uint64_t batch_seq;
  uint8_t batch_hash[HSP_REG_HASH_BYTES];
};

/* Resets a statement for reuse and returns it. */
static sqlite3_stmt *S(hsp_store_t *st, enum stmt_id id) {
  sqlite3_stmt *s = st->stmt[id];
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
  return s;
}

static int exec_done(sqlite3_stmt *s) {
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  return (rc == SQLITE_DONE || rc == SQLITE_ROW) ? HSP_REG_OK : HSP_REG_EDB;
}

static int tx(hsp_store_t *st, enum stmt_id id) { return exec_done(S(st, id)); }

static void bind_key(sqlite3_stmt *s, int i, const uint8_t *key) {
  sqlite3_bind_blob(s, i, key, HSP_REG_KEY_BYTES, SQLITE_STATIC);
}
static void bind_u64(sqlite3_stmt *s, int i, uint64_t v) { sqlite3_bind_int64(s, i, (sqlite3_int64)v); }

static bool copy_text(char *dst, size_t cap, sqlite3_stmt *s, int col) {
  const unsigned char *t = sqlite3_column_text(s, col);
  int n = sqlite3_column_bytes(s, col);
  if (!t || n < 0 || (size_t)n >= cap) return false;
  memcpy(dst, t, (size_t)n);
  dst[n] = '\0';
  return true;
}

static int row_to_instance(sqlite3_stmt *s, hsp_reg_instance_t *in) {
  memset(in, 0, sizeof *in);
  if (sqlite3_column_bytes(s, 0) != HSP_REG_KEY_BYTES) return HSP_REG_EDB;
  memcpy(in->key, sqlite3_column_blob(s, 0), HSP_REG_KEY_BYTES);
  if (!copy_text(in->name, sizeof in->name, s, 1) ||
      !copy_text(in->version, sizeof in->version, s, 2) ||
      !copy_text(in->tags, sizeof in->tags, s, 3))
    return HSP_REG_EDB;
  in->ttl_ms = (uint32_t)sqlite3_column_int64(s, 4);
  in->registered_ms = (uint64_t)sqlite3_column_int64(s, 5);
  in->renewed_ms = (uint64_t)sqlite3_column_int64(s, 6);
  in->expires_ms = (uint64_t)sqlite3_column_int64(s, 7);
  in->reg_seq = (uint64_t)sqlite3_column_int64(s, 8);
  return HSP_REG_OK;
}

/* meta 'base' = uint64 LE seq || 32-byte hash [|| 64-byte signature of that hash],
 * present after a snapshot install (no signature) or a compaction (signature). */
#define BASE_LEN (8 + HSP_REG_HASH_BYTES)
static int load_base(hsp_store_t *st) {
  sqlite3_stmt *s = S(st, S_META_GET);
  sqlite3_bind_text(s, 1, "base", -1, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  st->base_seq = 0;
  memset(st->base_hash, 0, sizeof st->base_hash);
  st->has_base_sig = false;
  if (rc == SQLITE_ROW) {
    const uint8_t *v = sqlite3_column_blob(s, 0);
    int n = sqlite3_column_bytes(s, 0);
    if (n != BASE_LEN && n != BASE_LEN + HSP_REG_SIG_BYTES) rc = SQLITE_CORRUPT;
    else {
      for (int i = 7; i >= 0; i--) st->base_seq = st->base_seq << 8 | v[i];
      memcpy(st->base_hash, v + 8, HSP_REG_HASH_BYTES);
      st->has_base_sig = n > BASE_LEN;
      if (st->has_base_sig) memcpy(st->base_sig, v + BASE_LEN, HSP_REG_SIG_BYTES);
      rc = SQLITE_DONE;
    }
  }
  sqlite3_reset(s);
  return rc == SQLITE_DONE ? HSP_REG_OK : HSP_REG_EDB;
}

static int load_head(hsp_store_t *st) {
  int err = load_base(st);
  if (err) return err;
  sqlite3_stmt *s = S(st, S_LOG_HEAD);
  int rc = sqlite3_step(s);
  st->head_seq = st->base_seq;
  memcpy(st->head_hash, st->base_hash, sizeof st->head_hash);
  if (rc == SQLITE_ROW) {
    if (sqlite3_column_bytes(s, 1) != HSP_REG_HASH_BYTES) rc = SQLITE_CORRUPT;
    else {
      st->head_seq = (uint64_t)sqlite3_column_int64(s, 0);
      memcpy(st->head_hash, sqlite3_column_blob(s, 1), HSP_REG_HASH_BYTES);
      rc = SQLITE_DONE;
    }
  }
  sqlite3_reset(s);
  return rc == SQLITE_DONE ? HSP_REG_OK : HSP_REG_EDB;
}

/* The store remembers whose log it holds; opening it with another key is refused. */
static int check_owner(hsp_store_t *st) {
  sqlite3_stmt *s = S(st, S_META_GET);
  sqlite3_bind_text(s, 1, "registry_public_key", -1, SQLITE_STATIC);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    bool same = sqlite3_column_bytes(s, 0) == HSP_REG_KEY_BYTES &&
                memcmp(sqlite3_column_blob(s, 0), st->pub, HSP_REG_KEY_BYTES) == 0;
    sqlite3_reset(s);
    return same ? HSP_REG_OK : HSP_REG_EKEY;
  }
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) return HSP_REG_EDB;
  s = S(st, S_META_INSERT);
  sqlite3_bind_text(s, 1, "registry_public_key", -1, SQLITE_STATIC);
  sqlite3_bind_blob(s, 2, st->pub, HSP_REG_KEY_BYTES, SQLITE_STATIC);
  return exec_done(s);
}

static int open_common(hsp_store_t **out, const char *path, bool leader) {
  *out = NULL;
  if (sodium_init() < 0) return HSP_REG_EINVAL;
  hsp_store_t *st = calloc(1, sizeof *st);
  if (!st) return HSP_REG_ENOMEM;
  st->leader = leader;
  st->retain = HSP_STORE_DEFAULT_RETAIN;
  int rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_busy_timeout(st->db, 5000);
    rc = sqlite3_exec(st->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
  }
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(st->db,
                      leader ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
                      NULL, NULL, NULL);
  /* A bigger page cache keeps the B-trees of a 100,000-instance registry in memory. */
  if (rc == SQLITE_OK) rc = sqlite3_exec(st->db, "PRAGMA cache_size=-32768", NULL, NULL, NULL);
  for (size_t i = 0; rc == SQLITE_OK && i < sizeof SCHEMA / sizeof SCHEMA[0]; i++)
    rc = sqlite3_exec(st->db, SCHEMA[i], NULL, NULL, NULL);
  /* Only the leader expires leases; a follower applies logged expiries by key. */
  /* A follower takes entries in batches of thousands; checkpointing (each one an fsync)
   * every 32 MiB of WAL rather than every 4 MiB keeps a fresh sync from waiting on disks. */
  if (rc == SQLITE_OK && !leader)
    rc = sqlite3_exec(st->db, "PRAGMA wal_autocheckpoint=8192", NULL, NULL, NULL);
  if (rc == SQLITE_OK && leader)
    rc = sqlite3_exec(st->db,
                      "CREATE INDEX IF NOT EXISTS instances_by_expiry ON instances (expires_ms)",
                      NULL, NULL, NULL);
  for (int i = 0; rc == SQLITE_OK && i < S_COUNT; i++)
    rc = sqlite3_prepare_v2(st->db, SQL[i], -1, &st->stmt[i], NULL);
  *out = st;
  if (rc != SQLITE_OK) return HSP_REG_EDB;
  return HSP_REG_OK;
}

int hsp_store_open(hsp_store_t **out, const char *path, const uint8_t secret[HSP_REG_SECRET_BYTES]) {
  hsp_store_t *st;
  int err = open_common(&st, path, true);
  if (st) {
    memcpy(st->secret, secret, HSP_REG_SECRET_BYTES);
    crypto_sign_ed25519_sk_to_pk(st->pub, secret);
  }
  if (!err) err = check_owner(st);
  if (!err) err = load_head(st);
  if (err) {
    hsp_store_close(st);
    return err;
  }
  *out = st;
  return HSP_REG_OK;
}

int hsp_store_open_follower(hsp_store_t **out, const char *path,
                            const uint8_t pub[HSP_REG_KEY_BYTES]) {
  hsp_store_t *st;
  int err = open_common(&st, path, false);
  if (st) memcpy(st->pub, pub, HSP_REG_KEY_BYTES);
  if (!err) err = check_owner(st);
  if (!err) err = load_head(st);
  if (err) {
    hsp_store_close(st);
    return err;
  }
  *out = st;
  return HSP_REG_OK;
}

void hsp_store_close(hsp_store_t *st) {
  if (!st) return;
  for (int i = 0; i < S_COUNT; i++) sqlite3_finalize(st->stmt[i]);
  sqlite3_close(st->db);
  sodium_memzero(st->secret, sizeof st->secret);
  free(st);
}

void hsp_store_head(hsp_store_t *st, uint64_t *seq, uint8_t hash[HSP_REG_HASH_BYTES]) {
  if (seq) *seq = st->head_seq;
  if (hash) memcpy(hash, st->head_hash, HSP_REG_HASH_BYTES);
}

const uint8_t *hsp_store_public_key(hsp_store_t *st) { return st->pub; }

/* Makes the live table reflect one entry. Both the leader and followers go through here, so
 * a follower's table is by construction what the leader's is. */
static int apply_to(hsp_store_t *st, const table_t *t, const hsp_reg_entry_t *e) {
  const hsp_reg_instance_t *in = &e->inst;
  sqlite3_stmt *s;
  switch (e->type) {
  case HSP_REG_REGISTER: {
    s = S(st, t->del);
    bind_key(s, 1, in->key);
    if (exec_done(s)) return HSP_REG_EDB;
    s = S(st, t->ins);
    bind_key(s, 1, in->key);
    sqlite3_bind_text(s, 2, in->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, in->version, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, in->tags, -1, SQLITE_STATIC);
    bind_u64(s, 5, in->ttl_ms);
    bind_u64(s, 6, e->time_ms);
    bind_u64(s, 7, e->time_ms);
    bind_u64(s, 8, in->expires_ms);
    bind_u64(s, 9, e->seq);
    return exec_done(s);
  }
  case HSP_REG_RENEW:
    s = S(st, t->renew);
    bind_u64(s, 1, in->ttl_ms);
    bind_u64(s, 2, e->time_ms);
    bind_u64(s, 3, in->expires_ms);
    bind_key(s, 4, in->key);
    if (exec_done(s)) return HSP_REG_EDB;
    return sqlite3_changes(st->db) == 1 ? HSP_REG_OK : HSP_REG_ECHAIN;
  default:
    s = S(st, t->del);
    bind_key(s, 1, in->key);
    if (exec_done(s)) return HSP_REG_EDB;
    return sqlite3_changes(st->db) == 1 ? HSP_REG_OK : HSP_REG_ECHAIN;
  }
}

static int apply_sql(hsp_store_t *st, const hsp_reg_entry_t *e) { return apply_to(st, &LIVE, e); }

static int log_insert(hsp_store_t *st, uint64_t seq, const uint8_t *body, size_t len,
                      const uint8_t *hash, const uint8_t *sig) {
  sqlite3_stmt *s = S(st, S_LOG_INSERT);
  bind_u64(s, 1, seq);
  sqlite3_bind_blob(s, 2, body, (int)len, SQLITE_STATIC);
  sqlite3_bind_blob(s, 3, hash, HSP_REG_HASH_BYTES, SQLITE_STATIC);
  sqlite3_bind_blob(s, 4, sig, HSP_REG_SIG_BYTES, SQLITE_STATIC);
  return exec_done(s);
}

static int check_stamp(hsp_store_t *st, const hsp_store_stamp_t *stamp) {
  if (!stamp) return HSP_REG_OK;
  sqlite3_stmt *s = S(st, S_CLOCK_GET);
  bind_key(s, 1, stamp->signer);
  int rc = sqlite3_step(s);
  uint64_t last = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(s, 0) : 0;
  sqlite3_reset(s);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return HSP_REG_EDB;
  if (rc == SQLITE_ROW && stamp->ts_ms <= last) return HSP_REG_EREPLAY;
  s = S(st, S_CLOCK_DELETE);
  bind_key(s, 1, stamp->signer);
  if (exec_done(s)) return HSP_REG_EDB;
  s = S(st, S_CLOCK_INSERT);
  bind_key(s, 1, stamp->signer);
  bind_u64(s, 2, stamp->ts_ms);
  return exec_done(s);
}

/* Appends e (seq and time filled in here) and applies it, inside the caller's transaction.
 * The in-memory head moves only after COMMIT (see finish). */
static int append(hsp_store_t *st, hsp_reg_entry_t *e, uint64_t now_ms, uint8_t hash[32]) {
  uint8_t body[HSP_REG_ENTRY_MAX], sig[HSP_REG_SIG_BYTES];
  e->seq = st->head_seq + 1;
  e->time_ms = now_ms;
  if (e->type == HSP_REG_REGISTER) {
    e->inst.registered_ms = e->inst.renewed_ms = now_ms;
    e->inst.reg_seq = e->seq;
  }
  int n = hsp_reg_entry_encode(e, body, sizeof body);
  if (n < 0) return n;
  hsp_reg_entry_hash(hash, st->head_hash, body, (size_t)n);
  hsp_reg_entry_sign(sig, hash, st->secret);
  int err = log_insert(st, e->seq, body, (size_t)n, hash, sig);
  if (!err) err = apply_sql(st, e);
  if (!err) {
    st->head_seq = e->seq;
    memcpy(st->head_hash, hash, HSP_REG_HASH_BYTES);
  }
  return err;
}

/* Commits, or rolls back and restores the head that was current at BEGIN. */
static int begin(hsp_store_t *st) { return tx(st, st->batch ? S_SAVEPOINT : S_BEGIN); }

static int finish(hsp_store_t *st, int err, uint64_t seq0, const uint8_t hash0[32]) {
  if (st->batch) {
    /* a failed change leaves the batch's other changes intact */
    if (err) tx(st, S_ROLLBACK_TO);
    int e2 = tx(st, S_RELEASE);
    if (!err) err = e2;
  } else {
    if (!err) err = tx(st, S_COMMIT);
    if (err) tx(st, S_ROLLBACK);
  }
  if (err) {
    st->head_seq = seq0;
    memcpy(st->head_hash, hash0, HSP_REG_HASH_BYTES);
  }
  return err;
}

static int write_base(hsp_store_t *st, uint64_t seq, const uint8_t hash[HSP_REG_HASH_BYTES],
                      const uint8_t *sig) {
  uint8_t base[BASE_LEN + HSP_REG_SIG_BYTES];
  for (int i = 0; i < 8; i++) base[i] = (uint8_t)(seq >> (8 * i));
  memcpy(base + 8, hash, HSP_REG_HASH_BYTES);
  if (sig) memcpy(base + BASE_LEN, sig, HSP_REG_SIG_BYTES);
  sqlite3_stmt *s = S(st, S_META_DELETE);
  sqlite3_bind_text(s, 1, "base", -1, SQLITE_STATIC);
  if (exec_done(s)) return HSP_REG_EDB;
  s = S(st, S_META_INSERT);
  sqlite3_bind_text(s, 1, "base", -1, SQLITE_STATIC);
  sqlite3_bind_blob(s, 2, base, sig ? (int)sizeof base : BASE_LEN, SQLITE_STATIC);
  return exec_done(s);
}

static void set_base(hsp_store_t *st, uint64_t seq, const uint8_t *hash, const uint8_t *sig) {
  st->base_seq = seq;
  memcpy(st->base_hash, hash, HSP_REG_HASH_BYTES);
  st->has_base_sig = sig != NULL;
  if (sig) memcpy(st->base_sig, sig, HSP_REG_SIG_BYTES);
}

typedef struct fold {
  hsp_store_t *st;
  uint64_t seq;
  uint8_t hash[HSP_REG_HASH_BYTES], sig[HSP_REG_SIG_BYTES];
  int err;
} fold_t;

/* Moves one entry from the log into the checkpoint. The entry was verified when it was
 * appended or followed, and hsp_store_verify re-checks the chain from the new base. */
static int fold_cb(void *ud, const hsp_store_record_t *r) {
  fold_t *f = ud;
  hsp_reg_entry_t e;
  f->err = r->seq == f->seq + 1 ? hsp_reg_entry_decode(&e, r->body, r->body_len) : HSP_REG_ECHAIN;
  if (!f->err && e.seq != r->seq) f->err = HSP_REG_ECHAIN;
  if (!f->err) f->err = apply_to(f->st, &CKPT, &e);
  if (!f->err) {
    f->seq = r->seq;
    memcpy(f->hash, r->hash, HSP_REG_HASH_BYTES);
    memcpy(f->sig, r->sig, HSP_REG_SIG_BYTES);
  }
  return f->err;
}

int hsp_store_compact(hsp_store_t *st, uint64_t upto) {
  if (st->batch) return HSP_REG_EINVAL;
  if (upto > st->head_seq) upto = st->head_seq;
  if (upto <= st->base_seq) return 0;
  if (tx(st, S_BEGIN)) return HSP_REG_EDB;
  fold_t f = {.st = st, .seq = st->base_seq};
  int err = hsp_store_entries_after(st, st->base_seq, (size_t)(upto - st->base_seq), fold_cb, &f);
  if (!err) err = f.err;
  if (!err && f.seq != upto) err = HSP_REG_ECHAIN; /* a hole in the log */
  if (!err) {
    sqlite3_stmt *s = S(st, S_LOG_PRUNE);
    bind_u64(s, 1, upto);
    err = exec_done(s);
  }
  if (!err) err = write_base(st, upto, f.hash, f.sig);
  if (!err) err = tx(st, S_COMMIT);
  if (err) {
    tx(st, S_ROLLBACK);
    return err;
  }
  uint64_t folded = upto - st->base_seq;
  set_base(st, upto, f.hash, f.sig);
  return (int)(folded > INT32_MAX ? INT32_MAX : folded);
}

void hsp_store_set_retention(hsp_store_t *st, uint64_t entries) { st->retain = entries; }

void hsp_store_base(hsp_store_t *st, uint64_t *seq, uint8_t hash[HSP_REG_HASH_BYTES]) {
  if (seq) *seq = st->base_seq;
  if (hash) memcpy(hash, st->base_hash, HSP_REG_HASH_BYTES);
}

/* After a committed change: once the log holds twice the retention, fold the older half
 * into the checkpoint, so the log stays between retain and 2 x retain entries and each
 * entry is folded once. A failure leaves everything as it was; the next change retries. */
static void maybe_compact(hsp_store_t *st) {
  if (st->retain && !st->batch && st->head_seq - st->base_seq > 2 * st->retain)
    hsp_store_compact(st, st->head_seq - st->retain);
}

int hsp_store_batch_begin(hsp_store_t *st) {
  if (!st->leader || st->batch) return HSP_REG_EDENIED;
  if (tx(st, S_BEGIN)) return HSP_REG_EDB;
  st->batch = true;
  st->batch_seq = st->head_seq;
  memcpy(st->batch_hash, st->head_hash, HSP_REG_HASH_BYTES);
  return HSP_REG_OK;
}

int hsp_store_batch_commit(hsp_store_t *st) {
  if (!st->batch) return HSP_REG_EINVAL;
  st->batch = false;
  int err = tx(st, S_COMMIT);
  if (err) {
    tx(st, S_ROLLBACK);
    st->head_seq = st->batch_seq;
    memcpy(st->head_hash, st->batch_hash, HSP_REG_HASH_BYTES);
  }
  if (!err) maybe_compact(st);
  return err;
}

static int get_instance(hsp_store_t *st, const uint8_t *key, hsp_reg_instance_t *out) {
  sqlite3_stmt *s = S(st, S_INST_GET);
  bind_key(s, 1, key);
  int rc = sqlite3_step(s);
  int err = rc == SQLITE_ROW ? row_to_instance(s, out)
            : rc == SQLITE_DONE ? HSP_REG_ENOTFOUND
                                : HSP_REG_EDB;
  sqlite3_reset(s);
  return err;
}

int hsp_store_get(hsp_store_t *st, const uint8_t key[HSP_REG_KEY_BYTES], hsp_reg_instance_t *out) {
  return get_instance(st, key, out);
}

/* One change: BEGIN, stamp check, entry, COMMIT. */
static int change(hsp_store_t *st, hsp_reg_entry_t *e, const hsp_store_stamp_t *stamp,
                  uint64_t now_ms, bool must_exist, hsp_reg_entry_t *out) {
  if (!st->leader) return HSP_REG_EDENIED;
  uint64_t seq0 = st->head_seq;
  uint8_t hash0[HSP_REG_HASH_BYTES], hash[HSP_REG_HASH_BYTES];
  memcpy(hash0, st->head_hash, sizeof hash0);
  if (begin(st)) return HSP_REG_EDB;
  int err = check_stamp(st, stamp);
  if (!err && must_exist) {
    hsp_reg_instance_t cur;
    err = get_instance(st, e->inst.key, &cur);
  }
  if (!err) err = append(st, e, now_ms, hash);
  err = finish(st, err, seq0, hash0);
  if (!err && out) *out = *e;
  if (!err) maybe_compact(st);
  return err;
}

int hsp_store_register(hsp_store_t *st, const hsp_reg_instance_t *inst,
                       const hsp_store_stamp_t *stamp, uint64_t now_ms, hsp_reg_entry_t *entry) {
  if (!hsp_reg_name_valid(inst->name, strnlen(inst->name, sizeof inst->name)) ||
      !hsp_reg_version_valid(inst->version, strnlen(inst->version, sizeof inst->version)) ||
      !hsp_reg_tags_valid(inst->tags, strnlen(inst->tags, sizeof inst->tags)) ||
      inst->ttl_ms < HSP_REG_TTL_MIN_MS || inst->ttl_ms > HSP_REG_TTL_MAX_MS)
    return HSP_REG_EINVAL;
  hsp_reg_entry_t e;
  memset(&e, 0, sizeof e);
  e.type = HSP_REG_REGISTER;
  e.inst = *inst;
  e.inst.expires_ms = now_ms + inst->ttl_ms;
  return change(st, &e, stamp, now_ms, false, entry);
}

int hsp_store_renew(hsp_store_t *st, const uint8_t key[HSP_REG_KEY_BYTES], uint32_t ttl_ms,
                    const hsp_store_stamp_t *stamp, uint64_t now_ms, hsp_reg_entry_t *entry) {
  if (ttl_ms < HSP_REG_TTL_MIN_MS || ttl_ms > HSP_REG_TTL_MAX_MS) return HSP_REG_EINVAL;
  hsp_reg_entry_t e;
  memset(&e, 0, sizeof e);
  e.type = HSP_REG_RENEW;
  memcpy(e.inst.key, key, HSP_REG_KEY_BYTES);
  e.inst.ttl_ms = ttl_ms;
  e.inst.expires_ms = now_ms + ttl_ms;
  e.inst.renewed_ms = now_ms;
  return change(st, &e, stamp, now_ms, true, entry);
}

int hsp_store_deregister(hsp_store_t *st, const uint8_t key[HSP_REG_KEY_BYTES], uint8_t by,
                         const hsp_store_stamp_t *stamp, uint64_t now_ms, hsp_reg_entry_t *entry) {
  if (by > 1) return HSP_REG_EINVAL;
  hsp_reg_entry_t e;
  memset(&e, 0, sizeof e);
  e.type = HSP_REG_DEREGISTER;
  e.by = by;
  memcpy(e.inst.key, key, HSP_REG_KEY_BYTES);
  return change(st, &e, stamp, now_ms, true, entry);
}

int hsp_store_expire(hsp_store_t *st, uint64_t now_ms,
                     void (*cb)(void *ud, const hsp_reg_entry_t *e), void *ud) {
  if (!st->leader) return HSP_REG_EDENIED;
  /* Collect first: the SELECT must not stay open across the DELETEs it drives. */
  size_t n = 0, cap = 0;
  uint8_t(*keys)[HSP_REG_KEY_BYTES] = NULL;
  sqlite3_stmt *s = S(st, S_INST_EXPIRED);
  bind_u64(s, 1, now_ms);
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (sqlite3_column_bytes(s, 0) != HSP_REG_KEY_BYTES) continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      void *p = realloc(keys, cap * sizeof *keys);
      if (!p) {
        sqlite3_reset(s);
        free(keys);
        return HSP_REG_ENOMEM;
      }
      keys = p;
    }
    memcpy(keys[n++], sqlite3_column_blob(s, 0), HSP_REG_KEY_BYTES);
  }
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) {
    free(keys);
    return HSP_REG_EDB;
  }
  if (n == 0) {
    free(keys);
    return 0;
  }
  hsp_reg_entry_t *es = calloc(n, sizeof *es);
  if (!es) {
    free(keys);
    return HSP_REG_ENOMEM;
  }
  uint64_t seq0 = st->head_seq;
  uint8_t hash0[HSP_REG_HASH_BYTES], hash[HSP_REG_HASH_BYTES];
  memcpy(hash0, st->head_hash, sizeof hash0);
  int err = begin(st) ? HSP_REG_EDB : HSP_REG_OK;
  if (!err) {
    for (size_t i = 0; i < n && !err; i++) {
      es[i].type = HSP_REG_EXPIRE;
      memcpy(es[i].inst.key, keys[i], HSP_REG_KEY_BYTES);
      err = append(st, &es[i], now_ms, hash);
    }
    err = finish(st, err, seq0, hash0);
  }
  if (!err) maybe_compact(st);
  if (!err && cb)
    for (size_t i = 0; i < n; i++) cb(ud, &es[i]);
  free(keys);
  free(es);
  return err ? err : (int)n;
}

uint64_t hsp_store_next_expiry(hsp_store_t *st) {
  sqlite3_stmt *s = S(st, S_INST_NEXT_EXPIRY);
  uint64_t t = UINT64_MAX;
  if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
    t = (uint64_t)sqlite3_column_int64(s, 0);
  sqlite3_reset(s);
  return t;
}

static int collect(sqlite3_stmt *s, hsp_reg_instance_t **out, size_t *n) {
  size_t cap = 0;
  *out = NULL;
  *n = 0;
  int rc, err = HSP_REG_OK;
  while (!err && (rc = sqlite3_step(s)) == SQLITE_ROW) {
    if (*n == cap) {
      cap = cap ? cap * 2 : 8;
      void *p = realloc(*out, cap * sizeof **out);
      if (!p) {
        err = HSP_REG_ENOMEM;
        break;
      }
      *out = p;
    }
    err = row_to_instance(s, &(*out)[(*n)++]);
  }
  if (!err && rc != SQLITE_DONE) err = HSP_REG_EDB;
  sqlite3_reset(s);
  if (err) {
    free(*out);
    *out = NULL;
    *n = 0;
  }
  return err;
}

static int order_cmp(const void *a, const void *b) { return hsp_reg_instance_order(a, b); }

int hsp_store_query(hsp_store_t *st, const char *name, const char *range,
                    hsp_reg_instance_t **out, size_t *n) {
  hsp_semver_range_t r;
  *out = NULL;
  *n = 0;
  if (hsp_semver_range_parse(&r, range, strlen(range))) return HSP_REG_ERANGE;
  sqlite3_stmt *s = S(st, S_INST_BY_NAME);
  sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
  hsp_reg_instance_t *all;
  size_t total;
  int err = collect(s, &all, &total);
  if (err) {
    hsp_semver_range_free(&r);
    return err;
  }
  size_t k = 0;
  for (size_t i = 0; i < total; i++) {
    hsp_semver_t v;
    if (hsp_semver_parse(&v, all[i].version, strlen(all[i].version)) == 0 &&
        hsp_semver_range_test(&r, &v))
      all[k++] = all[i];
  }
  hsp_semver_range_free(&r);
  /* rows come in registration order and qsort is not stable, but reg_seq breaks ties */
  if (k) qsort(all, k, sizeof *all, order_cmp);
  if (!k) {
    free(all);
    all = NULL;
  }
  *out = all;
  *n = k;
  return HSP_REG_OK;
}

int hsp_store_list(hsp_store_t *st, hsp_reg_instance_t **out, size_t *n) {
  return collect(S(st, S_INST_ALL), out, n);
}

int hsp_store_entries_after(hsp_store_t *st, uint64_t after, size_t limit,
                            int (*cb)(void *ud, const hsp_store_record_t *r), void *ud) {
  /* Compacted away: the caller cannot be given a contiguous chain from `after`. The
   * registry answers this ECHAIN like a fork: the replica takes a SNAPSHOT, then WATCHes. */
  if (after < st->base_seq) return HSP_REG_ECHAIN;
  sqlite3_stmt *s = S(st, S_LOG_AFTER);
  bind_u64(s, 1, after);
  sqlite3_bind_int64(s, 2, limit ? (sqlite3_int64)limit : -1);
  int rc, err = HSP_REG_OK;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    hsp_store_record_t r = {
        .seq = (uint64_t)sqlite3_column_int64(s, 0),
        .body = sqlite3_column_blob(s, 1),
        .body_len = (size_t)sqlite3_column_bytes(s, 1),
        .hash = sqlite3_column_blob(s, 2),
        .sig = sqlite3_column_blob(s, 3),
    };
    if (sqlite3_column_bytes(s, 2) != HSP_REG_HASH_BYTES ||
        sqlite3_column_bytes(s, 3) != HSP_REG_SIG_BYTES) {
      err = HSP_REG_EDB;
      break;
    }
    if (cb(ud, &r)) break;
  }
  if (!err && rc != SQLITE_ROW && rc != SQLITE_DONE) err = HSP_REG_EDB;
  sqlite3_reset(s);
  return err;
}

/* Checks one record against the previous hash: sequence, hash, signature, decodability. */
static int verify_record(const uint8_t pub[32], uint64_t prev_seq, const uint8_t prev[32],
                         const hsp_store_record_t *r, uint8_t hash_out[32], hsp_reg_entry_t *e,
                         bool check_sig) {
  if (r->seq != prev_seq + 1) return HSP_REG_ECHAIN;
  if (r->body_len > HSP_REG_ENTRY_MAX) return HSP_REG_EINVAL;
  hsp_reg_entry_hash(hash_out, prev, r->body, r->body_len);
  if (check_sig && !hsp_reg_entry_verify(r->sig, hash_out, pub)) return HSP_REG_ESIG;
  int err = hsp_reg_entry_decode(e, r->body, r->body_len);
  if (err) return err;
  return e->seq == r->seq ? HSP_REG_OK : HSP_REG_ECHAIN;
}

int hsp_store_follow(hsp_store_t *st, const hsp_store_record_t *recs, size_t n,
                     hsp_reg_entry_t *entries) {
  if (st->leader) return HSP_REG_EDENIED;
  if (n == 0) return HSP_REG_OK;
  uint64_t seq0 = st->head_seq;
  uint8_t hash0[HSP_REG_HASH_BYTES];
  memcpy(hash0, st->head_hash, sizeof hash0);
  if (tx(st, S_BEGIN)) return HSP_REG_EDB;
  int err = HSP_REG_OK;
  for (size_t i = 0; i < n && !err; i++) {
    hsp_reg_entry_t e;
    uint8_t hash[HSP_REG_HASH_BYTES];
    /* The last signature covers the batch: it signs hash_n, which commits to every body
     * before it through the chain from our trusted head. One Ed25519 verification per
     * batch instead of per entry is what lets a fresh proxy take 100,000 entries fast. */
    err = verify_record(st->pub, st->head_seq, st->head_hash, &recs[i], hash, &e, i + 1 == n);
    if (!err) err = log_insert(st, e.seq, recs[i].body, recs[i].body_len, hash, recs[i].sig);
    if (!err) err = apply_sql(st, &e);
    if (!err) {
      st->head_seq = e.seq;
      memcpy(st->head_hash, hash, HSP_REG_HASH_BYTES);
      if (entries) entries[i] = e;
    }
  }
  err = finish(st, err, seq0, hash0);
  if (!err) maybe_compact(st);
  return err;
}

typedef struct verify_ctx {
  const uint8_t *pub;
  uint64_t seq;
  uint8_t hash[HSP_REG_HASH_BYTES];
  hsp_reg_index_t *ix;
  bool replay;
  int err;
} verify_ctx_t;

static int verify_cb(void *ud, const hsp_store_record_t *r) {
  verify_ctx_t *v = ud;
  hsp_reg_entry_t e;
  uint8_t hash[HSP_REG_HASH_BYTES];
  v->err = verify_record(v->pub, v->seq, v->hash, r, hash, &e, true);
  if (!v->err && memcmp(hash, r->hash, HSP_REG_HASH_BYTES) != 0) v->err = HSP_REG_ECHAIN;
  if (!v->err && v->replay) v->err = hsp_reg_index_apply(v->ix, &e) ? HSP_REG_ECHAIN : HSP_REG_OK;
  v->seq = r->seq;
  memcpy(v->hash, hash, HSP_REG_HASH_BYTES);
  return v->err;
}

static bool same_instance(const hsp_reg_instance_t *a, const hsp_reg_instance_t *b) {
  return !memcmp(a->key, b->key, 32) && !strcmp(a->name, b->name) &&
         !strcmp(a->version, b->version) && !strcmp(a->tags, b->tags) &&
         a->ttl_ms == b->ttl_ms && a->registered_ms == b->registered_ms &&
         a->renewed_ms == b->renewed_ms && a->expires_ms == b->expires_ms &&
         a->reg_seq == b->reg_seq;
}

int hsp_store_verify(hsp_store_t *st) {
  verify_ctx_t v = {.pub = st->pub, .seq = st->base_seq, .ix = hsp_reg_index_new(), .err = 0};
  if (!v.ix) return HSP_REG_ENOMEM;
  memcpy(v.hash, st->base_hash, sizeof v.hash);
  int err = HSP_REG_OK;
  /* The replay starts from the checkpoint (the live set at the base). A base from
   * compaction carries the folded entry's signature; one from a snapshot install was
   * authenticated by the snapshot's signature when it was installed. */
  const bool replay = true;
  v.replay = replay;
  if (st->has_base_sig && !hsp_reg_entry_verify(st->base_sig, st->base_hash, st->pub))
    err = HSP_REG_ESIG;
  hsp_reg_instance_t *ck = NULL;
  size_t nck = 0;
  if (!err) err = collect(S(st, S_CK_ALL), &ck, &nck);
  for (size_t i = 0; !err && i < nck; i++) err = hsp_reg_index_put(v.ix, &ck[i]);
  free(ck);
  if (!err) {
    sqlite3_stmt *s = S(st, S_LOG_COUNT);
    if (sqlite3_step(s) != SQLITE_ROW) err = HSP_REG_EDB;
    else if ((uint64_t)sqlite3_column_int64(s, 0) != st->head_seq - st->base_seq)
      err = HSP_REG_ECHAIN; /* entries below the base, or a hole */
    sqlite3_reset(s);
  }
  if (!err) err = hsp_store_entries_after(st, st->base_seq, 0, verify_cb, &v);
  if (!err) err = v.err;
  if (!err && (v.seq != st->head_seq || memcmp(v.hash, st->head_hash, 32) != 0))
    err = HSP_REG_ECHAIN;
  hsp_reg_instance_t *all = NULL;
  size_t n = 0;
  if (!err && replay) err = hsp_store_list(st, &all, &n);
  if (!err && replay && n != hsp_reg_index_count(v.ix)) err = HSP_REG_ECHAIN;
  for (size_t i = 0; !err && i < n; i++) {
    hsp_reg_instance_t x;
    if (!hsp_reg_index_get(v.ix, all[i].key, &x) || !same_instance(&x, &all[i]))
      err = HSP_REG_ECHAIN;
  }
  free(all);
  hsp_reg_index_free(v.ix);
  return err;
}

int hsp_store_install_snapshot(hsp_store_t *st, uint64_t seq, const uint8_t hash[HSP_REG_HASH_BYTES],
                               int (*next)(void *ud, hsp_reg_instance_t *out), void *ud) {
  if (st->leader) return HSP_REG_EDENIED;
  uint64_t seq0 = st->head_seq;
  uint8_t hash0[HSP_REG_HASH_BYTES];
  memcpy(hash0, st->head_hash, sizeof hash0);
  if (tx(st, S_BEGIN)) return HSP_REG_EDB;
  int err = tx(st, S_LOG_CLEAR);
  if (!err) err = tx(st, S_INST_CLEAR);
  if (!err) err = tx(st, S_CK_CLEAR);
  hsp_reg_instance_t in;
  int more;
  while (!err && (more = next(ud, &in)) != 0) {
    if (more < 0 || in.reg_seq > seq) {
      err = HSP_REG_EINVAL;
      break;
    }
    hsp_reg_entry_t e;
    memset(&e, 0, sizeof e);
    e.type = HSP_REG_REGISTER;
    e.seq = in.reg_seq;
    e.time_ms = in.registered_ms;
    e.inst = in;
    /* the snapshot is both the live set and the checkpoint the log replays from */
    for (int t = 0; t < 2 && !err; t++) {
      const table_t *tab = t ? &CKPT : &LIVE;
      e.type = HSP_REG_REGISTER;
      e.time_ms = in.registered_ms;
      err = apply_to(st, tab, &e);
      /* a renewed instance: registration fields came from its register, lease from renew */
      if (!err && (in.renewed_ms != in.registered_ms)) {
        e.type = HSP_REG_RENEW;
        e.time_ms = in.renewed_ms;
        err = apply_to(st, tab, &e);
      }
    }
  }
  if (!err) err = write_base(st, seq, hash, NULL);
  if (!err) {
    st->head_seq = seq;
    memcpy(st->head_hash, hash, HSP_REG_HASH_BYTES);
  }
  err = finish(st, err, seq0, hash0);
  if (!err) set_base(st, seq, hash, NULL);
  return err;
}
