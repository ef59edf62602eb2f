/* Client connect by public key (hyper_conn.h; hyperdht connect.js, hyperdht.md §4). */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "hyper_client.h"
#include "hyper_conn_internal.h"
#include "puncher.h"
#include "relay.h"

#define MAX_HANDSHAKES 2 /* in flight; 3 when cached relays are tried first (connect.js) */
#define MAX_TRIED 16
/* With cached relays the FIND_PEER query waits this long (or until they all failed): on a
 * healthy route it is pure load on the nodes that are answering our handshake. */
#define PRECONNECT_GRACE_MS 250
/* The first cached relay (the server itself when it is reachable) gets the handshake alone;
 * the other cached relays only if it has not answered by then. */
#define PRECONNECT_STAGGER_MS 50
#define REMOTE_UNKNOWN_WAIT_MS 1000 /* connect.js probeRound: let the server classify its NAT */
#define MAX_HOLEPUNCH_PAYLOAD 512
#define MAX_LOCAL_ADDRESSES 4
#define PASSIVE_WAIT_MS 10000

enum { HP_NONE = 0, HP_PROBE, HP_PROBE_WAIT, HP_PUNCH, HP_PUNCHING, HP_ABORTING };

typedef struct connector {
  hsp_dht_io_t *io;
  hsp_dht_conn_t *conn;
  hsp_noise_t noise;
  uint8_t target[32];
  uint8_t msg[512]; /* PEER_HANDSHAKE value (handshake{FROM_CLIENT, noise msg1}) */
  size_t msg_len;
  long query;
  int inflight; /* handshake and holepunch requests */
  bool query_done, found, done, handshaked;
  hsp_dht_connect_cb cb;
  void *ctx;
  /* holepunch (connect.js c.connect / c.puncher / c.payload) */
  hsp_noise_result_t keys;
  uint32_t remote_udx_id;
  uint8_t secret[32], local_secret[32];
  uint64_t holepunch_id, round;
  hsp_ipv4_addr_t server_address, relay_address;
  hsp_ipv4_addr_t server_relay, server_relay_peer; /* pickServerRelay */
  hsp_dht_puncher_t *puncher;
  int phase;
  bool retry, probe_replied, has_remote_token;
  uint8_t remote_token[32];
  int abort_err;
  uint64_t wait_until;
  hsp_ipv4_addr_t relay_address_sent; /* where the last holepunch request went */
  hsp_dht_io_ticker_t ticker;
  bool ticking;
  bool lan, open;        /* localConnection option; we told the server we are reachable */
  uint64_t passive_until; /* we are OPEN: the server connects to us (connect.js) */
  bool early; /* the server's stream reached us before its handshake reply did */
  int early_socket;
  hsp_ipv4_addr_t early_address;
  hsp_ipv4_addr_t tried[MAX_TRIED]; /* nodes sent our handshake */
  size_t ntried;
  bool preconnect, stopping_query;
  uint64_t query_at; /* deferred FIND_PEER start (preconnect), 0 = none pending */
  uint64_t stagger_at; /* when the rest of the cached relays get the handshake, 0 = none */
  hsp_ipv4_addr_t cached[HSP_DHT_IO_CACHED_RELAYS];
  size_t ncached;
  uint8_t remote_public_key[32];
  hsp_ipv4_addr_t relays[HSP_DHT_IO_CACHED_RELAYS]; /* to cache after success */
  size_t nrelays;
  /* blind relay (connect.js relayConnection) */
  hsp_crypto_keypair_t kp;
  bool relay_through;
  uint8_t relay_key[32], relay_token[32];
  hsp_dht_relay_t *relay; /* pairing in progress */
  int pending_err;        /* a path failed while another (relay, LAN ping) was pending */
  bool lan_pending;
} connector_t;

static void finish(connector_t *k, int err) {
  if (k->done) return;
  k->done = true;
  hsp_dht_relay_destroy(k->relay);
  k->relay = NULL;
  hsp_crypto_keypair_wipe(&k->kp);
  hsp_dht_puncher_destroy(k->puncher);
  k->puncher = NULL;
  if (k->ticking) hsp_dht_io_remove_ticker(k->io, &k->ticker);
  k->ticking = false;
  hsp_crypto_wipe(&k->keys, sizeof(k->keys));
  hsp_crypto_wipe(k->secret, sizeof(k->secret));
  hsp_crypto_wipe(k->local_secret, sizeof(k->local_secret));
  hsp_dht_conn_t *c = k->conn;
  k->conn = NULL;
  if (c->user == k) c->user = NULL;
  if (err) {
    hsp_dht_conn_destroy(c); /* its close callback is unset: it just frees */
    k->cb(k->ctx, NULL, err);
  } else {
    hsp_dht_io_relay_cache_set(k->io, k->target, k->relays, k->nrelays);
    k->cb(k->ctx, c, 0);
  }
  hsp_noise_wipe(&k->noise);
  /* A running FIND_PEER query is left to finish (its replies are ignored now): k is freed
   * once it and every handshake request settled. */
}

