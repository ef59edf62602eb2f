/*
 * bench registry_registrations_per_s: signed registrations through the server, each
 *   acknowledged after its commit (WAL, synchronous=FULL) on a file in $1.
 * bench registry_registrations_grouped_per_s: the same, 50 requests per commit
 *   (hsp_reg_server_handle_many), each still acknowledged only after the commit.
 * bench replica_sync_100k_s: a fresh replica (file-backed) taking 100,000 log entries as
 *   the registry sends them (ENTRIES messages from SYNC): decode, verify, persist, index.
 * bench replica_lookup_p50_us: name + range lookups from that replica's memory.
 */
#include <sodium.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "replica.h"
#include "server.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct outbuf {
  uint8_t **msgs;
  size_t *lens;
  size_t n, cap;
} outbuf_t;

static void keep(void *ud, uint64_t conn, const uint8_t *msg, size_t len) {
  (void)conn;
  outbuf_t *o = ud;
  if (!o) return;
  if (o->n == o->cap) {
    o->cap = o->cap ? o->cap * 2 : 64;
    o->msgs = realloc(o->msgs, o->cap * sizeof *o->msgs);
    o->lens = realloc(o->lens, o->cap * sizeof *o->lens);
  }
  o->msgs[o->n] = malloc(len);
  memcpy(o->msgs[o->n], msg, len);
  o->lens[o->n++] = len;
}

