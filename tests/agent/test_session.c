/*
 * Session tests: a proxy-side and a service-side session wired back to back through
 * in-memory frame queues on a simulated clock. Tunnels open, are refused or accepted, carry
 * data both ways under per-tunnel flow control (a stalled tunnel does not stall its
 * neighbours, no side ever holds more than its window), half-close, close; liveness pings
 * keep a quiet session up and a silent peer is declared dead within dead_ms; GOAWAY stops
 * new tunnels but not open ones; a peer that sends beyond its credit loses the tunnel.
 */
#include "check.h"
#include "session.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct frame {
  uint8_t *data;
  size_t len;
} frame_t;

typedef struct end {
  const char *name;
  hsp_sess_t *s;
  struct end *peer;
  frame_t *q;
  size_t qlen, qcap;
  bool cut; /* frames to the peer are dropped (the peer was killed) */
  /* what happened, per tunnel user */
  int accepts, readies, closes, goaways, ends, writables;
  int last_err;
  uint32_t last_ch;
  bool accept;             /* service: accept tunnels */
  bool auto_consume;       /* consume data as it arrives */
  uint8_t *rx;             /* received bytes (one tunnel at a time is enough here) */
  size_t rxlen, rxcap;
  size_t max_unconsumed, unconsumed;
} end_t;

static int do_send(void *ud, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
  end_t *e = ud;
  if (e->cut) return 0;
  if (e->qlen == e->qcap) {
    e->qcap = e->qcap ? e->qcap * 2 : 64;
    e->q = realloc(e->q, e->qcap * sizeof *e->q);
  }
  frame_t *f = &e->q[e->qlen++];
  f->len = alen + blen;
  f->data = malloc(f->len ? f->len : 1);
  memcpy(f->data, a, alen);
  if (blen) memcpy(f->data + alen, b, blen);
  return 0;
}

static int user_tag = 1;

static void *on_accept(void *ud, hsp_sess_t *s, uint32_t ch) {
  end_t *e = ud;
  (void)s;
  e->accepts++;
  e->last_ch = ch;
  return e->accept ? &user_tag : NULL;
}
static void on_ready(void *ud, hsp_sess_t *s, uint32_t ch, void *user) {
  end_t *e = ud;
  (void)s, (void)user;
  e->readies++;
  e->last_ch = ch;
}
static void on_data(void *ud, hsp_sess_t *s, uint32_t ch, void *user, const uint8_t *p, size_t n) {
  end_t *e = ud;
  (void)user;
  if (e->rxlen + n > e->rxcap) {
    e->rxcap = (e->rxlen + n) * 2;
    e->rx = realloc(e->rx, e->rxcap);
  }
  memcpy(e->rx + e->rxlen, p, n);
  e->rxlen += n;
  e->unconsumed += n;
  if (e->unconsumed > e->max_unconsumed) e->max_unconsumed = e->unconsumed;
  if (e->auto_consume) {
    CHECK_EQ_INT(hsp_sess_consumed(s, ch, n), 0);
    e->unconsumed -= n;
  }
}
static void on_end(void *ud, hsp_sess_t *s, uint32_t ch, void *user) {
  end_t *e = ud;
  (void)s, (void)ch, (void)user;
  e->ends++;
}
static void on_writable(void *ud, hsp_sess_t *s, uint32_t ch, void *user) {
  end_t *e = ud;
  (void)s, (void)ch, (void)user;
  e->writables++;
}
static void on_close(void *ud, hsp_sess_t *s, uint32_t ch, void *user, int err) {
  end_t *e = ud;
  (void)s, (void)ch, (void)user;
  e->closes++;
  e->last_err = err;
}
static void on_goaway(void *ud, hsp_sess_t *s) {
  end_t *e = ud;
  (void)s;
  e->goaways++;
}

static const hsp_sess_callbacks_t CB = {do_send,  on_accept,   on_ready, on_data,
                                         on_end,   on_writable, on_close, on_goaway};

static uint64_t now;