static void maybe_free(connector_t *k) {
  if (k->done && k->inflight == 0 && (k->query_done || k->query <= 0)) free(k);
}

static void start_query(connector_t *k);
static void send_handshake(connector_t *k, const hsp_ipv4_addr_t *to);

/* A failed direct path: while the blind relay still pairs, its outcome decides. */
static void fail(connector_t *k, int err) {
  if (k->done) return;
  if (k->relay || k->lan_pending) {
    if (!k->pending_err) k->pending_err = err;
    hsp_dht_puncher_destroy(k->puncher);
    k->puncher = NULL;
    k->phase = HP_NONE;
    k->passive_until = 0;
    return;
  }
  finish(k, err);
}

static void relay_free(void *ctx) { hsp_dht_relay_destroy(ctx); }

static void on_relay(void *ctx, int err, int socket, const hsp_ipv4_addr_t *to,
                     uint32_t remote_id) {
  connector_t *k = ctx;
  hsp_dht_relay_t *r = k->relay;
  k->relay = NULL;
  if (err) {
    hsp_dht_relay_destroy(r);
    /* Still punching or pinging: let that finish; else report the first failure. */
    if (!k->lan_pending &&
        (k->pending_err || (!k->puncher && k->phase == HP_NONE && !k->passive_until)))
      finish(k, k->pending_err ? k->pending_err : err);
  } else {
    int e = hsp_dht__conn_start(k->conn, socket, to, remote_id, &k->keys);
    if (e) {
      hsp_dht_relay_destroy(r);
    } else { /* the relay connection lives as long as the stream it carries */
      k->conn->on_free = relay_free;
      k->conn->on_free_ctx = r;
    }
    finish(k, e);
  }
  maybe_free(k);
}

static void start_relay(connector_t *k, const hsp_dht_noise_payload_t *p) {
  /* The side whose relay is used initiates the pairing; the server's relay wins. */
  bool theirs = p->has_relay_through && p->relay_through_public_key && p->relay_through_token;
  if (!theirs && !k->relay_through) return;
  const uint8_t *key = theirs ? p->relay_through_public_key : k->relay_key;
  const uint8_t *token = theirs ? p->relay_through_token : k->relay_token;
  hsp_dht_relay_pair(&k->relay, k->io, &k->kp, key, !theirs, token, k->conn->stream.local_id,
                     on_relay, k);
}


/* ---- holepunching (connect.js holepunch / probeRound / roundPunch) ---------------------- */

static void on_holepunch_reply(void *ctx, const hsp_dht_reply_t *r, int err);

static void send_round(connector_t *k, const hsp_ipv4_addr_t *relay, const hsp_ipv4_addr_t *peer,
                       const hsp_dht_holepunch_payload_t *hp) {
  uint8_t sealed[MAX_HOLEPUNCH_PAYLOAD], nonce[24], buf[MAX_HOLEPUNCH_PAYLOAD + 64];
  randombytes_buf(nonce, sizeof(nonce));
  long n = hsp_dht_holepunch_payload_seal(sealed, sizeof(sealed), hp, k->secret, nonce);
  hsp_dht_holepunch_t m = {.mode = HSP_HYPER_FROM_CLIENT, .id = k->holepunch_id,
                           .payload = {sealed, n > 0 ? (size_t)n : 0},
                           .has_peer_address = true, .peer_address = *peer};
  long len = n < 0 ? n : hsp_dht_holepunch_encode(buf, sizeof(buf), &m);
  hsp_dht_request_opts_t o;
  hsp_dht_request_opts_default(&o);
  o.to = *relay;
  o.command = HSP_HYPER_PEER_HOLEPUNCH;
  o.target = k->target;
  o.value = buf;
  o.value_len = len > 0 ? (size_t)len : 0;
  o.has_value = true;
  o.socket = hsp_dht_puncher_socket(k->puncher);
  if (len > 0 && hsp_dht_node_request(hsp_dht_io_node(k->io), &o, on_holepunch_reply, k) > 0) {
    k->inflight++;
    k->relay_address_sent = *relay;
  } else {
    fail(k, HSP_DHT_CONN_EPUNCHABORTED);
  }
}

