/*
 * hyperdht storage on a DHT node (hyperdht 6.34 lib/persistent.js, index.js onrequest;
 * docs/protocol/hyperdht.md §1, §2, §3.1, §6): topic records (ANNOUNCE / UNANNOUNCE /
 * LOOKUP), router forward entries for self-announces (FIND_PEER), refresh keys, bumps,
 * mutable and immutable values. Plug it into a node as its application request handler:
 *
 *   bool on_request(ctx, node, req) { return hsp_dht_store_on_request(store, node, req, now, wall); }
 *
 * Rejected requests (bad signature, hash mismatch, missing token) get no reply at all, as in
 * the reference. An ephemeral node does not store: it answers UNKNOWN_COMMAND.
 *
 * Entries expire a fixed time after their last write (20 min for records, forwards, bumps
 * and refresh keys; 48 h for values), which lies inside the reference's generational
 * 0.67-1.33 x maxAge window. When full, the entry closest to expiry is evicted (a scan,
 * only under pressure). Entries are indexed by a keyed hash of their 32-byte key.
 */
#ifndef HSP_DHT_STORE_H
#define HSP_DHT_STORE_H

#include "dht.h"
#include "hyper_crypto.h"

#define HSP_DHT_RECORD_TTL_MS (20u * 60u * 1000u)
#define HSP_DHT_VALUE_TTL_MS (48ull * 3600u * 1000u)
#define HSP_DHT_LOOKUP_MAX_RECORDS 20
#define HSP_DHT_MAX_RELAY_ADDRESSES 3
#define HSP_DHT_MAX_BUMP_DRIFT_MS 60000

typedef struct hsp_dht_store hsp_dht_store_t;

typedef struct hsp_dht_store_config {
  size_t max_entries;     /* 0 = 65536 */
  uint64_t record_ttl_ms; /* 0 = 20 min */
  uint64_t value_ttl_ms;  /* 0 = 48 h */
} hsp_dht_store_config_t;

int hsp_dht_store_init(hsp_dht_store_t **out, const hsp_dht_store_config_t *cfg);
void hsp_dht_store_free(hsp_dht_store_t *s);

/* Handle a hyperdht command as a DHT node that is not the server: the storage commands,
 * and PEER_HANDSHAKE / PEER_HOLEPUNCH relaying through the router forwards (router.js).
 * A node that also runs servers must check its own targets first (the Noise responder
 * lives in a higher layer) and hand everything else to this function. now_ms drives expiry; wall_ms (Unix time) bounds
 * announce bumps. Returns false for unknown commands, and for storage commands when the node
 * is ephemeral (the node then answers UNKNOWN_COMMAND). */
bool hsp_dht_store_on_request(hsp_dht_store_t *s, hsp_dht_node_t *node,
                              const hsp_dht_incoming_t *req, uint64_t now_ms, uint64_t wall_ms);

/* The router forward for a target (a server that self-announced to this node). */
typedef struct hsp_dht_forward {
  hsp_ipv4_addr_t relay;
  const uint8_t *record; /* encoded peer record */
  size_t record_len;
} hsp_dht_forward_t;
bool hsp_dht_store_forward(hsp_dht_store_t *s, const uint8_t target[32], uint64_t now_ms,
                           hsp_dht_forward_t *out);
size_t hsp_dht_store_count(const hsp_dht_store_t *s, uint64_t now_ms);

/* Local servers (router.js entries with handlers): the node answers FIND_PEER and LOOKUP for
 * the target with the server's record, and PEER_HANDSHAKE / PEER_HOLEPUNCH addressed to it
 * go to the handlers, which run the Noise responder / holepunch logic of a higher layer.
 * The store does the routing: FROM_CLIENT is answered directly, FROM_RELAY goes back to the
 * relay as FROM_SERVER, FROM_SECOND_RELAY to the first relay. */
typedef struct hsp_dht_server_reply {
  const uint8_t *data; /* reply noise (handshake) or sealed payload (holepunch) */
  size_t len;
  int socket;          /* -1 = the socket the request came in on (e.g. a puncher socket id) */
} hsp_dht_server_reply_t;
/* Return false to drop the request without any reply (firewall, bad message). The reply
 * data must stay valid until the handler returns... and is copied before that. */
typedef bool (*hsp_dht_server_handshake_fn)(void *ctx, const hsp_dht_incoming_t *req,
                                            const hsp_dht_handshake_t *hs,
                                            const hsp_ipv4_addr_t *client_address,
                                            hsp_dht_server_reply_t *out);
typedef bool (*hsp_dht_server_holepunch_fn)(void *ctx, const hsp_dht_incoming_t *req,
                                            const hsp_dht_holepunch_t *hp,
                                            hsp_dht_server_reply_t *out);
#define HSP_DHT_STORE_MAX_SERVERS 16
/* `record` is the encoded peer record of the server (copied). */
int hsp_dht_store_listen(hsp_dht_store_t *s, const uint8_t target[32], const uint8_t *record,
                         size_t record_len, hsp_dht_server_handshake_fn on_handshake,
                         hsp_dht_server_holepunch_fn on_holepunch, void *ctx);
void hsp_dht_store_unlisten(hsp_dht_store_t *s, const uint8_t target[32]);

#endif
