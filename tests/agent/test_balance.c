/*
 * Balancer tests on a simulated clock: the spread of each policy, stickiness of hash,
 * preference of least-conn and p2c for the idle or faster instance, ejection with
 * exponential backoff and probing, failover of an attempt to another instance, and a kill of
 * one instance among three with 200 connections at a time and no client failure.
 */
#include "balance.h"
#include "check.h"

#include <stdio.h>
#include <stdlib.h>

static uint8_t K[4][HSP_BAL_KEY_BYTES];

static int idx(const uint8_t *key) {
  for (int i = 0; i < 4; i++)
    if (memcmp(K[i], key, HSP_BAL_KEY_BYTES) == 0) return i;
  return -1;
}

static hsp_bal_t *make(hsp_bal_policy_t p, int n) {
  hsp_bal_config_t cfg = {.policy = p, .seed = 42};
  hsp_bal_t *b = hsp_bal_new(&cfg);
  CHECK(b != NULL);
  CHECK_EQ_INT(hsp_bal_sync(b, (const uint8_t(*)[HSP_BAL_KEY_BYTES])K, (size_t)n), 0);
  CHECK_EQ_INT(hsp_bal_count(b), n);
  return b;
}

/* One short connection: picked, connected, closed at once. */
static int one(hsp_bal_t *b, uint64_t now, const void *client, size_t clen) {
  uint8_t k[HSP_BAL_KEY_BYTES];
  if (hsp_bal_pick(b, now, client, clen, NULL, k) != 0) return -1;
  hsp_bal_success(b, k, now, 1.0);
  hsp_bal_done(b, k);
  return idx(k);
}

static void test_names(void) {
  hsp_bal_policy_t p;
  const char *names[] = {"p2c", "first", "round-robin", "hash", "least-conn"};
  for (int i = 0; i < 5; i++) {
    CHECK_EQ_INT(hsp_bal_policy_parse(names[i], &p), 0);
    CHECK_EQ_STR(hsp_bal_policy_name(p), names[i]);
  }
  CHECK_EQ_INT(hsp_bal_policy_parse("random", &p), HSP_BAL_EINVAL);
  CHECK_EQ_INT(hsp_bal_policy_parse(NULL, &p), HSP_BAL_EINVAL);
  CHECK(strcmp(hsp_bal_strerror(HSP_BAL_ENONE), "no instance available") == 0);
}

static void test_empty(void) {
  hsp_bal_t *b = make(HSP_BAL_P2C, 0);
  uint8_t k[HSP_BAL_KEY_BYTES];
  CHECK_EQ_INT(hsp_bal_pick(b, 0, NULL, 0, NULL, k), HSP_BAL_ENONE);
  CHECK_EQ_INT(hsp_bal_available(b, 0), 0);
  CHECK(hsp_bal_next_event(b) == UINT64_MAX);
  /* Waiting clients get an instance as soon as one registers. */
  CHECK_EQ_INT(hsp_bal_add(b, K[2]), 0);
  CHECK_EQ_INT(hsp_bal_pick(b, 0, NULL, 0, NULL, k), 0);
  CHECK_EQ_INT(idx(k), 2);
  hsp_bal_free(b);
}

static void test_first(void) {
  hsp_bal_t *b = make(HSP_BAL_FIRST, 3);
  for (int i = 0; i < 10; i++) CHECK_EQ_INT(one(b, 0, NULL, 0), 0);
  uint8_t k[HSP_BAL_KEY_BYTES];
  CHECK_EQ_INT(hsp_bal_pick(b, 0, NULL, 0, NULL, k), 0);
  hsp_bal_failure(b, k, 0); /* the first fails: the standby takes over */
  CHECK_EQ_INT(one(b, 1, NULL, 0), 1);
  hsp_bal_free(b);
}

