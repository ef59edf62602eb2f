/*
 * hyperdht storage over a simulated 50-node network with 5% loss: topic announce + lookup,
 * self-announce + FIND_PEER, unannounce, mutable put/get (with SEQ_REUSED / SEQ_TOO_LOW),
 * immutable put/get, forged announces ignored.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "announcer.h"
#include "hyper_client.h"
#include "sim.h"
#include "store.h"

#define N 50

static hsp_dht_store_t *stores[SIM_MAX_NODES];
static sim_t sim;

static bool on_request(void *ctx, hsp_dht_node_t *node, const hsp_dht_incoming_t *req) {
  hsp_dht_store_t *st = ctx;
  return hsp_dht_store_on_request(st, node, req, sim.now, 1700000000000ull + sim.now);
}

static bool all_ready(sim_t *s, void *ctx) {
  (void)ctx;
  for (int i = 0; i < s->count; i++)
    if (!hsp_dht_node_bootstrapped(s->nodes[i].dht)) return false;
  return true;
}

typedef struct res {
  bool done;
  int err;
  size_t commits, replies, closest;
  size_t records;       /* lookup: records seen with the expected key */
  const uint8_t *want_pk;
  bool found_value;
  uint64_t best_seq;
  uint8_t value[64];
  size_t value_len;
  int kind;
} res_t;

enum { K_LOOKUP = 1, K_FIND_PEER, K_MUTABLE, K_IMMUTABLE };
static uint8_t immutable_target[32];

static void on_reply(void *ctx, const hsp_dht_reply_t *r) {
  res_t *x = ctx;
  x->replies++;
  if (!r->has_value || !r->value.len) return;
  if (x->kind == K_LOOKUP) {
    hsp_dht_lookup_reply_t lr;
    if (hsp_dht_lookup_reply_decode(&lr, r->value.data, r->value.len) != 0) return;
    size_t off = 0;
    hsp_dht_peer_t p;
    while (hsp_dht_lookup_reply_next(&lr, &off, &p) == 0)
      if (x->want_pk && memcmp(p.public_key, x->want_pk, 32) == 0) x->records++;
  } else if (x->kind == K_FIND_PEER) {
    hsp_dht_peer_t p;
    if (hsp_dht_peer_decode(&p, r->value.data, r->value.len) == 0 &&
        memcmp(p.public_key, x->want_pk, 32) == 0)
      x->records++;
  } else if (x->kind == K_MUTABLE) {
    hsp_dht_mutable_get_response_t m;
    if (hsp_dht_mutable_get_response_decode(&m, r->value.data, r->value.len) != 0) return;
    if (!hsp_dht_mutable_verify(m.signature, m.seq, m.value, x->want_pk)) return;
    if (!x->found_value || m.seq > x->best_seq) {
      x->found_value = true;
      x->best_seq = m.seq;
      x->value_len = m.value.len < sizeof(x->value) ? m.value.len : sizeof(x->value);
      memcpy(x->value, m.value.data, x->value_len);
    }
  } else if (x->kind == K_IMMUTABLE) {
    uint8_t h[32];
    hsp_crypto_hash(h, r->value.data, r->value.len);
    if (memcmp(h, immutable_target, 32) == 0 && r->value.len < sizeof(x->value)) {
      x->found_value = true;
      memcpy(x->value, r->value.data, r->value.len);
      x->value_len = r->value.len;
    }
  }
}

static void on_done(void *ctx, const hsp_dht_query_result_t *r) {
  res_t *x = ctx;
  x->done = true;
  x->err = r->err;
  x->commits = r->commits_ok;
  x->closest = r->closest_count;
}

static bool finished(sim_t *s, void *ctx) {
  (void)s;
  return ((res_t *)ctx)->done;
}

static hsp_dht_query_cbs_t cbs_for(res_t *r, int kind, const uint8_t *pk) {
  memset(r, 0, sizeof(*r));
  r->kind = kind;
  r->want_pk = pk;
  return (hsp_dht_query_cbs_t){on_reply, on_done, r};
}

static size_t stored_count(void) {
  size_t n = 0;
  for (int i = 0; i < sim.count; i++) n += stores[i] ? hsp_dht_store_count(stores[i], sim.now) > 0 : 0;
  return n;
}

