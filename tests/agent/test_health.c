/*
 * Health-check and drain state machines on a simulated clock: registration after the first
 * good check, deregistration after `fall` failures in a row (within 3 checks with the
 * defaults), re-registration after `rise` successes, the HTTP check's request and verdicts
 * on split, interim, failing and malformed responses, and drain verdicts.
 */
#include "check.h"
#include "health.h"

#include <stdio.h>

static void test_parse(void) {
  hsp_health_config_t c;
  CHECK_EQ_INT(hsp_health_parse("tcp", &c), 0);
  CHECK_EQ_INT(c.kind, HSP_HEALTH_TCP);
  CHECK_EQ_INT(hsp_health_parse("none", &c), 0);
  CHECK_EQ_INT(c.kind, HSP_HEALTH_NONE);
  CHECK_EQ_INT(hsp_health_parse("http:/healthz?full=1", &c), 0);
  CHECK_EQ_INT(c.kind, HSP_HEALTH_HTTP);
  CHECK_EQ_STR(c.path, "/healthz?full=1");
  const char *bad[] = {"", "http", "http:", "http:healthz", "http:/a b", "http:/a\r\nX: y",
                       "udp", "TCP", NULL};
  for (int i = 0; i < 9; i++) CHECK_EQ_INT(hsp_health_parse(bad[i], &c), -1);
}

/* Runs checks every interval with the backend's state given by up(t); returns the actions'
 * times through the out arrays. */
static void test_fall_rise(void) {
  hsp_health_config_t c = {.kind = HSP_HEALTH_TCP, .interval_ms = 1000};
  hsp_health_t h;
  hsp_health_init(&h, &c, 0);
  CHECK_EQ_INT(hsp_health_start(&h), HSP_HEALTH_NOTHING); /* registration waits for a check */
  CHECK(!h.registered);
  CHECK(hsp_health_due(&h, 0));
  CHECK(!hsp_health_due(&h, 0)); /* one check at a time */
  CHECK_EQ_INT(hsp_health_result(&h, 5, true), HSP_HEALTH_REGISTER);
  CHECK_EQ_INT(hsp_health_next(&h), 1005);
  CHECK(!hsp_health_due(&h, 1004));
  /* Backend stopped at t = 2000: deregistered on the third failed check. */
  uint64_t stop = 2000, start = 10000, dereg = 0, rereg = 0;
  int checks_failed_before_dereg = 0;
  for (uint64_t t = 1000; t < 20000; t++) {
    if (!hsp_health_due(&h, t)) continue;
    bool up = t < stop || t >= start;
    hsp_health_action_t a = hsp_health_result(&h, t + 1, up);
    if (!up && !dereg) checks_failed_before_dereg++;
    if (a == HSP_HEALTH_DEREGISTER) {
      CHECK(!dereg);
      dereg = t;
    }
    if (a == HSP_HEALTH_REGISTER) {
      CHECK(dereg && !rereg);
      rereg = t;
    }
  }
  printf("health: stopped at %llu, deregistered at %llu (%d checks), back at %llu, "
         "registered at %llu\n",
         (unsigned long long)stop, (unsigned long long)dereg, checks_failed_before_dereg,
         (unsigned long long)start, (unsigned long long)rereg);
  CHECK_EQ_INT(checks_failed_before_dereg, 3);
  CHECK(dereg >= stop && dereg <= stop + 3 * 1001);
  CHECK(rereg >= start && rereg <= start + 1001);
  CHECK(h.registered);

  /* A blip shorter than `fall` changes nothing; rise 2 needs two good checks in a row. */
  hsp_health_config_t c2 = {.kind = HSP_HEALTH_HTTP, .fall = 2, .rise = 2};
  hsp_health_init(&h, &c2, 0);
  uint64_t t = 0;
  bool seq[] = {true, false, true, false, false, true, false, true, true};
  hsp_health_action_t want[] = {HSP_HEALTH_REGISTER, 0, 0, 0, HSP_HEALTH_DEREGISTER, 0, 0,
                                0, HSP_HEALTH_REGISTER};
  for (int i = 0; i < 9; i++) {
    t = hsp_health_next(&h);
    CHECK(hsp_health_due(&h, t));
    CHECK_EQ_INT(hsp_health_result(&h, t, seq[i]), want[i]);
  }
  CHECK_EQ_INT(hsp_health_next(&h) - t, 5000); /* default interval */

  /* none: registered at start, never checked. */
  hsp_health_config_t c3 = {.kind = HSP_HEALTH_NONE};
  hsp_health_init(&h, &c3, 0);
  CHECK_EQ_INT(hsp_health_start(&h), HSP_HEALTH_REGISTER);
  CHECK_EQ_INT(hsp_health_start(&h), HSP_HEALTH_NOTHING);
  CHECK(!hsp_health_due(&h, 1000000));
  CHECK(hsp_health_next(&h) == UINT64_MAX);
  /* A result without a check in progress is ignored. */
  CHECK_EQ_INT(hsp_health_result(&h, 0, false), HSP_HEALTH_NOTHING);
}