static void test_round_robin(void) {
  hsp_bal_t *b = make(HSP_BAL_ROUND_ROBIN, 3);
  int count[3] = {0};
  for (int i = 0; i < 3000; i++) {
    int w = one(b, (uint64_t)i, NULL, 0);
    CHECK(w >= 0 && w < 3);
    if (w >= 0 && w < 3) count[w]++;
  }
  for (int i = 0; i < 3; i++) {
    CHECK(count[i] >= 950 && count[i] <= 1050); /* +-5% of 1,000 */
  }
  /* With one instance gone, the other two share evenly. */
  hsp_bal_remove(b, K[1]);
  int c2[3] = {0};
  for (int i = 0; i < 1000; i++) {
    int w = one(b, 0, NULL, 0);
    if (w >= 0 && w < 3) c2[w]++;
  }
  CHECK_EQ_INT(c2[1], 0);
  CHECK(c2[0] >= 475 && c2[0] <= 525);
  CHECK(c2[2] >= 475 && c2[2] <= 525);
  hsp_bal_free(b);
}

static void test_hash(void) {
  hsp_bal_t *b = make(HSP_BAL_HASH, 3);
  int home[300], count[3] = {0};
  char addr[64];
  for (int c = 0; c < 300; c++) {
    int n = snprintf(addr, sizeof addr, "127.0.0.1:%d", 30000 + c * 7);
    home[c] = one(b, 0, addr, (size_t)n);
    CHECK(home[c] >= 0 && home[c] < 3);
    if (home[c] >= 0 && home[c] < 3) count[home[c]]++;
  }
  /* Every instance gets a fair share of clients. */
  for (int i = 0; i < 3; i++) CHECK(count[i] >= 60 && count[i] <= 140);
  /* Sticky: each client comes back to the same instance, whatever else happens between. */
  int moved = 0;
  for (int r = 0; r < 5; r++)
    for (int c = 0; c < 300; c++) {
      int n = snprintf(addr, sizeof addr, "127.0.0.1:%d", 30000 + c * 7);
      moved += one(b, 0, addr, (size_t)n) != home[c];
    }
  CHECK_EQ_INT(moved, 0);
  /* Only the clients of an instance that leaves move; they return when it does. */
  hsp_bal_remove(b, K[0]);
  int moved_other = 0, moved_home = 0;
  for (int c = 0; c < 300; c++) {
    int n = snprintf(addr, sizeof addr, "127.0.0.1:%d", 30000 + c * 7);
    int w = one(b, 0, addr, (size_t)n);
    CHECK(w != 0);
    if (home[c] == 0) moved_home++;
    else moved_other += w != home[c];
  }
  CHECK_EQ_INT(moved_other, 0);
  CHECK_EQ_INT(moved_home, count[0]);
  CHECK_EQ_INT(hsp_bal_sync(b, (const uint8_t(*)[HSP_BAL_KEY_BYTES])K, 3), 0);
  moved = 0;
  for (int c = 0; c < 300; c++) {
    int n = snprintf(addr, sizeof addr, "127.0.0.1:%d", 30000 + c * 7);
    moved += one(b, 0, addr, (size_t)n) != home[c];
  }
  CHECK_EQ_INT(moved, 0);
  hsp_bal_free(b);
}

/* A simulated load: connections arrive every `gap` ms and stay open for a service time that
 * depends on the instance (`extra` ms more on instance 2), then the share of each instance.
 * The connect latency seen by the balancer is 1 ms plus the extra delay. */
static void simulate(hsp_bal_policy_t p, int conns, double gap, double base, double extra,
                     int share[3]) {
  hsp_bal_t *b = make(p, 3);
  enum { MAXOPEN = 4096 };
  struct {
    double end;
    int inst;
  } open[MAXOPEN];
  int nopen = 0;
  share[0] = share[1] = share[2] = 0;
  for (int i = 0; i < conns; i++) {
    double now = i * gap;
    for (int j = 0; j < nopen;) {
      if (open[j].end <= now) {
        hsp_bal_done(b, K[open[j].inst]);
        open[j] = open[--nopen];
      } else {
        j++;
      }
    }
    uint8_t k[HSP_BAL_KEY_BYTES];
    if (hsp_bal_pick(b, (uint64_t)now, NULL, 0, NULL, k) != 0) {
      CHECK(0);
      continue;
    }
    int w = idx(k);
    double lat = 1.0 + (w == 2 ? extra : 0);
    hsp_bal_success(b, k, (uint64_t)now, lat);
    share[w]++;
    if (nopen < MAXOPEN) {
      open[nopen].end = now + base + lat;
      open[nopen++].inst = w;
    }
  }
  hsp_bal_free(b);
}

