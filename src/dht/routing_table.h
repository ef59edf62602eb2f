/*
 * Node ids and the Kademlia routing table (kademlia-routing-table 1.0.6 semantics,
 * docs/protocol/dht-rpc.md §3.1, §5.1).
 *
 * id = BLAKE2b-256(ipv4(4) || port LE(2)). The table has 256 fixed rows, row i holding the
 * nodes whose id first differs from the table id at bit i (MSB of byte 0 is bit 0), each row
 * at most k nodes kept sorted by id. No bucket splitting; a full row rejects newcomers and
 * the owner decides whether to evict (dht-rpc's re-ping policy lives in the node).
 *
 * Entries are stored by value inside their row, so pointers returned by get() are valid only
 * until the next add/remove.
 */
#ifndef HSP_DHT_ROUTING_TABLE_H
#define HSP_DHT_ROUTING_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "messages.h"

#define HSP_DHT_K 20
#define HSP_DHT_ROWS 256

void hsp_dht_id_from_addr(uint8_t out[HSP_DHT_ID_SIZE], const hsp_ipv4_addr_t *addr);
/* <0, 0, >0 as XOR distance of a to target is smaller, equal, larger than of b. */
int hsp_dht_id_distance_cmp(const uint8_t target[HSP_DHT_ID_SIZE],
                            const uint8_t a[HSP_DHT_ID_SIZE], const uint8_t b[HSP_DHT_ID_SIZE]);
/* Row index (length of the common prefix, 255 when equal). */
unsigned hsp_dht_id_row(const uint8_t table_id[HSP_DHT_ID_SIZE], const uint8_t id[HSP_DHT_ID_SIZE]);

typedef struct hsp_dht_table_node {
  uint8_t id[HSP_DHT_ID_SIZE];
  hsp_ipv4_addr_t addr;
  /* Bookkeeping of the owning node (ticks of its 5 s clock), see dht-rpc `_addNode`. */
  uint64_t added, pinged, seen, sampled;
  uint32_t down_hints;
  uint64_t contact; /* position in last-contact order: larger = more recent */
} hsp_dht_table_node_t;

typedef struct hsp_dht_table_row {
  hsp_dht_table_node_t *nodes; /* capacity k, allocated on first use */
  size_t count;
} hsp_dht_table_row_t;

typedef struct hsp_dht_table {
  uint8_t id[HSP_DHT_ID_SIZE];
  size_t k;
  size_t size;
  hsp_dht_table_row_t rows[HSP_DHT_ROWS];
} hsp_dht_table_t;

void hsp_dht_table_init(hsp_dht_table_t *t, const uint8_t id[HSP_DHT_ID_SIZE], size_t k);
void hsp_dht_table_free(hsp_dht_table_t *t);

enum {
  HSP_DHT_TABLE_ADDED = 1,    /* new entry */
  HSP_DHT_TABLE_REPLACED = 2, /* same id was present: entry overwritten */
  HSP_DHT_TABLE_FULL = 0,     /* row full, nothing changed */
};
/* Returns one of the values above or HSP_DHT_ENOMEM / HSP_DHT_EINVAL (own id). */
int hsp_dht_table_add(hsp_dht_table_t *t, const hsp_dht_table_node_t *node);
bool hsp_dht_table_remove(hsp_dht_table_t *t, const uint8_t id[HSP_DHT_ID_SIZE]);
hsp_dht_table_node_t *hsp_dht_table_get(hsp_dht_table_t *t, const uint8_t id[HSP_DHT_ID_SIZE]);
hsp_dht_table_row_t *hsp_dht_table_row_of(hsp_dht_table_t *t, const uint8_t id[HSP_DHT_ID_SIZE]);

/* Up to `max` nodes closest to target by XOR distance, closest first (pointers into the
 * table). This is the true k-closest set, which dht-rpc clients expect to be sorted. */
size_t hsp_dht_table_closest(hsp_dht_table_t *t, const uint8_t target[HSP_DHT_ID_SIZE],
                             hsp_dht_table_node_t **out, size_t max);
/* The n-th node in row order (n < size), for picking a uniformly random node. */
hsp_dht_table_node_t *hsp_dht_table_at(hsp_dht_table_t *t, size_t n);
/* Node with the smallest / largest `contact` (least / most recently heard from). */
hsp_dht_table_node_t *hsp_dht_table_oldest(hsp_dht_table_t *t);

#endif
