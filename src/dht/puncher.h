/*
 * The holepuncher of one connection attempt (hyperdht 6.34 lib/holepuncher.js + nat.js,
 * hyperdht.md §4.4-4.6), the thin I/O shell around punch.h and the NAT classifier of nat.h:
 *
 * - owns a pool socket (dht_io.h) and samples its NAT: dht-rpc PINGs from that socket to up
 *   to 4 DHT nodes (the most recently seen, skipping the first 5 when 8 or more are known;
 *   one more pass if too few answered); each reply's `to` is a sample;
 * - the initiator (client) is connected on the first 1-byte probe any of its sockets gets;
 *   the responder (server) answers every probe with a probe (TTL 64);
 * - punch() runs the punch.h schedule on the loop (opening birthday sockets when asked).
 *
 * Callbacks never run from inside a puncher call; after destroy none runs.
 */
#ifndef HSP_DHT_PUNCHER_H
#define HSP_DHT_PUNCHER_H

#include "dht_io.h"
#include "punch.h"

typedef struct hsp_dht_puncher hsp_dht_puncher_t;

typedef struct hsp_dht_puncher_cbs {
  void (*on_analyzed)(void *ctx);  /* NAT analysis settled (once) */
  /* Initiator: first probe received on `socket` from `from` (the path to use). */
  void (*on_connect)(void *ctx, int socket, const hsp_ipv4_addr_t *from);
  void (*on_abort)(void *ctx);     /* the punch schedule ran out without a connection */
  void *ctx;
} hsp_dht_puncher_cbs_t;

int hsp_dht_puncher_create(hsp_dht_puncher_t **out, hsp_dht_io_t *io, bool initiator,
                           int remote_firewall, const hsp_dht_puncher_cbs_t *cbs);
/* Releases every socket not taken by a connection; no callback runs afterwards. */
void hsp_dht_puncher_destroy(hsp_dht_puncher_t *p);

int hsp_dht_puncher_socket(const hsp_dht_puncher_t *p); /* the main pool socket id */
bool hsp_dht_puncher_analyzed(const hsp_dht_puncher_t *p);
int hsp_dht_puncher_firewall(const hsp_dht_puncher_t *p);
/* Our sampled public addresses (NULL/0 while unknown). */
const hsp_ipv4_addr_t *hsp_dht_puncher_addresses(const hsp_dht_puncher_t *p, size_t *count);
bool hsp_dht_puncher_has_address(const hsp_dht_puncher_t *p, const hsp_ipv4_addr_t *a);
/* An extra sample (e.g. the `to` of a holepunch reply received on our socket). */
void hsp_dht_puncher_sample(hsp_dht_puncher_t *p, const hsp_ipv4_addr_t *to,
                            const hsp_ipv4_addr_t *from);
void hsp_dht_puncher_freeze(hsp_dht_puncher_t *p);

/* holepuncher.js updateRemote: addrs are `count` wire ipv4 entries (6 bytes each);
 * verified_host (4 bytes, may be NULL) marks addresses with that host as verified, and
 * addresses verified before stay verified. */
void hsp_dht_puncher_update_remote(hsp_dht_puncher_t *p, bool punching, int firewall,
                                   const uint8_t *addrs, size_t count,
                                   const uint8_t *verified_host);
int hsp_dht_puncher_remote_firewall(const hsp_dht_puncher_t *p);
bool hsp_dht_puncher_remote_punching(const hsp_dht_puncher_t *p);
bool hsp_dht_puncher_punching(const hsp_dht_puncher_t *p);
bool hsp_dht_puncher_connected(const hsp_dht_puncher_t *p);

/* One probe from the main socket: TTL 64 (ping) or TTL 5 (open a NAT session). */
void hsp_dht_puncher_ping(hsp_dht_puncher_t *p, const hsp_ipv4_addr_t *to);
void hsp_dht_puncher_open_session(hsp_dht_puncher_t *p, const hsp_ipv4_addr_t *to);
/* Start punching; returns the punch.h strategy, 0 when the NATs cannot be punched. */
int hsp_dht_puncher_punch(hsp_dht_puncher_t *p);

#endif