static void our_addresses(connector_t *k, hsp_dht_holepunch_payload_t *hp, uint8_t *wire) {
  size_t n;
  const hsp_ipv4_addr_t *a = hsp_dht_puncher_addresses(k->puncher, &n);
  for (size_t i = 0; i < n; i++) hsp_dht_addr_to_wire(wire + 6 * i, &a[i]);
  hp->has_addresses = a != NULL;
  hp->addresses = (hsp_dht_addrs_t){wire, n};
}

static void probe_round(connector_t *k) {
  k->phase = HP_PROBE;
  k->probe_replied = false;
  /* Open our NAT towards the server's puncher first (TTL 5: it expires before their NAT). */
  hsp_dht_puncher_open_session(k->puncher, &k->server_address);
  uint8_t wire[HSP_DHT_NAT_CLASS_MAX * 6];
  hsp_dht_holepunch_payload_t hp = {.firewall = (uint64_t)hsp_dht_puncher_firewall(k->puncher),
                                    .round = k->round++, .has_remote_address = true,
                                    .remote_address = k->server_address};
  our_addresses(k, &hp, wire);
  send_round(k, &k->server_relay, &k->server_relay_peer, &hp);
}

/* connect.js abort(): tell the server, then fail. */
static void abort_punch(connector_t *k, int err) {
  k->phase = HP_ABORTING;
  k->abort_err = err;
  hsp_dht_holepunch_payload_t hp = {.error = HSP_HYPER_ERROR_ABORTED,
                                    .firewall = HSP_HYPER_FIREWALL_UNKNOWN, .round = k->round++};
  send_round(k, &k->server_relay, &k->server_relay_peer, &hp);
}

static void punch_round(connector_t *k) {
  /* We gossip our final NAT view now: freeze it. */
  hsp_dht_puncher_freeze(k->puncher);
  k->phase = HP_PUNCH;
  uint8_t wire[HSP_DHT_NAT_CLASS_MAX * 6], token[32];
  hsp_dht_holepunch_token(token, k->local_secret, k->server_address.host);
  hsp_dht_holepunch_payload_t hp = {.firewall = (uint64_t)hsp_dht_puncher_firewall(k->puncher),
                                    .round = k->round++, .punching = true, .token = token,
                                    .remote_token = k->has_remote_token ? k->remote_token : NULL};
  our_addresses(k, &hp, wire);
  send_round(k, &k->relay_address, &k->server_address, &hp);
}

/* After a probe reply: wait out an UNKNOWN remote and our own NAT analysis, then decide. */
static void probe_continue(connector_t *k) {
  if (k->done || k->phase != HP_PROBE_WAIT) return;
  if (hsp_dht_io_now(k->io) < k->wait_until || !hsp_dht_puncher_analyzed(k->puncher)) return;
  int remote = hsp_dht_puncher_remote_firewall(k->puncher);
  int local = hsp_dht_puncher_firewall(k->puncher);
  switch (hsp_dht_probe_verdict(local, remote, k->has_remote_token, k->retry)) {
  case HSP_DHT_PROBE_AGAIN:
    k->retry = false;
    probe_round(k);
    return;
  case HSP_DHT_PROBE_ABORT_TIMEOUT: abort_punch(k, HSP_DHT_CONN_EPROBETIMEOUT); return;
  case HSP_DHT_PROBE_ABORT_RANDOM: abort_punch(k, HSP_DHT_CONN_EDOUBLERANDOM); return;
  default: break;
  }
  /* Without a blind relay to wait on, a rate-limited random punch fails now (roundPunch). */
  if (hsp_dht_punch_is_random(local, remote) &&
      !hsp_dht_punch_limit_allowed(hsp_dht_io_punch_limit(k->io), hsp_dht_io_now(k->io))) {
    fail(k, HSP_DHT_CONN_EPUNCHABORTED);
    return;
  }
  punch_round(k);
}

