/*
 * Session pool tests on a simulated clock and an in-memory network of service sessions:
 * lazy open (one connect for many tunnels), tunnels waiting for the session, idle close,
 * connect failure and timeout, death of a session (every tunnel fails with EDEAD and is
 * retried on another instance from the close callback), GOAWAY.
 */
#include "check.h"
#include "pool.h"

#include <stdio.h>
#include <stdlib.h>

#define NINST 3
static uint8_t K[NINST][32];
static uint64_t now;

typedef struct svc {
  hsp_sess_t *s;       /* service side of the session, when connected */
  bool connecting, up, killed, refuse;
  int connects, disconnects;
  uint8_t *q[1024];    /* frames service -> proxy */
  size_t qlen[1024], n;
} svc_t;

static svc_t S[NINST];
static hsp_pool_t *P;

typedef struct conn {
  int id;
  int key; /* instance index in use */
  bool ready, closed, forwarded;
  int err, tries;
} conn_t;

static int ready_count, close_count, down_count, up_count, goaway_count;
static bool retry_on_close;

static int kidx(const uint8_t *key) {
  for (int i = 0; i < NINST; i++)
    if (memcmp(K[i], key, 32) == 0) return i;
  return -1;
}

/* ---- service side ---- */
static int svc_send(void *ud, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
  svc_t *v = ud;
  if (v->killed || v->n == 1024) return 0;
  uint8_t *f = malloc(alen + blen + 1);
  memcpy(f, a, alen);
  if (blen) memcpy(f + alen, b, blen);
  v->q[v->n] = f;
  v->qlen[v->n++] = alen + blen;
  return 0;
}
static int svc_tag;
static void *svc_accept(void *ud, hsp_sess_t *s, uint32_t ch) {
  svc_t *v = ud;
  if (v->refuse) {
    hsp_sess_refuse(s, ch, HSP_SESS_CODE_REFUSED);
    return &svc_tag; /* already closed: the pointer is never used */
  }
  hsp_sess_ready(s, ch);
  return &svc_tag;
}
static const hsp_sess_callbacks_t svc_cb = {.send = svc_send, .on_accept = svc_accept};

/* ---- proxy side (the pool's I/O) ---- */
static bool sync_connect = false;
static void p_connect(void *ud, const uint8_t key[32]) {
  (void)ud;
  svc_t *v = &S[kidx(key)];
  v->connects++;
  v->connecting = true;
  if (sync_connect) {
    v->connecting = false;
    if (v->killed) {
      hsp_pool_failed(P, key, now, HSP_SESS_EDEAD);
      return;
    }
    v->up = true;
    v->s = hsp_sess_new(NULL, &svc_cb, v, now);
    hsp_pool_connected(P, key, now);
  }
}
static void p_disconnect(void *ud, const uint8_t key[32]) {
  (void)ud;
  svc_t *v = &S[kidx(key)];
  v->disconnects++;
  v->up = v->connecting = false;
  hsp_sess_free(v->s);
  v->s = NULL;
  for (size_t i = 0; i < v->n; i++) free(v->q[i]);
  v->n = 0;
}
static int p_send(void *ud, const uint8_t key[32], const uint8_t *a, size_t alen, const uint8_t *b,
                  size_t blen) {
  (void)ud;
  svc_t *v = &S[kidx(key)];
  if (v->killed || !v->s) return 0;
  uint8_t *f = malloc(alen + blen + 1);
  memcpy(f, a, alen);
  if (blen) memcpy(f + alen, b, blen);
  hsp_sess_recv(v->s, f, alen + blen, now);
  free(f);
  return 0;
}
static void t_ready(void *ud, hsp_sess_t *s, uint32_t ch, void *user) {
  (void)ud, (void)s, (void)ch;
  conn_t *c = user;
  c->ready = true;
  ready_count++;
}
static void t_close(void *ud, hsp_sess_t *s, uint32_t ch, void *user, int err);
static void on_up(void *ud, const uint8_t key[32], double lat) {
  (void)ud, (void)key, (void)lat;
  up_count++;
}
static void on_down(void *ud, const uint8_t key[32], int err) {
  (void)ud, (void)key, (void)err;
  down_count++;
}
static void on_goaway(void *ud, const uint8_t key[32]) {
  (void)ud, (void)key;
  goaway_count++;
}

