/*
 * One sans-I/O dht-rpc node driven by hand: every internal command, tokens and their
 * rotation, application commands, retransmission timing, tid matching, id validation,
 * malformed input and the congestion window (docs/protocol/dht-rpc.md §2, §4, §6).
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dht.h"
#include "store.h"

static uint64_t rng_state = 42;
static void det_random(void *ctx, uint8_t *buf, size_t len) {
  (void)ctx;
  for (size_t i = 0; i < len; i++) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    buf[i] = (uint8_t)(rng_state >> 56);
  }
}

static hsp_ipv4_addr_t lo(uint16_t port) { return (hsp_ipv4_addr_t){{127, 0, 0, 1}, port}; }

typedef struct out {
  int count;
  hsp_dht_datagram_t d[256];
  uint8_t data[256][1500];
} out_t;
static out_t out;

static int drain(hsp_dht_node_t *n) {
  out.count = 0;
  hsp_dht_datagram_t d;
  while (hsp_dht_node_next_datagram(n, &d)) {
    if (out.count < 256) {
      out.d[out.count] = d;
      memcpy(out.data[out.count], d.data, d.len < 1500 ? d.len : 1500);
      out.d[out.count].data = out.data[out.count];
      out.count++;
    }
  }
  return out.count;
}

static bool app_handler_used;
static bool app_on_request(void *ctx, hsp_dht_node_t *node, const hsp_dht_incoming_t *req) {
  (void)ctx;
  if (req->command == 42) {
    hsp_dht_reply_opts_t o;
    hsp_dht_reply_opts_default(&o);
    o.value = (const uint8_t *)"pong";
    o.value_len = 4;
    o.has_value = true;
    hsp_dht_node_reply(node, req, &o);
    app_handler_used = true;
    return true;
  }
  if (req->command == 44) return true; /* ignored: the requester times out */
  return false;
}

static hsp_dht_node_t *make_bootstrapper(uint16_t port, uint64_t now) {
  hsp_dht_config_t cfg;
  hsp_dht_config_default(&cfg);
  cfg.bootstrapper = true;
  cfg.bootstrapper_addr = lo(port);
  cfg.server_port = port;
  cfg.random = det_random;
  cfg.on_request = app_on_request;
  hsp_dht_node_t *n = NULL;
  CHECK_EQ_INT(hsp_dht_node_init(&n, &cfg, now), 0);
  /* Like DHT.bootstrapper: persistent once its (empty) bootstrap lookup is over. */
  hsp_dht_node_start(n, now);
  hsp_dht_node_advance(n, now);
  CHECK(hsp_dht_node_bootstrapped(n) && !hsp_dht_node_ephemeral(n));
  drain(n);
  return n;
}

static size_t req_bytes(uint8_t *buf, hsp_dht_request_t *m) {
  long len = hsp_dht_request_encode(buf, 1500, m);
  CHECK(len > 0);
  return len > 0 ? (size_t)len : 0;
}

static bool decode_res(int i, hsp_dht_response_t *res) {
  return i < out.count && hsp_dht_response_decode(res, out.d[i].data, out.d[i].len) == 0;
}

