/* hyperdht storage and routing handler on one hand-driven node (hyperdht.md §1-§3, §6). */
#include <string.h>

#include "check.h"
#include "store.h"

static uint64_t rng_state = 7;
static void det_random(void *ctx, uint8_t *buf, size_t len) {
  (void)ctx;
  for (size_t i = 0; i < len; i++) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    buf[i] = (uint8_t)(rng_state >> 56);
  }
}
static hsp_ipv4_addr_t lo(uint16_t port) { return (hsp_ipv4_addr_t){{127, 0, 0, 1}, port}; }

static hsp_dht_store_t *store;
static uint64_t now = 1000, wall = 1700000000000ull;
static bool on_request(void *ctx, hsp_dht_node_t *node, const hsp_dht_incoming_t *req) {
  (void)ctx;
  return hsp_dht_store_on_request(store, node, req, now, wall);
}

static uint8_t outbuf[4][2048];
static size_t outlen[4];
static hsp_dht_datagram_t outd[4];
static int drain(hsp_dht_node_t *n) {
  int c = 0;
  hsp_dht_datagram_t d;
  while (hsp_dht_node_next_datagram(n, &d)) {
    if (c < 4 && d.len <= sizeof(outbuf[0])) {
      memcpy(outbuf[c], d.data, d.len);
      outlen[c] = d.len;
      outd[c] = d;
    }
    c++;
  }
  return c;
}

static hsp_dht_node_t *make_node(bool persistent) {
  hsp_dht_config_t cfg;
  hsp_dht_config_default(&cfg);
  if (persistent) {
    cfg.bootstrapper = true;
    cfg.bootstrapper_addr = lo(30001);
  } else {
    cfg.ephemeral = 1;
  }
  cfg.server_port = 30001;
  cfg.random = det_random;
  cfg.on_request = on_request;
  hsp_dht_node_t *n;
  CHECK_EQ_INT(hsp_dht_node_init(&n, &cfg, now), 0);
  hsp_dht_node_start(n, now);
  hsp_dht_node_advance(n, now);
  drain(n);
  return n;
}

/* Send an application request, return the number of datagrams the node emitted. */
static int send_req(hsp_dht_node_t *n, const hsp_ipv4_addr_t *from, uint16_t tid, uint64_t cmd,
                    const uint8_t *token, const uint8_t *target, const uint8_t *value, size_t len) {
  uint8_t buf[2048];
  hsp_dht_request_t m = {.tid = tid, .to = lo(30001), .command = cmd, .token = token,
                         .target = target, .has_value = value != NULL, .value = {value, len}};
  long l = hsp_dht_request_encode(buf, sizeof(buf), &m);
  CHECK(l > 0);
  hsp_dht_node_recv(n, HSP_DHT_SOCKET_SERVER, from, buf, (size_t)l, now);
  return drain(n);
}

static bool res0(hsp_dht_response_t *r) {
  return hsp_dht_response_decode(r, outbuf[0], outlen[0]) == 0;
}

/* Fetch a token for `from` with an empty LOOKUP (replies carry tokens). */
static void get_token(hsp_dht_node_t *n, const hsp_ipv4_addr_t *from, const uint8_t *target,
                      uint8_t token[32]) {
  CHECK_EQ_INT(send_req(n, from, 1, HSP_HYPER_LOOKUP, NULL, target, NULL, 0), 1);
  hsp_dht_response_t r;
  CHECK(res0(&r) && r.token);
  if (r.token) memcpy(token, r.token, 32);
}

static size_t encode_announce(uint8_t *buf, const hsp_crypto_keypair_t *kp, const uint8_t *target,
                              const uint8_t *node_id, const uint8_t *token, uint8_t ns,
                              const uint8_t *refresh, uint64_t bump, bool forge) {
  hsp_dht_peer_t peer = {kp->public_key, {NULL, 0}};
  uint8_t sig[64];
  hsp_dht_announce_sign(sig, ns, target, node_id, token, &peer, refresh, kp);
  if (forge) sig[0] ^= 1;
  hsp_dht_announce_t ann = {.has_peer = true, .peer = peer, .refresh = refresh, .signature = sig,
                            .bump = bump};
  return (size_t)hsp_dht_announce_encode(buf, 512, &ann);
}

