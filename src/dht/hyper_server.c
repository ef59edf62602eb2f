/* hyperdht server: announce + Noise IK responder + stream setup (hyper_server.h). */
#include "hyper_server.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "announcer.h"
#include "hyper_conn_internal.h"
#include "puncher.h"
#include "relay.h"

#define SESSIONS 32
#define HANDSHAKE_WAIT_MS 10000 /* HANDSHAKE_INITIAL_TIMEOUT and HANDSHAKE_CLEAR_WAIT */
#define PENDING_PUNCHES 4
#define MAX_HOLEPUNCH_PAYLOAD 512
#define MAX_LOCAL_ADDRESSES 4

/* A PEER_HOLEPUNCH waiting for our NAT analysis (server.js awaits p.analyze()). */
typedef struct pending_punch {
  bool used;
  hsp_dht_incoming_t req; /* its value view is not used after the handler */
  hsp_ipv4_addr_t peer_address;
  uint8_t payload[MAX_HOLEPUNCH_PAYLOAD];
  size_t payload_len;
} pending_punch_t;

typedef struct session {
  hsp_dht_server_t *server;
  bool used;
  uint8_t key[32];     /* hash of msg1: relayed copies of one handshake get one answer */
  uint8_t reply[512];  /* msg2 */
  size_t reply_len;
  hsp_dht_conn_t *conn; /* until handed over */
  uint32_t remote_udx_id;
  hsp_noise_result_t keys;
  uint64_t deadline;
  /* holepunch state (server.js hs.puncher / hs.payload / hs.round) */
  bool has_secret;
  uint8_t secret[32];       /* holepunchSecret: encrypts PEER_HOLEPUNCH payloads */
  uint8_t local_secret[32]; /* keys our address tokens */
  hsp_dht_puncher_t *puncher;
  uint64_t round;
  pending_punch_t pending[PENDING_PUNCHES];
  hsp_dht_relay_t *relay; /* pairing through the client's blind relay */
} session_t;

struct hsp_dht_server {
  hsp_dht_io_t *io;
  hsp_crypto_keypair_t kp;
  uint8_t target[32];
  hsp_dht_announcer_t announcer;
  hsp_dht_io_ticker_t ticker;
  hsp_dht_server_firewall_cb firewall;
  hsp_dht_server_connection_cb on_connection;
  void *ctx;
  session_t sessions[SESSIONS];
  void (*close_cb)(void *);
  void *close_ctx;
  bool closing;
};

static void release_puncher(session_t *x) {
  if (!x->puncher) return;
  hsp_dht_puncher_destroy(x->puncher);
  x->puncher = NULL;
  for (size_t i = 0; i < PENDING_PUNCHES; i++) x->pending[i].used = false;
}

static void drop_session(session_t *x) {
  release_puncher(x);
  hsp_dht_relay_destroy(x->relay);
  x->relay = NULL;
  hsp_crypto_wipe(x->secret, sizeof(x->secret));
  hsp_crypto_wipe(x->local_secret, sizeof(x->local_secret));
  x->has_secret = false;
  if (x->conn) {
    hsp_dht_conn_t *c = x->conn;
    x->conn = NULL;
    c->user = NULL;
    hsp_dht_conn_destroy(c);
  }
  hsp_crypto_wipe(&x->keys, sizeof(x->keys));
  x->used = false;
}

static void pending_closed(hsp_dht_conn_t *c, int status) {
  (void)status;
  session_t *x = c->user;
  if (x) x->conn = NULL;
}

static void relay_free(void *ctx) { hsp_dht_relay_destroy(ctx); }

/* Start the stream towards (socket, to) and give it to the application. `relay` (may be
 * NULL) is the paired blind relay carrying it: it lives as long as the connection. */
