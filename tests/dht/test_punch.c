/* Holepunch schedules (holepuncher.js) and LAN address matching, on a simulated clock. */
#include <string.h>

#include "check.h"
#include "messages.h"
#include "punch.h"

static uint64_t rng = 3;
static uint64_t det(void *ctx) {
  (void)ctx;
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static hsp_ipv4_addr_t ad(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port) {
  return (hsp_ipv4_addr_t){{a, b, c, d}, port};
}

typedef struct tally {
  int probes, opens, done, ttl5, ttl64;
  uint64_t first, last, done_at;
  int per_addr[4];
  int min_port, max_port;
} tally_t;

static void run(hsp_dht_punch_t *p, uint64_t start, uint64_t until, tally_t *t,
                const hsp_ipv4_addr_t *addrs, size_t n) {
  memset(t, 0, sizeof(*t));
  t->min_port = 70000;
  for (uint64_t now = start; now <= until; now++) {
    if (hsp_dht_punch_deadline(p) > now) continue;
    hsp_dht_punch_action_t a;
    while (hsp_dht_punch_next(p, now, &a)) {
      if (a.kind == HSP_DHT_PUNCH_DONE) {
        t->done++;
        t->done_at = now;
        continue;
      }
      if (a.kind == HSP_DHT_PUNCH_OPEN_SOCKET) {
        t->opens++;
        continue;
      }
      if (!t->probes) t->first = now;
      t->last = now;
      t->probes++;
      t->ttl5 += a.ttl == HSP_DHT_HOLEPUNCH_TTL;
      t->ttl64 += a.ttl == HSP_DHT_DEFAULT_TTL;
      if (a.to.port < t->min_port) t->min_port = a.to.port;
      if (a.to.port > t->max_port) t->max_port = a.to.port;
      for (size_t i = 0; i < n; i++)
        if (hsp_dht_addr_equal(&a.to, &addrs[i])) t->per_addr[i]++;
    }
  }
}

int main(void) {
  /* Strategy table; OPEN counts as CONSISTENT. */
  CHECK_EQ_INT(hsp_dht_punch_strategy(2, 2, false), HSP_DHT_PUNCH_CONSISTENT);
  CHECK_EQ_INT(hsp_dht_punch_strategy(1, 2, false), HSP_DHT_PUNCH_CONSISTENT);
  CHECK_EQ_INT(hsp_dht_punch_strategy(2, 3, false), HSP_DHT_PUNCH_NONE);
  CHECK_EQ_INT(hsp_dht_punch_strategy(2, 3, true), HSP_DHT_PUNCH_RANDOM_PORTS);
  CHECK_EQ_INT(hsp_dht_punch_strategy(3, 1, true), HSP_DHT_PUNCH_BIRTHDAY);
  CHECK_EQ_INT(hsp_dht_punch_strategy(3, 3, true), HSP_DHT_PUNCH_NONE);
  CHECK_EQ_INT(hsp_dht_punch_strategy(0, 2, true), HSP_DHT_PUNCH_NONE);

  /* Consistent: 10 rounds 1 s apart; the unverified address only in rounds 4 and 8. */
  hsp_ipv4_addr_t addrs[2] = {ad(1, 2, 3, 4, 5000), ad(192, 168, 1, 9, 5000)};
  bool verified[2] = {true, false};
  hsp_dht_punch_t p;
  tally_t t;
  CHECK_EQ_INT(hsp_dht_punch_init(&p, 2, 1, addrs, verified, 2, true, 0, det, NULL),
               HSP_DHT_PUNCH_CONSISTENT);
  run(&p, 0, 20000, &t, addrs, 2);
  CHECK_EQ_INT(t.per_addr[0], 10);
  CHECK_EQ_INT(t.per_addr[1], 2);
  CHECK(t.first == 0 && t.last == 9000 && t.done == 1 && t.done_at == 10000);
  CHECK_EQ_INT(t.ttl64, 12);
  /* The responder starts a second later; stop() ends the schedule. */
  hsp_dht_punch_init(&p, 2, 2, addrs, verified, 2, false, 0, det, NULL);
  run(&p, 0, 2500, &t, addrs, 2);
  CHECK(t.first == 1000 && t.per_addr[0] == 2);
  hsp_dht_punch_stop(&p);
  CHECK(hsp_dht_punch_deadline(&p) == UINT64_MAX);

  /* Random ports: 1750 probes every 20 ms to the verified host, ports in [1000, 65535]. */
  verified[1] = true; /* the first verified address is the target */
  CHECK_EQ_INT(hsp_dht_punch_init(&p, 2, 3, addrs, verified, 2, true, 0, det, NULL),
               HSP_DHT_PUNCH_RANDOM_PORTS);
  run(&p, 0, 40000, &t, addrs, 2);
  CHECK_EQ_INT(t.probes, 1750);
  CHECK(t.last == 1749 * 20 && t.done_at == 1750 * 20);
  CHECK(t.min_port >= 1000 && t.max_port <= 65535 && t.max_port - t.min_port > 50000);

  /* Birthday: 255 new sockets with one TTL-5 probe each, then after 100 ms 1750 probes
   * cycling over all 256 sockets, the first pass at TTL 5. */
  CHECK_EQ_INT(hsp_dht_punch_init(&p, 3, 2, addrs, verified, 2, true, 0, det, NULL),
               HSP_DHT_PUNCH_BIRTHDAY);
  run(&p, 0, 0, &t, addrs, 2);
  CHECK_EQ_INT(t.opens, 255);
  CHECK_EQ_INT(t.probes, 255);
  CHECK_EQ_INT(t.ttl5, 255);
  CHECK_EQ_INT(hsp_dht_punch_deadline(&p), 100);
  run(&p, 1, 40000, &t, addrs, 2);
  CHECK_EQ_INT(t.probes, 1750);
  CHECK_EQ_INT(t.ttl5, 256);
  CHECK_EQ_INT(t.ttl64, 1750 - 256);
  CHECK(t.first == 100 && t.per_addr[0] == 1750);

  /* Nothing to punch. */
  CHECK_EQ_INT(hsp_dht_punch_init(&p, 3, 3, addrs, verified, 2, true, 0, det, NULL), 0);
  CHECK(hsp_dht_punch_deadline(&p) == UINT64_MAX);

  /* matchAddress: /24 beats /16 beats /8; no shared first byte -> none. */
  hsp_ipv4_addr_t local[1] = {ad(192, 168, 122, 238, 1)};
  hsp_ipv4_addr_t remote[3] = {ad(10, 0, 0, 1, 1), ad(192, 168, 0, 23, 1), ad(192, 168, 122, 1, 1)};
  CHECK_EQ_INT(hsp_dht_match_address(local, 1, remote, 3), 2);
  CHECK_EQ_INT(hsp_dht_match_address(local, 1, remote, 2), 1);
  hsp_ipv4_addr_t r8[2] = {ad(10, 0, 0, 1, 1), ad(192, 1, 1, 1, 1)};
  CHECK_EQ_INT(hsp_dht_match_address(local, 1, r8, 2), 1);
  CHECK_EQ_INT(hsp_dht_match_address(local, 1, r8, 1), -1);
  CHECK_EQ_INT(hsp_dht_match_address(local, 1, remote, 0), -1);
  return check_summary("dht_punch");
}
