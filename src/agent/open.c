#include "open.h"

#include <stdlib.h>
#include <string.h>

long hsp_agent_select(const hsp_reg_replica_t *r, const char *name, const char *range,
                      hsp_reg_instance_t *out, size_t cap) {
  long n = hsp_reg_replica_query(r, name, range, out, cap);
  return n < 0 ? n : (size_t)n > cap ? (long)cap : n;
}

typedef struct opener {
  hsp_dht_io_t *io;
  const hsp_crypto_keypair_t *kp;
  uint8_t keys[HSP_AGENT_OPEN_MAX][32];
  size_t n, at;
  hsp_agent_open_cb cb;
  void *ctx;
} opener_t;

static void try_next(opener_t *o, int last_err);

static void on_connect(void *ctx, hsp_dht_conn_t *conn, int err) {
  opener_t *o = ctx;
  if (!err) {
    o->cb(o->ctx, conn, o->keys[o->at], 0);
    free(o);
    return;
  }
  o->at++;
  try_next(o, err);
}

static void try_next(opener_t *o, int last_err) {
  while (o->at < o->n) {
    int err = hsp_dht_connect(o->io, o->kp, o->keys[o->at], on_connect, o);
    if (!err) return;
    last_err = err;
    o->at++;
  }
  o->cb(o->ctx, NULL, NULL, last_err);
  free(o);
}

int hsp_agent_open(hsp_dht_io_t *io, const hsp_crypto_keypair_t *kp, const uint8_t (*keys)[32],
                   size_t n, hsp_agent_open_cb cb, void *ctx) {
  if (n == 0) return HSP_DHT_CONN_ENOTFOUND;
  opener_t *o = calloc(1, sizeof *o);
  if (!o) return HSP_DHT_ENOMEM;
  o->io = io;
  o->kp = kp;
  o->n = n > HSP_AGENT_OPEN_MAX ? HSP_AGENT_OPEN_MAX : n;
  memcpy(o->keys, keys, o->n * 32);
  o->cb = cb;
  o->ctx = ctx;
  int err = HSP_DHT_CONN_ENOTFOUND;
  for (; o->at < o->n; o->at++)
    if ((err = hsp_dht_connect(io, kp, o->keys[o->at], on_connect, o)) == 0) return 0;
  free(o);
  return err;
}