static void hand_over_via(session_t *x, int socket, const hsp_ipv4_addr_t *to, uint32_t remote_id,
                          hsp_dht_relay_t *relay) {
  hsp_dht_conn_t *c = x->conn;
  x->conn = NULL;
  c->on_close = NULL;
  c->user = NULL;
  if (hsp_dht__conn_start(c, socket, to, remote_id, &x->keys) != 0) {
    hsp_dht_relay_destroy(relay);
    hsp_dht_conn_destroy(c);
    return;
  }
  if (relay) {
    c->on_free = relay_free;
    c->on_free_ctx = relay;
  }
  hsp_dht_relay_destroy(x->relay); /* a direct path won: the pairing is moot */
  x->relay = NULL;
  hsp_crypto_wipe(&x->keys, sizeof(x->keys));
  release_puncher(x); /* after the start: the connection holds its socket now */
  x->deadline = hsp_dht_io_now(x->server->io) + HANDSHAKE_WAIT_MS;
  x->server->on_connection(x->server->ctx, c);
}

static void hand_over(session_t *x, int socket, const hsp_ipv4_addr_t *to) {
  hand_over_via(x, socket, to, x->remote_udx_id, NULL);
}

static void on_relay(void *ctx, int err, int socket, const hsp_ipv4_addr_t *to,
                     uint32_t remote_id) {
  session_t *x = ctx;
  hsp_dht_relay_t *r = x->relay;
  x->relay = NULL;
  if (err || !x->conn) {
    hsp_dht_relay_destroy(r);
    if (x->conn && !x->puncher) drop_session(x); /* nothing else can connect it now */
    return;
  }
  hand_over_via(x, socket, to, remote_id, r);
}

/* The client's first UDX packet tells us where it is (server.js rawStream firewall). */
static int stream_firewall(hsp_udx_stream_t *s, hsp_udx_socket_t *sock, const struct sockaddr *from) {
  hsp_dht_conn_t *c = s->data;
  session_t *x = c->user;
  if (!x || c->started || from->sa_family != AF_INET) return 1;
  const struct sockaddr_in *sa = (const struct sockaddr_in *)from;
  hsp_ipv4_addr_t a, ra;
  memcpy(a.host, &sa->sin_addr, 4);
  a.port = ntohs(sa->sin_port);
  int which = hsp_dht_io_socket_id(x->server->io, sock), rs;
  if (which < 0 || a.port == 0) return 1;
  /* Relayed traffic before our pairing completed is not a direct path (server.js isRelay). */
  if (x->relay && hsp_dht_relay_path(x->relay, &rs, &ra) && rs == which &&
      hsp_dht_addr_equal(&ra, &a))
    return 1;
  hand_over(x, which, &a);
  return 0;
}

static void on_puncher_analyzed(void *ctx);
static void on_puncher_abort(void *ctx);

/* A full table evicts the oldest session whose stream was already handed over: it only
 * waits to answer relayed copies of its handshake (server.js keeps those without a bound),
 * and refusing a new client for that would fail any burst of more than SESSIONS connects
 * within HANDSHAKE_WAIT_MS. Sessions still punching or pairing are never evicted. */
static session_t *new_session(hsp_dht_server_t *s, const uint8_t key[32]) {
  session_t *x = NULL;
  for (size_t i = 0; i < SESSIONS; i++) {
    session_t *y = &s->sessions[i];
    if (!y->used) {
      x = y;
      break;
    }
    if (y->conn || y->puncher || y->relay) continue;
    if (!x || y->deadline < x->deadline) x = y;
  }
  if (!x) return NULL;
  if (x->used) drop_session(x);
  memset(x, 0, sizeof(*x));
  x->used = true;
  x->server = s;
  memcpy(x->key, key, 32);
  return x;
}