static void test_internal_commands(void) {
  uint64_t now = 1000;
  hsp_dht_node_t *a = make_bootstrapper(30001, now);
  /* A persistent bootstrapper answers with its id = hash(127.0.0.1:30001) (§9.1). */
  uint8_t buf[1500];
  hsp_dht_request_t ping = {.tid = 0x3b5a, .to = lo(30001), .internal = true, .command = 0};
  hsp_ipv4_addr_t c = lo(41103);
  hsp_dht_node_recv(a, HSP_DHT_SOCKET_SERVER, &c, buf, req_bytes(buf, &ping), now);
  CHECK_EQ_INT(drain(a), 1);
  static const uint8_t want[] = {0x13, 0x01, 0x5a, 0x3b, 0x7f, 0, 0, 1, 0x8f, 0xa0, 0x45, 0x1c, 0x19, 0x6b};
  CHECK(out.d[0].len == 42 && memcmp(out.d[0].data, want, sizeof(want)) == 0);
  CHECK(out.d[0].socket == HSP_DHT_SOCKET_SERVER && hsp_dht_addr_equal(&out.d[0].to, &c));

  /* A persistent B pings: it enters A's table (a plain PING is enough). */
  uint8_t b_id[32];
  hsp_ipv4_addr_t b = lo(30002);
  hsp_dht_id_from_addr(b_id, &b);
  hsp_dht_request_t pb = {.tid = 7, .to = lo(30001), .internal = true, .id = b_id};
  hsp_dht_node_recv(a, HSP_DHT_SOCKET_SERVER, &b, buf, req_bytes(buf, &pb), now);
  CHECK_EQ_INT(drain(a), 1);
  CHECK(hsp_dht_table_get(hsp_dht_node_table(a), b_id) != NULL);
  /* An id that does not match the source address is ignored. */
  hsp_ipv4_addr_t liar = lo(30009);
  hsp_dht_node_recv(a, HSP_DHT_SOCKET_SERVER, &liar, buf, req_bytes(buf, &pb), now);
  drain(a);
  uint8_t liar_id[32];
  hsp_dht_id_from_addr(liar_id, &liar);
  CHECK(hsp_dht_table_get(hsp_dht_node_table(a), liar_id) == NULL);
  CHECK_EQ_INT(hsp_dht_node_table(a)->size, 1);

  /* FIND_NODE: closer nodes = [B]; without a target: no reply at all (§9.3). */
  uint8_t aa[32];
  memset(aa, 0xaa, 32);
  hsp_dht_request_t fn = {.tid = 0x3b5b, .to = lo(30001), .internal = true, .command = 2, .target = aa};
  hsp_dht_node_recv(a, HSP_DHT_SOCKET_SERVER, &c, buf, req_bytes(buf, &fn), now);
  CHECK_EQ_INT(drain(a), 1);
  hsp_dht_response_t res;
  CHECK(decode_res(0, &res));
  CHECK(res.closer_count == 1 && res.token == NULL && !res.has_value);
  hsp_ipv4_addr_t got = hsp_dht_addr_from_wire(res.closer);
  CHECK(hsp_dht_addr_equal(&got, &b));
  fn.target = NULL;
  hsp_dht_node_recv(a, HSP_DHT_SOCKET_SERVER, &c, buf, req_bytes(buf, &fn), now);
  CHECK_EQ_INT(drain(a), 0);

  /* PING_NAT: reply to source IP : value port, from the receiving socket (§9.6). */
  uint8_t port[2] = {0x33, 0x75};
  hsp_dht_request_t pn = {.tid = 0x3b62, .to = lo(30001), .internal = true, .command = 1,
                          .has_value = true, .value = {port, 2}};
  hsp_dht_node_recv(a, HSP_DHT_SOCKET_CLIENT, &c, buf, req_bytes(buf, &pn), now);
  CHECK_EQ_INT(drain(a), 1);
  CHECK(out.d[0].to.port == 30003 && out.d[0].socket == HSP_DHT_SOCKET_CLIENT);
  CHECK(decode_res(0, &res) && res.to.port == 30003 && res.id == NULL); /* client socket: no id */
  pn.value.len = 1;
  hsp_dht_node_recv(a, HSP_DHT_SOCKET_SERVER, &c, buf, req_bytes(buf, &pn), now);
  CHECK_EQ_INT(drain(a), 0);
  uint8_t zero[2] = {0, 0};
  pn.value = (hsp_bytes_t){zero, 2};
  hsp_dht_node_recv(a, HSP_DHT_SOCKET_SERVER, &c, buf, req_bytes(buf, &pn), now);
  CHECK_EQ_INT(drain(a), 0);

  /* DELAYED_PING 500 ms: the reply leaves 500 ms later; above 10 s: never. */
  uint8_t delay[4] = {0xf4, 0x01, 0, 0};
  hsp_dht_request_t dp = {.tid = 0x3b61, .to = lo(30001), .internal = true, .command = 4,
                          .has_value = true, .value = {delay, 4}};
  hsp_dht_node_recv(a, HSP_DHT_SOCKET_SERVER, &c, buf, req_bytes(buf, &dp), now);
  CHECK_EQ_INT(drain(a), 0);
  CHECK(hsp_dht_node_next_deadline(a) <= now + 500);
  hsp_dht_node_advance(a, now + 499);
  CHECK_EQ_INT(drain(a), 0);
  hsp_dht_node_advance(a, now + 500);
  CHECK_EQ_INT(drain(a), 1);
  CHECK(decode_res(0, &res) && res.tid == 0x3b61);
  uint8_t big[4] = {0x11, 0x27, 0, 0}; /* 10001 */
  dp.value = (hsp_bytes_t){big, 4};
  hsp_dht_node_recv(a, HSP_DHT_SOCKET_SERVER, &c, buf, req_bytes(buf, &dp), now + 500);
  hsp_dht_node_advance(a, now + 11000);
  CHECK_EQ_INT(drain(a), 0);
  now += 11000;

  /* DOWN_HINT about B: A answers empty and PINGs B from its server socket (§9.7). */
  uint8_t bw[6];
  hsp_dht_addr_to_wire(bw, &b);
  hsp_dht_request_t dh = {.tid = 0x3b63, .to = lo(30001), .internal = true, .command = 3,
                          .has_value = true, .value = {bw, 6}};
  hsp_dht_node_recv(a, HSP_DHT_SOCKET_SERVER, &c, buf, req_bytes(buf, &dh), now);
  CHECK_EQ_INT(drain(a), 2);
  hsp_dht_request_t check;
  CHECK(hsp_dht_request_decode(&check, out.d[0].data, out.d[0].len) == 0);
  CHECK(check.internal && check.command == 0 && check.id != NULL);
  CHECK(hsp_dht_addr_equal(&out.d[0].to, &b));
  /* B never answers: after 4 sends B is dropped from the table. */
  for (uint64_t t = now; t <= now + 4100; t += 100) {
    hsp_dht_node_advance(a, t);
    drain(a);
  }
  CHECK(hsp_dht_table_get(hsp_dht_node_table(a), b_id) == NULL);

  /* Unknown internal command with target: UNKNOWN_COMMAND, closer nodes included. */
  hsp_dht_request_t uk = {.tid = 9, .to = lo(30001), .internal = true, .command = 9, .target = aa};
  hsp_dht_node_recv(a, HSP_DHT_SOCKET_SERVER, &c, buf, req_bytes(buf, &uk), now);
  CHECK_EQ_INT(drain(a), 1);
  CHECK(decode_res(0, &res) && res.error == HSP_DHT_WIRE_UNKNOWN_COMMAND);

  /* Malformed and foreign datagrams are dropped silently. */
  uint8_t junk[64];
  size_t n = req_bytes(junk, &fn);
  for (size_t i = 0; i < n; i++) hsp_dht_node_recv(a, HSP_DHT_SOCKET_SERVER, &c, junk, i, now);
  junk[0] = 0xff;
  hsp_dht_node_recv(a, HSP_DHT_SOCKET_SERVER, &c, junk, n, now);
  hsp_ipv4_addr_t port0 = lo(0);
  hsp_dht_node_recv(a, HSP_DHT_SOCKET_SERVER, &port0, buf, req_bytes(buf, &ping), now);
  CHECK_EQ_INT(drain(a), 0);
  hsp_dht_node_destroy(a);
}