static void t_close(void *ud, hsp_sess_t *s, uint32_t ch, void *user, int err) {
  (void)ud, (void)s, (void)ch;
  conn_t *c = user;
  close_count++;
  if (retry_on_close && !c->ready && !c->forwarded && c->tries < NINST) {
    /* The proxy's failover: the next instance, from inside the callback. */
    c->key = (c->key + 1) % NINST;
    c->tries++;
    CHECK_EQ_INT(hsp_pool_open(P, K[c->key], now, c), 0);
    return;
  }
  c->closed = true;
  c->err = err;
}

static void deliver(void) {
  for (int i = 0; i < NINST; i++) {
    svc_t *v = &S[i];
    while (v->n) {
      uint8_t *f = v->q[0];
      size_t len = v->qlen[0];
      memmove(v->q, v->q + 1, (v->n - 1) * sizeof *v->q);
      memmove(v->qlen, v->qlen + 1, (v->n - 1) * sizeof *v->qlen);
      v->n--;
      if (!v->killed && v->up) hsp_pool_recv(P, K[i], f, len, now);
      free(f);
    }
  }
}

static void connect_now(int i) {
  svc_t *v = &S[i];
  CHECK(v->connecting);
  v->connecting = false;
  v->up = true;
  v->s = hsp_sess_new(NULL, &svc_cb, v, now);
  hsp_pool_connected(P, K[i], now);
  deliver();
}

/* Frees the pool while the tunnels' owners are still alive (it fails what is left). */
static void finish(void) {
  retry_on_close = false;
  hsp_pool_free(P);
  P = NULL;
  for (int i = 0; i < NINST; i++) {
    hsp_sess_free(S[i].s);
    for (size_t j = 0; j < S[i].n; j++) free(S[i].q[j]);
    memset(&S[i], 0, sizeof S[i]);
  }
}

static void reset(void) {
  ready_count = close_count = down_count = up_count = goaway_count = 0;
  retry_on_close = sync_connect = false;
  now = 0;
  hsp_pool_callbacks_t cb = {.connect = p_connect,
                             .disconnect = p_disconnect,
                             .send = p_send,
                             .tunnel = {.on_ready = t_ready, .on_close = t_close},
                             .on_session_up = on_up,
                             .on_session_down = on_down,
                             .on_goaway = on_goaway};
  hsp_pool_config_t cfg = {.idle_ms = 10000, .connect_timeout_ms = 3000,
                           .sess = {.ping_ms = 250, .dead_ms = 1000}};
  P = hsp_pool_new(&cfg, &cb, NULL);
}

static void test_lazy_and_idle(void) {
  reset();
  CHECK_EQ_INT(hsp_pool_count(P), 0);
  conn_t c[50] = {0};
  for (int i = 0; i < 50; i++) CHECK_EQ_INT(hsp_pool_open(P, K[0], now, &c[i]), 0);
  CHECK_EQ_INT(S[0].connects, 1); /* one session for every tunnel */
  CHECK(hsp_pool_session(P, K[0]) == NULL);
  CHECK(hsp_pool_cancel(P, K[0], &c[49]));
  CHECK(!hsp_pool_cancel(P, K[0], &c[49]));
  now = 40;
  connect_now(0);
  CHECK_EQ_INT(up_count, 1);
  CHECK_EQ_INT(ready_count, 49);
  hsp_sess_t *s = hsp_pool_session(P, K[0]);
  CHECK(s != NULL);
  CHECK_EQ_INT(hsp_sess_tunnels(s), 49);
  /* Later tunnels use the warm session at once. */
  conn_t more = {0};
  CHECK_EQ_INT(hsp_pool_open(P, K[0], now, &more), 0);
  deliver();
  CHECK(more.ready);
  CHECK_EQ_INT(S[0].connects, 1);
  /* Kept while in use, even long; pings keep it alive. */
  for (now = 40; now < 30000; now += 100) {
    hsp_pool_tick(P, now);
    deliver();
    if (S[0].s) hsp_sess_tick(S[0].s, now);
    deliver();
  }
  CHECK_EQ_INT(S[0].disconnects, 0);
  CHECK_EQ_INT(hsp_pool_count(P), 1);
  /* All tunnels close: the session goes after idle_ms. */
  s = hsp_pool_session(P, K[0]);
  for (uint32_t ch = 1; ch < 200; ch++)
    if (hsp_sess_user(s, ch)) hsp_sess_close(s, ch);
  CHECK_EQ_INT(hsp_sess_tunnels(s), 0);
  uint64_t idle_at = now;
  uint64_t closed_at = 0;
  for (; now < idle_at + 20000; now += 100) {
    uint64_t next = hsp_pool_tick(P, now);
    CHECK(next >= now);
    deliver();
    if (S[0].s) hsp_sess_tick(S[0].s, now);
    deliver();
    if (!closed_at && S[0].disconnects) closed_at = now;
  }
  printf("pool: idle at %llu, closed at %llu\n", (unsigned long long)idle_at,
         (unsigned long long)closed_at);
  CHECK(closed_at >= idle_at + 9900 && closed_at <= idle_at + 10200);
  CHECK_EQ_INT(hsp_pool_count(P), 0);
  CHECK_EQ_INT(down_count, 0); /* idle close is not a failure */
  /* The next tunnel opens a new session. */
  conn_t again = {0};
  CHECK_EQ_INT(hsp_pool_open(P, K[0], now, &again), 0);
  CHECK_EQ_INT(S[0].connects, 2);
  finish();
}

