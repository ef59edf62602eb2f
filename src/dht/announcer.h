/*
 * A server's announce loop (hyperdht 6.34 lib/announcer.js, docs/protocol/hyperdht.md §3.1):
 * FIND_PEER query on the target, signed ANNOUNCE to the best 3 closest replies, then every
 * 3 s a PING to each relay; after 100 rounds (~5 min), or when fewer than min(#relays, 3)
 * answer, the whole update runs again. Relays dropped by an update, and all relays on stop,
 * get an UNANNOUNCE (after a FIND_PEER for a fresh token).
 *
 * Sans-I/O like the node: the caller owns the struct, drives it with
 * hsp_dht_announcer_advance() at hsp_dht_announcer_next_deadline() (besides the node's own
 * deadlines), and must keep it alive until hsp_dht_announcer_destroy(), which must come
 * before the node's destruction. Callbacks run inside node or announcer calls.
 */
#ifndef HSP_DHT_ANNOUNCER_H
#define HSP_DHT_ANNOUNCER_H

#include "dht.h"
#include "hyper_crypto.h"

#define HSP_DHT_ANNOUNCE_RELAYS 3
#define HSP_DHT_ANNOUNCER_PING_MS 3000
#define HSP_DHT_ANNOUNCER_ROUNDS 100
#define HSP_DHT_ANNOUNCER_MAX_TRACKED 8

typedef struct hsp_dht_relay_info {
  hsp_ipv4_addr_t relay_address; /* the DHT node that stores our record */
  hsp_ipv4_addr_t peer_address;  /* our address as that node sees it */
} hsp_dht_relay_info_t;

typedef struct hsp_dht_announcer hsp_dht_announcer_t;
typedef void (*hsp_dht_announcer_cb)(void *ctx, hsp_dht_announcer_t *a);

/* One ANNOUNCE in flight (private). */
typedef struct hsp_dht_announce_commit {
  hsp_dht_announcer_t *a; /* NULL = free slot */
  hsp_ipv4_addr_t from, to;
} hsp_dht_announce_commit_t;

struct hsp_dht_announcer {
  hsp_dht_node_t *node;
  hsp_crypto_keypair_t kp;
  uint8_t target[32];
  hsp_dht_announcer_cb on_update; /* relays changed (after each update) */
  hsp_dht_announcer_cb on_stopped; /* every unannounce settled after stop */
  void *ctx;

  /* Current relays, as the server puts them in its handshake payloads. */
  hsp_dht_relay_info_t relays[HSP_DHT_ANNOUNCE_RELAYS];
  size_t relay_count;
  hsp_ipv4_addr_t relay_addresses[HSP_DHT_ANNOUNCE_RELAYS];
  size_t relay_address_count;

  /* private */
  int phase;
  bool stopped, refreshing;
  int round;
  uint64_t deadline;
  long query;
  hsp_ipv4_addr_t closest[HSP_DHT_K];
  size_t closest_count;
  hsp_ipv4_addr_t gens[3][HSP_DHT_ANNOUNCER_MAX_TRACKED]; /* server relays of the last 3 updates */
  size_t gen_len[3];
  hsp_dht_relay_info_t next_relays[HSP_DHT_ANNOUNCE_RELAYS];
  size_t next_relay_count;
  hsp_ipv4_addr_t next_addresses[HSP_DHT_ANNOUNCE_RELAYS];
  size_t next_address_count;
  size_t pending, active;
  size_t unannouncing;
  hsp_dht_announce_commit_t commits[HSP_DHT_ANNOUNCE_RELAYS];
  long handles[64]; /* ring of recent request handles, cancelled on destroy */
  size_t next_handle;
};

int hsp_dht_announcer_init(hsp_dht_announcer_t *a, hsp_dht_node_t *node,
                           const hsp_crypto_keypair_t *kp, const uint8_t target[32]);
/* Start announcing (target = H(public key) for a server). */
void hsp_dht_announcer_start(hsp_dht_announcer_t *a, uint64_t now);
/* Re-announce at the next opportunity (e.g. after a network change). */
void hsp_dht_announcer_refresh(hsp_dht_announcer_t *a);
/* Stop and unannounce from every current relay; on_stopped fires when done. */
void hsp_dht_announcer_stop(hsp_dht_announcer_t *a);
bool hsp_dht_announcer_is_relay(const hsp_dht_announcer_t *a, const hsp_ipv4_addr_t *addr);
uint64_t hsp_dht_announcer_next_deadline(const hsp_dht_announcer_t *a);
void hsp_dht_announcer_advance(hsp_dht_announcer_t *a, uint64_t now);
/* Cancel everything without unannouncing (the node may be destroyed afterwards). */
void hsp_dht_announcer_destroy(hsp_dht_announcer_t *a);

#endif