static void test_tokens_and_app_commands(void) {
  uint64_t now = 5000;
  hsp_dht_node_t *b = make_bootstrapper(30002, now);
  hsp_ipv4_addr_t c = lo(41103);
  uint8_t buf[1500], aa[32];
  memset(aa, 0xaa, 32);

  /* Handled app command: reply has id, token, value (§9.4). */
  hsp_dht_request_t app = {.tid = 1, .to = lo(30002), .command = 42, .target = aa,
                           .has_value = true, .value = {(const uint8_t *)"hi", 2}};
  hsp_dht_node_recv(b, HSP_DHT_SOCKET_SERVER, &c, buf, req_bytes(buf, &app), now);
  CHECK_EQ_INT(drain(b), 1);
  hsp_dht_response_t res;
  CHECK(decode_res(0, &res));
  CHECK(res.id && res.token && res.has_value && res.value.len == 4);
  CHECK(out.d[0].data[1] == 0x13); /* id|token|value (no closer nodes: empty table) */
  uint8_t token[32];
  memcpy(token, res.token, 32);

  /* Echo at +5 s and +12 s: accepted; at +16.5 s: INVALID_TOKEN with a fresh token. */
  const uint64_t at[3] = {5000, 12000, 16500};
  for (int i = 0; i < 3; i++) {
    hsp_dht_node_advance(b, now + at[i]);
    drain(b);
    /* Another port of the same IP: the port is not bound (§4). */
    hsp_ipv4_addr_t c2 = lo(50000);
    app.token = token;
    app.tid = (uint16_t)(2 + i);
    app_handler_used = false;
    hsp_dht_node_recv(b, HSP_DHT_SOCKET_SERVER, &c2, buf, req_bytes(buf, &app), now + at[i]);
    CHECK_EQ_INT(drain(b), 1);
    CHECK(decode_res(0, &res));
    if (i < 2) {
      CHECK(res.error == 0 && app_handler_used);
    } else {
      CHECK(res.error == HSP_DHT_WIRE_INVALID_TOKEN && !app_handler_used && res.token != NULL);
      CHECK(memcmp(res.token, token, 32) != 0);
    }
  }
  now += 16500;

  /* A zero token is rejected before dispatch; no target, so no closer nodes (§9.4). */
  uint8_t zero[32] = {0};
  hsp_dht_request_t bad = {.tid = 0x3b5e, .to = lo(30002), .token = zero, .command = 42,
                           .has_value = true, .value = {(const uint8_t *)"hi", 2}};
  hsp_dht_node_recv(b, HSP_DHT_SOCKET_SERVER, &c, buf, req_bytes(buf, &bad), now);
  CHECK_EQ_INT(drain(b), 1);
  CHECK(out.d[0].data[1] == 0x0b && out.d[0].len == 75);

  /* Unhandled app command: UNKNOWN_COMMAND; an ignored one: no reply. */
  hsp_dht_request_t unk = {.tid = 0x3b5f, .to = lo(30002), .command = 43, .target = aa};
  hsp_dht_node_recv(b, HSP_DHT_SOCKET_SERVER, &c, buf, req_bytes(buf, &unk), now);
  CHECK_EQ_INT(drain(b), 1);
  CHECK(decode_res(0, &res) && res.error == HSP_DHT_WIRE_UNKNOWN_COMMAND);
  unk.command = 44;
  hsp_dht_node_recv(b, HSP_DHT_SOCKET_SERVER, &c, buf, req_bytes(buf, &unk), now);
  CHECK_EQ_INT(drain(b), 0);
  hsp_dht_node_destroy(b);
}