static void test_connect_failure(void) {
  reset();
  conn_t c[3] = {0};
  for (int i = 0; i < 3; i++) hsp_pool_open(P, K[1], now, &c[i]);
  hsp_pool_failed(P, K[1], now, HSP_SESS_EDEAD);
  for (int i = 0; i < 3; i++) {
    CHECK(c[i].closed && !c[i].ready);
    CHECK_EQ_INT(c[i].err, HSP_SESS_EDEAD);
  }
  CHECK_EQ_INT(down_count, 1);
  CHECK_EQ_INT(hsp_pool_count(P), 0);
  /* A connect that never answers times out. */
  conn_t d = {0};
  hsp_pool_open(P, K[2], now, &d);
  CHECK_EQ_INT(hsp_pool_tick(P, now), 3000);
  hsp_pool_tick(P, 2999);
  CHECK(!d.closed);
  hsp_pool_tick(P, 3000);
  CHECK(d.closed);
  CHECK_EQ_INT(S[2].disconnects, 1);
  CHECK_EQ_INT(down_count, 2);
  /* A connect that fails at once, inside the connect callback. */
  sync_connect = true;
  S[0].killed = true;
  conn_t e = {0};
  CHECK_EQ_INT(hsp_pool_open(P, K[0], now, &e), HSP_SESS_EDEAD);
  CHECK_EQ_INT(hsp_pool_count(P), 0);
  S[0].killed = false;
  conn_t f = {0};
  CHECK_EQ_INT(hsp_pool_open(P, K[0], now, &f), 0);
  deliver();
  CHECK(f.ready);
  finish();
}

/* 200 tunnels spread over three sessions; instance 1 is killed: its session is declared dead
 * within dead_ms, its tunnels fail; tunnels not yet forwarding move to another instance from
 * the close callback and succeed there. */
static void test_session_death(void) {
  reset();
  sync_connect = true;
  retry_on_close = true;
  static conn_t c[200];
  memset(c, 0, sizeof c);
  for (int i = 0; i < 200; i++) {
    c[i].key = i % NINST;
    c[i].forwarded = i < 100; /* half were already carrying data */
  }
  /* The first 100 are open and forwarding; the rest wait for their READY when the kill
   * comes. */
  for (int i = 0; i < 100; i++) CHECK_EQ_INT(hsp_pool_open(P, K[c[i].key], now, &c[i]), 0);
  deliver();
  for (int i = 0; i < 100; i++) CHECK(c[i].ready);
  for (int i = 100; i < 200; i++) CHECK_EQ_INT(hsp_pool_open(P, K[c[i].key], now, &c[i]), 0);
  /* Kill instance 1 before its answers arrive. */
  S[1].killed = true;
  for (size_t j = 0; j < S[1].n; j++) free(S[1].q[j]);
  S[1].n = 0;
  deliver();
  uint64_t killed = now, detected = 0;
  for (now = 0; now < 5000 && !detected; now += 10) {
    hsp_pool_tick(P, now);
    deliver();
    for (int i = 0; i < NINST; i++)
      if (S[i].s && !S[i].killed) hsp_sess_tick(S[i].s, now);
    deliver();
    if (down_count) detected = now;
  }
  printf("pool: killed session detected after %llu ms\n", (unsigned long long)(detected - killed));
  CHECK(detected && detected - killed <= 1000);
  int lost = 0, failed_new = 0, moved = 0;
  for (int i = 0; i < 200; i++) {
    if (i < 100 && i % NINST == 1) {
      lost += c[i].closed && c[i].err == HSP_SESS_EDEAD;
    } else {
      failed_new += c[i].closed;
      moved += i % NINST == 1 && c[i].ready && c[i].key != 1;
    }
  }
  CHECK_EQ_INT(lost, 33);      /* forwarding tunnels on the dead instance cannot be saved */
  CHECK_EQ_INT(failed_new, 0); /* every other tunnel is up */
  CHECK_EQ_INT(moved, 34);     /* the waiting ones moved to another instance */
  CHECK_EQ_INT(S[1].disconnects, 1);
  finish();
}