static int updates;
static bool stopped_flag;
static void count_update(void *ctx, hsp_dht_announcer_t *a) {
  (void)ctx;
  (void)a;
  updates++;
}
static void mark_stopped(void *ctx, hsp_dht_announcer_t *a) {
  (void)ctx;
  (void)a;
  stopped_flag = true;
}
static bool ann_stopped(sim_t *s, void *ctx) {
  (void)s;
  (void)ctx;
  return stopped_flag;
}
static uint64_t ann_deadline(void *ctx) { return hsp_dht_announcer_next_deadline(ctx); }
static void ann_advance(void *ctx, uint64_t now) { hsp_dht_announcer_advance(ctx, now); }

/* Stands in for the Noise responder: answers every handshake with a fixed "msg2". */
static int handshakes_seen;
static const uint8_t MSG2[8] = {'m', 's', 'g', '2', 0, 1, 2, 3};
static bool fake_noise_responder(void *ctx, const hsp_dht_incoming_t *req,
                                 const hsp_dht_handshake_t *hs,
                                 const hsp_ipv4_addr_t *client, hsp_dht_server_reply_t *out) {
  (void)ctx;
  (void)req;
  (void)client;
  if (hs->noise.len != 64) return false;
  handshakes_seen++;
  out->data = MSG2;
  out->len = sizeof(MSG2);
  return true;
}

static struct {
  bool done, ok, noise_ok, has_peer;
  uint64_t mode;
  hsp_ipv4_addr_t peer, from;
} hs_result;
static void on_handshake_reply(void *ctx, const hsp_dht_reply_t *r, int err) {
  (void)ctx;
  hs_result.done = true;
  hs_result.ok = !err;
  if (err) return;
  hsp_dht_handshake_t hs;
  if (!r->has_value || hsp_dht_handshake_decode(&hs, r->value.data, r->value.len) != 0) {
    hs_result.ok = false;
    return;
  }
  hs_result.mode = hs.mode;
  hs_result.noise_ok = hs.noise.len == sizeof(MSG2) && !memcmp(hs.noise.data, MSG2, sizeof(MSG2));
  hs_result.has_peer = hs.has_peer_address;
  hs_result.peer = hs.peer_address;
  hs_result.from = r->from;
}
static bool hs_done(sim_t *s, void *ctx) {
  (void)s;
  (void)ctx;
  return hs_result.done;
}

/* Stands in for hyper_server's holepunch handler: it answers later (after its NAT analysis)
 * with hsp_dht_node_relay FROM_SERVER, or never (silent = true). */
static struct {
  bool pending, silent;
  int seen;
  hsp_dht_incoming_t req;
  hsp_ipv4_addr_t peer;
  uint64_t at;
  hsp_dht_node_t *node;
} defer;
static const uint8_t PUNCHED[7] = {'p', 'u', 'n', 'c', 'h', 'e', 'd'};
static bool deferring_puncher(void *ctx, const hsp_dht_incoming_t *req,
                              const hsp_dht_holepunch_t *hp, hsp_dht_server_reply_t *out) {
  (void)ctx, (void)out;
  defer.seen++;
  if (defer.silent || hp->id != 3 || !hp->has_peer_address) return false;
  defer.req = *req;
  defer.req.value = (hsp_bytes_t){NULL, 0};
  defer.peer = hp->peer_address;
  defer.at = sim.now + 300;
  defer.pending = true;
  return true; /* no reply now */
}
static uint64_t defer_deadline(void *ctx) {
  (void)ctx;
  return defer.pending ? defer.at : UINT64_MAX;
}
static void defer_advance(void *ctx, uint64_t now) {
  (void)ctx;
  if (!defer.pending || now < defer.at) return;
  defer.pending = false;
  hsp_dht_holepunch_t m = {.mode = HSP_HYPER_FROM_SERVER, .id = 0,
                           .payload = {PUNCHED, sizeof(PUNCHED)}, .has_peer_address = true,
                           .peer_address = defer.peer};
  uint8_t buf[128];
  long n = hsp_dht_holepunch_encode(buf, sizeof(buf), &m);
  if (n > 0) hsp_dht_node_relay(defer.node, &defer.req, buf, (size_t)n, true, &defer.req.from, -1);
}