static void on_holepunch_reply(void *ctx, const hsp_dht_reply_t *r, int err) {
  connector_t *k = ctx;
  k->inflight--;
  if (k->done) goto out;
  if (k->phase == HP_ABORTING) {
    fail(k, k->abort_err);
    goto out;
  }
  hsp_dht_holepunch_t hm;
  uint8_t plain[MAX_HOLEPUNCH_PAYLOAD];
  hsp_dht_holepunch_payload_t rp;
  if (err || !r->has_value) {
    fail(k, HSP_DHT_CONN_EPUNCHABORTED);
    goto out;
  }
  if (!hsp_dht_addr_equal(&r->from, &k->relay_address_sent) ||
      hsp_dht_holepunch_decode(&hm, r->value.data, r->value.len) != 0 ||
      hm.mode != HSP_HYPER_REPLY) {
    fail(k, HSP_DHT_CONN_ESERVER); /* BAD_HOLEPUNCH_REPLY */
    goto out;
  }
  if (hm.payload.len > sizeof(plain) ||
      hsp_dht_holepunch_payload_open(&rp, plain, sizeof(plain), hm.payload.data, hm.payload.len,
                                     k->secret) != 0) {
    fail(k, HSP_DHT_CONN_ESERVER); /* HOLEPUNCH_INVALID */
    goto out;
  }
  if (rp.error) {
    fail(k, HSP_DHT_CONN_EREMOTEABORTED);
    goto out;
  }
  if (hsp_dht_puncher_connected(k->puncher)) goto out; /* on_punched finishes */
  /* Our token echoed back verifies the address it was made for (the server's host). */
  uint8_t token[32];
  hsp_dht_holepunch_token(token, k->local_secret, k->server_address.host);
  bool echoed = k->phase == HP_PUNCH && rp.remote_token && !memcmp(rp.remote_token, token, 32);
  hsp_dht_puncher_update_remote(k->puncher, rp.punching, (int)rp.firewall,
                                rp.has_addresses ? rp.addresses.wire : NULL,
                                rp.has_addresses ? rp.addresses.count : 0,
                                echoed ? k->server_address.host : NULL);
  if (k->phase == HP_PROBE) {
    if (rp.token) {
      memcpy(k->remote_token, rp.token, 32);
      k->has_remote_token = true;
    }
    hsp_dht_puncher_sample(k->puncher, &r->to, &r->from);
    /* Same relay on both sides: the reply's peerAddress is the server's current puncher. */
    if (hm.has_peer_address && hsp_dht_addr_equal(&k->server_relay, &k->relay_address) &&
        !hsp_dht_addr_equal(&hm.peer_address, &k->server_address)) {
      k->server_address = hm.peer_address;
      hsp_dht_puncher_open_session(k->puncher, &k->server_address);
    }
    k->phase = HP_PROBE_WAIT;
    k->wait_until = hsp_dht_io_now(k->io) +
                    (rp.firewall == HSP_HYPER_FIREWALL_UNKNOWN ? REMOTE_UNKNOWN_WAIT_MS : 0);
    hsp_dht_io_wake(k->io);
    probe_continue(k);
    goto out;
  }
  if (k->phase == HP_PUNCH) {
    if (!hsp_dht_puncher_remote_punching(k->puncher)) {
      fail(k, HSP_DHT_CONN_EREMOTEABORTED); /* REMOTE_NOT_HOLEPUNCHING */
      goto out;
    }
    if (!hsp_dht_puncher_punch(k->puncher)) {
      fail(k, HSP_DHT_CONN_ENOTPUNCHABLE);
      goto out;
    }
    k->phase = HP_PUNCHING; /* on_punched or on_punch_abort ends it */
  }
out:
  maybe_free(k);
}

static void on_punched(void *ctx, int socket, const hsp_ipv4_addr_t *from) {
  connector_t *k = ctx;
  if (k->done) return;
  int e = hsp_dht__conn_start(k->conn, socket, from, k->remote_udx_id, &k->keys);
  finish(k, e);
  maybe_free(k);
}

static void on_punch_analyzed(void *ctx) { probe_continue(ctx); }

static void on_punch_abort(void *ctx) {
  connector_t *k = ctx;
  fail(k, HSP_DHT_CONN_EPUNCHABORTED);
  maybe_free(k);
}

static uint64_t hp_deadline(hsp_dht_io_ticker_t *t) {
  connector_t *k = (connector_t *)((char *)t - offsetof(connector_t, ticker));
  uint64_t d = k->phase == HP_PROBE_WAIT ? k->wait_until : UINT64_MAX;
  if (k->query_at && k->query_at < d) d = k->query_at;
  if (k->stagger_at && k->stagger_at < d) d = k->stagger_at;
  return k->passive_until && k->passive_until < d ? k->passive_until : d;
}