static void setup(end_t *p, end_t *v, const hsp_sess_config_t *pc, const hsp_sess_config_t *vc) {
  memset(p, 0, sizeof *p);
  memset(v, 0, sizeof *v);
  p->name = "proxy";
  v->name = "service";
  p->peer = v;
  v->peer = p;
  v->accept = true;
  p->auto_consume = v->auto_consume = true;
  p->s = hsp_sess_new(pc, &CB, p, now);
  v->s = hsp_sess_new(vc, &CB, v, now);
  CHECK(p->s && v->s);
}

static void drop_queue(end_t *e) {
  for (size_t i = 0; i < e->qlen; i++) free(e->q[i].data);
  e->qlen = 0;
}

static void teardown(end_t *p, end_t *v) {
  hsp_sess_free(p->s);
  hsp_sess_free(v->s);
  drop_queue(p);
  drop_queue(v);
  free(p->q);
  free(v->q);
  free(p->rx);
  free(v->rx);
}

/* Delivers every queued frame (and the frames they cause) in order. */
static void pump(end_t *a, end_t *b) {
  for (int guard = 0; guard < 100000 && (a->qlen || b->qlen); guard++) {
    end_t *from = a->qlen ? a : b;
    frame_t f = from->q[0];
    memmove(from->q, from->q + 1, (from->qlen - 1) * sizeof *from->q);
    from->qlen--;
    if (!from->peer->cut) CHECK_EQ_INT(hsp_sess_recv(from->peer->s, f.data, f.len, now), 0);
    free(f.data);
  }
}

static void test_basic(void) {
  end_t p, v;
  setup(&p, &v, NULL, NULL);
  pump(&p, &v);
  uint32_t ch;
  int u = 7;
  CHECK_EQ_INT(hsp_sess_open(p.s, &u, &ch), 0);
  CHECK_EQ_INT(hsp_sess_tunnels(p.s), 1);
  CHECK(hsp_sess_idle_since(p.s) == UINT64_MAX);
  /* Writing before READY is refused: nothing may be forwarded before the backend is up. */
  CHECK_EQ_INT(hsp_sess_write(p.s, ch, (const uint8_t *)"x", 1), HSP_SESS_EINVAL);
  pump(&p, &v);
  CHECK_EQ_INT(v.accepts, 1);
  CHECK_EQ_INT(p.readies, 0);
  uint32_t vch = v.last_ch;
  CHECK_EQ_INT(hsp_sess_ready(v.s, vch), 0);
  CHECK_EQ_INT(hsp_sess_ready(v.s, vch), HSP_SESS_EINVAL);
  pump(&p, &v);
  CHECK_EQ_INT(p.readies, 1);
  CHECK(hsp_sess_user(p.s, ch) == &u);
  CHECK_EQ_INT(hsp_sess_write(p.s, ch, (const uint8_t *)"hello", 5), 5);
  CHECK_EQ_INT(hsp_sess_write(v.s, vch, (const uint8_t *)"world!", 6), 6);
  pump(&p, &v);
  CHECK_EQ_INT(v.rxlen, 5);
  CHECK(memcmp(v.rx, "hello", 5) == 0);
  CHECK_EQ_INT(p.rxlen, 6);
  /* Half-close each way, then close. */
  CHECK_EQ_INT(hsp_sess_end(p.s, ch), 0);
  CHECK_EQ_INT(hsp_sess_write(p.s, ch, (const uint8_t *)"x", 1), HSP_SESS_EINVAL);
  pump(&p, &v);
  CHECK_EQ_INT(v.ends, 1);
  CHECK_EQ_INT(hsp_sess_write(v.s, vch, (const uint8_t *)"late", 4), 4); /* still allowed */
  CHECK_EQ_INT(hsp_sess_end(v.s, vch), 0);
  pump(&p, &v);
  CHECK_EQ_INT(p.ends, 1);
  CHECK_EQ_INT(p.rxlen, 10);
  now = 500;
  CHECK_EQ_INT(hsp_sess_close(v.s, vch), 0);
  pump(&p, &v);
  CHECK_EQ_INT(p.closes, 1);
  CHECK_EQ_INT(p.last_err, 0);
  CHECK_EQ_INT(v.closes, 0); /* no callback for one's own close */
  CHECK_EQ_INT(hsp_sess_tunnels(p.s), 0);
  CHECK_EQ_INT(hsp_sess_tunnels(v.s), 0);
  CHECK_EQ_INT(hsp_sess_idle_since(p.s), 500);
  teardown(&p, &v);
  now = 0;
}