typedef struct outcome {
  int calls, err;
  uint64_t error;
  bool has_id;
} outcome_t;
static void on_outcome(void *ctx, const hsp_dht_reply_t *reply, int err) {
  outcome_t *o = ctx;
  o->calls++;
  o->err = err;
  if (reply) {
    o->error = reply->error;
    o->has_id = reply->from_id != NULL;
  }
}

static void test_client_requests(void) {
  uint64_t now = 0;
  hsp_dht_config_t cfg;
  hsp_dht_config_default(&cfg);
  cfg.server_port = 30003;
  cfg.random = det_random;
  hsp_dht_node_t *n = NULL;
  CHECK_EQ_INT(hsp_dht_node_init(&n, &cfg, now), 0);

  /* Retransmission: identical bytes at +0, +1000, +2000, +3000, timeout at +4000 (§9.8). */
  hsp_dht_request_opts_t o;
  hsp_dht_request_opts_default(&o);
  o.to = lo(30002);
  o.command = 0x2c;
  outcome_t res = {0};
  CHECK(hsp_dht_node_request(n, &o, on_outcome, &res) > 0);
  CHECK_EQ_INT(drain(n), 1);
  CHECK(out.d[0].socket == HSP_DHT_SOCKET_CLIENT); /* firewalled: requests use the client socket */
  CHECK(out.d[0].len == 11 && out.d[0].data[1] == 0x00 && out.d[0].data[10] == 0x2c);
  uint8_t first[11];
  memcpy(first, out.d[0].data, 11);
  for (int i = 1; i <= 3; i++) {
    hsp_dht_node_advance(n, now + 1000u * (unsigned)i - 1);
    CHECK_EQ_INT(drain(n), 0);
    hsp_dht_node_advance(n, now + 1000u * (unsigned)i);
    CHECK_EQ_INT(drain(n), 1);
    CHECK(out.d[0].len == 11 && memcmp(out.d[0].data, first, 11) == 0);
  }
  CHECK_EQ_INT(res.calls, 0);
  hsp_dht_node_advance(n, now + 4000);
  CHECK_EQ_INT(res.calls, 1);
  CHECK_EQ_INT(res.err, HSP_DHT_ETIMEDOUT);
  CHECK_EQ_INT(hsp_dht_node_inflight(n), 0);
  now += 4000;

  /* A reply is matched by tid alone, from any address and on any socket; a late duplicate
   * is ignored; an error reply is a reply, not a failure. */
  res = (outcome_t){0};
  CHECK(hsp_dht_node_request(n, &o, on_outcome, &res) > 0);
  drain(n);
  hsp_dht_request_t sent;
  CHECK(hsp_dht_request_decode(&sent, out.d[0].data, out.d[0].len) == 0);
  uint8_t a_id[32], buf[128];
  hsp_ipv4_addr_t a = lo(30001);
  hsp_dht_id_from_addr(a_id, &a);
  hsp_dht_response_t r = {.tid = sent.tid, .to = lo(20003), .id = a_id, .error = 1};
  long len = hsp_dht_response_encode(buf, sizeof(buf), &r);
  hsp_dht_node_recv(n, HSP_DHT_SOCKET_SERVER, &a, buf, (size_t)len, now + 5);
  CHECK(res.calls == 1 && res.err == 0 && res.error == 1 && res.has_id);
  hsp_dht_node_recv(n, HSP_DHT_SOCKET_SERVER, &a, buf, (size_t)len, now + 6);
  CHECK_EQ_INT(res.calls, 1);
  /* The responder had a valid id: it is now in our table. The message arrived on the
   * server socket while we send from the client socket (external), yet insertion samples. */
  CHECK(hsp_dht_table_get(hsp_dht_node_table(n), a_id) != NULL);

  /* Cancel: callback with EDESTROYED, nothing more is sent. */
  res = (outcome_t){0};
  long h = hsp_dht_node_request(n, &o, on_outcome, &res);
  drain(n);
  hsp_dht_node_cancel(n, h);
  CHECK(res.calls == 1 && res.err == HSP_DHT_EDESTROYED);
  hsp_dht_node_advance(n, now + 10000);
  drain(n);
  now += 10000;

  /* Congestion window: at most 80 new datagrams per 750 ms slot. */
  outcome_t many[200];
  memset(many, 0, sizeof(many));
  for (int i = 0; i < 200; i++) {
    o.to = lo((uint16_t)(40000 + i));
    CHECK(hsp_dht_node_request(n, &o, on_outcome, &many[i]) > 0);
  }
  int first_batch = drain(n);
  CHECK(first_batch <= 80);
  uint64_t t = now;
  int total = first_batch;
  while (total < 200 && t < now + 3000) {
    t += 50;
    hsp_dht_node_advance(n, t);
    total += drain(n);
  }
  printf("congestion: %d sent at once, %d after %llu ms\n", first_batch, total,
         (unsigned long long)(t - now));
  CHECK(total >= 200 - 0); /* retries may add more, all 200 went out */
  hsp_dht_node_destroy(n);
  int destroyed = 0;
  for (int i = 0; i < 200; i++) destroyed += many[i].err == HSP_DHT_EDESTROYED;
  CHECK_EQ_INT(destroyed, 200);
}