static void test_least_conn(void) {
  /* Instance 2 holds its connections 50 ms longer: it always has more open, so least-conn
   * sends it fewer. */
  int s[3];
  simulate(HSP_BAL_LEAST_CONN, 3000, 2.0, 10.0, 50.0, s);
  printf("least-conn with 50 ms extra on #2: %d %d %d\n", s[0], s[1], s[2]);
  CHECK(s[2] < s[0] / 2 && s[2] < s[1] / 2);
  /* Equal instances share evenly. */
  simulate(HSP_BAL_LEAST_CONN, 3000, 2.0, 10.0, 0.0, s);
  for (int i = 0; i < 3; i++) CHECK(s[i] >= 900 && s[i] <= 1100);

  /* An instance with connections stuck open is avoided while another is idle. */
  hsp_bal_t *b = make(HSP_BAL_LEAST_CONN, 3);
  uint8_t k[HSP_BAL_KEY_BYTES];
  for (int i = 0; i < 6; i++) {
    CHECK_EQ_INT(hsp_bal_pick(b, 0, NULL, 0, NULL, k), 0);
    hsp_bal_success(b, k, 0, 1);
  }
  hsp_bal_done(b, K[1]);
  hsp_bal_done(b, K[1]); /* instance 1 is now idle, the others hold two each */
  for (int i = 0; i < 20; i++) {
    CHECK_EQ_INT(one(b, 0, NULL, 0), 1);
  }
  hsp_bal_free(b);
}

static void test_p2c(void) {
  int s[3];
  /* 50 ms more latency on instance 2: it gets far less than a third. */
  simulate(HSP_BAL_P2C, 3000, 2.0, 10.0, 50.0, s);
  printf("p2c with 50 ms extra on #2: %d %d %d\n", s[0], s[1], s[2]);
  CHECK(s[2] < 300);
  CHECK(s[0] > 1100 && s[1] > 1100);
  /* It still gets some: the samples that would show it recovered keep coming. */
  CHECK(s[2] > 0);
  /* Equal instances: an even spread. */
  simulate(HSP_BAL_P2C, 3000, 2.0, 10.0, 0.0, s);
  printf("p2c equal: %d %d %d\n", s[0], s[1], s[2]);
  for (int i = 0; i < 3; i++) CHECK(s[i] >= 850 && s[i] <= 1150);

  /* Busy, equal latency: an instance with many in flight loses to the idle ones. */
  hsp_bal_t *b = make(HSP_BAL_P2C, 3);
  uint8_t k[HSP_BAL_KEY_BYTES];
  /* Warm all three with equal latency, then pile 20 connections onto instance 0. */
  for (int i = 0; i < 30; i++) one(b, 0, NULL, 0);
  int held = 0;
  for (int i = 0; i < 300 && held < 20; i++) {
    CHECK_EQ_INT(hsp_bal_pick(b, 0, NULL, 0, NULL, k), 0);
    hsp_bal_success(b, k, 0, 1.0);
    if (idx(k) == 0) held++;
    else hsp_bal_done(b, k);
  }
  int to0 = 0;
  for (int i = 0; i < 300; i++) to0 += one(b, 0, NULL, 0) == 0;
  CHECK_EQ_INT(to0, 0); /* (20+1) x 1 ms always loses to (0+1) x 1 ms */
  hsp_bal_free(b);

  /* A slow sample ages: an instance measured slow long ago is tried again. */
  b = make(HSP_BAL_P2C, 3);
  hsp_bal_success(b, K[0], 0, 1.0);
  hsp_bal_success(b, K[1], 0, 1.0);
  hsp_bal_success(b, K[2], 0, 51.0);
  for (int i = 0; i < 4; i++) {
    CHECK_EQ_INT(hsp_bal_pick(b, 0, NULL, 0, NULL, k), 0); /* never #2: 51 > 2 x 1 */
    CHECK(idx(k) != 2);
    hsp_bal_success(b, k, 0, 1.0);
  }
  int to2_now = 0, to2_later = 0;
  for (int i = 0; i < 100; i++) {
    CHECK_EQ_INT(hsp_bal_pick(b, 0, NULL, 0, NULL, k), 0);
    to2_now += idx(k) == 2;
    hsp_bal_success(b, k, 0, idx(k) == 2 ? 51.0 : 1.0);
    hsp_bal_done(b, k); /* in flight stays at 2 + 2 + 0 */
  }
  for (int i = 0; i < 100; i++) {
    CHECK_EQ_INT(hsp_bal_pick(b, 200000, NULL, 0, NULL, k), 0);
    to2_later += idx(k) == 2;
    hsp_bal_done(b, k);
  }
  CHECK_EQ_INT(to2_now, 0);
  CHECK(to2_later > 0);
  hsp_bal_free(b);
}