static void test_refuse(void) {
  end_t p, v;
  setup(&p, &v, NULL, NULL);
  int u = 1;
  uint32_t ch;
  /* The backend refuses: EREFUSED before READY, so the proxy may retry elsewhere. */
  CHECK_EQ_INT(hsp_sess_open(p.s, &u, &ch), 0);
  pump(&p, &v);
  CHECK_EQ_INT(hsp_sess_refuse(v.s, v.last_ch, HSP_SESS_CODE_REFUSED), 0);
  pump(&p, &v);
  CHECK_EQ_INT(p.closes, 1);
  CHECK_EQ_INT(p.last_err, HSP_SESS_EREFUSED);
  CHECK_EQ_INT(p.readies, 0);
  /* The service does not take tunnels (draining): EGOAWAY. */
  v.accept = false;
  CHECK_EQ_INT(hsp_sess_open(p.s, &u, &ch), 0);
  pump(&p, &v);
  CHECK_EQ_INT(p.closes, 2);
  CHECK_EQ_INT(p.last_err, HSP_SESS_EGOAWAY);
  CHECK_EQ_INT(hsp_sess_tunnels(v.s), 0);
  CHECK_EQ_INT(hsp_sess_tunnels(p.s), 0);
  /* A proxy closing before the answer: the service's tunnel goes too. */
  v.accept = true;
  CHECK_EQ_INT(hsp_sess_open(p.s, &u, &ch), 0);
  CHECK_EQ_INT(hsp_sess_close(p.s, ch), 0);
  pump(&p, &v);
  CHECK_EQ_INT(v.accepts, 3);
  CHECK_EQ_INT(hsp_sess_tunnels(v.s), 0);
  CHECK_EQ_INT(v.closes, 1);
  CHECK_EQ_INT(p.closes, 2);
  teardown(&p, &v);
}

static uint8_t pattern(size_t i) { return (uint8_t)(i * 131 + (i >> 9)); }

/* 4 MiB proxy -> service with a 64 KiB window and a service that consumes in its own time. */
static void test_flow(void) {
  end_t p, v;
  hsp_sess_config_t vc = {.window = 64 * 1024};
  setup(&p, &v, NULL, &vc);
  v.auto_consume = false;
  int u = 1;
  uint32_t ch;
  CHECK_EQ_INT(hsp_sess_open(p.s, &u, &ch), 0);
  pump(&p, &v);
  uint32_t vch = v.last_ch;
  hsp_sess_ready(v.s, vch);
  pump(&p, &v);
  size_t total = 4u << 20, sent = 0;
  uint8_t *src = malloc(total);
  for (size_t i = 0; i < total; i++) src[i] = pattern(i);
  int stalls = 0;
  while (sent < total || v.unconsumed) {
    if (sent < total) {
      long n = hsp_sess_write(p.s, ch, src + sent, total - sent);
      CHECK(n >= 0);
      if (n >= 0) sent += (size_t)n;
      CHECK(hsp_sess_credit(p.s, ch) == 0 || sent == total);
      if (sent < total) stalls++;
    }
    pump(&p, &v);
    /* The service writes what it got to its backend, in pieces. */
    size_t k = v.unconsumed < 20000 ? v.unconsumed : 20000;
    v.unconsumed -= k;
    CHECK_EQ_INT(hsp_sess_consumed(v.s, vch, k), 0);
    pump(&p, &v);
  }
  CHECK_EQ_INT(v.rxlen, total);
  CHECK(v.rxlen == total && memcmp(v.rx, src, total) == 0);
  CHECK(v.max_unconsumed <= 64 * 1024);
  CHECK(stalls > 10);
  CHECK(p.writables >= stalls - 1);
  /* Consuming more than was received is an error. */
  CHECK_EQ_INT(hsp_sess_consumed(v.s, vch, 1), HSP_SESS_EINVAL);
  printf("flow: 4 MiB over a 64 KiB window, %d stalls, max held %zu\n", stalls,
         v.max_unconsumed);
  free(src);
  teardown(&p, &v);
}