static void test_nat_sampler(void) {
  /* §7.3: A,A,A -> A; A:5000,A:5001 -> A:0 from the 2nd sample; A,B,A,A -> -,-,-?,A */
  hsp_dht_nat_sampler_t s;
  uint8_t A[4] = {1, 2, 3, 4}, B[4] = {5, 6, 7, 8};
  hsp_dht_nat_init(&s);
  for (int i = 0; i < 3; i++) {
    hsp_dht_nat_add(&s, A, 1000);
    CHECK(s.has_host && s.port == 1000);
  }
  hsp_dht_nat_init(&s);
  hsp_dht_nat_add(&s, A, 5000);
  CHECK(s.has_host && s.port == 5000);
  hsp_dht_nat_add(&s, A, 5001);
  CHECK(s.has_host && s.port == 0 && memcmp(s.host, A, 4) == 0);
  hsp_dht_nat_init(&s);
  hsp_dht_nat_add(&s, A, 1);
  hsp_dht_nat_add(&s, B, 1);
  CHECK(!s.has_host);
  hsp_dht_nat_add(&s, A, 1);
  CHECK(!s.has_host);
  hsp_dht_nat_add(&s, A, 1);
  CHECK(s.has_host && s.port == 1 && memcmp(s.host, A, 4) == 0);
  /* Many samples through the ring stay bounded and keep the majority. */
  for (int i = 0; i < 1000; i++) hsp_dht_nat_add(&s, i % 5 ? A : B, 1);
  CHECK(s.has_host && memcmp(s.host, A, 4) == 0 && s.size == 16);

  /* Firewall probe verdicts. */
  hsp_dht_nat_sampler_t main_s, fresh;
  hsp_dht_nat_init(&main_s);
  hsp_dht_nat_add(&main_s, A, 7000);
  hsp_dht_firewall_probe_t p;
  hsp_ipv4_addr_t from = {{9, 9, 9, 9}, 1}, to = {{1, 2, 3, 4}, 7000};
  hsp_dht_firewall_probe_init(&p, 1);
  hsp_dht_firewall_probe_reply(&p, &from, &to);
  CHECK(!hsp_dht_firewall_probe_open(&p, &main_s, 7000, &fresh)); /* reply not seen on server */
  hsp_dht_firewall_probe_saw(&p, from.host);
  CHECK(hsp_dht_firewall_probe_open(&p, &main_s, 7000, &fresh));
  CHECK(!hsp_dht_firewall_probe_open(&p, &main_s, 7001, &fresh)); /* port remapped */
  hsp_dht_firewall_probe_init(&p, 5); /* 5 probed: need 3 replies */
  hsp_dht_firewall_probe_saw(&p, from.host);
  hsp_dht_firewall_probe_reply(&p, &from, &to);
  hsp_dht_firewall_probe_reply(&p, &from, &to);
  CHECK(!hsp_dht_firewall_probe_open(&p, &main_s, 7000, &fresh));
  hsp_dht_firewall_probe_reply(&p, &from, &to);
  CHECK(hsp_dht_firewall_probe_open(&p, &main_s, 7000, &fresh));
}

