/* Client connect by public key (hyper_conn.h; hyperdht connect.js, hyperdht.md §4). */
#include <stdlib.h>
#include <string.h>

#include "hyper_client.h"
#include "hyper_conn_internal.h"

#define MAX_HANDSHAKES 2

typedef struct connector {
  hsp_dht_io_t *io;
  hsp_dht_conn_t *conn;
  hsp_noise_t noise;
  uint8_t target[32];
  uint8_t msg[512]; /* PEER_HANDSHAKE value (handshake{FROM_CLIENT, noise msg1}) */
  size_t msg_len;
  long query;
  int inflight; /* handshake requests */
  bool query_done, found, done;
  hsp_dht_connect_cb cb;
  void *ctx;
} connector_t;

static void finish(connector_t *k, int err) {
  if (k->done) return;
  k->done = true;
  hsp_dht_conn_t *c = k->conn;
  k->conn = NULL;
  if (err) {
    hsp_dht_conn_destroy(c); /* its close callback is unset: it just frees */
    k->cb(k->ctx, NULL, err);
  } else {
    k->cb(k->ctx, c, 0);
  }
  hsp_noise_wipe(&k->noise);
  /* A running FIND_PEER query is left to finish (its replies are ignored now): k is freed
   * once it and every handshake request settled. */
}

static void maybe_free(connector_t *k) {
  if (k->done && k->inflight == 0 && (k->query_done || k->query <= 0)) free(k);
}

static bool is_bogon(const hsp_ipv4_addr_t *a) {
  /* Unroutable on the internet: a server listing one is describing its LAN. */
  return a->host[0] == 0 || a->host[0] == 10 || (a->host[0] == 172 && (a->host[1] & 0xf0) == 16) ||
         (a->host[0] == 192 && a->host[1] == 168) || a->host[0] == 127 ||
         (a->host[0] == 169 && a->host[1] == 254);
}

static void on_handshake_reply(void *ctx, const hsp_dht_reply_t *r, int err) {
  connector_t *k = ctx;
  k->inflight--;
  if (k->done || err || !r->has_value) goto out;
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
  hsp_noise_result_t keys;
  hsp_noise_get_result(&k->noise, &keys);
  bool relayed = hs.has_peer_address;
  hsp_ipv4_addr_t server = relayed ? hs.peer_address : r->from;
  hsp_ipv4_addr_t client = r->to;
  hsp_ipv4_addr_t dest = server;
  bool ok = false;
  if (!relayed || p.firewall == HSP_HYPER_FIREWALL_OPEN) {
    for (size_t i = 0; i < p.addresses4.count; i++) {
      hsp_ipv4_addr_t a = hsp_dht_addr_from_wire(p.addresses4.wire + 6 * i);
      if (!is_bogon(&a)) {
        dest = a;
        break;
      }
    }
    ok = true;
  } else if (!memcmp(client.host, server.host, 4)) {
    /* Same public host: the server's DHT socket answers directly on this host/LAN. */
    ok = true;
  }
  if (!ok) {
    finish(k, HSP_DHT_CONN_ECANNOTPUNCH);
    goto out;
  }
  int e = hsp_dht__conn_start(k->conn, 0, &dest, (uint32_t)p.udx_id, &keys);
  hsp_crypto_wipe(&keys, sizeof(keys));
  finish(k, e);
out:
  if (!k->done && k->query_done && k->inflight == 0) finish(k, HSP_DHT_CONN_EFAILED);
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
  if (hsp_dht_node_request(hsp_dht_io_node(k->io), &o, on_handshake_reply, k) > 0) k->inflight++;
}

static void on_peer_reply(void *ctx, const hsp_dht_reply_t *r) {
  connector_t *k = ctx;
  if (k->done || !r->has_value || !r->value.len) return;
  k->found = true;
  if (k->inflight < MAX_HANDSHAKES) send_handshake(k, &r->from);
}

static void on_query_done(void *ctx, const hsp_dht_query_result_t *res) {
  (void)res;
  connector_t *k = ctx;
  k->query_done = true;
  if (!k->done && k->inflight == 0)
    finish(k, k->found ? HSP_DHT_CONN_EFAILED : HSP_DHT_CONN_ENOTFOUND);
  maybe_free(k);
}

int hsp_dht_connect(hsp_dht_io_t *io, const hsp_crypto_keypair_t *kp,
                    const uint8_t remote_public_key[32], hsp_dht_connect_cb cb, void *ctx) {
  connector_t *k = calloc(1, sizeof(*k));
  if (!k) return HSP_DHT_ENOMEM;
  k->io = io;
  k->cb = cb;
  k->ctx = ctx;
  hsp_crypto_hash(k->target, remote_public_key, 32);
  k->conn = hsp_dht__conn_new(io);
  int err = k->conn ? hsp_noise_init_hyperdht(&k->noise, kp, remote_public_key) : HSP_DHT_ENOMEM;
  if (err) goto fail;
  hsp_dht_node_t *node = hsp_dht_io_node(io);
  hsp_ipv4_addr_t pub;
  bool open = hsp_dht_node_remote_address(node, &pub);
  uint8_t addr_wire[6];
  hsp_dht_noise_payload_t p = {.version = 1,
                               .firewall = open ? HSP_HYPER_FIREWALL_OPEN
                                                : HSP_HYPER_FIREWALL_UNKNOWN,
                               .has_udx = true,
                               .udx_id = k->conn->stream.local_id,
                               .has_secret_stream = true,
                               .secret_stream_version = 1};
  if (open) {
    hsp_dht_addr_to_wire(addr_wire, &pub);
    p.addresses4 = (hsp_dht_addrs_t){addr_wire, 1};
  }
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
  free(k);
  return err;
}