/* A tunnel whose receiver stops consuming stalls alone; another on the session completes. */
static void test_isolation(void) {
  end_t p, v;
  hsp_sess_config_t cfg = {.window = 32 * 1024};
  setup(&p, &v, &cfg, &cfg);
  int u1 = 1, u2 = 2;
  uint32_t c1, c2;
  CHECK_EQ_INT(hsp_sess_open(p.s, &u1, &c1), 0);
  pump(&p, &v);
  uint32_t v1 = v.last_ch;
  CHECK_EQ_INT(hsp_sess_open(p.s, &u2, &c2), 0);
  pump(&p, &v);
  uint32_t v2 = v.last_ch;
  hsp_sess_ready(v.s, v1);
  hsp_sess_ready(v.s, v2);
  pump(&p, &v);
  CHECK_EQ_INT(p.readies, 2);
  /* Tunnel 1: the service never consumes (its backend is stuck). */
  v.auto_consume = false;
  static uint8_t buf[1 << 20];
  long n1 = hsp_sess_write(p.s, c1, buf, sizeof buf);
  CHECK_EQ_INT(n1, 32 * 1024);
  pump(&p, &v);
  CHECK_EQ_INT(hsp_sess_write(p.s, c1, buf, sizeof buf), 0);
  size_t stuck = v.unconsumed;
  CHECK_EQ_INT(stuck, 32 * 1024);
  /* Tunnel 2 goes on: 1 MiB moves while tunnel 1 holds its window. */
  v.unconsumed = 0;
  v.rxlen = 0;
  size_t sent = 0;
  for (int i = 0; i < 10000 && sent < sizeof buf; i++) {
    long n = hsp_sess_write(p.s, c2, buf + sent, sizeof buf - sent);
    if (n > 0) sent += (size_t)n;
    pump(&p, &v);
    CHECK_EQ_INT(hsp_sess_consumed(v.s, v2, v.unconsumed), 0);
    v.unconsumed = 0;
    pump(&p, &v);
  }
  CHECK_EQ_INT(sent, sizeof buf);
  CHECK_EQ_INT(hsp_sess_credit(p.s, c1), 0);
  teardown(&p, &v);
}

static void test_liveness(void) {
  end_t p, v;
  hsp_sess_config_t cfg = {.ping_ms = 250, .dead_ms = 1000};
  now = 1000;
  setup(&p, &v, &cfg, &cfg);
  pump(&p, &v);
  /* Quiet but alive: pings and pongs keep both up for a minute. */
  for (now = 1000; now <= 61000; now += 50) {
    hsp_sess_tick(p.s, now);
    hsp_sess_tick(v.s, now);
    pump(&p, &v);
    CHECK(!hsp_sess_is_dead(p.s) && !hsp_sess_is_dead(v.s));
  }
  /* Few frames: a ping only when nothing arrived for ping_ms. */
  uint64_t t = hsp_sess_tick(p.s, now);
  CHECK(t > now && t <= now + 250);
  /* The service is killed: nothing reaches the proxy any more. */
  int u = 1;
  uint32_t ch;
  CHECK_EQ_INT(hsp_sess_open(p.s, &u, &ch), 0);
  pump(&p, &v);
  hsp_sess_ready(v.s, v.last_ch);
  pump(&p, &v);
  uint64_t killed = now;
  v.cut = true;
  drop_queue(&v);
  uint64_t detected = 0;
  for (; now < killed + 5000; now += 10) {
    uint64_t next = hsp_sess_tick(p.s, now);
    CHECK(next >= now);
    drop_queue(&p); /* to the dead peer */
    if (hsp_sess_is_dead(p.s)) {
      detected = now;
      break;
    }
  }
  printf("liveness: dead peer detected after %llu ms\n",
         (unsigned long long)(detected - killed));
  CHECK(detected && detected - killed <= 1000);
  CHECK_EQ_INT(hsp_sess_open(p.s, &u, &ch), HSP_SESS_EDEAD);
  /* Freeing the dead session closes its tunnels with EDEAD. */
  hsp_sess_free(p.s);
  p.s = NULL;
  CHECK_EQ_INT(p.closes, 1);
  CHECK_EQ_INT(p.last_err, HSP_SESS_EDEAD);
  teardown(&p, &v);
  now = 0;
}