static void test_routing_table(void) {
  uint8_t id[32], x[32];
  memset(id, 0, 32);
  hsp_dht_table_t t;
  hsp_dht_table_init(&t, id, 20);
  CHECK_EQ_INT(hsp_dht_id_row(id, id), 255);
  memset(x, 0, 32);
  x[0] = 0x80;
  CHECK_EQ_INT(hsp_dht_id_row(id, x), 0);
  x[0] = 0x01;
  CHECK_EQ_INT(hsp_dht_id_row(id, x), 7);
  x[0] = 0;
  x[31] = 1;
  CHECK_EQ_INT(hsp_dht_id_row(id, x), 255);
  hsp_dht_table_node_t node = {0};
  CHECK_EQ_INT(hsp_dht_table_add(&t, &node), HSP_DHT_EINVAL); /* own id */
  /* Row 0 (first bit set) takes 20 nodes, the 21st is refused. */
  for (int i = 0; i < 21; i++) {
    memset(node.id, 0, 32);
    node.id[0] = 0x80;
    node.id[1] = (uint8_t)i;
    int rc = hsp_dht_table_add(&t, &node);
    CHECK_EQ_INT(rc, i < 20 ? HSP_DHT_TABLE_ADDED : HSP_DHT_TABLE_FULL);
  }
  node.id[1] = 3;
  CHECK_EQ_INT(hsp_dht_table_add(&t, &node), HSP_DHT_TABLE_REPLACED);
  CHECK_EQ_INT(t.size, 20);
  CHECK(hsp_dht_table_remove(&t, node.id));
  CHECK(!hsp_dht_table_remove(&t, node.id));
  CHECK(hsp_dht_table_get(&t, node.id) == NULL);
  /* closest() is sorted by XOR distance. */
  for (int i = 0; i < 100; i++) {
    det_random(NULL, node.id, 32);
    hsp_dht_table_add(&t, &node);
  }
  uint8_t target[32];
  det_random(NULL, target, 32);
  hsp_dht_table_node_t *near[20];
  size_t n = hsp_dht_table_closest(&t, target, near, 20);
  CHECK_EQ_INT(n, 20);
  for (size_t i = 1; i < n; i++) CHECK(hsp_dht_id_distance_cmp(target, near[i - 1]->id, near[i]->id) < 0);
  /* ... and nothing outside it is closer than its last element. */
  size_t closer = 0;
  for (size_t r = 0; r < HSP_DHT_ROWS; r++)
    for (size_t j = 0; j < t.rows[r].count; j++)
      if (hsp_dht_id_distance_cmp(target, t.rows[r].nodes[j].id, near[19]->id) < 0) closer++;
  CHECK_EQ_INT(closer, 19);
  hsp_dht_table_free(&t);

  /* §3.1 id vectors */
  hsp_ipv4_addr_t a = lo(30001);
  hsp_dht_id_from_addr(x, &a);
  CHECK(x[0] == 0x45 && x[1] == 0x1c && x[31] == 0xd4);
  a.port = 30002;
  hsp_dht_id_from_addr(x, &a);
  CHECK(x[0] == 0x7b && x[1] == 0x15 && x[31] == 0x16);
}