static size_t lookup_records(hsp_dht_node_t *n, const uint8_t *topic, uint64_t *bump) {
  hsp_ipv4_addr_t c = lo(50000);
  CHECK_EQ_INT(send_req(n, &c, 2, HSP_HYPER_LOOKUP, NULL, topic, NULL, 0), 1);
  hsp_dht_response_t r;
  if (!res0(&r) || !r.has_value) return 0;
  hsp_dht_lookup_reply_t lr;
  CHECK_EQ_INT(hsp_dht_lookup_reply_decode(&lr, r.value.data, r.value.len), 0);
  if (bump) *bump = lr.bump;
  return lr.peer_count;
}

static void test_announce_lookup(void) {
  hsp_dht_store_config_t sc = {0};
  hsp_dht_store_init(&store, &sc);
  hsp_dht_node_t *n = make_node(true);
  const uint8_t *id = hsp_dht_node_id(n);
  CHECK(id != NULL);
  uint8_t seed[32], topic[32], token[32], buf[512];
  memset(seed, 1, 32);
  memset(topic, 2, 32);
  hsp_crypto_keypair_t kp;
  hsp_crypto_keypair_from_seed(&kp, seed);
  hsp_ipv4_addr_t a = lo(40000);
  get_token(n, &a, topic, token);

  /* No token / forged signature / signature over another node id: no reply, nothing stored. */
  size_t len = encode_announce(buf, &kp, topic, id, token, HSP_HYPER_ANNOUNCE, NULL, 0, false);
  CHECK_EQ_INT(send_req(n, &a, 3, HSP_HYPER_ANNOUNCE, NULL, topic, buf, len), 0);
  len = encode_announce(buf, &kp, topic, id, token, HSP_HYPER_ANNOUNCE, NULL, 0, true);
  CHECK_EQ_INT(send_req(n, &a, 3, HSP_HYPER_ANNOUNCE, token, topic, buf, len), 0);
  uint8_t other_id[32];
  memset(other_id, 9, 32);
  len = encode_announce(buf, &kp, topic, other_id, token, HSP_HYPER_ANNOUNCE, NULL, 0, false);
  CHECK_EQ_INT(send_req(n, &a, 3, HSP_HYPER_ANNOUNCE, token, topic, buf, len), 0);
  CHECK_EQ_INT(lookup_records(n, topic, NULL), 0);

  /* Valid: an empty reply with id only (no token, no closer nodes), as in the §8 capture. */
  uint8_t refresh_secret[32], refresh_key[32];
  memset(refresh_secret, 5, 32);
  hsp_crypto_hash(refresh_key, refresh_secret, 32);
  len = encode_announce(buf, &kp, topic, id, token, HSP_HYPER_ANNOUNCE, refresh_key, wall + 1000,
                        false);
  CHECK_EQ_INT(send_req(n, &a, 4, HSP_HYPER_ANNOUNCE, token, topic, buf, len), 1);
  CHECK(outbuf[0][0] == 0x13 && outbuf[0][1] == 0x01 && outlen[0] == 42);
  uint64_t bump = 0;
  CHECK_EQ_INT(lookup_records(n, topic, &bump), 1);
  CHECK(bump == wall + 1000);
  /* A bump too far in the future is not taken. */
  len = encode_announce(buf, &kp, topic, id, token, HSP_HYPER_ANNOUNCE, NULL, wall + 120000, false);
  CHECK_EQ_INT(send_req(n, &a, 5, HSP_HYPER_ANNOUNCE, token, topic, buf, len), 1);
  CHECK_EQ_INT(lookup_records(n, topic, &bump), 1);
  CHECK(bump == wall + 1000);

  /* A refresh message (no peer; refresh = preimage of the registered key) re-stores the
   * record without a signature: sent at +15 min it keeps the record past the original
   * 20 min expiry, until 20 min after the refresh. */
  now += 15 * 60000;
  get_token(n, &a, topic, token);
  hsp_dht_announce_t rf = {.refresh = refresh_secret};
  len = (size_t)hsp_dht_announce_encode(buf, sizeof(buf), &rf);
  CHECK_EQ_INT(send_req(n, &a, 6, HSP_HYPER_ANNOUNCE, token, topic, buf, len), 1);
  now += 15 * 60000;
  CHECK_EQ_INT(lookup_records(n, topic, NULL), 1); /* kept alive by the refresh */
  now += 6 * 60000;
  CHECK_EQ_INT(lookup_records(n, topic, NULL), 0); /* expired */

  /* Unannounce (signed with NS_UNANNOUNCE) removes the record. */
  get_token(n, &a, topic, token);
  len = encode_announce(buf, &kp, topic, id, token, HSP_HYPER_ANNOUNCE, NULL, 0, false);
  CHECK_EQ_INT(send_req(n, &a, 7, HSP_HYPER_ANNOUNCE, token, topic, buf, len), 1);
  CHECK_EQ_INT(lookup_records(n, topic, NULL), 1);
  len = encode_announce(buf, &kp, topic, id, token, HSP_HYPER_ANNOUNCE, NULL, 0, false);
  CHECK_EQ_INT(send_req(n, &a, 8, HSP_HYPER_UNANNOUNCE, token, topic, buf, len), 0); /* wrong NS */
  len = encode_announce(buf, &kp, topic, id, token, HSP_HYPER_UNANNOUNCE, NULL, 0, false);
  CHECK_EQ_INT(send_req(n, &a, 9, HSP_HYPER_UNANNOUNCE, token, topic, buf, len), 1);
  CHECK_EQ_INT(lookup_records(n, topic, NULL), 0);

  /* Self-announce: FIND_PEER returns the record; handshakes are routed to the announcer. */
  uint8_t target[32];
  hsp_crypto_hash(target, kp.public_key, 32);
  get_token(n, &a, target, token);
  len = encode_announce(buf, &kp, target, id, token, HSP_HYPER_ANNOUNCE, NULL, 0, false);
  CHECK_EQ_INT(send_req(n, &a, 10, HSP_HYPER_ANNOUNCE, token, target, buf, len), 1);
  hsp_ipv4_addr_t client = lo(45000);
  CHECK_EQ_INT(send_req(n, &client, 11, HSP_HYPER_FIND_PEER, NULL, target, NULL, 0), 1);
  hsp_dht_response_t r;
  CHECK(res0(&r) && r.has_value && r.value.len == 33 && !memcmp(r.value.data, kp.public_key, 32));

  uint8_t noise[48];
  memset(noise, 0x77, sizeof(noise));
  hsp_dht_handshake_t hs = {.mode = HSP_HYPER_FROM_CLIENT, .noise = {noise, sizeof(noise)}};
  len = (size_t)hsp_dht_handshake_encode(buf, sizeof(buf), &hs);
  CHECK_EQ_INT(send_req(n, &client, 0x55aa, HSP_HYPER_PEER_HANDSHAKE, NULL, target, buf, len), 1);
  hsp_dht_request_t fwd;
  CHECK(hsp_dht_request_decode(&fwd, outbuf[0], outlen[0]) == 0);
  CHECK(fwd.tid == 0x55aa && fwd.id && !fwd.token && fwd.command == HSP_HYPER_PEER_HANDSHAKE);
  CHECK(hsp_dht_addr_equal(&outd[0].to, &a));
  hsp_dht_handshake_t got;
  CHECK(hsp_dht_handshake_decode(&got, fwd.value.data, fwd.value.len) == 0);
  CHECK(got.mode == HSP_HYPER_FROM_RELAY && got.has_peer_address &&
        hsp_dht_addr_equal(&got.peer_address, &client) && got.noise.len == sizeof(noise));
  /* The server answers FROM_SERVER; the node replies REPLY to the client, peer = server. */
  hsp_dht_handshake_t back = {.mode = HSP_HYPER_FROM_SERVER, .noise = {noise, 10},
                              .has_peer_address = true, .peer_address = client};
  len = (size_t)hsp_dht_handshake_encode(buf, sizeof(buf), &back);
  CHECK_EQ_INT(send_req(n, &a, 0x55aa, HSP_HYPER_PEER_HANDSHAKE, NULL, target, buf, len), 1);
  CHECK(res0(&r) && r.tid == 0x55aa && !r.token && r.closer_count == 0);
  CHECK(hsp_dht_addr_equal(&outd[0].to, &client));
  CHECK(hsp_dht_handshake_decode(&got, r.value.data, r.value.len) == 0);
  CHECK(got.mode == HSP_HYPER_REPLY && hsp_dht_addr_equal(&got.peer_address, &a));
  /* Holepunch from the client is relayed to the announcer the same way. */
  hsp_dht_holepunch_t hp = {.mode = HSP_HYPER_FROM_CLIENT, .id = 3, .payload = {noise, 40}};
  len = (size_t)hsp_dht_holepunch_encode(buf, sizeof(buf), &hp);
  CHECK_EQ_INT(send_req(n, &client, 0x1234, HSP_HYPER_PEER_HOLEPUNCH, NULL, target, buf, len), 1);
  CHECK(hsp_dht_request_decode(&fwd, outbuf[0], outlen[0]) == 0 && fwd.tid == 0x1234);
  CHECK(hsp_dht_addr_equal(&outd[0].to, &a));
  /* Without a route, FROM_CLIENT gets an empty reply with closer nodes and no token. */
  uint8_t nowhere[32];
  memset(nowhere, 0x42, 32);
  hsp_dht_node_add_node(n, &client);
  len = (size_t)hsp_dht_handshake_encode(buf, sizeof(buf), &hs);
  CHECK_EQ_INT(send_req(n, &client, 12, HSP_HYPER_PEER_HANDSHAKE, NULL, nowhere, buf, len), 1);
  CHECK(res0(&r) && !r.token && !r.has_value);

  hsp_dht_node_destroy(n);
  hsp_dht_store_free(store);
}