static void test_eject_probe(void) {
  hsp_bal_t *b = make(HSP_BAL_ROUND_ROBIN, 3);
  hsp_bal_stats_t st;
  hsp_bal_failure(b, K[1], 1000); /* a failure without a pick does not underflow */
  CHECK_EQ_INT(hsp_bal_stats(b, K[1], &st), 0);
  CHECK_EQ_INT(st.state, HSP_BAL_EJECTED);
  CHECK_EQ_INT(st.in_flight, 0);
  CHECK_EQ_INT(st.ejected_until_ms, 2000);
  CHECK_EQ_INT(hsp_bal_available(b, 1000), 2);
  CHECK_EQ_INT(hsp_bal_next_event(b), 2000);
  /* Not chosen while ejected. */
  for (int i = 0; i < 100; i++) CHECK(one(b, 1500, NULL, 0) != 1);
  uint8_t k[HSP_BAL_KEY_BYTES];
  CHECK(!hsp_bal_probe_due(b, 1999, k));
  /* Time is up, but it is still not chosen until a probe succeeds. */
  for (int i = 0; i < 10; i++) CHECK(one(b, 2000, NULL, 0) != 1);
  CHECK(hsp_bal_probe_due(b, 2000, k));
  CHECK_EQ_INT(idx(k), 1);
  CHECK(!hsp_bal_probe_due(b, 2000, k)); /* one probe at a time */
  CHECK(hsp_bal_next_event(b) == UINT64_MAX);
  for (int i = 0; i < 10; i++) CHECK(one(b, 2000, NULL, 0) != 1);
  /* The probe fails: ejected twice as long, then four times. */
  hsp_bal_probe_result(b, K[1], 2100, false);
  hsp_bal_stats(b, K[1], &st);
  CHECK_EQ_INT(st.state, HSP_BAL_EJECTED);
  CHECK_EQ_INT(st.ejected_until_ms, 4100);
  CHECK(hsp_bal_probe_due(b, 4100, k));
  hsp_bal_probe_result(b, K[1], 4100, false);
  hsp_bal_stats(b, K[1], &st);
  CHECK_EQ_INT(st.ejected_until_ms, 8100);
  /* It comes back after a good probe. */
  CHECK(hsp_bal_probe_due(b, 9000, k));
  hsp_bal_probe_result(b, K[1], 9000, true);
  hsp_bal_stats(b, K[1], &st);
  CHECK_EQ_INT(st.state, HSP_BAL_UP);
  int got1 = 0;
  for (int i = 0; i < 30; i++) got1 += one(b, 9000, NULL, 0) == 1;
  CHECK_EQ_INT(got1, 10);
  /* Failing again soon: the backoff keeps growing (8 s now)... */
  hsp_bal_failure(b, K[1], 10000);
  hsp_bal_stats(b, K[1], &st);
  CHECK_EQ_INT(st.ejected_until_ms, 18000);
  CHECK(hsp_bal_probe_due(b, 18000, k));
  hsp_bal_probe_result(b, K[1], 18000, true);
  /* ...but after a healthy spell as long as the cap it starts over at 1 s. */
  hsp_bal_failure(b, K[1], 18000 + 60000);
  hsp_bal_stats(b, K[1], &st);
  CHECK_EQ_INT(st.ejected_until_ms, 18000 + 60000 + 1000);
  CHECK_EQ_INT(st.ejections, 1);
  hsp_bal_free(b);

  /* The backoff stops at the cap. */
  hsp_bal_config_t cfg = {.policy = HSP_BAL_FIRST, .eject_base_ms = 100, .eject_max_ms = 1000};
  b = hsp_bal_new(&cfg);
  hsp_bal_add(b, K[0]);
  uint64_t now = 0;
  hsp_bal_eject(b, K[0], now);
  for (int i = 0; i < 20; i++) {
    hsp_bal_stats(b, K[0], &st);
    now = st.ejected_until_ms;
    CHECK(hsp_bal_probe_due(b, now, k));
    hsp_bal_probe_result(b, K[0], now, false);
  }
  hsp_bal_stats(b, K[0], &st);
  CHECK_EQ_INT(st.ejected_until_ms - now, 1000);
  hsp_bal_free(b);

  /* eject_after: two failures in a row needed; a success in between resets the count. */
  hsp_bal_config_t c2 = {.policy = HSP_BAL_FIRST, .eject_after = 2};
  b = hsp_bal_new(&c2);
  hsp_bal_add(b, K[0]);
  hsp_bal_failure(b, K[0], 0);
  hsp_bal_success(b, K[0], 0, 1);
  hsp_bal_failure(b, K[0], 0);
  hsp_bal_stats(b, K[0], &st);
  CHECK_EQ_INT(st.state, HSP_BAL_UP);
  hsp_bal_failure(b, K[0], 0);
  hsp_bal_stats(b, K[0], &st);
  CHECK_EQ_INT(st.state, HSP_BAL_EJECTED);
  hsp_bal_free(b);
}