static void test_goaway(void) {
  reset();
  sync_connect = true;
  conn_t a = {0}, b = {0};
  CHECK_EQ_INT(hsp_pool_open(P, K[0], now, &a), 0);
  deliver();
  CHECK(a.ready);
  CHECK_EQ_INT(hsp_sess_goaway(S[0].s), 0);
  deliver();
  CHECK_EQ_INT(goaway_count, 1);
  CHECK_EQ_INT(hsp_pool_open(P, K[0], now, &b), HSP_SESS_EGOAWAY);
  /* Kept while its tunnel lives, closed right after. */
  now = 100;
  hsp_pool_tick(P, now);
  CHECK_EQ_INT(S[0].disconnects, 0);
  hsp_sess_t *s = hsp_pool_session(P, K[0]);
  for (uint32_t ch = 1; ch < 10; ch++)
    if (hsp_sess_user(s, ch)) hsp_sess_close(s, ch);
  now = 110;
  hsp_pool_tick(P, now);
  CHECK_EQ_INT(S[0].disconnects, 1);
  CHECK_EQ_INT(down_count, 0);
  /* Refused by the backend: EREFUSED on the tunnel, the session stays. */
  S[1].refuse = true;
  conn_t r = {0};
  CHECK_EQ_INT(hsp_pool_open(P, K[1], now, &r), 0);
  deliver();
  CHECK(r.closed && r.err == HSP_SESS_EREFUSED);
  CHECK(hsp_pool_session(P, K[1]) != NULL);
  finish();
}

/* A session that dies before the service said anything is opened again once, its tunnels
 * with it; a second such death is a failure. */
static void test_reopen(void) {
  reset();
  conn_t c[3] = {0};
  for (int i = 0; i < 3; i++) CHECK_EQ_INT(hsp_pool_open(P, K[0], now, &c[i]), 0);
  S[0].killed = true; /* the stream is up but nothing comes back */
  connect_now(0);
  CHECK_EQ_INT(ready_count, 0);
  hsp_pool_failed(P, K[0], now, HSP_SESS_EDEAD);
  CHECK_EQ_INT(S[0].connects, 2);
  CHECK_EQ_INT(down_count, 0);
  for (int i = 0; i < 3; i++) CHECK(!c[i].closed);
  hsp_sess_free(S[0].s);
  S[0].s = NULL;
  S[0].killed = false;
  connect_now(0);
  CHECK_EQ_INT(ready_count, 3);
  for (int i = 0; i < 3; i++) CHECK(c[i].ready && !c[i].closed);
  finish();

  reset();
  conn_t d = {0};
  hsp_pool_open(P, K[1], now, &d);
  S[1].killed = true;
  connect_now(1);
  hsp_pool_failed(P, K[1], now, HSP_SESS_EDEAD);
  hsp_sess_free(S[1].s);
  S[1].s = NULL;
  connect_now(1);
  hsp_pool_failed(P, K[1], now, HSP_SESS_EDEAD);
  CHECK(d.closed && d.err == HSP_SESS_EDEAD);
  CHECK_EQ_INT(down_count, 1);
  CHECK_EQ_INT(S[1].connects, 2);
  finish();
}

int main(void) {
  for (int i = 0; i < NINST; i++)
    for (int j = 0; j < 32; j++) K[i][j] = (uint8_t)(i * 59 + j * 3 + 5);
  test_lazy_and_idle();
  test_connect_failure();
  test_session_death();
  test_goaway();
  test_reopen();
  /* Freeing the pool fails what is left and disconnects every session. */
  reset();
  conn_t z = {0};
  hsp_pool_open(P, K[2], now, &z);
  hsp_pool_free(P);
  P = NULL;
  CHECK(z.closed && z.err == HSP_SESS_EDEAD);
  CHECK_EQ_INT(S[2].disconnects, 1);
  finish();
  return check_summary("pool");
}
