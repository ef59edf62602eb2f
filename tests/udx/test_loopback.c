/* C <-> C over real UDP sockets on 127.0.0.1 / ::1 with libuv. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "udx.h"

#define CHUNK 65536
#define SLOTS 8

typedef struct ep {
  hsp_udx_stream_t s;
  uint64_t rx, bad, eof;
  int closed, status, write_err, end_after_eof, ended;
  uint64_t tx_total, tx_queued;
  hsp_udx_write_t w[SLOTS + 1];
  uint8_t *bufs[SLOTS];
  int busy[SLOTS + 1];
  uint32_t salt;
  int msgs;
} ep_t;

static uv_loop_t loop;
static hsp_udx_t udx;
static hsp_udx_socket_t sa, sb;
static int raw_a, raw_b, raw_unknown_b;
static int closed_sockets;

static uint8_t pattern(uint32_t salt, uint64_t off) {
  return (uint8_t)(((off + salt) * 2654435761u) >> 11);
}

static void pump(ep_t *e);

static void on_write(hsp_udx_write_t *req, int status) {
  ep_t *e = req->data;
  e->busy[req - e->w] = 0;
  if (status < 0) e->write_err = status;
  else pump(e);
}

static void end_now(ep_t *e) {
  e->busy[SLOTS] = 1;
  e->w[SLOTS].data = e;
  e->ended = 1;
  CHECK_EQ_INT(hsp_udx_stream_write_end(&e->w[SLOTS], &e->s, NULL, 0, on_write), 0);
}

static void pump(ep_t *e) {
  while (!e->s.closed && e->tx_queued < e->tx_total) {
    int slot = -1;
    for (int i = 0; i < SLOTS; i++) {
      if (!e->busy[i]) slot = i;
    }
    if (slot < 0) return;
    size_t len = e->tx_total - e->tx_queued;
    if (len > CHUNK) len = CHUNK;
    if (!e->bufs[slot]) e->bufs[slot] = malloc(CHUNK);
    for (size_t k = 0; k < len; k++) e->bufs[slot][k] = pattern(e->salt, e->tx_queued + k);
    e->busy[slot] = 1;
    e->w[slot].data = e;
    e->tx_queued += len;
    CHECK_EQ_INT(hsp_udx_stream_write(&e->w[slot], &e->s, e->bufs[slot], len, on_write), 0);
  }
  if (!e->s.closed && !e->ended && e->tx_queued == e->tx_total && !e->end_after_eof) end_now(e);
}

static void on_read(hsp_udx_stream_t *s, const uint8_t *buf, ssize_t len) {
  ep_t *e = (ep_t *)s;
  if (len == HSP_UDX_EOF) {
    e->eof++;
    if (e->end_after_eof && !e->ended) end_now(e);
    return;
  }
  for (ssize_t i = 0; i < len; i++) {
    if (buf[i] != pattern(e->salt, e->rx + (uint64_t)i)) e->bad++;
  }
  e->rx += (uint64_t)len;
}

static void on_close(hsp_udx_stream_t *s, int status) {
  ep_t *e = (ep_t *)s;
  e->closed = 1;
  e->status = status;
}

static void on_msg(hsp_udx_stream_t *s, const uint8_t *buf, size_t len) {
  ep_t *e = (ep_t *)s;
  if (len == 5 && memcmp(buf, "hello", 5) == 0) e->msgs++;
}

static void on_raw(hsp_udx_socket_t *sock, const uint8_t *buf, size_t len,
                   const struct sockaddr *from) {
  (void)from;
  if (len >= 20 && buf[0] == 0xff && buf[1] == 1) {
    if (sock == &sb) raw_unknown_b++;
    return;
  }
  if (len == 4 && memcmp(buf, "ping", 4) == 0) {
    if (sock == &sa) raw_a++;
    else raw_b++;
  }
}

static struct sockaddr_storage addr_a, addr_b;

/* Sockets keep the loop alive, so each scenario runs until its condition holds. */
typedef int (*done_fn)(void *);
static done_fn run_done;
static void *run_arg;
static void on_check(uv_timer_t *t) {
  if (run_done(run_arg)) uv_stop(t->loop);
}
static void run_until(done_fn done, void *arg) {
  uv_timer_t t;
  run_done = done;
  run_arg = arg;
  uv_timer_init(&loop, &t);
  uv_timer_start(&t, on_check, 1, 1);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&loop, UV_RUN_NOWAIT);
}
static int pair_closed(void *arg) {
  ep_t **p = arg;
  return p[0]->closed && p[1]->closed;
}
static int all_closed(void *arg) {
  ep_t *e = arg;
  for (int i = 0; i < 50; i++) {
    if (!e[i].closed) return 0;
  }
  return 1;
}