static void hp_advance(hsp_dht_io_ticker_t *t, uint64_t now) {
  (void)now;
  connector_t *k = (connector_t *)((char *)t - offsetof(connector_t, ticker));
  if (k->stagger_at && now >= k->stagger_at) {
    k->stagger_at = 0;
    for (size_t i = 1; i < k->ncached && !k->handshaked && !k->done; i++)
      send_handshake(k, &k->cached[i]);
  }
  if (k->query_at && now >= k->query_at) start_query(k);
  if (k->done) {
  } else if (k->passive_until && now >= k->passive_until) {
    fail(k, HSP_DHT_CONN_EPUNCHABORTED);
  } else if (k->phase == HP_PROBE_WAIT && now >= k->wait_until) {
    k->wait_until = 0;
    probe_continue(k);
  }
  maybe_free(k);
}

static void start_ticker(connector_t *k) {
  if (k->ticking) return;
  k->ticker.deadline = hp_deadline;
  k->ticker.advance = hp_advance;
  hsp_dht_io_add_ticker(k->io, &k->ticker);
  k->ticking = true;
}

/* The LAN shortcut: the server answered our ping on its LAN address. */
static void on_lan_ping(void *ctx, const hsp_dht_reply_t *r, int err) {
  connector_t *k = ctx;
  k->inflight--;
  k->lan_pending = false;
  if (!k->done && !err) {
    hsp_ipv4_addr_t to = r->from;
    finish(k, hsp_dht__conn_start(k->conn, 0, &to, k->remote_udx_id, &k->keys));
  } else if (!k->done && (k->pending_err || !k->puncher)) {
    fail(k, k->pending_err ? k->pending_err : HSP_DHT_CONN_EPUNCHABORTED);
  }
  maybe_free(k);
}

static void lan_ping(connector_t *k, const hsp_ipv4_addr_t *to) {
  hsp_dht_request_opts_t o;
  hsp_dht_request_opts_default(&o);
  o.to = *to;
  o.internal = true;
  o.command = HSP_DHT_CMD_PING;
  if (hsp_dht_node_request(hsp_dht_io_node(k->io), &o, on_lan_ping, k) > 0) {
    k->inflight++;
    k->lan_pending = true;
  }
}

/* The server's first UDX packet tells us where its stream is. A server that hands its
 * stream over at once (we are OPEN, or it answered our handshake itself) sends before its
 * reply reaches us, the more so when the reply takes the detour through a relay: that packet
 * is kept (UDX buffers it until the stream starts) and its origin remembered, as connect.js
 * does (serverSocket), instead of being dropped and recovered only by the server's 1 s RTO.
 * After the handshake, a first packet while we wait passively starts the stream there;
 * otherwise (punching, relaying) packets are processed as without a firewall. */
static int stream_firewall(hsp_udx_stream_t *s, hsp_udx_socket_t *sock, const struct sockaddr *from) {
  hsp_dht_conn_t *c = s->data;
  /* Started: user belongs to the application now; accept the packet as a stream without a
   * firewall would (the server may answer from another of its sockets). */
  if (c->started) return 0;
  connector_t *k = c->user;
  if (!k || k->done || from->sa_family != AF_INET) return 1;
  const struct sockaddr_in *sa = (const struct sockaddr_in *)from;
  hsp_ipv4_addr_t a;
  memcpy(a.host, &sa->sin_addr, 4);
  a.port = ntohs(sa->sin_port);
  int which = hsp_dht_io_socket_id(k->io, sock);
  if (which < 0 || !a.port) return 1;
  if (!k->handshaked) {
    if (!k->early) {
      k->early = true;
      k->early_socket = which;
      k->early_address = a;
    }
    return 0;
  }
  if (!k->open) return 0;
  c->user = NULL;
  finish(k, hsp_dht__conn_start(c, which, &a, k->remote_udx_id, &k->keys));
  maybe_free(k);
  return 0;
}

static int start_holepunch(connector_t *k, const hsp_dht_noise_payload_t *p,
                           const hsp_dht_reply_t *r, const hsp_ipv4_addr_t *server) {
  hsp_noise_holepunch_secret(k->secret, k->keys.hash);
  randombytes_buf(k->local_secret, sizeof(k->local_secret));
  k->holepunch_id = p->holepunch_id;
  k->server_address = *server;
  k->relay_address = r->from;
  /* pickServerRelay: the server's relay that is also ours, else its first. */
  size_t pick = 0;
  for (size_t i = 0; i < p->holepunch_relays.count; i++) {
    hsp_ipv4_addr_t ra = hsp_dht_addr_from_wire(p->holepunch_relays.wire + 12 * i);
    if (hsp_dht_addr_equal(&ra, &r->from)) {
      pick = i;
      break;
    }
  }
  k->server_relay = hsp_dht_addr_from_wire(p->holepunch_relays.wire + 12 * pick);
  k->server_relay_peer = hsp_dht_addr_from_wire(p->holepunch_relays.wire + 12 * pick + 6);
  hsp_dht_puncher_cbs_t cbs = {on_punch_analyzed, on_punched, on_punch_abort, k};
  int err = hsp_dht_puncher_create(&k->puncher, k->io, true, (int)p->firewall, &cbs);
  if (err) return err;
  start_ticker(k);
  k->retry = true;
  probe_round(k);
  return 0;
}