static void rm_db(const char *path) {
  char p[512];
  unlink(path);
  snprintf(p, sizeof p, "%s-wal", path);
  unlink(p);
  snprintf(p, sizeof p, "%s-shm", path);
  unlink(p);
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "/tmp";
  if (sodium_init() < 0) return 1;
  uint8_t reg_pk[32], reg_sk[64];
  crypto_sign_keypair(reg_pk, reg_sk);
  char path[400], rpath[400];
  snprintf(path, sizeof path, "%s/hsp_bench_registry_%d.db", dir, (int)getpid());
  snprintf(rpath, sizeof rpath, "%s/hsp_bench_replica_%d.db", dir, (int)getpid());
  rm_db(path);
  rm_db(rpath);
  uint64_t clock_ms = 1700000000000ull;

  /* 1. durable registrations through the full request path */
  {
    hsp_store_t *st;
    if (hsp_store_open(&st, path, reg_sk)) return 1;
    hsp_reg_server_config_t cfg = {.store = st, .secret = reg_sk, .send = keep, .ud = NULL};
    hsp_reg_server_t *srv = hsp_reg_server_new(&cfg);
    const int N = 2000;
    uint8_t (*bufs)[512] = malloc((size_t)N * 512);
    size_t *lens = malloc((size_t)N * sizeof *lens);
    for (int i = 0; i < N; i++) {
      uint8_t pk[32], sk[64];
      crypto_sign_keypair(pk, sk);
      hsp_reg_msg_t m;
      memset(&m, 0, sizeof m);
      m.id = (uint64_t)i + 1;
      m.type = HSP_REG_MSG_REGISTER;
      memcpy(m.inst.key, pk, 32);
      snprintf(m.inst.name, sizeof m.inst.name, "svc%d", i % 10);
      snprintf(m.inst.version, sizeof m.inst.version, "1.%d.0", i % 7);
      snprintf(m.inst.tags, sizeof m.inst.tags, "{\"port\":%d}", 5000 + i);
      m.inst.ttl_ms = 15000;
      memcpy(m.registry, reg_pk, 32);
      m.ts_ms = clock_ms;
      hsp_reg_msg_sign(&m, sk);
      lens[i] = (size_t)hsp_reg_msg_encode(&m, bufs[i], 512);
    }
    /* first half one commit each, second half group-committed 50 at a time */
    const int H = N / 2, G = 50;
    double t0 = now_s();
    for (int i = 0; i < H; i++)
      if (hsp_reg_server_handle(srv, 1, bufs[i], lens[i], clock_ms)) return 1;
    double dt = now_s() - t0;
    printf("bench registry_registrations_per_s %.0f\n", H / dt);
    t0 = now_s();
    for (int i = H; i < N; i += G) {
      hsp_reg_input_t in[50];
      for (int k = 0; k < G; k++) in[k] = (hsp_reg_input_t){(uint64_t)k, bufs[i + k], lens[i + k]};
      if (hsp_reg_server_handle_many(srv, in, (size_t)G, clock_ms)) return 1;
    }
    dt = now_s() - t0;
    printf("bench registry_registrations_grouped_per_s %.0f\n", (N - H) / dt);
    free(bufs);
    free(lens);
    hsp_reg_server_free(srv);
    hsp_store_close(st);
    rm_db(path);
  }

  /* 2. a 100,000-entry log: 1,000 roles x 100 instances, versions 1.0.0 .. 3.4.x */
  const int TOTAL = 100000, ROLES = 1000;
  hsp_store_t *st;
  if (hsp_store_open(&st, ":memory:", reg_sk)) return 1;
  for (int i = 0; i < TOTAL; i++) {
    hsp_reg_instance_t in;
    memset(&in, 0, sizeof in);
    randombytes_buf(in.key, 32);
    snprintf(in.name, sizeof in.name, "role%d", i % ROLES);
    snprintf(in.version, sizeof in.version, "%d.%d.%d", 1 + (i / ROLES) % 3, (i / 7) % 5,
             i % 11);
    snprintf(in.tags, sizeof in.tags, "{\"host\":\"10.0.%d.%d\",\"port\":%d}", (i >> 8) & 255,
             i & 255, 5000 + i % 1000);
    in.ttl_ms = 15000;
    if (hsp_store_register(st, &in, NULL, clock_ms + (uint64_t)i, NULL)) return 1;
  }
  outbuf_t out = {0};
  hsp_reg_server_config_t cfg = {.store = st, .secret = reg_sk, .send = keep, .ud = &out};
  hsp_reg_server_t *srv = hsp_reg_server_new(&cfg);
  hsp_reg_replica_t *rep;
  if (hsp_reg_replica_open(&rep, rpath, reg_pk)) return 1;
  /* the registry's side (reading and encoding its log) is not counted */
  uint8_t *w;
  long wn = hsp_reg_replica_watch_request(rep, 1, &w);
  hsp_reg_server_handle(srv, 1, w, (size_t)wn, clock_ms);
  free(w);
  double t0 = now_s(), c0 = cpu_s();
  for (size_t i = 0; i < out.n; i++)
    if (hsp_reg_replica_receive(rep, out.msgs[i], out.lens[i]) < 0) return 1;
  double dt = now_s() - t0;
  if (hsp_reg_replica_count(rep) != (size_t)TOTAL) return 1;
  printf("bench replica_sync_100k_s %.3f\n", dt);
  fprintf(stderr, "replica_sync_100k cpu %.3f s (wall %.3f s: the rest is waiting on a busy machine)\n",
          cpu_s() - c0, dt);

  /* 3. lookups */
  const int Q = 20000;
  const char *ranges[] = {"^1.2.0", "2.x", "*", ">=1.3.0 <3.0.0", "~3.4.0", "1 || 3"};
  double *lat = malloc((size_t)Q * sizeof *lat);
  hsp_reg_instance_t *res = malloc(8 * sizeof *res);
  long found = 0;
  for (int i = 0; i < Q; i++) {
    char name[32];
    snprintf(name, sizeof name, "role%d", (int)(randombytes_uniform(ROLES)));
    double a = now_s();
    long n = hsp_reg_replica_query(rep, name, ranges[i % 6], res, 8);
    lat[i] = (now_s() - a) * 1e6;
    if (n > 0) found += n;
  }
  qsort(lat, (size_t)Q, sizeof *lat, cmp_double);
  printf("bench replica_lookup_p50_us %.2f\n", lat[Q / 2]);
  fflush(stdout);
  fprintf(stderr, "replica_lookup p99 %.2f us, %ld matches over %d lookups\n", lat[Q * 99 / 100],
          found, Q);
  free(lat);
  free(res);
  for (size_t i = 0; i < out.n; i++) free(out.msgs[i]);
  free(out.msgs);
  free(out.lens);
  hsp_reg_replica_close(rep);
  hsp_reg_server_free(srv);
  hsp_store_close(st);
  rm_db(rpath);
  return 0;
}