static void test_mutable_immutable(void) {
  hsp_dht_store_config_t sc = {.max_entries = 4};
  hsp_dht_store_init(&store, &sc);
  hsp_dht_node_t *n = make_node(true);
  uint8_t seed[32], target[32], token[32], sig[64], buf[512];
  memset(seed, 0x11, 32);
  hsp_crypto_keypair_t kp;
  hsp_crypto_keypair_from_seed(&kp, seed);
  hsp_crypto_hash(target, kp.public_key, 32);
  hsp_ipv4_addr_t a = lo(40001);
  get_token(n, &a, target, token);
  hsp_bytes_t hello = {(const uint8_t *)"hello", 5}, other = {(const uint8_t *)"other", 5};
  hsp_dht_mutable_sign(sig, 3, hello, &kp);
  hsp_dht_mutable_put_t put = {kp.public_key, 3, hello, sig};
  size_t len = (size_t)hsp_dht_mutable_put_encode(buf, sizeof(buf), &put);
  CHECK_EQ_INT(send_req(n, &a, 1, HSP_HYPER_MUTABLE_PUT, token, target, buf, len), 1);
  hsp_dht_response_t r;
  CHECK(res0(&r) && r.error == 0);
  /* Same seq, other value: SEQ_REUSED; lower seq: SEQ_TOO_LOW; error replies have no token. */
  hsp_dht_mutable_sign(sig, 3, other, &kp);
  put = (hsp_dht_mutable_put_t){kp.public_key, 3, other, sig};
  len = (size_t)hsp_dht_mutable_put_encode(buf, sizeof(buf), &put);
  CHECK_EQ_INT(send_req(n, &a, 2, HSP_HYPER_MUTABLE_PUT, token, target, buf, len), 1);
  CHECK(res0(&r) && r.error == HSP_HYPER_ERROR_SEQ_REUSED && !r.token);
  hsp_dht_mutable_sign(sig, 2, other, &kp);
  put = (hsp_dht_mutable_put_t){kp.public_key, 2, other, sig};
  len = (size_t)hsp_dht_mutable_put_encode(buf, sizeof(buf), &put);
  CHECK_EQ_INT(send_req(n, &a, 3, HSP_HYPER_MUTABLE_PUT, token, target, buf, len), 1);
  CHECK(res0(&r) && r.error == HSP_HYPER_ERROR_SEQ_TOO_LOW);
  /* Bad signature / wrong target: silence. */
  sig[5] ^= 1;
  put = (hsp_dht_mutable_put_t){kp.public_key, 9, other, sig};
  len = (size_t)hsp_dht_mutable_put_encode(buf, sizeof(buf), &put);
  CHECK_EQ_INT(send_req(n, &a, 4, HSP_HYPER_MUTABLE_PUT, token, target, buf, len), 0);
  /* GET with min seq 3 -> the stored value; with 4 -> null. */
  uint8_t seq3 = 3, seq4 = 4;
  CHECK_EQ_INT(send_req(n, &a, 5, HSP_HYPER_MUTABLE_GET, NULL, target, &seq3, 1), 1);
  hsp_dht_mutable_get_response_t g;
  CHECK(res0(&r) && r.has_value &&
        hsp_dht_mutable_get_response_decode(&g, r.value.data, r.value.len) == 0 && g.seq == 3 &&
        hsp_dht_mutable_verify(g.signature, g.seq, g.value, kp.public_key));
  CHECK_EQ_INT(send_req(n, &a, 6, HSP_HYPER_MUTABLE_GET, NULL, target, &seq4, 1), 1);
  CHECK(res0(&r) && !r.has_value);

  /* Immutable: hash checked; the store holds at most 4 entries (oldest-expiring evicted). */
  for (int i = 0; i < 6; i++) {
    uint8_t v[8] = {'v', 'a', 'l', (uint8_t)('0' + i)}, t[32];
    hsp_crypto_hash(t, v, 4);
    get_token(n, &a, t, token);
    CHECK_EQ_INT(send_req(n, &a, 7, HSP_HYPER_IMMUTABLE_PUT, token, t, v, 4), 1);
    t[0] ^= 1;
    CHECK_EQ_INT(send_req(n, &a, 8, HSP_HYPER_IMMUTABLE_PUT, token, t, v, 4), 0);
    now += 10;
  }
  CHECK_EQ_INT(hsp_dht_store_count(store, now), 4);
  hsp_dht_node_destroy(n);
  hsp_dht_store_free(store);

  /* An ephemeral node does not store: UNKNOWN_COMMAND. */
  hsp_dht_store_init(&store, NULL);
  n = make_node(false);
  CHECK_EQ_INT(send_req(n, &a, 9, HSP_HYPER_LOOKUP, NULL, target, NULL, 0), 1);
  CHECK(res0(&r) && r.error == HSP_DHT_WIRE_UNKNOWN_COMMAND);
  hsp_dht_node_destroy(n);
  hsp_dht_store_free(store);
}