static void on_handshake_reply(void *ctx, const hsp_dht_reply_t *r, int err) {
  connector_t *k = ctx;
  k->inflight--;
  if (k->done || k->handshaked || err || !r->has_value) goto out;
  hsp_dht_handshake_t hs;
  if (hsp_dht_handshake_decode(&hs, r->value.data, r->value.len) != 0 ||
      hs.mode != HSP_HYPER_REPLY || !hs.noise.len) {
    finish(k, HSP_DHT_CONN_ESERVER);
    goto out;
  }
  uint8_t plain[1024];
  size_t plen;
  if (hs.noise.len > sizeof(plain) ||
      hsp_noise_read_message(&k->noise, hs.noise.data, hs.noise.len, plain, sizeof(plain),
                             &plen) != 0) {
    finish(k, HSP_DHT_CONN_ESERVER);
    goto out;
  }
  hsp_dht_noise_payload_t p;
  if (hsp_dht_noise_payload_decode(&p, plain, plen) != 0 || p.version != 1 || p.error ||
      !p.has_udx) {
    finish(k, HSP_DHT_CONN_ESERVER);
    goto out;
  }
  k->handshaked = true;
  hsp_noise_get_result(&k->noise, &k->keys);
  /* For the next connect: the server's own relay list (its view), else the nodes we tried. */
  k->nrelays = 0;
  if (p.has_relay_addresses && p.relay_addresses.count) {
    for (size_t i = 0; i < p.relay_addresses.count && k->nrelays < HSP_DHT_IO_CACHED_RELAYS; i++)
      k->relays[k->nrelays++] = hsp_dht_addr_from_wire(p.relay_addresses.wire + 6 * i);
  } else {
    for (size_t i = 0; i < k->ntried && k->nrelays < HSP_DHT_IO_CACHED_RELAYS; i++)
      k->relays[k->nrelays++] = k->tried[i];
  }
  k->remote_udx_id = (uint32_t)p.udx_id;
  start_relay(k, &p);
  bool relayed = hs.has_peer_address;
  hsp_ipv4_addr_t server = relayed ? hs.peer_address : r->from;
  hsp_ipv4_addr_t client = r->to;
  hsp_ipv4_addr_t dest = r->from; /* not relayed: the server's own node answered */
  bool holepunchable = p.has_holepunch && p.holepunch_relays.count > 0;
  if (k->early) {
    finish(k, hsp_dht__conn_start(k->conn, k->early_socket, &k->early_address, k->remote_udx_id,
                                  &k->keys));
    goto out;
  }
  if (!relayed) {
    finish(k, hsp_dht__conn_start(k->conn, 0, &dest, k->remote_udx_id, &k->keys));
    goto out;
  }
  if (p.firewall == HSP_HYPER_FIREWALL_OPEN || !holepunchable) {
    /* getFirstRemoteAddress: the first routable address it listed, else where it answered. */
    dest = server;
    for (size_t i = 0; i < p.addresses4.count; i++) {
      hsp_ipv4_addr_t a = hsp_dht_addr_from_wire(p.addresses4.wire + 6 * i);
      if (!hsp_dht_ip_bogon(a.host)) {
        dest = a;
        break;
      }
    }
    if (p.firewall == HSP_HYPER_FIREWALL_OPEN || !k->lan || memcmp(client.host, server.host, 4)) {
      finish(k, hsp_dht__conn_start(k->conn, 0, &dest, k->remote_udx_id, &k->keys));
      goto out;
    }
  }
  if (k->open) {
    k->passive_until = hsp_dht_io_now(k->io) + PASSIVE_WAIT_MS;
    start_ticker(k);
    goto out;
  }
  /* Same public host (a shared NAT, or this machine): race a ping to the server's LAN
   * address (nearest to ours) against the holepunch (connect.js). */
  bool lan_tried = false;
  if (k->lan && !memcmp(client.host, server.host, 4)) {
    hsp_ipv4_addr_t cand[MAX_LOCAL_ADDRESSES * 2], local[MAX_LOCAL_ADDRESSES];
    size_t ncand = 0;
    for (size_t i = 0; i < p.addresses4.count && ncand < MAX_LOCAL_ADDRESSES * 2; i++) {
      hsp_ipv4_addr_t a = hsp_dht_addr_from_wire(p.addresses4.wire + 6 * i);
      if (!hsp_dht_ip_reserved(a.host)) cand[ncand++] = a;
    }
    if (ncand) {
      size_t nlocal = hsp_dht_io_local_addresses(k->io, local, MAX_LOCAL_ADDRESSES);
      int m = hsp_dht_match_address(local, nlocal, cand, ncand);
      lan_ping(k, &cand[m < 0 ? 0 : m]);
      lan_tried = true;
    }
  }
  if (!holepunchable) {
    if (!lan_tried) fail(k, HSP_DHT_CONN_ECANNOTPUNCH);
    goto out;
  }
  int e = start_holepunch(k, &p, r, &server);
  if (e) fail(k, e);
out:
  if (k->handshaked) {
    k->query_at = k->stagger_at = 0;
  } else if (k->stagger_at && k->inflight == 0 && !k->done) {
    k->stagger_at = hsp_dht_io_now(k->io); /* the first failed: try the others now */
    hsp_dht_io_wake(k->io);
  } else if (k->query_at && k->inflight == 0 && !k->done) {
    start_query(k); /* every cached relay failed */
  }
  if (!k->done && !k->handshaked && k->query_done && k->inflight == 0)
    finish(k, HSP_DHT_CONN_EFAILED);
  /* A handshake got through: the rest of the FIND_PEER query is only load now. */
  if (k->handshaked && !k->query_done && k->query > 0) {
    k->stopping_query = true;
    hsp_dht_node_query_destroy(hsp_dht_io_node(k->io), k->query);
  }
  maybe_free(k);
}