static bool on_handshake(void *ctx, const hsp_dht_incoming_t *req, const hsp_dht_handshake_t *hs,
                         const hsp_ipv4_addr_t *client_address, hsp_dht_server_reply_t *out) {
  hsp_dht_server_t *s = ctx;
  if (s->closing) return false;
  uint8_t key[32];
  hsp_crypto_hash(key, hs->noise.data, hs->noise.len);
  for (size_t i = 0; i < SESSIONS; i++) {
    session_t *x = &s->sessions[i];
    if (x->used && !memcmp(x->key, key, 32)) {
      out->data = x->reply;
      out->len = x->reply_len;
      out->socket = x->puncher ? hsp_dht_puncher_socket(x->puncher) : 0;
      return true;
    }
  }
  hsp_noise_t noise;
  if (hsp_noise_init_hyperdht(&noise, &s->kp, NULL) != 0) return false;
  uint8_t plain[1024];
  size_t plen;
  bool ok = false;
  if (hs->noise.len > sizeof(plain) ||
      hsp_noise_read_message(&noise, hs->noise.data, hs->noise.len, plain, sizeof(plain), &plen))
    goto done;
  hsp_dht_noise_payload_t cp;
  if (hsp_dht_noise_payload_decode(&cp, plain, plen) != 0) goto done;
  const uint8_t *remote = hsp_noise_remote_static(&noise);
  if (!remote || (s->firewall && s->firewall(s->ctx, remote))) goto done;
  session_t *x = new_session(s, key);
  if (!x) goto done;
  uint64_t error = cp.version != 1 ? HSP_HYPER_ERROR_VERSION_MISMATCH
                   : !cp.has_udx   ? HSP_HYPER_ERROR_ABORTED
                                   : HSP_HYPER_ERROR_NONE;
  if (!error) {
    x->conn = hsp_dht__conn_new(s->io);
    if (!x->conn) {
      x->used = false;
      goto done;
    }
    x->conn->user = x;
    x->conn->on_close = pending_closed;
    x->remote_udx_id = (uint32_t)cp.udx_id;
    hsp_udx_stream_set_firewall(&x->conn->stream, stream_firewall);
  }
  hsp_dht_node_t *node = hsp_dht_io_node(s->io);
  hsp_ipv4_addr_t pub, local[MAX_LOCAL_ADDRESSES];
  bool open = hsp_dht_node_remote_address(node, &pub);
  size_t nlocal = hsp_dht_io_local_addresses(s->io, local, MAX_LOCAL_ADDRESSES);
  uint8_t addr_wire[6 * (MAX_LOCAL_ADDRESSES + 1)], relays_wire[HSP_DHT_ANNOUNCE_RELAYS * 12],
      ra_wire[HSP_DHT_ANNOUNCE_RELAYS * 6];
  hsp_dht_noise_payload_t p = {.version = 1, .error = error,
                               .firewall = open ? HSP_HYPER_FIREWALL_OPEN : HSP_HYPER_FIREWALL_UNKNOWN};
  /* addresses4: our public address when reachable, then our LAN addresses (the client may
   * share our NAT: shareLocalAddress). */
  size_t naddr = 0;
  if (open) hsp_dht_addr_to_wire(addr_wire + 6 * naddr++, &pub);
  for (size_t i = 0; i < nlocal; i++) hsp_dht_addr_to_wire(addr_wire + 6 * naddr++, &local[i]);
  p.addresses4 = (hsp_dht_addrs_t){addr_wire, naddr};
  if (!open) {
    p.has_holepunch = true;
    p.holepunch_id = (uint64_t)(x - s->sessions);
    for (size_t i = 0; i < s->announcer.relay_count; i++) {
      hsp_dht_addr_to_wire(relays_wire + 12 * i, &s->announcer.relays[i].relay_address);
      hsp_dht_addr_to_wire(relays_wire + 12 * i + 6, &s->announcer.relays[i].peer_address);
    }
    p.holepunch_relays = (hsp_dht_addrs_t){relays_wire, s->announcer.relay_count};
  }
  if (!error) {
    p.has_udx = true;
    p.udx_id = x->conn->stream.local_id;
    p.has_secret_stream = true;
    p.secret_stream_version = 1;
  }
  if (s->announcer.relay_address_count) {
    for (size_t i = 0; i < s->announcer.relay_address_count; i++)
      hsp_dht_addr_to_wire(ra_wire + 6 * i, &s->announcer.relay_addresses[i]);
    p.has_relay_addresses = true;
    p.relay_addresses = (hsp_dht_addrs_t){ra_wire, s->announcer.relay_address_count};
  }
  uint8_t rplain[512];
  long rlen = hsp_dht_noise_payload_encode(rplain, sizeof(rplain), &p);
  if (rlen < 0 || hsp_noise_write_message(&noise, rplain, (size_t)rlen, x->reply,
                                          sizeof(x->reply), &x->reply_len) != 0 ||
      hsp_noise_get_result(&noise, &x->keys) != 0) {
    drop_session(x);
    goto done;
  }
  x->deadline = hsp_dht_io_now(s->io) + HANDSHAKE_WAIT_MS;
  out->data = x->reply;
  out->len = x->reply_len;
  out->socket = 0;
  ok = true;
  if (error) goto done;
  /* A reachable client, or one that asked us directly, gets our stream at once. */
  if (cp.firewall == HSP_HYPER_FIREWALL_OPEN || hs->mode == HSP_HYPER_FROM_CLIENT) {
    hand_over(x, 0, client_address);
    goto done;
  }
  /* The client's blind relay: pair through it as the non-initiator while we punch. */
  if (cp.has_relay_through && cp.relay_through_public_key && cp.relay_through_token &&
      hsp_dht_relay_pair(&x->relay, s->io, &s->kp, cp.relay_through_public_key, false,
                         cp.relay_through_token, x->conn->stream.local_id, on_relay, x) == 0)
    x->deadline = hsp_dht_io_now(s->io) + HSP_DHT_RELAY_TIMEOUT_MS;
  /* Same public host as the client (req->to is us as the relay sees us) and it listed a LAN
   * address near ours: it will ping our LAN address, so the reply keeps leaving from the DHT
   * socket; we still punch in case that fails. Reachable (OPEN): the client connects to us.
   * Otherwise punch: the reply leaves from the puncher socket, so the client learns that
   * socket's public address (server.js replyFromPuncher). */
  bool lan = false;
  if (!memcmp(client_address->host, req->to.host, 4)) {
    hsp_ipv4_addr_t priv[MAX_LOCAL_ADDRESSES];
    size_t npriv = 0;
    for (size_t i = 0; i < cp.addresses4.count && npriv < MAX_LOCAL_ADDRESSES; i++) {
      hsp_ipv4_addr_t a = hsp_dht_addr_from_wire(cp.addresses4.wire + 6 * i);
      if (hsp_dht_ip_private(a.host)) priv[npriv++] = a;
    }
    lan = npriv && hsp_dht_match_address(local, nlocal, priv, npriv) >= 0;
  }
  if (open && !lan) goto done;
  hsp_noise_holepunch_secret(x->secret, x->keys.hash);
  randombytes_buf(x->local_secret, sizeof(x->local_secret));
  x->has_secret = true;
  hsp_dht_puncher_cbs_t cbs = {on_puncher_analyzed, NULL, on_puncher_abort, x};
  if (hsp_dht_puncher_create(&x->puncher, s->io, false, (int)cp.firewall, &cbs) == 0 && !lan)
    out->socket = hsp_dht_puncher_socket(x->puncher);
done:
  hsp_noise_wipe(&noise);
  return ok;
}