static const uint8_t REPLY_NOISE[5] = {'r', 'e', 'p', 'l', 'y'};
static bool allow = true;
static bool srv_handshake(void *ctx, const hsp_dht_incoming_t *req, const hsp_dht_handshake_t *hs,
                          const hsp_ipv4_addr_t *client, hsp_dht_server_reply_t *out) {
  (void)ctx;
  (void)req;
  (void)hs;
  (void)client;
  out->data = REPLY_NOISE;
  out->len = sizeof(REPLY_NOISE);
  out->socket = 7; /* e.g. a puncher socket owned by the I/O layer */
  return allow;
}
static bool srv_holepunch(void *ctx, const hsp_dht_incoming_t *req, const hsp_dht_holepunch_t *hp,
                          hsp_dht_server_reply_t *out) {
  (void)ctx;
  (void)req;
  (void)hp;
  out->data = REPLY_NOISE;
  out->len = 3;
  return true;
}

/* The server's own node: routing of every handshake / holepunch mode (router.js isServer). */
static void test_local_server(void) {
  hsp_dht_store_init(&store, NULL);
  hsp_dht_node_t *n = make_node(true);
  uint8_t target[32], record[33], buf[512], noise[16];
  memset(noise, 0x3c, sizeof(noise));
  memset(record, 0x61, sizeof(record));
  record[32] = 0;
  hsp_crypto_hash(target, record, 32);
  CHECK_EQ_INT(hsp_dht_store_listen(store, target, record, sizeof(record), srv_handshake,
                                    srv_holepunch, NULL), 0);
  hsp_ipv4_addr_t client = lo(45000), relay = lo(46000), relay2 = lo(47000);
  hsp_dht_response_t r;
  hsp_dht_request_t q;
  hsp_dht_handshake_t got;

  /* FIND_PEER and LOOKUP answer with our own record. */
  CHECK_EQ_INT(send_req(n, &client, 1, HSP_HYPER_FIND_PEER, NULL, target, NULL, 0), 1);
  CHECK(res0(&r) && r.value.len == 33 && !memcmp(r.value.data, record, 33));
  CHECK_EQ_INT(lookup_records(n, target, NULL), 1);

  /* FROM_CLIENT (direct): REPLY to the client, from the handler's socket, no peerAddress. */
  hsp_dht_handshake_t hs = {.mode = HSP_HYPER_FROM_CLIENT, .noise = {noise, sizeof(noise)}};
  size_t len = (size_t)hsp_dht_handshake_encode(buf, sizeof(buf), &hs);
  CHECK_EQ_INT(send_req(n, &client, 2, HSP_HYPER_PEER_HANDSHAKE, NULL, target, buf, len), 1);
  CHECK(res0(&r) && r.tid == 2 && outd[0].socket == 7 && hsp_dht_addr_equal(&outd[0].to, &client));
  CHECK(hsp_dht_handshake_decode(&got, r.value.data, r.value.len) == 0);
  CHECK(got.mode == HSP_HYPER_REPLY && !got.has_peer_address && got.noise.len == 5);

  /* FROM_RELAY: FROM_SERVER request back to the relay, keeping tid and peerAddress. */
  hs.mode = HSP_HYPER_FROM_RELAY;
  hs.has_peer_address = true;
  hs.peer_address = client;
  len = (size_t)hsp_dht_handshake_encode(buf, sizeof(buf), &hs);
  CHECK_EQ_INT(send_req(n, &relay, 3, HSP_HYPER_PEER_HANDSHAKE, NULL, target, buf, len), 1);
  CHECK(hsp_dht_request_decode(&q, outbuf[0], outlen[0]) == 0 && q.tid == 3);
  CHECK(hsp_dht_addr_equal(&outd[0].to, &relay) && outd[0].socket == 7);
  CHECK(hsp_dht_handshake_decode(&got, q.value.data, q.value.len) == 0);
  CHECK(got.mode == HSP_HYPER_FROM_SERVER && hsp_dht_addr_equal(&got.peer_address, &client));

  /* FROM_SECOND_RELAY: to the first relay named in relayAddress; without it, nothing. */
  hs.mode = HSP_HYPER_FROM_SECOND_RELAY;
  hs.has_relay_address = true;
  hs.relay_address = relay2;
  len = (size_t)hsp_dht_handshake_encode(buf, sizeof(buf), &hs);
  CHECK_EQ_INT(send_req(n, &relay, 4, HSP_HYPER_PEER_HANDSHAKE, NULL, target, buf, len), 1);
  CHECK(hsp_dht_addr_equal(&outd[0].to, &relay2));
  hs.has_relay_address = false;
  len = (size_t)hsp_dht_handshake_encode(buf, sizeof(buf), &hs);
  CHECK_EQ_INT(send_req(n, &relay, 5, HSP_HYPER_PEER_HANDSHAKE, NULL, target, buf, len), 0);

  /* The firewall (handler says no): no reply at all. */
  allow = false;
  hs.mode = HSP_HYPER_FROM_CLIENT;
  len = (size_t)hsp_dht_handshake_encode(buf, sizeof(buf), &hs);
  CHECK_EQ_INT(send_req(n, &client, 6, HSP_HYPER_PEER_HANDSHAKE, NULL, target, buf, len), 0);
  allow = true;

  /* Holepunch FROM_RELAY: the handler's payload goes back to the relay as FROM_SERVER, id 0. */
  hsp_dht_holepunch_t hp = {.mode = HSP_HYPER_FROM_RELAY, .id = 9, .payload = {noise, 8},
                            .has_peer_address = true, .peer_address = client};
  len = (size_t)hsp_dht_holepunch_encode(buf, sizeof(buf), &hp);
  CHECK_EQ_INT(send_req(n, &relay, 7, HSP_HYPER_PEER_HOLEPUNCH, NULL, target, buf, len), 1);
  hsp_dht_holepunch_t hg;
  CHECK(hsp_dht_request_decode(&q, outbuf[0], outlen[0]) == 0 && q.tid == 7);
  CHECK(hsp_dht_holepunch_decode(&hg, q.value.data, q.value.len) == 0);
  CHECK(hg.mode == HSP_HYPER_FROM_SERVER && hg.id == 0 && hg.payload.len == 3 &&
        hsp_dht_addr_equal(&hg.peer_address, &client) && hsp_dht_addr_equal(&outd[0].to, &relay));

  hsp_dht_store_unlisten(store, target);
  CHECK_EQ_INT(send_req(n, &client, 8, HSP_HYPER_FIND_PEER, NULL, target, NULL, 0), 1);
  CHECK(res0(&r) && !r.has_value);
  hsp_dht_node_destroy(n);
  hsp_dht_store_free(store);
}

int main(void) {
  test_local_server();
  test_announce_lookup();
  test_mutable_immutable();
  return check_summary("dht_store");
}