static void send_handshake(connector_t *k, const hsp_ipv4_addr_t *to) {
  hsp_dht_request_opts_t o;
  hsp_dht_request_opts_default(&o);
  o.to = *to;
  o.command = HSP_HYPER_PEER_HANDSHAKE;
  o.target = k->target;
  o.value = k->msg;
  o.value_len = k->msg_len;
  o.has_value = true;
  if (hsp_dht_node_request(hsp_dht_io_node(k->io), &o, on_handshake_reply, k) > 0) {
    k->inflight++;
    if (k->ntried < MAX_TRIED) k->tried[k->ntried++] = *to;
  }
}

static bool tried(const connector_t *k, const hsp_ipv4_addr_t *a) {
  for (size_t i = 0; i < k->ntried; i++)
    if (hsp_dht_addr_equal(&k->tried[i], a)) return true;
  return false;
}

static void on_peer_reply(void *ctx, const hsp_dht_reply_t *r) {
  connector_t *k = ctx;
  if (k->done || k->handshaked || !r->has_value || !r->value.len) return;
  k->found = true;
  if (tried(k, &r->from)) return;
  if (k->inflight < MAX_HANDSHAKES + (k->preconnect ? 1 : 0)) send_handshake(k, &r->from);
}

static void on_peer_reply(void *ctx, const hsp_dht_reply_t *r);
static void on_query_done(void *ctx, const hsp_dht_query_result_t *res);

static void start_query(connector_t *k) {
  k->query_at = 0;
  hsp_dht_query_cbs_t cbs = {on_peer_reply, on_query_done, k};
  k->query = hsp_dht_find_peer(hsp_dht_io_node(k->io), k->remote_public_key, &cbs);
  if (k->query <= 0 && !k->handshaked && k->inflight == 0) finish(k, (int)k->query);
}

static void on_query_done(void *ctx, const hsp_dht_query_result_t *res) {
  (void)res;
  connector_t *k = ctx;
  k->query_done = true;
  if (k->stopping_query) return; /* destroyed by on_handshake_reply, which frees k */
  if (!k->done && !k->handshaked && k->inflight == 0)
    finish(k, k->found ? HSP_DHT_CONN_EFAILED : HSP_DHT_CONN_ENOTFOUND);
  maybe_free(k);
}

int hsp_dht_connect(hsp_dht_io_t *io, const hsp_crypto_keypair_t *kp,
                    const uint8_t remote_public_key[32], hsp_dht_connect_cb cb, void *ctx) {
  hsp_dht_connect_opts_t o = {.local_connection = true, .relay_through = NULL};
  return hsp_dht_connect_with(io, kp, remote_public_key, &o, cb, ctx);
}