static int feed_all(const char *resp, size_t split) {
  hsp_health_http_t x;
  hsp_health_http_init(&x);
  size_t n = strlen(resp);
  int r = -1;
  for (size_t off = 0; off < n && r == -1; off += split) {
    size_t k = n - off < split ? n - off : split;
    r = hsp_health_http_feed(&x, (const uint8_t *)resp + off, k);
  }
  if (r == -1) r = hsp_health_http_feed(&x, NULL, 0);
  return r;
}

static void test_http(void) {
  hsp_health_config_t c;
  hsp_health_parse("http:/healthz", &c);
  char buf[256];
  int n = hsp_health_http_request(&c, "127.0.0.1:8080", buf, sizeof buf);
  CHECK(n > 0);
  CHECK_EQ_STR(buf, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
                    "User-Agent: hyperseaport-health\r\nConnection: close\r\n\r\n");
  CHECK_EQ_INT(hsp_health_http_request(&c, "h", buf, 20), -1);
  for (size_t split = 1; split <= 64; split *= 4) {
    CHECK_EQ_INT(feed_all("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", split), 1);
    CHECK_EQ_INT(feed_all("HTTP/1.1 204 No Content\r\n\r\n", split), 1);
    CHECK_EQ_INT(feed_all("HTTP/1.1 301 Moved\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n", split), 1);
    CHECK_EQ_INT(feed_all("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", split), 1);
    CHECK_EQ_INT(feed_all("HTTP/1.1 503 Unavailable\r\nContent-Length: 0\r\n\r\n", split), 0);
    CHECK_EQ_INT(feed_all("HTTP/1.1 404 Not Found\r\n\r\n", split), 0);
    CHECK_EQ_INT(feed_all("SSH-2.0-OpenSSH_9.2\r\n", split), 0);
    CHECK_EQ_INT(feed_all("HTTP/1.1 200 OK\r\n", split), 0); /* closed mid-headers */
    CHECK_EQ_INT(feed_all("", split), 0);
  }
}

static void test_drain(void) {
  hsp_drain_t d = {0};
  CHECK(hsp_drain_accepting(&d));
  CHECK_EQ_INT(hsp_drain_poll(&d, 0, 5), HSP_DRAIN_WAIT);
  CHECK(hsp_drain_start(&d, 1000, 30000));
  CHECK(!hsp_drain_start(&d, 2000, 30000)); /* a second SIGTERM changes nothing */
  CHECK(!hsp_drain_accepting(&d));
  CHECK_EQ_INT(hsp_drain_poll(&d, 5000, 2), HSP_DRAIN_WAIT);
  CHECK_EQ_INT(hsp_drain_poll(&d, 6000, 0), HSP_DRAIN_EXIT);
  CHECK_EQ_INT(hsp_drain_poll(&d, 7000, 0), HSP_DRAIN_EXIT);
  hsp_drain_t e = {0};
  hsp_drain_start(&e, 0, 10000);
  CHECK_EQ_INT(hsp_drain_poll(&e, 9999, 1), HSP_DRAIN_WAIT);
  CHECK_EQ_INT(hsp_drain_poll(&e, 10000, 1), HSP_DRAIN_FORCE);
  CHECK_EQ_INT(hsp_drain_poll(&e, 10001, 1), HSP_DRAIN_EXIT);
}

int main(void) {
  test_parse();
  test_fall_rise();
  test_http();
  test_drain();
  return check_summary("health");
}
