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

/*
 * hyperdht NAT classification (hyperdht 6.34 lib/nat.js, docs/protocol/hyperdht.md §4.5):
 * samples are the `to` of dht-rpc responses on one socket, at most one per remote node.
 * With >= 3 samples the (host, port) ranking decides CONSISTENT / RANDOM (firewall values of
 * hyper_messages.h: 0 UNKNOWN, 1 OPEN, 2 CONSISTENT, 3 RANDOM); a non-firewalled DHT is OPEN.
 * Reported addresses: CONSISTENT -> every pair with >= 2 hits (at least the top 2); RANDOM ->
 * [top host, port 0]. Samples beyond the capacity are ignored (sampling asks ~4 nodes).
 */
#define HSP_DHT_NAT_CLASS_MAX 32
#define HSP_DHT_NAT_MIN_SAMPLES 4

typedef struct hsp_dht_nat_class_sample {
  hsp_ipv4_addr_t addr;
  int hits;
} hsp_dht_nat_class_sample_t;

typedef struct hsp_dht_nat_classifier {
  bool dht_firewalled;
  bool frozen;
  int firewall;
  size_t sampled;
  hsp_dht_nat_class_sample_t hosts[HSP_DHT_NAT_CLASS_MAX]; /* port 0, by hits */
  hsp_dht_nat_class_sample_t full[HSP_DHT_NAT_CLASS_MAX];  /* by hits */
  size_t nhosts, nfull;
  hsp_ipv4_addr_t visited[HSP_DHT_NAT_CLASS_MAX];
  size_t nvisited;
  bool has_addresses;
  hsp_ipv4_addr_t addresses[HSP_DHT_NAT_CLASS_MAX];
  size_t naddresses;
} hsp_dht_nat_classifier_t;

void hsp_dht_nat_classifier_init(hsp_dht_nat_classifier_t *c, bool dht_firewalled);
/* Add the sample `to` reported by node `from`. Returns true when the analysis is settled
 * (CONSISTENT or OPEN, or at least HSP_DHT_NAT_MIN_SAMPLES samples). */
bool hsp_dht_nat_classifier_add(hsp_dht_nat_classifier_t *c, const hsp_ipv4_addr_t *to,
                                const hsp_ipv4_addr_t *from);
/* Re-evaluate after the DHT's firewalled state changed. */
void hsp_dht_nat_classifier_update(hsp_dht_nat_classifier_t *c, bool dht_firewalled);
void hsp_dht_nat_classifier_freeze(hsp_dht_nat_classifier_t *c);
void hsp_dht_nat_classifier_unfreeze(hsp_dht_nat_classifier_t *c);

#endif
