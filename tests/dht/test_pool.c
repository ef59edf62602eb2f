/* dht_io pool sockets (holepunch probes with a TTL, per-socket raw hooks, references), the
 * relay address cache, local addresses, and tickers that remove each other while running.
 * Loopback only. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dht_io.h"

static hsp_dht_io_t *io;
static int got_socket = -1, got_len, probes;
static hsp_ipv4_addr_t got_from;

static void on_raw(void *ctx, int socket, const hsp_ipv4_addr_t *from, const uint8_t *buf,
                   size_t len) {
  (void)ctx, (void)buf;
  got_socket = socket;
  got_from = *from;
  got_len = (int)len;
  probes++;
}

static uint16_t port_of(int id) {
  struct sockaddr_storage ss;
  hsp_udx_socket_getsockname(hsp_dht_io_socket(io, id), &ss);
  return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Two tickers due together; the first removes and frees the second. */
typedef struct tick {
  hsp_dht_io_ticker_t t;
  struct tick *victim;
  int runs;
  bool armed;
} tick_t;
static tick_t *first;
static uint64_t tick_deadline(hsp_dht_io_ticker_t *t) {
  return ((tick_t *)t)->armed ? 0 : UINT64_MAX;
}
static void tick_advance(hsp_dht_io_ticker_t *t, uint64_t now) {
  (void)now;
  tick_t *k = (tick_t *)t;
  k->armed = false;
  k->runs++;
  if (k->victim) {
    hsp_dht_io_remove_ticker(io, &k->victim->t);
    free(k->victim);
    k->victim = NULL;
  }
}

static uv_timer_t step_timer;
static int step;
static int a_id, b_id;

static void on_step(uv_timer_t *t) {
  (void)t;
  switch (step++) {
  case 0: {
    /* A probe from pool socket A to pool socket B reaches B's raw hook, from A's port. */
    a_id = hsp_dht_io_socket_open(io, on_raw, NULL);
    b_id = hsp_dht_io_socket_open(io, on_raw, NULL);
    CHECK(a_id >= 2 && b_id >= 2 && a_id != b_id);
    hsp_ipv4_addr_t to = {{127, 0, 0, 1}, port_of(b_id)};
    CHECK_EQ_INT(hsp_dht_io_send_probe(io, a_id, &to, 5), 0);
    CHECK_EQ_INT(hsp_dht_io_socket_id(io, hsp_dht_io_socket(io, b_id)), b_id);
    CHECK_EQ_INT(hsp_dht_io_socket_id(io, hsp_dht_io_socket(io, 0)), 0);
    return;
  }
  case 1: {
    CHECK_EQ_INT(got_socket, b_id);
    CHECK_EQ_INT(got_len, 1);
    CHECK_EQ_INT(got_from.port, port_of(a_id));
    /* A TTL-64 probe back, then B loses its raw hook: nothing is delivered. */
    hsp_ipv4_addr_t to = {{127, 0, 0, 1}, port_of(a_id)};
    CHECK_EQ_INT(hsp_dht_io_send_probe(io, b_id, &to, 64), 0);
    return;
  }
  case 2: {
    CHECK_EQ_INT(got_socket, a_id);
    CHECK_EQ_INT(probes, 2);
    hsp_dht_io_socket_set_raw(io, a_id, NULL, NULL);
    hsp_ipv4_addr_t to = {{127, 0, 0, 1}, port_of(a_id)};
    hsp_dht_io_send_probe(io, b_id, &to, 0);
    /* References: a second holder keeps A open past the first unref. */
    hsp_dht_io_socket_ref(io, a_id);
    hsp_dht_io_socket_unref(io, a_id);
    CHECK(hsp_dht_io_socket(io, a_id) != NULL);
    hsp_dht_io_socket_unref(io, a_id);
    CHECK(hsp_dht_io_socket(io, a_id) == NULL);
    CHECK(hsp_dht_io_send_probe(io, a_id, &to, 0) < 0);
    /* B stays open: hsp_dht_io_close must close it. */
    /* Tickers removing each other during one pass. */
    first = calloc(1, sizeof(*first));
    tick_t *second = calloc(1, sizeof(*second));
    first->t.deadline = second->t.deadline = tick_deadline;
    first->t.advance = second->t.advance = tick_advance;
    first->armed = second->armed = true;
    hsp_dht_io_add_ticker(io, &second->t);
    hsp_dht_io_add_ticker(io, &first->t); /* runs first (list head) */
    first->victim = second;
    hsp_dht_io_wake(io);
    return;
  }
  default:
    CHECK_EQ_INT(probes, 2); /* the probe to the unhooked socket was dropped */
    CHECK_EQ_INT(first->runs, 1);
    CHECK(first->victim == NULL);
    hsp_dht_io_remove_ticker(io, &first->t);
    free(first);
    uv_timer_stop(&step_timer);
    uv_close((uv_handle_t *)&step_timer, NULL);
    hsp_dht_io_close(io, NULL, NULL);
  }
}

int main(void) {
  uv_loop_t *loop = uv_default_loop();
  hsp_dht_io_opts_t o;
  hsp_dht_io_opts_default(&o);
  o.host = "127.0.0.1";
  o.bootstrap = "";
  CHECK_EQ_INT(hsp_dht_io_create(&io, loop, &o), 0);

  /* localAddresses: a specific bind host is the only LAN address, with the server port. */
  hsp_ipv4_addr_t la[4];
  CHECK_EQ_INT((int)hsp_dht_io_local_addresses(io, la, 4), 1);
  CHECK(la[0].host[0] == 127 && la[0].port == hsp_dht_io_address(io).port);

  /* Relay address cache: get what was set, at most 3 relays, LRU eviction past 64 targets. */
  uint8_t target[32] = {1};
  hsp_ipv4_addr_t relays[4] = {{{127, 0, 0, 1}, 1}, {{127, 0, 0, 1}, 2}, {{127, 0, 0, 1}, 3},
                               {{127, 0, 0, 1}, 4}};
  hsp_ipv4_addr_t got[HSP_DHT_IO_CACHED_RELAYS];
  CHECK_EQ_INT((int)hsp_dht_io_relay_cache_get(io, target, got), 0);
  hsp_dht_io_relay_cache_set(io, target, relays, 4);
  CHECK_EQ_INT((int)hsp_dht_io_relay_cache_get(io, target, got), 3);
  CHECK(got[2].port == 3);
  for (int i = 0; i < HSP_DHT_IO_RELAY_CACHE; i++) {
    uint8_t t2[32] = {2, (uint8_t)i};
    hsp_dht_io_relay_cache_set(io, t2, relays + 1, 1);
  }
  CHECK_EQ_INT((int)hsp_dht_io_relay_cache_get(io, target, got), 0); /* evicted */
  uint8_t t2[32] = {2, 5};
  CHECK_EQ_INT((int)hsp_dht_io_relay_cache_get(io, t2, got), 1);
  hsp_dht_io_relay_cache_set(io, t2, NULL, 0); /* forget */
  CHECK_EQ_INT((int)hsp_dht_io_relay_cache_get(io, t2, got), 0);

  uv_timer_init(loop, &step_timer);
  uv_timer_start(&step_timer, on_step, 0, 100);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return check_summary("dht_pool");
}
