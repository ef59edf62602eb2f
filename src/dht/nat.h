/*
 * Learning our own public address (docs/protocol/dht-rpc.md §7.3, §7.4).
 *
 * The NAT sampler mirrors nat-sampler 1.0.1: each sample (host, port) is recorded as
 * (host, port) and (host, 0) in a 32-slot ring (16 samples); a value seen again among the
 * last 4 of its kind bumps a shared hit counter, evicted slots lose a hit. With a threshold
 * that tolerates a few outliers, the best (host, port) decides "consistent NAT", else the
 * best (host, 0) decides "random NAT" (port 0), else unknown.
 *
 * The firewall probe is the verdict of dht-rpc `_checkIfFirewalled`: PING_NAT(server port)
 * to up to 5 nodes; a reply counts only if its sender's host was also seen sending to our
 * server socket. Open iff enough replies counted, their sampled host equals ours and the
 * sampled port equals our server socket's port.
 */
#ifndef HSP_DHT_NAT_H
#define HSP_DHT_NAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compact.h"

#define HSP_DHT_NAT_RING 32

typedef struct hsp_dht_nat_entry {
  uint8_t host[4];
  uint16_t port;
  int hits;
} hsp_dht_nat_entry_t;

typedef struct hsp_dht_nat_sampler {
  /* Result: has_host false = unknown; port 0 with a host = random NAT. */
  bool has_host;
  uint8_t host[4];
  uint16_t port;
  size_t size; /* samples counted, at most 16 */

  int threshold;
  size_t top, used;
  uint8_t ring[HSP_DHT_NAT_RING];   /* indices into pool */
  hsp_dht_nat_entry_t pool[HSP_DHT_NAT_RING + 8];
  bool pool_used[HSP_DHT_NAT_RING + 8];
  int best_a, best_b;                /* pool indices or -1 */
} hsp_dht_nat_sampler_t;

void hsp_dht_nat_init(hsp_dht_nat_sampler_t *s);
/* Record one sample; returns the hit count of its (host, port) entry. */
int hsp_dht_nat_add(hsp_dht_nat_sampler_t *s, const uint8_t host[4], uint16_t port);

#define HSP_DHT_FIREWALL_MAX_PROBES 24 /* 5 table nodes + every bootstrap node */
#define HSP_DHT_FIREWALL_MAX_HOSTS 64

typedef struct hsp_dht_firewall_probe {
  size_t probed;
  size_t nhosts;
  uint8_t hosts[HSP_DHT_FIREWALL_MAX_HOSTS][4]; /* sources seen on the server socket */
  size_t nreplies;
  hsp_ipv4_addr_t reply_from[HSP_DHT_FIREWALL_MAX_PROBES];
  hsp_ipv4_addr_t reply_to[HSP_DHT_FIREWALL_MAX_PROBES];
} hsp_dht_firewall_probe_t;

void hsp_dht_firewall_probe_init(hsp_dht_firewall_probe_t *p, size_t probed);
/* Every datagram that arrives on the server socket while the probe runs. */
void hsp_dht_firewall_probe_saw(hsp_dht_firewall_probe_t *p, const uint8_t host[4]);
/* A PING_NAT reply: its sender and its `to` field. */
void hsp_dht_firewall_probe_reply(hsp_dht_firewall_probe_t *p, const hsp_ipv4_addr_t *from,
                                  const hsp_ipv4_addr_t *to);
/* After every probe settled. Fills `fresh` (a new sampler fed with the counted replies) and
 * returns true if the node is reachable on its server socket. */
bool hsp_dht_firewall_probe_open(const hsp_dht_firewall_probe_t *p,
                                 const hsp_dht_nat_sampler_t *main, uint16_t server_port,
                                 hsp_dht_nat_sampler_t *fresh);

#endif
