#include "hyper_client.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* Per-operation state that must live until the query ends (the commit callback uses it). */
typedef struct op {
  hsp_dht_query_cbs_t user;
  hsp_crypto_keypair_t kp;
  uint8_t target[32];
  uint8_t relays[6 * 3];
  size_t relay_count;
  uint8_t ns;            /* ANNOUNCE or UNANNOUNCE */
  uint8_t *value;        /* constant commit value (mutable/immutable put) */
  size_t value_len;
} op_t;

static void op_reply(void *ctx, const hsp_dht_reply_t *r) {
  op_t *op = ctx;
  if (op->user.on_reply) op->user.on_reply(op->user.ctx, r);
}

static void op_done(void *ctx, const hsp_dht_query_result_t *res) {
  op_t *op = ctx;
  if (op->user.on_done) op->user.on_done(op->user.ctx, res);
  sodium_memzero(&op->kp, sizeof(op->kp));
  free(op->value);
  free(op);
}

static long sign_announce(void *ctx, const hsp_dht_closest_reply_t *reply, uint8_t *buf,
                          size_t cap) {
  op_t *op = ctx;
  hsp_dht_peer_t peer = {op->kp.public_key, {op->relays, op->relay_count}};
  uint8_t sig[64];
  int err = hsp_dht_announce_sign(sig, op->ns, op->target, reply->id, reply->token, &peer, NULL,
                                  &op->kp);
  if (err) return err;
  hsp_dht_announce_t ann = {.has_peer = true, .peer = peer, .signature = sig};
  return hsp_dht_announce_encode(buf, cap, &ann);
}

static long constant_value(void *ctx, const hsp_dht_closest_reply_t *reply, uint8_t *buf,
                           size_t cap) {
  op_t *op = ctx;
  (void)reply;
  if (op->value_len > cap) return HSP_DHT_ENOBUFS;
  memcpy(buf, op->value, op->value_len);
  return (long)op->value_len;
}

static op_t *op_new(const hsp_dht_query_cbs_t *cbs, const uint8_t target[32]) {
  op_t *op = calloc(1, sizeof(*op));
  if (!op) return NULL;
  if (cbs) op->user = *cbs;
  memcpy(op->target, target, 32);
  return op;
}

static long run(hsp_dht_node_t *node, op_t *op, uint64_t command, const uint8_t *value,
                size_t value_len, bool has_value,
                long (*commit)(void *, const hsp_dht_closest_reply_t *, uint8_t *, size_t),
                uint64_t commit_command) {
  hsp_dht_query_opts_t o = {.internal = false, .command = command, .value = value,
                            .value_len = value_len, .has_value = has_value, .retries = -1,
                            .commit_value = commit, .commit_command = commit_command,
                            .commit_ctx = op};
  memcpy(o.target, op->target, 32);
  hsp_dht_query_cbs_t cbs = {op_reply, op_done, op};
  long h = hsp_dht_node_query(node, &o, &cbs);
  if (h < 0) {
    free(op->value);
    free(op);
  }
  return h;
}

long hsp_dht_announce(hsp_dht_node_t *node, const uint8_t topic[32], const hsp_crypto_keypair_t *kp,
                      const hsp_ipv4_addr_t *relays, size_t relay_count,
                      const hsp_dht_query_cbs_t *cbs) {
  op_t *op = op_new(cbs, topic);
  if (!op) return HSP_DHT_ENOMEM;
  op->kp = *kp;
  op->ns = HSP_HYPER_ANNOUNCE;
  if (relay_count > 3) relay_count = 3;
  for (size_t i = 0; i < relay_count; i++) hsp_dht_addr_to_wire(op->relays + 6 * i, &relays[i]);
  op->relay_count = relay_count;
  return run(node, op, HSP_HYPER_LOOKUP, NULL, 0, false, sign_announce, HSP_HYPER_ANNOUNCE);
}

