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
  /* probeRound verdicts (firewall 0 UNKNOWN, 1 OPEN, 2 CONSISTENT, 3 RANDOM). */
  CHECK_EQ_INT(hsp_dht_probe_verdict(2, 0, true, true), HSP_DHT_PROBE_AGAIN);
  CHECK_EQ_INT(hsp_dht_probe_verdict(2, 2, false, true), HSP_DHT_PROBE_AGAIN);
  CHECK_EQ_INT(hsp_dht_probe_verdict(2, 2, false, false), HSP_DHT_PROBE_PUNCH);
  CHECK_EQ_INT(hsp_dht_probe_verdict(2, 0, true, false), HSP_DHT_PROBE_ABORT_TIMEOUT);
  CHECK_EQ_INT(hsp_dht_probe_verdict(0, 2, true, true), HSP_DHT_PROBE_ABORT_TIMEOUT);
  CHECK_EQ_INT(hsp_dht_probe_verdict(3, 3, true, true), HSP_DHT_PROBE_ABORT_RANDOM);
  CHECK_EQ_INT(hsp_dht_probe_verdict(3, 2, true, true), HSP_DHT_PROBE_PUNCH);
  CHECK_EQ_INT(hsp_dht_probe_verdict(1, 3, true, false), HSP_DHT_PROBE_PUNCH);

  /* _onpeerholepunch verdicts: probe rounds are answered unless our NAT is unstable; a punch
   * request starts punching unless a random punch is rate-limited. */
  CHECK_EQ_INT(hsp_dht_serve_verdict(2, 0, false, true), HSP_DHT_SERVE_REPLY);
  CHECK_EQ_INT(hsp_dht_serve_verdict(0, 2, false, true), HSP_DHT_SERVE_ABORT);
  CHECK_EQ_INT(hsp_dht_serve_verdict(3, 3, false, true), HSP_DHT_SERVE_ABORT);
  CHECK_EQ_INT(hsp_dht_serve_verdict(3, 0, false, true), HSP_DHT_SERVE_REPLY);
  CHECK_EQ_INT(hsp_dht_serve_verdict(2, 2, true, false), HSP_DHT_SERVE_PUNCH);
  CHECK_EQ_INT(hsp_dht_serve_verdict(3, 2, true, true), HSP_DHT_SERVE_PUNCH);
  CHECK_EQ_INT(hsp_dht_serve_verdict(3, 2, true, false), HSP_DHT_SERVE_TRY_LATER);
  CHECK_EQ_INT(hsp_dht_serve_verdict(2, 3, true, false), HSP_DHT_SERVE_TRY_LATER);
  CHECK(hsp_dht_punch_is_random(2, 3) && hsp_dht_punch_is_random(3, 1) &&
        !hsp_dht_punch_is_random(1, 2));

  /* Random punch limit on a simulated clock: one at a time, then 20 s of quiet. */
  hsp_dht_punch_limit_t lim = {0};
  CHECK(hsp_dht_punch_limit_allowed(&lim, 0));
  hsp_dht_punch_limit_begin(&lim);
  CHECK(!hsp_dht_punch_limit_allowed(&lim, 5000));
  hsp_dht_punch_limit_end(&lim, 7000);
  CHECK(!hsp_dht_punch_limit_allowed(&lim, 7000));
  CHECK(!hsp_dht_punch_limit_allowed(&lim, 26999));
  CHECK(hsp_dht_punch_limit_allowed(&lim, 27000));
  hsp_dht_punch_limit_end(&lim, 30000); /* an extra end never goes negative */
  CHECK_EQ_INT(lim.active, 0);

  /* bogon classes as npm bogon: private vs reserved. */
  const uint8_t lo[4] = {127, 0, 0, 1}, cgn[4] = {100, 64, 1, 1}, lan[4] = {192, 168, 1, 2},
                tn3[4] = {203, 0, 113, 101}, pub[4] = {88, 99, 3, 86}, mc[4] = {224, 0, 0, 1},
                p172[4] = {172, 31, 0, 1}, n172[4] = {172, 32, 0, 1};
  CHECK(hsp_dht_ip_private(lo) && hsp_dht_ip_private(cgn) && hsp_dht_ip_private(lan) &&
        hsp_dht_ip_private(p172));
  CHECK(!hsp_dht_ip_private(n172) && !hsp_dht_ip_private(tn3) && !hsp_dht_ip_private(pub));
  CHECK(hsp_dht_ip_reserved(tn3) && hsp_dht_ip_reserved(mc) && !hsp_dht_ip_reserved(lan));
  CHECK(hsp_dht_ip_bogon(tn3) && hsp_dht_ip_bogon(lo) && !hsp_dht_ip_bogon(pub) &&
        !hsp_dht_ip_bogon(n172));
  return check_summary("dht_punch");
}