static void test_goaway(void) {
  end_t p, v;
  setup(&p, &v, NULL, NULL);
  int u = 1;
  uint32_t ch;
  CHECK_EQ_INT(hsp_sess_open(p.s, &u, &ch), 0);
  pump(&p, &v);
  uint32_t vch = v.last_ch;
  hsp_sess_ready(v.s, vch);
  CHECK_EQ_INT(hsp_sess_goaway(v.s), 0);
  pump(&p, &v);
  CHECK_EQ_INT(p.goaways, 1);
  CHECK(hsp_sess_peer_goaway(p.s));
  uint32_t ch2;
  CHECK_EQ_INT(hsp_sess_open(p.s, &u, &ch2), HSP_SESS_EGOAWAY);
  /* The open tunnel carries on. */
  CHECK_EQ_INT(hsp_sess_write(p.s, ch, (const uint8_t *)"abc", 3), 3);
  CHECK_EQ_INT(hsp_sess_write(v.s, vch, (const uint8_t *)"defg", 4), 4);
  pump(&p, &v);
  CHECK_EQ_INT(v.rxlen, 3);
  CHECK_EQ_INT(p.rxlen, 4);
  teardown(&p, &v);
}

/* A hand-made proxy that ignores its credit: the service closes that tunnel with EFLOW. */
static int raw_send(void *d, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
  return do_send(d, a, alen, b, blen);
}
static void test_flow_violation(void) {
  end_t p, v;
  hsp_sess_config_t vc = {.window = 1000};
  setup(&p, &v, NULL, &vc);
  v.auto_consume = false; /* no credit goes back */
  hsp_sess_free(p.s);
  p.s = NULL;
  drop_queue(&p);
  hsp_mux_callbacks_t mcb = {.send = raw_send};
  hsp_mux_t *raw = hsp_mux_new(&mcb, &p);
  uint32_t ch;
  const char *proto = HSP_SESS_TCP_PROTOCOL;
  uint8_t id[8] = {1}, hs[] = {1, 0xfd, 0x60, 0xea}; /* version 1, window 60000 */
  CHECK_EQ_INT(hsp_mux_open(raw, (const uint8_t *)proto, strlen(proto), id, 8, true, hs,
                            sizeof hs, false, NULL, &ch),
               0);
  static uint8_t big[1500];
  CHECK_EQ_INT(hsp_mux_send(raw, ch, 0, big, 600), 0);
  CHECK_EQ_INT(hsp_mux_send(raw, ch, 0, big, 600), 0); /* 1,200 > 1,000 */
  /* deliver to the service only */
  for (size_t i = 0; i < p.qlen; i++) CHECK_EQ_INT(hsp_sess_recv(v.s, p.q[i].data, p.q[i].len, 0), 0);
  drop_queue(&p);
  CHECK_EQ_INT(v.accepts, 1);
  CHECK_EQ_INT(v.rxlen, 600);
  CHECK_EQ_INT(v.closes, 1);
  CHECK_EQ_INT(v.last_err, HSP_SESS_EFLOW);
  CHECK_EQ_INT(hsp_sess_tunnels(v.s), 0);
  /* Garbage kills the session. */
  uint8_t junk[] = {0, 1, 0xff};
  CHECK(hsp_sess_recv(v.s, junk, sizeof junk, 0) < 0);
  CHECK(hsp_sess_is_dead(v.s));
  hsp_mux_destroy(raw);
  teardown(&p, &v);
}

int main(void) {
  test_basic();
  test_refuse();
  test_flow();
  test_isolation();
  test_liveness();
  test_goaway();
  test_flow_violation();
  return check_summary("session");
}