static void test_retry(void) {
  hsp_bal_attempt_t a = {0};
  uint8_t k[HSP_BAL_KEY_BYTES];
  /* With ejection switched off (many failures needed), the attempt alone moves on. */
  hsp_bal_config_t cfg = {.policy = HSP_BAL_FIRST, .eject_after = 100};
  hsp_bal_t *b = hsp_bal_new(&cfg);
  hsp_bal_sync(b, (const uint8_t(*)[HSP_BAL_KEY_BYTES])K, 3);
  for (int i = 0; i < 3; i++) {
    CHECK_EQ_INT(hsp_bal_pick(b, 0, NULL, 0, &a, k), 0);
    CHECK_EQ_INT(idx(k), i);
    hsp_bal_failure(b, k, 0);
    CHECK_EQ_INT(hsp_bal_may_retry(b, &a, 0, false), i < 2);
  }
  CHECK_EQ_INT(hsp_bal_pick(b, 0, NULL, 0, &a, k), HSP_BAL_ENONE);
  /* Once a byte was forwarded, never retried. */
  hsp_bal_attempt_t a2 = {0};
  CHECK_EQ_INT(hsp_bal_pick(b, 0, NULL, 0, &a2, k), 0);
  CHECK(hsp_bal_may_retry(b, &a2, 0, false));
  CHECK(!hsp_bal_may_retry(b, &a2, 0, true));
  hsp_bal_failure(b, k, 0);
  hsp_bal_stats_t st;
  for (int i = 0; i < 3; i++) {
    hsp_bal_stats(b, K[i], &st);
    CHECK_EQ_INT(st.in_flight, 0);
  }
  hsp_bal_free(b);
}

static void test_membership(void) {
  hsp_bal_t *b = make(HSP_BAL_ROUND_ROBIN, 3);
  uint8_t k[HSP_BAL_KEY_BYTES];
  CHECK_EQ_INT(hsp_bal_pick(b, 0, NULL, 0, NULL, k), 0);
  CHECK_EQ_INT(idx(k), 0);
  hsp_bal_success(b, k, 0, 7.0);
  hsp_bal_eject(b, K[2], 0);
  /* A sync that keeps an instance keeps its counters and health. */
  CHECK_EQ_INT(hsp_bal_sync(b, (const uint8_t(*)[HSP_BAL_KEY_BYTES])K, 4), 0);
  hsp_bal_stats_t st;
  CHECK_EQ_INT(hsp_bal_stats(b, K[0], &st), 0);
  CHECK_EQ_INT(st.in_flight, 1);
  CHECK(st.latency_ms == 7.0);
  hsp_bal_stats(b, K[2], &st);
  CHECK_EQ_INT(st.state, HSP_BAL_EJECTED);
  CHECK_EQ_INT(hsp_bal_count(b), 4);
  CHECK_EQ_INT(hsp_bal_available(b, 0), 3);
  /* Removal takes effect at once; a late done() for it is ignored. */
  CHECK(hsp_bal_remove(b, K[0]));
  CHECK(!hsp_bal_remove(b, K[0]));
  hsp_bal_done(b, K[0]);
  hsp_bal_failure(b, K[0], 0);
  CHECK_EQ_INT(hsp_bal_stats(b, K[0], &st), HSP_BAL_ENOTFOUND);
  for (int i = 0; i < 50; i++) {
    int w = one(b, 0, NULL, 0);
    CHECK(w == 1 || w == 3);
  }
  /* A removed instance that registers again starts afresh. */
  CHECK_EQ_INT(hsp_bal_add(b, K[0]), 0);
  CHECK_EQ_INT(hsp_bal_add(b, K[0]), 0);
  CHECK_EQ_INT(hsp_bal_count(b), 4);
  hsp_bal_stats(b, K[0], &st);
  CHECK_EQ_INT(st.in_flight, 0);
  CHECK_EQ_INT(st.picks, 0);
  /* Duplicate keys in a sync count once. */
  uint8_t dup[3][HSP_BAL_KEY_BYTES];
  memcpy(dup[0], K[1], 32);
  memcpy(dup[1], K[1], 32);
  memcpy(dup[2], K[3], 32);
  CHECK_EQ_INT(hsp_bal_sync(b, (const uint8_t(*)[HSP_BAL_KEY_BYTES])dup, 3), 0);
  CHECK_EQ_INT(hsp_bal_count(b), 2);
  CHECK_EQ_INT(hsp_bal_sync(b, NULL, 0), 0);
  CHECK_EQ_INT(hsp_bal_count(b), 0);
  hsp_bal_free(b);
}