static void open_sockets(int v6) {
  CHECK_EQ_INT(hsp_udx_socket_init(&udx, &sa), 0);
  CHECK_EQ_INT(hsp_udx_socket_init(&udx, &sb), 0);
  struct sockaddr_storage bind_addr;
  memset(&bind_addr, 0, sizeof(bind_addr));
  if (v6) {
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&bind_addr;
    a6->sin6_family = AF_INET6;
    a6->sin6_addr = in6addr_loopback;
  } else {
    struct sockaddr_in *a4 = (struct sockaddr_in *)&bind_addr;
    a4->sin_family = AF_INET;
    a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  }
  CHECK_EQ_INT(hsp_udx_socket_bind(&sa, (struct sockaddr *)&bind_addr), 0);
  CHECK_EQ_INT(hsp_udx_socket_bind(&sb, (struct sockaddr *)&bind_addr), 0);
  CHECK_EQ_INT(hsp_udx_socket_getsockname(&sa, &addr_a), 0);
  CHECK_EQ_INT(hsp_udx_socket_getsockname(&sb, &addr_b), 0);
  hsp_udx_socket_recv_start(&sa, on_raw);
  hsp_udx_socket_recv_start(&sb, on_raw);
}

static void on_sock_closed(hsp_udx_socket_t *s) {
  (void)s;
  closed_sockets++;
}

static void close_sockets(void) {
  closed_sockets = 0;
  hsp_udx_socket_close(&sa, on_sock_closed);
  hsp_udx_socket_close(&sb, on_sock_closed);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(closed_sockets, 2);
}

static void setup_pair(ep_t *a, ep_t *b, uint32_t ida, uint32_t idb) {
  memset(a, 0, sizeof(*a));
  memset(b, 0, sizeof(*b));
  CHECK_EQ_INT(hsp_udx_stream_init(&udx, &a->s, ida, on_close), 0);
  CHECK_EQ_INT(hsp_udx_stream_init(&udx, &b->s, idb, on_close), 0);
  CHECK_EQ_INT(hsp_udx_stream_connect(&a->s, &sa, idb, (struct sockaddr *)&addr_b), 0);
  CHECK_EQ_INT(hsp_udx_stream_connect(&b->s, &sb, ida, (struct sockaddr *)&addr_a), 0);
  hsp_udx_stream_read_start(&a->s, on_read);
  hsp_udx_stream_read_start(&b->s, on_read);
  hsp_udx_stream_set_message_cb(&a->s, on_msg);
  hsp_udx_stream_set_message_cb(&b->s, on_msg);
  a->salt = b->salt = ida * 7919u;
}

static void free_ep(ep_t *e) {
  for (int i = 0; i < SLOTS; i++) free(e->bufs[i]);
}

static void transfer(uint64_t bytes, int v6) {
  ep_t a, b;
  open_sockets(v6);
  setup_pair(&a, &b, 1, 2);
  a.tx_total = bytes;
  b.end_after_eof = 1;
  pump(&a);
  uint64_t t0 = uv_hrtime();
  ep_t *pp[2] = {&a, &b};
  run_until(pair_closed, pp);
  double ms = (double)(uv_hrtime() - t0) / 1e6;
  CHECK(a.closed && b.closed);
  CHECK_EQ_INT(b.rx, bytes);
  CHECK_EQ_INT(b.bad, 0);
  CHECK_EQ_INT(b.eof, 1);
  CHECK_EQ_INT(a.eof, 1);
  CHECK_EQ_INT(a.status, 0);
  CHECK_EQ_INT(b.status, 0);
  CHECK_EQ_INT(a.write_err, 0);
  printf("%s %llu bytes: %.1f ms, retransmits %llu\n", v6 ? "::1" : "127.0.0.1",
         (unsigned long long)bytes, ms, (unsigned long long)a.s.stat_retransmits);
  free_ep(&a);
  free_ep(&b);
  close_sockets();
}