static bool flood_on_request(void *ctx, hsp_dht_node_t *node, const hsp_dht_incoming_t *req) {
  return hsp_dht_store_on_request(ctx, node, req, 0, 0);
}

/* 100k garbage and mutated datagrams from 5000 sources: the node keeps answering and every
 * structure stays bounded (table <= 256 rows x k, store <= max_entries, no request pile-up). */
static void test_flood(void) {
  hsp_dht_store_t *store;
  hsp_dht_store_config_t sc = {.max_entries = 1000};
  CHECK_EQ_INT(hsp_dht_store_init(&store, &sc), 0);
  hsp_dht_config_t cfg;
  hsp_dht_config_default(&cfg);
  cfg.bootstrapper = true;
  cfg.bootstrapper_addr = lo(30001);
  cfg.server_port = 30001;
  cfg.random = det_random;
  cfg.on_request = flood_on_request;
  cfg.ctx = store;
  hsp_dht_node_t *n = NULL;
  uint64_t now = 0;
  CHECK_EQ_INT(hsp_dht_node_init(&n, &cfg, now), 0);
  hsp_dht_node_start(n, now);
  hsp_dht_node_advance(n, now);
  uint8_t aa[32], buf[1500], id[32];
  memset(aa, 0xaa, 32);
  size_t max_inflight = 0, replies = 0;
  for (int i = 0; i < 100000; i++) {
    hsp_ipv4_addr_t from = {{10, (uint8_t)(i % 7), (uint8_t)(i % 251), 1}, (uint16_t)(1 + i % 5000)};
    size_t len;
    uint8_t r[8];
    det_random(NULL, r, sizeof(r));
    if (r[0] < 64) { /* pure garbage */
      len = r[1] % 200;
      det_random(NULL, buf, len);
    } else { /* a valid request, then a few bytes flipped half of the time */
      hsp_dht_id_from_addr(id, &from);
      hsp_dht_request_t m = {.tid = (uint16_t)i, .to = lo(30001), .internal = r[2] & 1,
                             .command = r[3] % 12, .id = (r[4] & 1) ? id : NULL,
                             .target = (r[5] & 1) ? aa : NULL, .has_value = r[6] & 1,
                             .value = {buf + 600, r[7] % 100}};
      det_random(NULL, buf + 600, 100);
      long l = hsp_dht_request_encode(buf, sizeof(buf), &m);
      len = l > 0 ? (size_t)l : 0;
      if (len && (r[1] & 1))
        for (int f = 0; f < 3; f++) buf[r[2 + f] % len] ^= (uint8_t)(1u << (r[5 + f] & 7));
    }
    hsp_dht_node_recv(n, HSP_DHT_SOCKET_SERVER, &from, buf, len, now);
    if (i % 100 == 0) {
      now += 50;
      hsp_dht_node_advance(n, now);
    }
    size_t inflight = hsp_dht_node_inflight(n);
    if (inflight > max_inflight) max_inflight = inflight;
    hsp_dht_datagram_t d;
    while (hsp_dht_node_next_datagram(n, &d)) replies++;
  }
  hsp_dht_table_t *t = hsp_dht_node_table(n);
  printf("flood: %zu datagrams out, table %zu, store %zu, max in flight %zu\n", replies, t->size,
         hsp_dht_store_count(store, now), max_inflight);
  CHECK(t->size <= HSP_DHT_ROWS * HSP_DHT_K);
  CHECK(hsp_dht_store_count(store, now) <= 1000);
  CHECK(max_inflight < 200); /* checks are capped at 10 concurrent; eviction pings at 3 */
  CHECK(replies > 10000);
  /* Still healthy: a plain PING is answered. */
  hsp_dht_request_t ping = {.tid = 1, .to = lo(30001), .internal = true};
  hsp_ipv4_addr_t c = lo(41103);
  hsp_dht_node_recv(n, HSP_DHT_SOCKET_SERVER, &c, buf, req_bytes(buf, &ping), now);
  CHECK_EQ_INT(drain(n), 1);
  hsp_dht_node_destroy(n);
  hsp_dht_store_free(store);
}