/* Tiers: the best tier with an available instance serves; the next only when it cannot. */
static void test_tiers(void) {
  for (int p = 0; p <= HSP_BAL_LEAST_CONN; p++) {
    hsp_bal_config_t cfg = {.policy = (hsp_bal_policy_t)p, .seed = 7};
    hsp_bal_t *b = hsp_bal_new(&cfg);
    uint32_t tiers[4] = {0, 0, 1, 1}; /* e.g. two instances of 2.0.0, two of 1.2.0 */
    CHECK_EQ_INT(hsp_bal_sync_tiers(b, (const uint8_t(*)[HSP_BAL_KEY_BYTES])K, tiers, 4), 0);
    int count[4] = {0};
    for (int i = 0; i < 400; i++) {
      int w = one(b, 0, &i, sizeof i);
      if (w >= 0) count[w]++;
    }
    CHECK_EQ_INT(count[2] + count[3], 0);
    CHECK(p == HSP_BAL_FIRST || p == HSP_BAL_HASH || (count[0] > 100 && count[1] > 100));
    /* The whole first tier fails: the second takes over, retries included. */
    hsp_bal_eject(b, K[0], 0);
    hsp_bal_attempt_t a = {0};
    uint8_t k[HSP_BAL_KEY_BYTES];
    CHECK_EQ_INT(hsp_bal_pick(b, 0, NULL, 0, &a, k), 0);
    CHECK_EQ_INT(idx(k), 1);
    hsp_bal_failure(b, k, 0);
    CHECK(hsp_bal_may_retry(b, &a, 0, false));
    CHECK_EQ_INT(hsp_bal_pick(b, 0, NULL, 0, &a, k), 0);
    CHECK(idx(k) == 2 || idx(k) == 3);
    hsp_bal_success(b, k, 0, 1);
    hsp_bal_done(b, k);
    /* Back to the first tier once an instance of it is back. */
    uint8_t pk[HSP_BAL_KEY_BYTES];
    while (hsp_bal_probe_due(b, 5000, pk)) hsp_bal_probe_result(b, pk, 5000, true);
    for (int i = 0; i < 20; i++) CHECK(one(b, 5000, &i, sizeof i) <= 1);
    hsp_bal_free(b);
  }
}

/* Three instances, 200 connections in flight at any time (each lasting 100 ms, a new one
 * every 0.5 ms), instance 1 killed at t = 1 s: attempts on it fail until it is ejected; every
 * failed attempt is retried on another instance, so no client connection fails; the dead
 * instance is probed (and the probe fails) with growing backoff, so it is not chosen again
 * until it returns at t = 4 s. Connections that were open on it when it died are lost
 * (counted separately: they had forwarded bytes). */