#define NSTREAMS 50
static void concurrent(void) {
  static ep_t a[NSTREAMS], b[NSTREAMS];
  open_sockets(0);
  for (int i = 0; i < NSTREAMS; i++) {
    setup_pair(&a[i], &b[i], 100 + (uint32_t)i, 1000 + (uint32_t)i);
    a[i].tx_total = 200000 + (uint64_t)i * 1000;
    b[i].tx_total = 100000;
    pump(&a[i]);
    pump(&b[i]);
  }
  run_until(all_closed, a);
  run_until(all_closed, b);
  int ok = 0;
  for (int i = 0; i < NSTREAMS; i++) {
    if (a[i].closed && b[i].closed && a[i].status == 0 && b[i].status == 0 &&
        b[i].rx == a[i].tx_total && a[i].rx == b[i].tx_total && !a[i].bad && !b[i].bad) {
      ok++;
    }
    free_ep(&a[i]);
    free_ep(&b[i]);
  }
  CHECK_EQ_INT(ok, NSTREAMS);
  close_sockets();
}

static ep_t *destroy_target;
static void destroy_when_1mb(uv_timer_t *t) {
  ep_t *b = t->data;
  if (b->rx >= 1000000) {
    hsp_udx_stream_destroy(&destroy_target->s);
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, NULL);
  }
}

static void destroy_midway(void) {
  ep_t a, b;
  open_sockets(0);
  setup_pair(&a, &b, 1, 2);
  a.tx_total = 1ull << 40; /* endless */
  pump(&a);
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  t.data = &b;
  destroy_target = &a;
  uv_timer_start(&t, destroy_when_1mb, 1, 1);
  ep_t *pp[2] = {&a, &b};
  run_until(pair_closed, pp);
  CHECK(a.closed && b.closed);
  CHECK_EQ_INT(a.status, 0);
  CHECK_EQ_INT(a.write_err, HSP_UDX_ECANCELED);
  CHECK_EQ_INT(b.status, HSP_UDX_ECONNRESET);
  free_ep(&a);
  free_ep(&b);
  close_sockets();
}

static void on_tick_datagrams(uv_timer_t *t) {
  ep_t *e = t->data;
  if (raw_a >= 1 && raw_b >= 1 && raw_unknown_b >= 1 && e[0].msgs >= 1 && e[1].msgs >= 1) {
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, NULL);
    hsp_udx_stream_destroy(&e[0].s);
    hsp_udx_stream_destroy(&e[1].s);
  }
}

static void datagrams(void) {
  static ep_t e[2];
  open_sockets(0);
  setup_pair(&e[0], &e[1], 1, 2);
  raw_a = raw_b = raw_unknown_b = 0;
  CHECK_EQ_INT(hsp_udx_socket_send(&sa, (const uint8_t *)"ping", 4, (struct sockaddr *)&addr_b), 0);
  CHECK_EQ_INT(hsp_udx_socket_send(&sb, (const uint8_t *)"ping", 4, (struct sockaddr *)&addr_a), 0);
  /* a UDX packet for an id nobody has goes to the raw callback, unchanged */
  uint8_t unk[21] = {0xff, 1, 0, 0, 99, 0, 0, 0};
  CHECK_EQ_INT(hsp_udx_socket_send(&sa, unk, sizeof(unk), (struct sockaddr *)&addr_b), 0);
  CHECK_EQ_INT(hsp_udx_stream_send(&e[0].s, (const uint8_t *)"hello", 5), 0);
  CHECK_EQ_INT(hsp_udx_stream_send(&e[1].s, (const uint8_t *)"hello", 5), 0);
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  t.data = e;
  uv_timer_start(&t, on_tick_datagrams, 1, 1);
  ep_t *pp[2] = {&e[0], &e[1]};
  run_until(pair_closed, pp);
  CHECK_EQ_INT(raw_a, 1);
  CHECK_EQ_INT(raw_b, 1);
  CHECK(raw_unknown_b >= 1); /* plus the crossing DESTROY for an already closed id */
  CHECK_EQ_INT(e[0].msgs, 1);
  CHECK_EQ_INT(e[1].msgs, 1);
  CHECK(e[0].closed && e[1].closed);
  close_sockets();
}

static struct sockaddr_storage addr_of(hsp_udx_socket_t *sock) {
  struct sockaddr_storage a;
  hsp_udx_socket_getsockname(sock, &a);
  return a;
}