int hsp_dht_connect_with(hsp_dht_io_t *io, const hsp_crypto_keypair_t *kp,
                         const uint8_t remote_public_key[32], const hsp_dht_connect_opts_t *opts,
                         hsp_dht_connect_cb cb, void *ctx) {
  connector_t *k = calloc(1, sizeof(*k));
  if (!k) return HSP_DHT_ENOMEM;
  k->io = io;
  k->lan = opts->local_connection;
  k->kp = *kp;
  if (opts->relay_through) {
    k->relay_through = true;
    memcpy(k->relay_key, opts->relay_through, 32);
    randombytes_buf(k->relay_token, 32);
  }
  k->cb = cb;
  k->ctx = ctx;
  hsp_crypto_hash(k->target, remote_public_key, 32);
  k->conn = hsp_dht__conn_new(io);
  int err = k->conn ? hsp_noise_init_hyperdht(&k->noise, kp, remote_public_key) : HSP_DHT_ENOMEM;
  if (err) goto fail;
  hsp_dht_node_t *node = hsp_dht_io_node(io);
  hsp_ipv4_addr_t pub;
  bool open = hsp_dht_node_remote_address(node, &pub);
  uint8_t addr_wire[6 * (MAX_LOCAL_ADDRESSES + 1)];
  k->open = open;
  hsp_dht_noise_payload_t p = {.version = 1,
                               .firewall = open ? HSP_HYPER_FIREWALL_OPEN
                                                : HSP_HYPER_FIREWALL_UNKNOWN,
                               .has_udx = true,
                               .udx_id = k->conn->stream.local_id,
                               .has_secret_stream = true,
                               .secret_stream_version = 1};
  /* addresses4: our public address when reachable, then our LAN addresses (localConnection). */
  size_t naddr = 0;
  if (open) hsp_dht_addr_to_wire(addr_wire + 6 * naddr++, &pub);
  if (k->lan) {
    hsp_ipv4_addr_t local[MAX_LOCAL_ADDRESSES];
    size_t nlocal = hsp_dht_io_local_addresses(io, local, MAX_LOCAL_ADDRESSES);
    for (size_t i = 0; i < nlocal; i++) hsp_dht_addr_to_wire(addr_wire + 6 * naddr++, &local[i]);
  }
  p.addresses4 = (hsp_dht_addrs_t){addr_wire, naddr};
  if (k->relay_through) {
    p.has_relay_through = true;
    p.relay_through_version = 1;
    p.relay_through_public_key = k->relay_key;
    p.relay_through_token = k->relay_token;
  }
  k->conn->user = k;
  hsp_udx_stream_set_firewall(&k->conn->stream, stream_firewall);
  uint8_t plain[256], noise[512];
  long plen = hsp_dht_noise_payload_encode(plain, sizeof(plain), &p);
  size_t nlen;
  if (plen < 0 ||
      hsp_noise_write_message(&k->noise, plain, (size_t)plen, noise, sizeof(noise), &nlen) != 0) {
    err = HSP_DHT_EINVAL;
    goto fail;
  }
  hsp_dht_handshake_t hs = {.mode = HSP_HYPER_FROM_CLIENT, .noise = {noise, nlen}};
  long mlen = hsp_dht_handshake_encode(k->msg, sizeof(k->msg), &hs);
  if (mlen < 0) {
    err = (int)mlen;
    goto fail;
  }
  k->msg_len = (size_t)mlen;
  /* Relays that routed our last connect to this key get the handshake at once (staggered);
   * the query follows if they do not answer. */
  hsp_ipv4_addr_t cached[HSP_DHT_IO_CACHED_RELAYS];
  size_t ncached = hsp_dht_io_relay_cache_get(io, k->target, cached);
  k->preconnect = ncached > 0;
  memcpy(k->remote_public_key, remote_public_key, 32);
  if (ncached) send_handshake(k, &cached[0]);
  if (k->inflight > 0) {
    memcpy(k->cached, cached, ncached * sizeof(cached[0]));
    k->ncached = ncached;
    uint64_t now = hsp_dht_io_now(io);
    if (ncached > 1) k->stagger_at = now + PRECONNECT_STAGGER_MS;
    k->query_at = now + PRECONNECT_GRACE_MS;
    start_ticker(k);
    return 0;
  }
  hsp_dht_query_cbs_t cbs = {on_peer_reply, on_query_done, k};
  k->query = hsp_dht_find_peer(node, remote_public_key, &cbs);
  if (k->query <= 0) {
    err = (int)k->query;
    goto fail;
  }
  return 0;
fail:
  if (k->conn) hsp_dht_conn_destroy(k->conn);
  hsp_noise_wipe(&k->noise);
  hsp_crypto_keypair_wipe(&k->kp);
  free(k);
  return err;
}
