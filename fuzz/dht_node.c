// libs: hsp_dht
/*
 * Whole receive path of a persistent DHT node with hyperdht storage: the input is a
 * sequence of records [flags(1) len(2 LE) datagram(len)]; flags bit 0 picks the socket,
 * bits 1-7 advance the clock (x 100 ms). Some records get a valid id for their source
 * address patched in, so table insertion and eviction are reached too. Checks that the
 * node never crashes, leaks or grows without bound.
 */
#include <stdlib.h>
#include <string.h>

#include "dht.h"
#include "store.h"

static uint64_t rng = 1;
static void det_random(void *ctx, uint8_t *buf, size_t len) {
  (void)ctx;
  for (size_t i = 0; i < len; i++) {
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    buf[i] = (uint8_t)(rng >> 56);
  }
}

static const uint8_t MSG2[4] = {1, 2, 3, 4};
static bool on_handshake(void *ctx, const hsp_dht_incoming_t *req, const hsp_dht_handshake_t *hs,
                         const hsp_ipv4_addr_t *client, hsp_dht_server_reply_t *out) {
  (void)ctx, (void)req, (void)client;
  out->data = MSG2;
  out->len = sizeof(MSG2);
  return hs->noise.len > 0;
}
static bool on_holepunch(void *ctx, const hsp_dht_incoming_t *req, const hsp_dht_holepunch_t *hp,
                         hsp_dht_server_reply_t *out) {
  (void)ctx, (void)req;
  out->data = MSG2;
  out->len = sizeof(MSG2);
  return hp->payload.len > 0;
}

static bool on_request(void *ctx, hsp_dht_node_t *node, const hsp_dht_incoming_t *req) {
  return hsp_dht_store_on_request(ctx, node, req, 0, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  rng = 1;
  hsp_dht_store_t *store;
  hsp_dht_store_config_t sc = {.max_entries = 64};
  if (hsp_dht_store_init(&store, &sc)) return 0;
  /* A local server on the all-zero target, so server-side routing is reachable too. */
  static const uint8_t zero[32], record[33];
  hsp_dht_store_listen(store, zero, record, sizeof(record), on_handshake, on_holepunch, NULL);
  hsp_dht_config_t cfg;
  hsp_dht_config_default(&cfg);
  cfg.bootstrapper = true;
  cfg.bootstrapper_addr = (hsp_ipv4_addr_t){{127, 0, 0, 1}, 30001};
  cfg.server_port = 30001;
  cfg.random = det_random;
  cfg.on_request = on_request;
  cfg.ctx = store;
  hsp_dht_node_t *n;
  if (hsp_dht_node_init(&n, &cfg, 1000)) return 0;
  uint64_t now = 1000;
  hsp_dht_node_start(n, now);
  hsp_dht_node_advance(n, now);
  uint8_t buf[2048];
  size_t off = 0;
  unsigned k = 0;
  while (off + 3 <= size) {
    uint8_t flags = data[off];
    size_t len = (size_t)(data[off + 1] | data[off + 2] << 8);
    off += 3;
    if (len > size - off) len = size - off;
    if (len > sizeof(buf)) len = sizeof(buf);
    memcpy(buf, data + off, len);
    off += len;
    hsp_ipv4_addr_t from = {{127, 0, 0, (uint8_t)(1 + (k % 3))}, (uint16_t)(40000 + (k % 50))};
    k++;
    /* A request with the id flag: give it the right id so it enters the table. */
    if (len >= 42 && buf[0] == 0x03 && (buf[1] & 1) && (flags & 0x80))
      hsp_dht_id_from_addr(buf + 10, &from);
    now += (uint64_t)(flags >> 1) * 100;
    hsp_dht_node_recv(n, flags & 1, &from, buf, len, now);
    hsp_dht_node_advance(n, now);
    hsp_dht_datagram_t d;
    while (hsp_dht_node_next_datagram(n, &d)) {
      if (d.len > HSP_DHT_MAX_DATAGRAM) abort();
    }
    if (hsp_dht_node_inflight(n) > 1000) abort();
  }
  hsp_dht_node_destroy(n);
  hsp_dht_store_free(store);
  return 0;
}