static bool from_our_relay(const hsp_dht_server_t *s, const hsp_ipv4_addr_t *from) {
  for (size_t i = 0; i < s->announcer.relay_count; i++)
    if (hsp_dht_addr_equal(&s->announcer.relays[i].relay_address, from)) return true;
  return false;
}

/* Send a sealed holepunch payload back through the relay that brought the request. */
static void send_punch_reply(session_t *x, const hsp_dht_incoming_t *req,
                             const hsp_ipv4_addr_t *peer, const hsp_dht_holepunch_payload_t *hp,
                             int socket) {
  uint8_t sealed[MAX_HOLEPUNCH_PAYLOAD], nonce[24], buf[MAX_HOLEPUNCH_PAYLOAD + 64];
  randombytes_buf(nonce, sizeof(nonce));
  long n = hsp_dht_holepunch_payload_seal(sealed, sizeof(sealed), hp, x->secret, nonce);
  if (n < 0) return;
  hsp_dht_holepunch_t m = {.mode = HSP_HYPER_FROM_SERVER, .id = 0, .payload = {sealed, (size_t)n},
                           .has_peer_address = true, .peer_address = *peer};
  long len = hsp_dht_holepunch_encode(buf, sizeof(buf), &m);
  if (len < 0) return;
  hsp_dht_node_relay(hsp_dht_io_node(x->server->io), req, buf, (size_t)len, true, &req->from,
                     socket);
}