static void test_kill_one(hsp_bal_policy_t policy) {
  hsp_bal_t *b = make(policy, 3);
  enum { N = 200 };
  struct {
    uint64_t end;
    int inst;
    bool live;
  } open[N] = {0};
  int client_failures = 0, retried = 0, lost = 0, picks_dead = 0, picks_after_return = 0;
  bool alive[3] = {true, true, true};
  uint64_t kill_at = 1000, back_at = 4000;
  int slot = 0;
  for (uint64_t t2 = 0; t2 < 20000; t2++) { /* t = t2 / 2 ms */
    uint64_t now = t2 / 2;
    if (t2 == kill_at * 2) {
      alive[1] = false;
      /* The open session notices: its connections end. */
      for (int i = 0; i < N; i++)
        if (open[i].live && open[i].inst == 1) {
          hsp_bal_done(b, K[1]);
          open[i].live = false;
          lost++;
        }
      hsp_bal_eject(b, K[1], now);
    }
    if (t2 == back_at * 2) alive[1] = true;
    uint8_t k[HSP_BAL_KEY_BYTES];
    while (hsp_bal_probe_due(b, now, k)) hsp_bal_probe_result(b, k, now, alive[idx(k)]);
    if (open[slot].live) hsp_bal_done(b, K[open[slot].inst]);
    open[slot].live = false;
    hsp_bal_attempt_t a = {0};
    for (;;) {
      if (hsp_bal_pick(b, now, &slot, sizeof slot, &a, k) != 0) {
        client_failures++;
        break;
      }
      int w = idx(k);
      if (now >= kill_at && now < back_at && w == 1) picks_dead++;
      if (now >= back_at + 4000 && w == 1) picks_after_return++;
      if (!alive[w]) {
        hsp_bal_failure(b, k, now);
        if (!hsp_bal_may_retry(b, &a, now, false)) {
          client_failures++;
          break;
        }
        retried++;
        continue;
      }
      hsp_bal_success(b, k, now, 1.0);
      open[slot].end = now + 100;
      open[slot].inst = w;
      open[slot].live = true;
      break;
    }
    slot = (slot + 1) % N;
  }
  printf("kill one (%s): lost %d open, %d retried, %d client failures, %d picks of the dead, "
         "%d after return\n",
         hsp_bal_policy_name(policy), lost, retried, client_failures, picks_dead,
         picks_after_return);
  CHECK_EQ_INT(client_failures, 0);
  CHECK_EQ_INT(picks_dead, 0); /* the session failure ejected it before any new pick */
  CHECK(policy == HSP_BAL_FIRST || picks_after_return > 0);
  hsp_bal_free(b);
}

/* Without a session to tell (instance killed while idle), the first attempt on it fails and
 * is retried elsewhere; it is then ejected and not picked again while dead. */
static void test_kill_idle(void) {
  hsp_bal_t *b = make(HSP_BAL_ROUND_ROBIN, 3);
  int fails = 0, dead_picks = 0;
  for (uint64_t now = 0; now < 3000; now++) {
    uint8_t k[HSP_BAL_KEY_BYTES];
    while (hsp_bal_probe_due(b, now, k)) hsp_bal_probe_result(b, k, now, false);
    hsp_bal_attempt_t a = {0};
    for (;;) {
      if (hsp_bal_pick(b, now, NULL, 0, &a, k) != 0) {
        fails++;
        break;
      }
      if (idx(k) == 1) {
        dead_picks++;
        hsp_bal_failure(b, k, now);
        if (!hsp_bal_may_retry(b, &a, now, false)) {
          fails++;
          break;
        }
        continue;
      }
      hsp_bal_success(b, k, now, 1);
      hsp_bal_done(b, k);
      break;
    }
  }
  CHECK_EQ_INT(fails, 0);
  CHECK_EQ_INT(dead_picks, 1);
  hsp_bal_free(b);
}

int main(void) {
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < HSP_BAL_KEY_BYTES; j++) K[i][j] = (uint8_t)(i * 37 + j * 11 + 1);
  test_names();
  test_empty();
  test_first();
  test_round_robin();
  test_hash();
  test_least_conn();
  test_p2c();
  test_eject_probe();
  test_retry();
  test_membership();
  test_tiers();
  for (int p = 0; p <= HSP_BAL_LEAST_CONN; p++) test_kill_one((hsp_bal_policy_t)p);
  test_kill_idle();
  return check_summary("balance");
}