/* a(1) <-> r10 [relay] r20 <-> b(2): a blind relay splices two legs without terminating them. */
static void relay(void) {
  static ep_t a, b, r10, r20;
  hsp_udx_socket_t sr;
  open_sockets(0);
  CHECK_EQ_INT(hsp_udx_socket_init(&udx, &sr), 0);
  struct sockaddr_in any;
  uv_ip4_addr("127.0.0.1", 0, &any);
  CHECK_EQ_INT(hsp_udx_socket_bind(&sr, (struct sockaddr *)&any), 0);
  struct sockaddr_storage addr_r = addr_of(&sr);
  memset(&a, 0, sizeof(a));
  memset(&b, 0, sizeof(b));
  memset(&r10, 0, sizeof(r10));
  memset(&r20, 0, sizeof(r20));
  CHECK_EQ_INT(hsp_udx_stream_init(&udx, &a.s, 1, on_close), 0);
  CHECK_EQ_INT(hsp_udx_stream_init(&udx, &b.s, 2, on_close), 0);
  CHECK_EQ_INT(hsp_udx_stream_init(&udx, &r10.s, 10, on_close), 0);
  CHECK_EQ_INT(hsp_udx_stream_init(&udx, &r20.s, 20, on_close), 0);
  CHECK_EQ_INT(hsp_udx_stream_connect(&a.s, &sa, 10, (struct sockaddr *)&addr_r), 0);
  CHECK_EQ_INT(hsp_udx_stream_connect(&b.s, &sb, 20, (struct sockaddr *)&addr_r), 0);
  CHECK_EQ_INT(hsp_udx_stream_connect(&r10.s, &sr, 1, (struct sockaddr *)&addr_a), 0);
  CHECK_EQ_INT(hsp_udx_stream_connect(&r20.s, &sr, 2, (struct sockaddr *)&addr_b), 0);
  CHECK_EQ_INT(hsp_udx_stream_relay_to(&r10.s, &r20.s), 0);
  CHECK_EQ_INT(hsp_udx_stream_relay_to(&r20.s, &r10.s), 0);
  hsp_udx_stream_read_start(&a.s, on_read);
  hsp_udx_stream_read_start(&b.s, on_read);
  a.salt = b.salt = 5;
  a.tx_total = 3 * 1024 * 1024;
  b.end_after_eof = 1;
  pump(&a);
  ep_t *pp[2] = {&a, &b};
  run_until(pair_closed, pp);
  CHECK_EQ_INT(b.rx, 3 * 1024 * 1024);
  CHECK_EQ_INT(b.bad, 0);
  CHECK_EQ_INT(a.status, 0);
  CHECK_EQ_INT(b.status, 0);
  CHECK_EQ_INT(r10.rx + r20.rx, 0); /* the relay never terminates the stream */
  CHECK(!r10.closed && !r20.closed);
  hsp_udx_stream_destroy(&r10.s);
  hsp_udx_stream_destroy(&r20.s);
  ep_t *rr[2] = {&r10, &r20};
  run_until(pair_closed, rr);
  free_ep(&a);
  hsp_udx_socket_close(&sr, NULL);
  close_sockets();
}

static int changed;
static void on_changed(hsp_udx_stream_t *s) {
  (void)s;
  changed++;
}
static hsp_udx_socket_t sc;
static int migrate_when_half(void *arg) {
  ep_t **p = arg;
  if (!changed && p[1]->rx >= 1024 * 1024 && p[1]->s.socket == &sb) {
    struct sockaddr_storage addr_c = addr_of(&sc);
    /* b moves to a new socket (a new path); a is told out of band, as HyperDHT does */
    int r1 = hsp_udx_stream_change_remote(&p[1]->s, &sc, 1, (struct sockaddr *)&addr_a, on_changed);
    int r2 = hsp_udx_stream_change_remote(&p[0]->s, &sa, 2, (struct sockaddr *)&addr_c, on_changed);
    CHECK(r1 >= 0 && r2 >= 0);
    changed += (r1 == 1) + (r2 == 1);
  }
  return p[0]->closed && p[1]->closed;
}