/* server.js _abort: tell the client (from the DHT socket) and stop punching; the session
 * lingers for dedupe until its deadline. */
static void abort_punch(session_t *x, const hsp_dht_incoming_t *req, const hsp_ipv4_addr_t *peer,
                        uint64_t error) {
  hsp_dht_server_t *s = x->server;
  hsp_dht_holepunch_payload_t hp = {.error = error, .firewall = HSP_HYPER_FIREWALL_UNKNOWN,
                                    .round = x->round};
  send_punch_reply(x, req, peer, &hp, hsp_dht_node_firewalled(hsp_dht_io_node(s->io)) ? 1 : 0);
  release_puncher(x);
  /* The stream stays until the session deadline: a LAN connect or the blind relay may still
   * bring the client (the reference destroys it here and races its own LAN shortcut). */
  uint64_t d = hsp_dht_io_now(s->io) + (x->relay ? HSP_DHT_RELAY_TIMEOUT_MS : HANDSHAKE_WAIT_MS);
  if (x->deadline > d) x->deadline = d;
}

/* server.js _onpeerholepunch after the NAT analysis settled. */
static void answer_punch(session_t *x, const hsp_dht_incoming_t *req, const hsp_ipv4_addr_t *peer,
                         const uint8_t *payload, size_t payload_len) {
  hsp_dht_server_t *s = x->server;
  hsp_dht_puncher_t *p = x->puncher;
  uint8_t plain[MAX_HOLEPUNCH_PAYLOAD];
  hsp_dht_holepunch_payload_t rp;
  if (!p || payload_len < HSP_DHT_HOLEPUNCH_OVERHEAD ||
      hsp_dht_holepunch_payload_open(&rp, plain, sizeof(plain), payload, payload_len,
                                     x->secret) != 0)
    return; /* undecryptable: no reply, as the reference */
  if (rp.error) {
    if (rp.round >= x->round) x->round = rp.round;
    abort_punch(x, req, peer, HSP_HYPER_ERROR_ABORTED);
    return;
  }
  uint8_t token[32];
  hsp_dht_holepunch_token(token, x->local_secret, peer->host);
  bool server_relay = from_our_relay(s, &req->from);
  bool echoed = server_relay && rp.remote_token && !memcmp(rp.remote_token, token, 32);
  if (rp.round >= x->round) {
    x->round = rp.round;
    hsp_dht_puncher_update_remote(p, rp.punching, (int)rp.firewall,
                                  rp.has_addresses ? rp.addresses.wire : NULL,
                                  rp.has_addresses ? rp.addresses.count : 0,
                                  echoed ? peer->host : NULL);
  }
  int fw = hsp_dht_puncher_firewall(p), rfw = hsp_dht_puncher_remote_firewall(p);
  bool consistent = fw == HSP_HYPER_FIREWALL_OPEN || fw == HSP_HYPER_FIREWALL_CONSISTENT;
  int verdict = hsp_dht_serve_verdict(
      fw, rfw, hsp_dht_puncher_remote_punching(p),
      hsp_dht_punch_limit_allowed(hsp_dht_io_punch_limit(s->io), hsp_dht_io_now(s->io)));
  if (verdict == HSP_DHT_SERVE_ABORT) {
    abort_punch(x, req, peer, HSP_HYPER_ERROR_ABORTED);
    return;
  }
  /* Fast mode: the client opened a session to an address we know is ours, so a probe back
   * now gets through its NAT: often connected before any punch round. */
  if (consistent && rp.has_remote_address && hsp_dht_puncher_has_address(p, &rp.remote_address))
    hsp_dht_puncher_ping(p, peer);
  if (verdict == HSP_DHT_SERVE_TRY_LATER) {
    abort_punch(x, req, peer, HSP_HYPER_ERROR_TRY_LATER); /* no blind relay to wait on */
    return;
  }
  if (verdict == HSP_DHT_SERVE_PUNCH) {
    if (!hsp_dht_puncher_punch(p)) {
      abort_punch(x, req, peer, HSP_HYPER_ERROR_ABORTED);
      return;
    }
    x->deadline = UINT64_MAX; /* the puncher's schedule bounds it now (on_puncher_abort) */
  }
  if (fw != HSP_HYPER_FIREWALL_UNKNOWN) hsp_dht_puncher_freeze(p);
  size_t naddr;
  const hsp_ipv4_addr_t *addrs = hsp_dht_puncher_addresses(p, &naddr);
  uint8_t wire[HSP_DHT_NAT_CLASS_MAX * 6];
  for (size_t i = 0; i < naddr; i++) hsp_dht_addr_to_wire(wire + 6 * i, &addrs[i]);
  hsp_dht_holepunch_payload_t hp = {.error = 0, .firewall = (uint64_t)fw, .round = x->round,
                                    .connected = hsp_dht_puncher_connected(p),
                                    .punching = hsp_dht_puncher_punching(p),
                                    .has_addresses = addrs != NULL,
                                    .addresses = {wire, naddr},
                                    .token = server_relay ? token : NULL,
                                    .remote_token = rp.token};
  send_punch_reply(x, req, peer, &hp, hsp_dht_puncher_socket(p));
}