/* Query pacing (§6.3): 10 in flight, +1 per slow request; background lookups use 2; every
 * request of a lookup is sent 6 times (5 retries) before the node is given up. */
typedef struct qdone {
  bool done;
  hsp_dht_query_result_t res;
} qdone_t;
static void on_qdone(void *ctx, const hsp_dht_query_result_t *r) {
  qdone_t *q = ctx;
  q->done = true;
  q->res = *r;
}

static void test_query_pacing(void) {
  hsp_dht_config_t cfg;
  hsp_dht_config_default(&cfg);
  cfg.server_port = 30001;
  cfg.random = det_random;
  hsp_dht_node_t *n = NULL;
  uint64_t now = 0;
  CHECK_EQ_INT(hsp_dht_node_init(&n, &cfg, now), 0);
  for (uint16_t p = 0; p < 30; p++) {
    hsp_ipv4_addr_t a = lo((uint16_t)(50000 + p));
    hsp_dht_node_add_node(n, &a);
  }
  CHECK_EQ_INT(hsp_dht_node_table(n)->size, 30);
  uint8_t target[32];
  memset(target, 0x5a, 32);
  qdone_t q = {0};
  hsp_dht_query_cbs_t cbs = {NULL, on_qdone, &q};
  CHECK(hsp_dht_node_find_node(n, target, &cbs) > 0);
  CHECK_EQ_INT(drain(n), 0); /* starts at the next advance, never inside the call */
  hsp_dht_node_advance(n, now);
  CHECK_EQ_INT(drain(n), 10);
  /* At +1000 ms all 10 time out once: each is resent and, being slow, frees a slot. */
  hsp_dht_node_advance(n, now + 1000);
  CHECK_EQ_INT(drain(n), 20);
  /* Nobody ever answers: after 6 sends per node (5 retries) every node is down. */
  int total = 30;
  for (uint64_t t = now + 1100; t <= now + 40000 && !q.done; t += 100) {
    hsp_dht_node_advance(n, t);
    total += drain(n);
  }
  /* The table seeds only the k = 20 closest nodes; each is sent 6 times; DOWN_HINTs need
   * referrers and there were none. */
  CHECK(q.done);
  CHECK_EQ_INT(q.res.closest_count, 0);
  CHECK_EQ_INT(q.res.successes, 0);
  CHECK_EQ_INT(q.res.errors, 20);
  printf("query pacing: %d datagrams for 20 silent candidates\n", total);
  CHECK_EQ_INT(total, 20 * 6);
  /* Timed-out nodes left the routing table; the 10 never asked remain. */
  CHECK_EQ_INT(hsp_dht_node_table(n)->size, 10);
  hsp_dht_node_destroy(n);

  /* A bootstrap (background) lookup starts with 2 requests. */
  CHECK_EQ_INT(hsp_dht_node_init(&n, &cfg, now), 0);
  for (uint16_t p = 0; p < 30; p++) {
    hsp_ipv4_addr_t a = lo((uint16_t)(50000 + p));
    hsp_dht_node_add_node(n, &a);
  }
  hsp_dht_node_start(n, now);
  hsp_dht_node_advance(n, now);
  CHECK_EQ_INT(drain(n), 2);
  hsp_dht_node_destroy(n);
}

int main(void) {
  test_query_pacing();
  test_flood();
  test_internal_commands();
  test_tokens_and_app_commands();
  test_client_requests();
  test_nat_sampler();
  test_routing_table();
  return check_summary("dht_rpc");
}