long hsp_dht_unannounce(hsp_dht_node_t *node, const uint8_t topic[32], const hsp_crypto_keypair_t *kp,
                        const hsp_dht_query_cbs_t *cbs) {
  op_t *op = op_new(cbs, topic);
  if (!op) return HSP_DHT_ENOMEM;
  op->kp = *kp;
  op->ns = HSP_HYPER_UNANNOUNCE;
  return run(node, op, HSP_HYPER_LOOKUP, NULL, 0, false, sign_announce, HSP_HYPER_UNANNOUNCE);
}

long hsp_dht_lookup(hsp_dht_node_t *node, const uint8_t topic[32], const hsp_dht_query_cbs_t *cbs) {
  op_t *op = op_new(cbs, topic);
  if (!op) return HSP_DHT_ENOMEM;
  return run(node, op, HSP_HYPER_LOOKUP, NULL, 0, false, NULL, 0);
}

long hsp_dht_find_peer(hsp_dht_node_t *node, const uint8_t public_key[32],
                       const hsp_dht_query_cbs_t *cbs) {
  uint8_t target[32];
  hsp_crypto_hash(target, public_key, 32);
  op_t *op = op_new(cbs, target);
  if (!op) return HSP_DHT_ENOMEM;
  return run(node, op, HSP_HYPER_FIND_PEER, NULL, 0, false, NULL, 0);
}

long hsp_dht_mutable_put(hsp_dht_node_t *node, const hsp_crypto_keypair_t *kp, uint64_t seq,
                         const uint8_t *value, size_t len, const hsp_dht_query_cbs_t *cbs) {
  uint8_t target[32], sig[64];
  hsp_crypto_hash(target, kp->public_key, 32);
  hsp_bytes_t v = {value, len};
  int err = hsp_dht_mutable_sign(sig, seq, v, kp);
  if (err) return err;
  hsp_dht_mutable_put_t put = {kp->public_key, seq, v, sig};
  long plen = hsp_dht_mutable_put_encode(NULL, 0, &put);
  if (plen < 0) return plen;
  op_t *op = op_new(cbs, target);
  if (!op || !(op->value = malloc((size_t)plen))) {
    free(op);
    return HSP_DHT_ENOMEM;
  }
  op->value_len = (size_t)hsp_dht_mutable_put_encode(op->value, (size_t)plen, &put);
  uint8_t zero = 0; /* MUTABLE_GET with seq 0 finds the closest nodes and their tokens */
  return run(node, op, HSP_HYPER_MUTABLE_GET, &zero, 1, true, constant_value, HSP_HYPER_MUTABLE_PUT);
}

long hsp_dht_mutable_get(hsp_dht_node_t *node, const uint8_t public_key[32], uint64_t min_seq,
                         const hsp_dht_query_cbs_t *cbs) {
  uint8_t target[32], seq[9];
  hsp_crypto_hash(target, public_key, 32);
  hsp_cenc_t s = hsp_cenc_for_encode(seq, sizeof(seq));
  hsp_cenc_encode_uint(&s, min_seq);
  if (!hsp_cenc_ok(&s)) return HSP_DHT_ERANGE;
  op_t *op = op_new(cbs, target);
  if (!op) return HSP_DHT_ENOMEM;
  return run(node, op, HSP_HYPER_MUTABLE_GET, seq, s.start, true, NULL, 0);
}

long hsp_dht_immutable_put(hsp_dht_node_t *node, const uint8_t *value, size_t len,
                           const hsp_dht_query_cbs_t *cbs) {
  uint8_t target[32];
  hsp_crypto_hash(target, value, len);
  op_t *op = op_new(cbs, target);
  if (!op || (len && !(op->value = malloc(len)))) {
    free(op);
    return HSP_DHT_ENOMEM;
  }
  if (len) memcpy(op->value, value, len);
  op->value_len = len;
  return run(node, op, HSP_HYPER_IMMUTABLE_GET, NULL, 0, false, constant_value,
             HSP_HYPER_IMMUTABLE_PUT);
}

long hsp_dht_immutable_get(hsp_dht_node_t *node, const uint8_t target[32],
                           const hsp_dht_query_cbs_t *cbs) {
  op_t *op = op_new(cbs, target);
  if (!op) return HSP_DHT_ENOMEM;
  return run(node, op, HSP_HYPER_IMMUTABLE_GET, NULL, 0, false, NULL, 0);
}