static void on_puncher_analyzed(void *ctx) {
  session_t *x = ctx;
  for (size_t i = 0; i < PENDING_PUNCHES && x->puncher; i++) {
    pending_punch_t *q = &x->pending[i];
    if (!q->used) continue;
    q->used = false;
    answer_punch(x, &q->req, &q->peer_address, q->payload, q->payload_len);
  }
}

static void on_puncher_abort(void *ctx) {
  session_t *x = ctx;
  if (x->conn && !x->relay) drop_session(x); /* punched the whole schedule, no connection */
  else release_puncher(x);
}

static bool on_holepunch(void *ctx, const hsp_dht_incoming_t *req, const hsp_dht_holepunch_t *hp,
                         hsp_dht_server_reply_t *out) {
  (void)out; /* replies are sent by answer_punch, possibly later */
  hsp_dht_server_t *s = ctx;
  if (s->closing || hp->id >= SESSIONS || !hp->has_peer_address) return false;
  session_t *x = &s->sessions[hp->id];
  /* No puncher (LAN/OPEN sessions, or already connected): stay silent, as before. */
  if (!x->used || !x->has_secret || !x->puncher) return false;
  if (hp->payload.len > MAX_HOLEPUNCH_PAYLOAD) return false;
  if (req->socket == hsp_dht_puncher_socket(x->puncher))
    hsp_dht_puncher_sample(x->puncher, &req->to, &req->from);
  if (hsp_dht_puncher_analyzed(x->puncher)) {
    answer_punch(x, req, &hp->peer_address, hp->payload.data, hp->payload.len);
    return true;
  }
  for (size_t i = 0; i < PENDING_PUNCHES; i++) {
    pending_punch_t *q = &x->pending[i];
    if (q->used) continue;
    q->used = true;
    q->req = *req;
    q->req.value = (hsp_bytes_t){NULL, 0};
    q->peer_address = hp->peer_address;
    memcpy(q->payload, hp->payload.data, hp->payload.len);
    q->payload_len = hp->payload.len;
    return true;
  }
  return false;
}