static void change_remote(void) {
  static ep_t a, b;
  open_sockets(0);
  CHECK_EQ_INT(hsp_udx_socket_init(&udx, &sc), 0);
  struct sockaddr_in any;
  uv_ip4_addr("127.0.0.1", 0, &any);
  CHECK_EQ_INT(hsp_udx_socket_bind(&sc, (struct sockaddr *)&any), 0);
  changed = 0;
  setup_pair(&a, &b, 1, 2);
  a.tx_total = 4 * 1024 * 1024;
  b.end_after_eof = 1;
  pump(&a);
  ep_t *pp[2] = {&a, &b};
  run_until(migrate_when_half, pp);
  CHECK_EQ_INT(changed, 2);
  CHECK(b.s.socket == &sc);
  CHECK_EQ_INT(b.rx, 4 * 1024 * 1024);
  CHECK_EQ_INT(b.bad, 0);
  CHECK_EQ_INT(a.status, 0);
  CHECK_EQ_INT(b.status, 0);
  free_ep(&a);
  free_ep(&b);
  hsp_udx_socket_close(&sc, NULL);
  close_sockets();
}

static int fw_calls, fw_reject_first;
static struct sockaddr_storage fw_from;
static int firewall(hsp_udx_stream_t *s, hsp_udx_socket_t *sock, const struct sockaddr *from) {
  (void)s;
  (void)sock;
  fw_calls++;
  memcpy(&fw_from, from, from->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
  return fw_reject_first && fw_calls == 1;
}
static int connect_on_data(void *arg) {
  ep_t **p = arg;
  if (p[1]->rx > 0 && !p[1]->s.connected) {
    /* learned the peer's address from the first packet, now connect (sends the owed ACK) */
    CHECK_EQ_INT(hsp_udx_stream_connect(&p[1]->s, &sb, 1, (struct sockaddr *)&fw_from), 0);
  }
  return p[0]->closed && p[1]->closed;
}

static void preconnect(int reject_first) {
  static ep_t a, b;
  open_sockets(0);
  memset(&a, 0, sizeof(a));
  memset(&b, 0, sizeof(b));
  fw_calls = 0;
  fw_reject_first = reject_first;
  CHECK_EQ_INT(hsp_udx_stream_init(&udx, &a.s, 1, on_close), 0);
  CHECK_EQ_INT(hsp_udx_stream_init(&udx, &b.s, 2, on_close), 0);
  hsp_udx_stream_set_firewall(&b.s, firewall);
  CHECK_EQ_INT(hsp_udx_stream_connect(&a.s, &sa, 2, (struct sockaddr *)&addr_b), 0);
  hsp_udx_stream_read_start(&a.s, on_read);
  hsp_udx_stream_read_start(&b.s, on_read);
  a.salt = b.salt = 9;
  a.tx_total = 100000;
  b.end_after_eof = 1;
  pump(&a);
  ep_t *pp[2] = {&a, &b};
  run_until(connect_on_data, pp);
  CHECK(fw_calls >= 1);
  CHECK_EQ_INT(b.rx, 100000);
  CHECK_EQ_INT(b.bad, 0);
  CHECK_EQ_INT(a.status, 0);
  CHECK_EQ_INT(b.status, 0);
  if (reject_first) CHECK(a.s.stat_retransmits >= 1);
  free_ep(&a);
  close_sockets();
}

static void api_errors(void) {
  ep_t a, b;
  open_sockets(0);
  setup_pair(&a, &b, 1, 2);
  hsp_udx_stream_t dup;
  CHECK_EQ_INT(hsp_udx_stream_init(&udx, &dup, 1, on_close), HSP_UDX_EIDINUSE);
  CHECK_EQ_INT(hsp_udx_stream_connect(&a.s, &sa, 2, (struct sockaddr *)&addr_b), HSP_UDX_EINVAL);
  hsp_udx_write_t w;
  CHECK_EQ_INT(hsp_udx_stream_write(&w, &a.s, NULL, 5, NULL), HSP_UDX_EINVAL);
  /* closing the socket tears its streams down */
  close_sockets();
  CHECK(a.closed && b.closed);
  CHECK_EQ_INT(a.status, HSP_UDX_ECANCELED);
}

int main(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  uv_loop_init(&loop);
  CHECK_EQ_INT(hsp_udx_init(&loop, &udx), 0);
  transfer(0, 0);
  transfer(1, 0);
  transfer(65536, 0);
  transfer(100ull * 1024 * 1024, 0);
  transfer(1024 * 1024, 1);
  concurrent();
  destroy_midway();
  datagrams();
  relay();
  change_remote();
  preconnect(0);
  preconnect(1);
  api_errors();
  hsp_udx_deinit(&udx);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
  return check_summary("test_udx_loopback");
}
