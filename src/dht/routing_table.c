#include "routing_table.h"

#include "crypto.h"

#include <stdlib.h>
#include <string.h>

void hsp_dht_id_from_addr(uint8_t out[HSP_DHT_ID_SIZE], const hsp_ipv4_addr_t *addr) {
  uint8_t wire[HSP_CENC_IPV4_ADDR_SIZE];
  hsp_dht_addr_to_wire(wire, addr);
  hsp_crypto_hash(out, wire, sizeof(wire));
}

int hsp_dht_id_distance_cmp(const uint8_t target[HSP_DHT_ID_SIZE],
                            const uint8_t a[HSP_DHT_ID_SIZE], const uint8_t b[HSP_DHT_ID_SIZE]) {
  for (size_t i = 0; i < HSP_DHT_ID_SIZE; i++) {
    if (a[i] == b[i]) continue;
    return (int)(target[i] ^ a[i]) - (int)(target[i] ^ b[i]);
  }
  return 0;
}

unsigned hsp_dht_id_row(const uint8_t table_id[HSP_DHT_ID_SIZE], const uint8_t id[HSP_DHT_ID_SIZE]) {
  for (unsigned i = 0; i < HSP_DHT_ID_SIZE; i++) {
    uint8_t x = (uint8_t)(table_id[i] ^ id[i]);
    if (!x) continue;
    unsigned bit = 0;
    while (!(x & 0x80)) {
      x = (uint8_t)(x << 1);
      bit++;
    }
    return i * 8 + bit;
  }
  return HSP_DHT_ROWS - 1;
}

void hsp_dht_table_init(hsp_dht_table_t *t, const uint8_t id[HSP_DHT_ID_SIZE], size_t k) {
  memset(t, 0, sizeof(*t));
  memcpy(t->id, id, HSP_DHT_ID_SIZE);
  t->k = k ? k : HSP_DHT_K;
}

void hsp_dht_table_free(hsp_dht_table_t *t) {
  for (size_t i = 0; i < HSP_DHT_ROWS; i++) free(t->rows[i].nodes);
  memset(t->rows, 0, sizeof(t->rows));
  t->size = 0;
}

/* Binary search in a row sorted by id: index of the match, or -(insertion point) - 1. */
static long row_find(const hsp_dht_table_row_t *row, const uint8_t id[HSP_DHT_ID_SIZE]) {
  size_t lo = 0, hi = row->count;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = memcmp(id, row->nodes[mid].id, HSP_DHT_ID_SIZE);
    if (c == 0) return (long)mid;
    if (c < 0) hi = mid;
    else lo = mid + 1;
  }
  return -(long)lo - 1;
}

hsp_dht_table_row_t *hsp_dht_table_row_of(hsp_dht_table_t *t, const uint8_t id[HSP_DHT_ID_SIZE]) {
  return &t->rows[hsp_dht_id_row(t->id, id)];
}

int hsp_dht_table_add(hsp_dht_table_t *t, const hsp_dht_table_node_t *node) {
  if (memcmp(node->id, t->id, HSP_DHT_ID_SIZE) == 0) return HSP_DHT_EINVAL;
  hsp_dht_table_row_t *row = hsp_dht_table_row_of(t, node->id);
  if (!row->nodes) {
    row->nodes = calloc(t->k, sizeof(*row->nodes));
    if (!row->nodes) return HSP_DHT_ENOMEM;
  }
  long i = row_find(row, node->id);
  if (i >= 0) {
    row->nodes[i] = *node;
    return HSP_DHT_TABLE_REPLACED;
  }
  if (row->count >= t->k) return HSP_DHT_TABLE_FULL;
  size_t at = (size_t)(-i - 1);
  memmove(&row->nodes[at + 1], &row->nodes[at], (row->count - at) * sizeof(*row->nodes));
  row->nodes[at] = *node;
  row->count++;
  t->size++;
  return HSP_DHT_TABLE_ADDED;
}

bool hsp_dht_table_remove(hsp_dht_table_t *t, const uint8_t id[HSP_DHT_ID_SIZE]) {
  hsp_dht_table_row_t *row = hsp_dht_table_row_of(t, id);
  if (!row->count) return false;
  long i = row_find(row, id);
  if (i < 0) return false;
  memmove(&row->nodes[i], &row->nodes[i + 1], (row->count - (size_t)i - 1) * sizeof(*row->nodes));
  row->count--;
  t->size--;
  return true;
}

hsp_dht_table_node_t *hsp_dht_table_get(hsp_dht_table_t *t, const uint8_t id[HSP_DHT_ID_SIZE]) {
  hsp_dht_table_row_t *row = hsp_dht_table_row_of(t, id);
  if (!row->count) return NULL;
  long i = row_find(row, id);
  return i >= 0 ? &row->nodes[i] : NULL;
}

size_t hsp_dht_table_closest(hsp_dht_table_t *t, const uint8_t target[HSP_DHT_ID_SIZE],
                             hsp_dht_table_node_t **out, size_t max) {
  size_t n = 0;
  if (!max) return 0;
  /* Insertion into a bounded sorted list: tables hold a few hundred nodes at most. */
  for (size_t r = 0; r < HSP_DHT_ROWS; r++) {
    hsp_dht_table_row_t *row = &t->rows[r];
    for (size_t j = 0; j < row->count; j++) {
      hsp_dht_table_node_t *node = &row->nodes[j];
      if (n == max && hsp_dht_id_distance_cmp(target, node->id, out[n - 1]->id) >= 0) continue;
      size_t at = n < max ? n++ : n - 1;
      while (at > 0 && hsp_dht_id_distance_cmp(target, node->id, out[at - 1]->id) < 0) {
        out[at] = out[at - 1];
        at--;
      }
      out[at] = node;
    }
  }
  return n;
}

hsp_dht_table_node_t *hsp_dht_table_at(hsp_dht_table_t *t, size_t n) {
  for (size_t r = 0; r < HSP_DHT_ROWS; r++) {
    if (n < t->rows[r].count) return &t->rows[r].nodes[n];
    n -= t->rows[r].count;
  }
  return NULL;
}

hsp_dht_table_node_t *hsp_dht_table_oldest(hsp_dht_table_t *t) {
  hsp_dht_table_node_t *best = NULL;
  for (size_t r = 0; r < HSP_DHT_ROWS; r++)
    for (size_t j = 0; j < t->rows[r].count; j++)
      if (!best || t->rows[r].nodes[j].contact < best->contact) best = &t->rows[r].nodes[j];
  return best;
}