static struct {
  bool done, ok, payload_ok, has_peer;
  int err;
  uint64_t mode, at;
  hsp_ipv4_addr_t peer, from;
} hp_result;
static void on_holepunch_reply(void *ctx, const hsp_dht_reply_t *r, int err) {
  (void)ctx;
  hp_result.done = true;
  hp_result.at = sim.now;
  hp_result.err = err;
  hp_result.ok = !err;
  if (err) return;
  hsp_dht_holepunch_t hp;
  if (!r->has_value || hsp_dht_holepunch_decode(&hp, r->value.data, r->value.len) != 0) {
    hp_result.ok = false;
    return;
  }
  hp_result.mode = hp.mode;
  hp_result.payload_ok = hp.payload.len == sizeof(PUNCHED) &&
                         !memcmp(hp.payload.data, PUNCHED, sizeof(PUNCHED));
  hp_result.has_peer = hp.has_peer_address;
  hp_result.peer = hp.peer_address;
  hp_result.from = r->from;
}
static bool hp_done(sim_t *s, void *ctx) {
  (void)s;
  (void)ctx;
  return hp_result.done;
}

int main(void) {
  sim_init(&sim, 77);
  sim.loss_permille = 50;
  for (int i = 0; i < N; i++) {
    hsp_dht_config_t cfg;
    hsp_dht_config_default(&cfg);
    if (i == 0) {
      cfg.bootstrapper = true;
      cfg.bootstrapper_addr = sim_server_addr(0);
    } else {
      cfg.ephemeral = 0;
      cfg.firewalled = false;
      cfg.bootstrap[0] = sim_server_addr(0);
      cfg.bootstrap_count = 1;
    }
    hsp_dht_store_init(&stores[i], NULL);
    cfg.on_request = on_request;
    cfg.ctx = stores[i];
    CHECK_EQ_INT(sim_add_node(&sim, &cfg), i);
    hsp_dht_node_start(sim.nodes[i].dht, sim.now);
    sim_run(&sim, sim.now + 100, NULL, NULL);
  }
  CHECK(sim_run(&sim, sim.now + 120000, all_ready, NULL));

  /* Clients are ephemeral nodes (as hyperdht clients usually are). */
  int clients[2];
  for (int i = 0; i < 2; i++) {
    hsp_dht_config_t cfg;
    hsp_dht_config_default(&cfg);
    cfg.ephemeral = 1;
    cfg.bootstrap[0] = sim_server_addr(0);
    cfg.bootstrap_count = 1;
    clients[i] = sim_add_node(&sim, &cfg);
    hsp_dht_node_start(sim.nodes[clients[i]].dht, sim.now);
  }
  CHECK(sim_run(&sim, sim.now + 60000, all_ready, NULL));
  hsp_dht_node_t *a = sim.nodes[clients[0]].dht, *b = sim.nodes[clients[1]].dht;

  uint8_t seed[32], topic[32];
  memset(seed, 0x11, 32);
  memset(topic, 7, 32);
  hsp_crypto_keypair_t kp;
  hsp_crypto_keypair_from_seed(&kp, seed);
  res_t r;
  hsp_dht_query_cbs_t cbs;

  /* Topic announce: commits to the closest nodes, each verifying its own signature. */
  hsp_ipv4_addr_t relay = sim_server_addr(3);
  cbs = cbs_for(&r, 0, NULL);
  CHECK(hsp_dht_announce(a, topic, &kp, &relay, 1, &cbs) > 0);
  CHECK(sim_run(&sim, sim.now + 60000, finished, &r));
  CHECK_EQ_INT(r.err, 0);
  printf("announce: %zu of %zu closest nodes accepted\n", r.commits, r.closest);
  CHECK(r.commits >= 15);
  CHECK(stored_count() >= r.commits);

  cbs = cbs_for(&r, K_LOOKUP, kp.public_key);
  CHECK(hsp_dht_lookup(b, topic, &cbs) > 0);
  CHECK(sim_run(&sim, sim.now + 60000, finished, &r));
  printf("lookup: %zu replies carried the record\n", r.records);
  CHECK(r.err == 0 && r.records >= 10);

  /* Self-announce: FIND_PEER on H(pk) returns the peer record. */
  uint8_t self_target[32];
  hsp_crypto_hash(self_target, kp.public_key, 32);
  cbs = cbs_for(&r, 0, NULL);
  CHECK(hsp_dht_announce(a, self_target, &kp, NULL, 0, &cbs) > 0);
  CHECK(sim_run(&sim, sim.now + 60000, finished, &r));
  CHECK(r.err == 0 && r.commits >= 15);
  cbs = cbs_for(&r, K_FIND_PEER, kp.public_key);
  CHECK(hsp_dht_find_peer(b, kp.public_key, &cbs) > 0);
  CHECK(sim_run(&sim, sim.now + 60000, finished, &r));
  CHECK(r.records >= 10);
  /* The storing nodes route to the announcer's address as they saw it. */
  size_t forwards = 0;
  for (int i = 0; i < N; i++) {
    hsp_dht_forward_t f;
    if (!hsp_dht_store_forward(stores[i], self_target, sim.now, &f)) continue;
    forwards++;
    hsp_ipv4_addr_t ac = sim_client_addr(clients[0]), as = sim_server_addr(clients[0]);
    CHECK(hsp_dht_addr_equal(&f.relay, &ac) || hsp_dht_addr_equal(&f.relay, &as));
  }
  CHECK(forwards >= 15);

  /* Unannounce the topic: lookups stop returning the record. */
  cbs = cbs_for(&r, 0, NULL);
  CHECK(hsp_dht_unannounce(a, topic, &kp, &cbs) > 0);
  CHECK(sim_run(&sim, sim.now + 60000, finished, &r));
  CHECK(r.err == 0 && r.commits >= 15);
  cbs = cbs_for(&r, K_LOOKUP, kp.public_key);
  CHECK(hsp_dht_lookup(b, topic, &cbs) > 0);
  CHECK(sim_run(&sim, sim.now + 60000, finished, &r));
  CHECK_EQ_INT(r.records, 0);

  /* A forged announce (signed by another key for pk's record) is stored nowhere. */
  hsp_crypto_keypair_t other;
  memset(seed, 0x33, 32);
  hsp_crypto_keypair_from_seed(&other, seed);
  hsp_crypto_keypair_t forged = kp;
  memcpy(forged.secret_key, other.secret_key, 64); /* pk of kp, signature of other */
  uint8_t topic2[32];
  memset(topic2, 9, 32);
  cbs = cbs_for(&r, 0, NULL);
  CHECK(hsp_dht_announce(a, topic2, &forged, NULL, 0, &cbs) > 0);
  CHECK(sim_run(&sim, sim.now + 60000, finished, &r));
  CHECK_EQ_INT(r.commits, 0); /* rejected announces get no reply: every commit times out */
  cbs = cbs_for(&r, K_LOOKUP, kp.public_key);
  CHECK(hsp_dht_lookup(b, topic2, &cbs) > 0);
  CHECK(sim_run(&sim, sim.now + 60000, finished, &r));
  CHECK_EQ_INT(r.records, 0);

  /* Mutable put/get, then a newer seq wins; reusing a seq with another value is refused. */
  cbs = cbs_for(&r, 0, NULL);
  CHECK(hsp_dht_mutable_put(a, &kp, 1, (const uint8_t *)"hello", 5, &cbs) > 0);
  CHECK(sim_run(&sim, sim.now + 60000, finished, &r));
  CHECK(r.err == 0 && r.commits >= 15);
  cbs = cbs_for(&r, K_MUTABLE, kp.public_key);
  CHECK(hsp_dht_mutable_get(b, kp.public_key, 0, &cbs) > 0);
  CHECK(sim_run(&sim, sim.now + 60000, finished, &r));
  CHECK(r.found_value && r.best_seq == 1 && r.value_len == 5 && !memcmp(r.value, "hello", 5));
  cbs = cbs_for(&r, 0, NULL);
  CHECK(hsp_dht_mutable_put(a, &kp, 1, (const uint8_t *)"other", 5, &cbs) > 0);
  CHECK(sim_run(&sim, sim.now + 60000, finished, &r));
  CHECK(r.commits >= 15); /* error replies (SEQ_REUSED) are replies, not failures */
  cbs = cbs_for(&r, 0, NULL);
  CHECK(hsp_dht_mutable_put(a, &kp, 2, (const uint8_t *)"world", 5, &cbs) > 0);
  CHECK(sim_run(&sim, sim.now + 60000, finished, &r));
  cbs = cbs_for(&r, K_MUTABLE, kp.public_key);
  CHECK(hsp_dht_mutable_get(b, kp.public_key, 2, &cbs) > 0);
  CHECK(sim_run(&sim, sim.now + 60000, finished, &r));
  CHECK(r.found_value && r.best_seq == 2 && r.value_len == 5 && !memcmp(r.value, "world", 5));

  /* Immutable put/get. */
  const char *blob = "immutable value";
  hsp_crypto_hash(immutable_target, (const uint8_t *)blob, strlen(blob));
  cbs = cbs_for(&r, 0, NULL);
  CHECK(hsp_dht_immutable_put(a, (const uint8_t *)blob, strlen(blob), &cbs) > 0);
  CHECK(sim_run(&sim, sim.now + 60000, finished, &r));
  CHECK(r.err == 0 && r.commits >= 15);
  cbs = cbs_for(&r, K_IMMUTABLE, NULL);
  CHECK(hsp_dht_immutable_get(b, immutable_target, &cbs) > 0);
  CHECK(sim_run(&sim, sim.now + 60000, finished, &r));
  CHECK(r.found_value && r.value_len == strlen(blob) && !memcmp(r.value, blob, r.value_len));

  /* Records expire after 20 minutes without re-announce; values persist for 48 h. */
  sim_run(&sim, sim.now + 21 * 60000, NULL, NULL);
  cbs = cbs_for(&r, K_FIND_PEER, kp.public_key);
  CHECK(hsp_dht_find_peer(b, kp.public_key, &cbs) > 0);
  CHECK(sim_run(&sim, sim.now + 60000, finished, &r));
  CHECK_EQ_INT(r.records, 0);
  cbs = cbs_for(&r, K_IMMUTABLE, NULL);
  CHECK(hsp_dht_immutable_get(b, immutable_target, &cbs) > 0);
  CHECK(sim_run(&sim, sim.now + 60000, finished, &r));
  CHECK(r.found_value);

  /* Announcer: a server on client a keeps 3 relays, replaces dead ones, unannounces on stop. */
  static hsp_dht_announcer_t ann;
  hsp_crypto_keypair_t server;
  memset(seed, 0x44, 32);
  hsp_crypto_keypair_from_seed(&server, seed);
  uint8_t server_target[32];
  hsp_crypto_hash(server_target, server.public_key, 32);
  CHECK_EQ_INT(hsp_dht_announcer_init(&ann, a, &server, server_target), 0);
  ann.on_update = count_update;
  ann.on_stopped = mark_stopped;
  sim.extra_deadline = ann_deadline;
  sim.extra_advance = ann_advance;
  sim.extra_ctx = &ann;
  hsp_dht_announcer_start(&ann, sim.now);
  sim_run(&sim, sim.now + 20000, NULL, NULL);
  CHECK(updates >= 1);
  CHECK_EQ_INT(ann.relay_count, 3);
  CHECK_EQ_INT(ann.relay_address_count, 3);
  for (size_t i = 0; i < ann.relay_count; i++) CHECK(hsp_dht_announcer_is_relay(&ann, &ann.relays[i].relay_address));
  cbs = cbs_for(&r, K_FIND_PEER, server.public_key);
  CHECK(hsp_dht_find_peer(b, server.public_key, &cbs) > 0);
  CHECK(sim_run(&sim, sim.now + 60000, finished, &r));
  CHECK_EQ_INT(r.records, 3);
  /* Two relays die: the 3 s pings notice and the next update picks live nodes. */
  int dead[2];
  for (int d = 0; d < 2; d++) {
    dead[d] = ann.relays[d].relay_address.port - SIM_SERVER_BASE;
    sim.nodes[dead[d]].alive = false;
  }
  int before = updates;
  sim_run(&sim, sim.now + 30000, NULL, NULL);
  CHECK(updates > before);
  CHECK_EQ_INT(ann.relay_count, 3);
  for (size_t i = 0; i < ann.relay_count; i++)
    for (int d = 0; d < 2; d++) CHECK(ann.relays[i].relay_address.port != SIM_SERVER_BASE + dead[d]);
  for (int d = 0; d < 2; d++) sim.nodes[dead[d]].alive = true;
  /* Quiet period: pings every 3 s, no re-announce before ~5 min. */
  before = updates;
  sim_run(&sim, sim.now + 60000, NULL, NULL);
  CHECK_EQ_INT(updates, before);
  sim_run(&sim, sim.now + 5 * 60000, NULL, NULL);
  CHECK(updates > before);
  /* Stop: every relay gets an UNANNOUNCE; FIND_PEER comes back empty. */
  hsp_dht_announcer_stop(&ann);
  CHECK(sim_run(&sim, sim.now + 30000, ann_stopped, NULL));
  cbs = cbs_for(&r, K_FIND_PEER, server.public_key);
  CHECK(hsp_dht_find_peer(b, server.public_key, &cbs) > 0);
  CHECK(sim_run(&sim, sim.now + 60000, finished, &r));
  /* The two relays that were down missed their UNANNOUNCE and keep a stale record until it
   * expires (as with the reference); every live relay dropped it. */
  CHECK(r.records <= 2);
  sim_run(&sim, sim.now + 21 * 60000, NULL, NULL);
  cbs = cbs_for(&r, K_FIND_PEER, server.public_key);
  CHECK(hsp_dht_find_peer(b, server.public_key, &cbs) > 0);
  CHECK(sim_run(&sim, sim.now + 60000, finished, &r));
  CHECK_EQ_INT(r.records, 0);
  hsp_dht_announcer_destroy(&ann);
  sim.extra_deadline = NULL;
  sim.extra_advance = NULL;

  /* Handshake routing end to end, all in C: a server node (ephemeral, with a local server
   * entry whose handler stands in for the Noise responder) announces itself; a client sends
   * PEER_HANDSHAKE FROM_CLIENT to one of its relays, which relays FROM_RELAY to the server;
   * the server answers FROM_SERVER through the relay; the client gets REPLY with the same
   * tid from the node it asked, carrying the server's noise and address. */
  {
    hsp_dht_config_t cfg;
    hsp_dht_config_default(&cfg);
    cfg.ephemeral = 1;
    cfg.bootstrap[0] = sim_server_addr(0);
    cfg.bootstrap_count = 1;
    hsp_dht_store_t *sst;
    hsp_dht_store_init(&sst, NULL);
    cfg.on_request = on_request;
    cfg.ctx = sst;
    int si = sim_add_node(&sim, &cfg);
    stores[si] = sst;
    hsp_dht_node_start(sim.nodes[si].dht, sim.now);
    CHECK(sim_run(&sim, sim.now + 60000, all_ready, NULL));
    hsp_dht_node_t *sn = sim.nodes[si].dht;
    hsp_crypto_keypair_t skp;
    memset(seed, 0x55, 32);
    hsp_crypto_keypair_from_seed(&skp, seed);
    uint8_t starget[32], record[33];
    hsp_crypto_hash(starget, skp.public_key, 32);
    hsp_dht_peer_t rec = {skp.public_key, {NULL, 0}};
    hsp_dht_peer_encode(record, sizeof(record), &rec);
    CHECK_EQ_INT(hsp_dht_store_listen(sst, starget, record, sizeof(record), fake_noise_responder,
                                      deferring_puncher, NULL), 0);
    defer.node = sn;
    static hsp_dht_announcer_t sann;
    hsp_dht_announcer_init(&sann, sn, &skp, starget);
    stopped_flag = false;
    sim.extra_deadline = ann_deadline;
    sim.extra_advance = ann_advance;
    sim.extra_ctx = &sann;
    hsp_dht_announcer_start(&sann, sim.now);
    sim_run(&sim, sim.now + 20000, NULL, NULL);
    CHECK_EQ_INT(sann.relay_count, 3);

    uint8_t noise[64];
    memset(noise, 0xc1, sizeof(noise));
    hsp_dht_handshake_t hs = {.mode = HSP_HYPER_FROM_CLIENT, .noise = {noise, sizeof(noise)}};
    uint8_t val[256];
    long vlen = hsp_dht_handshake_encode(val, sizeof(val), &hs);
    hsp_dht_request_opts_t o;
    hsp_dht_request_opts_default(&o);
    o.to = sann.relays[0].relay_address;
    o.command = HSP_HYPER_PEER_HANDSHAKE;
    o.target = starget;
    o.value = val;
    o.value_len = (size_t)vlen;
    o.has_value = true;
    hs_result.done = false;
    CHECK(hsp_dht_node_request(b, &o, on_handshake_reply, &hs_result) > 0);
    CHECK(sim_run(&sim, sim.now + 20000, hs_done, NULL));
    CHECK(hs_result.ok);
    CHECK(hs_result.mode == HSP_HYPER_REPLY && hs_result.noise_ok);
    hsp_ipv4_addr_t sa_server = sim_server_addr(si), sa_client = sim_client_addr(si);
    CHECK(hsp_dht_addr_equal(&hs_result.peer, &sa_server) || hsp_dht_addr_equal(&hs_result.peer, &sa_client));
    CHECK(hsp_dht_addr_equal(&hs_result.from, &sann.relays[0].relay_address));
    CHECK_EQ_INT(handshakes_seen, 1);
    /* Directly to the server's own node: REPLY without peerAddress. */
    o.to = sim_client_addr(si); /* ephemeral & firewalled: it listens on its client socket */
    hs_result.done = false;
    CHECK(hsp_dht_node_request(b, &o, on_handshake_reply, &hs_result) > 0);
    CHECK(sim_run(&sim, sim.now + 20000, hs_done, NULL));
    CHECK(hs_result.ok && hs_result.mode == HSP_HYPER_REPLY && !hs_result.has_peer);
    hsp_dht_announcer_destroy(&sann);

    /* PEER_HOLEPUNCH answered late (as hyper_server does after its NAT analysis), over the
     * 5 % lossy network: FROM_CLIENT -> relay -> FROM_RELAY -> server; 300 ms later the
     * server relays FROM_SERVER back; the client gets REPLY from the node it asked, with the
     * server's payload and its address as that relay sees it. Lost legs are retried by the
     * client (same tid), and every copy is answered. */
    sim.extra_deadline = defer_deadline;
    sim.extra_advance = defer_advance;
    sim.extra_ctx = NULL;
    uint8_t hpv[128], p1[2] = {'p', '1'};
    hsp_dht_holepunch_t hpm = {.mode = HSP_HYPER_FROM_CLIENT, .id = 3, .payload = {p1, 2},
                               .has_peer_address = true, .peer_address = sann.relays[0].peer_address};
    long hplen = hsp_dht_holepunch_encode(hpv, sizeof(hpv), &hpm);
    o.to = sann.relays[0].relay_address;
    o.command = HSP_HYPER_PEER_HOLEPUNCH;
    o.value = hpv;
    o.value_len = (size_t)hplen;
    int ok_runs = 0;
    for (int run = 0; run < 10; run++) {
      memset(&hp_result, 0, sizeof(hp_result));
      uint64_t t0 = sim.now;
      CHECK(hsp_dht_node_request(b, &o, on_holepunch_reply, &hp_result) > 0);
      CHECK(sim_run(&sim, sim.now + 20000, hp_done, NULL));
      if (!hp_result.ok) continue; /* every retry lost: possible at 5 % loss, rare */
      ok_runs++;
      CHECK(hp_result.mode == HSP_HYPER_REPLY && hp_result.payload_ok && hp_result.has_peer);
      CHECK(hsp_dht_addr_equal(&hp_result.peer, &sa_server) ||
            hsp_dht_addr_equal(&hp_result.peer, &sa_client));
      CHECK(hsp_dht_addr_equal(&hp_result.from, &sann.relays[0].relay_address));
      CHECK(hp_result.at - t0 >= 300); /* not before the server's deferred answer */
      sim_run(&sim, sim.now + 2000, NULL, NULL); /* let late duplicates drain */
    }
    CHECK(ok_runs >= 9);
    printf("holepunch: %d of 10 deferred answers arrived, %d requests reached the server\n",
           ok_runs, defer.seen);
    CHECK(defer.seen >= 10);
    /* A server that never answers: the client's request times out after its retries (4
     * sends of 1 s each), deterministically on the simulated clock. */
    defer.silent = true;
    memset(&hp_result, 0, sizeof(hp_result));
    uint64_t t0 = sim.now;
    CHECK(hsp_dht_node_request(b, &o, on_holepunch_reply, &hp_result) > 0);
    CHECK(sim_run(&sim, sim.now + 20000, hp_done, NULL));
    CHECK(!hp_result.ok && hp_result.err == HSP_DHT_ETIMEDOUT);
    CHECK(hp_result.at - t0 >= 3000 && hp_result.at - t0 <= 5000);
    sim.extra_deadline = NULL;
    sim.extra_advance = NULL;
  }

  printf("network: sent %llu, dropped %llu\n", (unsigned long long)sim.sent,
         (unsigned long long)sim.dropped);
  sim_free(&sim);
  for (int i = 0; i < SIM_MAX_NODES; i++) hsp_dht_store_free(stores[i]);
  return check_summary("dht_hyper_sim");
}