static int relisten(hsp_dht_server_t *s) {
  uint8_t wire[HSP_DHT_ANNOUNCE_RELAYS * 6];
  for (size_t i = 0; i < s->announcer.relay_address_count; i++)
    hsp_dht_addr_to_wire(wire + 6 * i, &s->announcer.relay_addresses[i]);
  hsp_dht_peer_t peer = {s->kp.public_key, {wire, s->announcer.relay_address_count}};
  uint8_t record[32 + 1 + sizeof(wire)];
  long len = hsp_dht_peer_encode(record, sizeof(record), &peer);
  if (len < 0) return (int)len;
  return hsp_dht_store_listen(hsp_dht_io_store(s->io), s->target, record, (size_t)len,
                              on_handshake, on_holepunch, s);
}

static void on_update(void *ctx, hsp_dht_announcer_t *a) {
  (void)a;
  relisten(ctx);
}

static uint64_t server_deadline(hsp_dht_io_ticker_t *t) {
  hsp_dht_server_t *s = (hsp_dht_server_t *)((char *)t - offsetof(hsp_dht_server_t, ticker));
  uint64_t d = hsp_dht_announcer_next_deadline(&s->announcer);
  for (size_t i = 0; i < SESSIONS; i++)
    if (s->sessions[i].used && s->sessions[i].deadline < d) d = s->sessions[i].deadline;
  return d;
}

static void server_advance(hsp_dht_io_ticker_t *t, uint64_t now) {
  hsp_dht_server_t *s = (hsp_dht_server_t *)((char *)t - offsetof(hsp_dht_server_t, ticker));
  for (size_t i = 0; i < SESSIONS; i++)
    if (s->sessions[i].used && s->sessions[i].deadline <= now) drop_session(&s->sessions[i]);
  hsp_dht_announcer_advance(&s->announcer, now);
}

int hsp_dht_server_listen(hsp_dht_server_t **out, hsp_dht_io_t *io, const hsp_crypto_keypair_t *kp,
                          hsp_dht_server_firewall_cb firewall,
                          hsp_dht_server_connection_cb on_connection, void *ctx) {
  hsp_dht_server_t *s = calloc(1, sizeof(*s));
  if (!s) return HSP_DHT_ENOMEM;
  s->io = io;
  s->kp = *kp;
  s->firewall = firewall;
  s->on_connection = on_connection;
  s->ctx = ctx;
  hsp_crypto_hash(s->target, kp->public_key, 32);
  int err = hsp_dht_announcer_init(&s->announcer, hsp_dht_io_node(io), kp, s->target);
  if (!err) err = relisten(s);
  if (err) {
    free(s);
    return err;
  }
  s->announcer.on_update = on_update;
  s->announcer.ctx = s;
  s->ticker.deadline = server_deadline;
  s->ticker.advance = server_advance;
  hsp_dht_io_add_ticker(io, &s->ticker);
  hsp_dht_announcer_start(&s->announcer, hsp_dht_io_now(io));
  hsp_dht_io_wake(io);
  *out = s;
  return 0;
}

static void on_stopped(void *ctx, hsp_dht_announcer_t *a) {
  (void)a;
  hsp_dht_server_t *s = ctx;
  hsp_dht_io_remove_ticker(s->io, &s->ticker);
  hsp_dht_announcer_destroy(&s->announcer);
  void (*cb)(void *) = s->close_cb;
  void *cctx = s->close_ctx;
  hsp_crypto_keypair_wipe(&s->kp);
  free(s);
  if (cb) cb(cctx);
}

void hsp_dht_server_close(hsp_dht_server_t *s, void (*cb)(void *), void *ctx) {
  if (s->closing) return;
  s->closing = true;
  s->close_cb = cb;
  s->close_ctx = ctx;
  hsp_dht_store_unlisten(hsp_dht_io_store(s->io), s->target);
  for (size_t i = 0; i < SESSIONS; i++)
    if (s->sessions[i].used) drop_session(&s->sessions[i]);
  s->announcer.on_stopped = on_stopped;
  hsp_dht_io_wake(s->io);
  hsp_dht_announcer_stop(&s->announcer); /* on_stopped may run (and free s) right away */
}
